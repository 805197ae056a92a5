"""How a prediction reaches a model in web processes: the routing table, a wake from zero, the input checks,
the cache key and the worker call, with every failure of that call mapped to the error a client sees.

No database query on the common path and no model code here: deployments reach us through the model
server's routing table (a file re-read only when it changes), inputs are checked against the signature before
anything is sent, and the model itself runs in a worker process.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

from django.conf import settings
from django.db import connections
from redis.backoff import NoBackoff
from redis.retry import Retry

from core import redis_clients
from core.db import keeping_connections
from core.errors import ApplicationError, InvalidInput
from core.pools import ProcessLocalPool
from inference import platform_config
from inference.errors import (
    DeadlineExceeded,
    DeploymentNotReady,
    EndpointNotFound,
    ModelFailed,
    NoDeploymentForVersion,
    Overloaded,
    TooManyRows,
)
from inference.predict import announcements
from inference.runtime.contract.gateway import parse_remote
from inference.runtime.contract.protocol import ErrorCode
from inference.runtime.contract.routes import ControlUnavailable, Route, RoutesReader, control_request
from inference.runtime.web import client as worker_client
from inference.runtime.web import remote
from inference.runtime.web.aioclient import AsyncWorkerClient
from inference.runtime.web.cache import PredictionCache
from inference.runtime.web.inputs import InputError, canonical_key, normalize_inputs
from inference.runtime.web.router import InstanceRouter

WAKE_POLL_S = 0.05
T = TypeVar("T")
U = TypeVar("U")


# How long a web process may keep answering from the routing table it last looked at: a change to a deployment
# (an alias move, a new log rate) reaches every web process within this much of reaching routes.json.
ROUTES_RECHECK_S = 0.05


@lru_cache(maxsize=1)
def routes() -> InstanceRouter:
    """This host's routing table merged with the other model server instances' (runtime/web/router.py)."""
    # Paths that react to a change (a lost worker, a wake) ask fresh.
    local = RoutesReader(str(settings.MODEL_SERVER_DIR / "routes.json"), recheck_s=ROUTES_RECHECK_S)
    # Without the secret no other host's model server would let this process in: route to local workers only.
    fetch = announcements.fetch_all if settings.MODEL_SERVER_SECRET else None
    return InstanceRouter(local, fetch, local_name=settings.INSTANCE_NAME,
                          heartbeat_ttl_s=announcements.ANNOUNCEMENT_TTL_S)


def _connect_remote(address: str, until: float) -> socket.socket:
    return remote.connect_blocking(parse_remote(address), announcements.gateway_auth(), until, routes().mark_down)


async def _connect_remote_async(address: str, protocol_factory: Callable[[], Any]) -> Any:
    return await remote.connect_async(parse_remote(address), announcements.gateway_auth(), routes().mark_down,
                                      protocol_factory)


@lru_cache(maxsize=1)
def workers() -> worker_client.WorkerClient:
    return worker_client.WorkerClient(remote=_connect_remote)


_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncWorkerClient] = (
    weakref.WeakKeyDictionary())


def async_workers() -> AsyncWorkerClient:
    """The calling event loop's client (its connections belong to that loop)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = _async_clients[loop] = AsyncWorkerClient(remote=_connect_remote_async)
    return client


@lru_cache(maxsize=1)
def prediction_cache() -> PredictionCache:
    # No retries: when Redis is down the cache fails open at once instead of stalling the request.
    client = redis_clients.connect(settings.REDIS_URL, socket_timeout=0.25, socket_connect_timeout=0.25,
                                  retry=Retry(NoBackoff(), 0))
    config = platform_config.current_config()
    return PredictionCache(client, ttl_s=config["cache_ttl_s"], capacity=config["cache_capacity"])


def _configure_cache(old: dict[str, Any], new: dict[str, Any]) -> None:
    if old and (old["cache_ttl_s"], old["cache_capacity"]) != (new["cache_ttl_s"], new["cache_capacity"]):
        prediction_cache().configure(ttl_s=new["cache_ttl_s"], capacity=new["cache_capacity"])


platform_config.on_change(_configure_cache)


# --- the route ------------------------------------------------------------------------------------------


def route_for(endpoint: str) -> Route:
    """The endpoint's route once it has workers: woken from zero if need be, else 404 or 503 saying why."""
    route = routes().endpoint(endpoint)
    if route is None:
        _explain_missing_route(endpoint)
    assert route is not None  # _explain_missing_route always raises
    if route.status == "scaled_to_zero" or (route.status == "loading" and not route.sockets):
        route = _wake(endpoint, route)
    if not route.sockets:
        reason = route.reason or f"deployment is {route.status}"
        raise DeploymentNotReady(f"Endpoint '{endpoint}' is not ready: {reason}.", retry_after_s=2)
    return route


def _explain_missing_route(endpoint: str) -> None:
    # Off the hot path: only requests for endpoints the model server does not serve get here.
    from inference.models import LIVE, Deployment

    if not Deployment.objects.filter(LIVE, endpoint=endpoint).exists():
        raise EndpointNotFound(f"No live deployment at endpoint '{endpoint}'.")
    if not routes().supervisor_alive():
        raise DeploymentNotReady("The model server is not running.", retry_after_s=5)
    raise DeploymentNotReady(f"Endpoint '{endpoint}' is starting.", retry_after_s=2)


def _wake(endpoint: str, route: Route) -> Route:
    """Scale-to-zero: asks the model server to load the deployment and waits (this request only)."""
    deadline = time.monotonic() + route.timeout_ms / 1000 + settings.MODEL_LOAD_TIMEOUT_S
    try:
        control_request(str(settings.MODEL_SERVER_DIR / "control.sock"), {"op": "wake", "endpoint": endpoint}, 2.0)
    except ControlUnavailable:
        if route.status == "loading":
            # Loading on a model server of another host (its announcement says so): nothing to wake from here.
            raise DeploymentNotReady(f"Endpoint '{endpoint}' is loading.", retry_after_s=2) from None
        raise DeploymentNotReady("The model server is not running.", retry_after_s=5) from None
    while time.monotonic() < deadline:
        current = routes().endpoint(endpoint, fresh=True)
        if current and current.sockets:
            return current
        if current and current.status == "failed":
            break
        time.sleep(WAKE_POLL_S)
    raise DeploymentNotReady(f"Endpoint '{endpoint}' could not be loaded in time.", retry_after_s=5)


def endpoint_for_version(model_version_id: int, model_name: str = "", ref: str | int = "") -> str:
    """The universal route: a live, routed deployment serving exactly this version, else one following the alias
    the request named (`ref`), which serves its previous version while the version the alias moved to loads.

    The alias moves in the database at once, but a deployment that follows it names the new version in the
    routing table only once that generation is ready: matching by version alone would answer 404 meanwhile.
    A ready route is preferred to one that is not (which answers 503 while it starts).
    """
    table = routes().table().endpoints
    exact = [route for route in table.values() if route.model_version_id == model_version_id and not route.ensemble]
    following = []
    if isinstance(ref, str) and ref and not ref.isdigit():
        following = [route for route in table.values()
                     if route.alias == ref and route.model == model_name and not route.ensemble]
    for candidates in (exact, following):
        if ready := [route for route in candidates if route.sockets]:
            return ready[0].endpoint
    if exact or following:
        return (exact or following)[0].endpoint
    raise NoDeploymentForVersion("No live deployment serves this model version; deploy it first.")


# --- the request's rows and its cache key -----------------------------------------------------------------


def rows_for(route: Route, raw: Any) -> list[Any]:
    """The request's inputs as the rows a worker takes, checked against the signature (400/413 otherwise)."""
    try:
        return normalize_inputs(raw, route.signature, max_rows=route.max_rows)
    except InputError as exc:
        if exc.status == 413:
            raise TooManyRows(exc.message, details={"field": exc.field}) from None
        raise InvalidInput(exc.message, details={"field": exc.field, "row": exc.row}) from None


def cache_key(route: Route, rows: list[Any], params: dict[str, Any],
              config: dict[str, Any] | None = None) -> str | None:
    if not route.cache:
        return None
    if not (config or platform_config.current_config())["cache_enabled"]:
        return None
    return canonical_key(route.scope, rows, params)


def worker_params(params: dict[str, Any]) -> dict[str, Any]:
    """The request parameters a worker acts on (the others are the web tier's: cache, ...)."""
    return {key: value for key, value in params.items() if key in ("uncertainty",)}


# --- the worker call ----------------------------------------------------------------------------------------


def timeout_ms_for(route: Route, requested: int | None = None) -> int:
    """The deployment's timeout, or the shorter one the request asked for (parameters.timeout_ms)."""
    return route.timeout_ms if requested is None else min(route.timeout_ms, requested)


def deadline(route: Route, timeout_ms: int | None = None) -> float:
    return time.time() + timeout_ms_for(route, timeout_ms) / 1000


def worker_message(op: str, rows: list[Any], params: dict[str, Any]) -> dict[str, Any]:
    return {"op": op, "inputs": rows, "params": params}  # the client adds its id and the deadline


def call_worker(route: Route, op: str, rows: list[Any], params: dict[str, Any], *,
                timeout_ms: int | None = None) -> dict[str, Any]:
    """The worker's answer, within the deployment's timeout or the request's shorter `timeout_ms`."""
    message, until = worker_message(op, rows, params), deadline(route, timeout_ms)
    with _worker_errors(route, op, timeout_ms):
        try:
            return workers().call(route.sockets, message, deadline=until)
        except (worker_client.WorkerUnavailable, worker_client.WorkerError) as exc:
            fresh = _reroute(route, exc, until)
        return workers().call(fresh.sockets, message, deadline=until)


async def call_worker_async(route: Route, op: str, rows: list[Any], params: dict[str, Any], *,
                            timeout_ms: int | None = None) -> dict[str, Any]:
    """call_worker for an event loop, over the loop's multiplexed connections."""
    message, until = worker_message(op, rows, params), deadline(route, timeout_ms)
    with _worker_errors(route, op, timeout_ms):
        try:
            return await async_workers().call(route.sockets, message, deadline=until)
        except (worker_client.WorkerUnavailable, worker_client.WorkerError) as exc:
            fresh = _reroute(route, exc, until)
        return await async_workers().call(fresh.sockets, message, deadline=until)


_CALL_ERRORS = (worker_client.QueueFull, worker_client.DeadlineExceeded, worker_client.WorkerUnavailable,
                worker_client.WorkerError)


@contextmanager
def _worker_errors(route: Route, op: str, timeout_ms: int | None) -> Iterator[None]:
    try:
        yield
    except _CALL_ERRORS as exc:
        raise call_error(route, op, exc, timeout_ms) from None


def call_error(route: Route, op: str, exc: worker_client.WorkerCallError,
               timeout_ms: int | None = None) -> ApplicationError:
    """What a failed worker call answers the client (`timeout_ms`: the request's own, if it set one)."""
    if isinstance(exc, worker_client.QueueFull):
        return Overloaded(f"Endpoint '{route.endpoint}' is at capacity; retry shortly.", retry_after_s=1)
    if isinstance(exc, worker_client.DeadlineExceeded):
        return DeadlineExceeded(f"No answer within {timeout_ms_for(route, timeout_ms)} ms.")
    if isinstance(exc, worker_client.WorkerUnavailable):
        return DeploymentNotReady(f"Endpoint '{route.endpoint}' lost its worker; retry.", retry_after_s=1)
    assert isinstance(exc, worker_client.WorkerError)
    return _worker_error(exc, op)


def _reroute(route: Route, exc: Exception, until: float) -> Route:
    """A generation swap or a restarted worker changes the sockets: the fresh route for one retry, else `exc`."""
    if isinstance(exc, worker_client.WorkerError) and exc.code != ErrorCode.DRAINING:
        raise exc
    fresh = routes().endpoint(route.endpoint, fresh=True)
    if not fresh or not fresh.sockets or fresh.sockets == route.sockets or time.time() >= until:
        raise exc
    return fresh


def _worker_error(exc: worker_client.WorkerError, op: str) -> ApplicationError:
    if exc.code == ErrorCode.UNSUPPORTED and op == "predict":
        # The one thing a prediction asks that a model may not offer: Monte Carlo dropout.
        return InvalidInput(exc.message, details={"field": "parameters.uncertainty"})
    if exc.code in (ErrorCode.INVALID_INPUT, ErrorCode.UNSUPPORTED, ErrorCode.BAD_REQUEST):
        return InvalidInput(exc.message, details={"field": "inputs"})
    if exc.code == ErrorCode.DRAINING:
        return DeploymentNotReady("The endpoint is restarting; retry.", retry_after_s=1)
    return ModelFailed(exc.message)


# --- side by side (the batch route) ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _side_by_side_pool() -> ProcessLocalPool:
    return ProcessLocalPool(settings.PREDICT_BATCH_THREADS, "predict-batch")


def map_side_by_side(function: Callable[[T], U], items: Sequence[T]) -> list[U]:
    """[function(item) for item in items], run side by side in a per-process pool of PREDICT_BATCH_THREADS.

    The batch route (predict/many.py) runs each deployment's items, and each item an experiment routes, this
    way: one does not wait for another's round trip. Each runs in a copy of the caller's context (the
    request id reaches the logs). Never call it from one of the pool's own threads.
    """
    if len(items) < 2:
        return [function(item) for item in items]
    pool, context = _side_by_side_pool().get(), contextvars.copy_context()
    futures = [pool.submit(context.copy().run, keeping_connections, function, item) for item in items]
    return [future.result() for future in futures]


def side_by_side_shutdown() -> None:
    """Stops this process's item threads after each closed its database connections (before a test
    database is dropped: connections kept by idle threads would hold it open)."""
    pool = _side_by_side_pool().detach()
    if pool is None:
        return
    size = _side_by_side_pool().size
    together = threading.Barrier(size, timeout=10)  # holds each task until all run: one per thread

    def close() -> None:
        together.wait()
        connections.close_all()

    for future in [pool.submit(close) for _ in range(size)]:
        future.result()
    pool.shutdown(wait=True)
