"""The prediction hot path in web processes: routing table -> input checks -> cache -> worker.

No database query and no model code here: deployments reach us through the model server's routing
table (a file re-read only when it changes), inputs are checked against the signature before
anything is sent, and the model itself runs in a worker process.
"""

import asyncio
import contextvars
import json
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.db import connections
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.db import keeping_connections
from core.errors import ApplicationError, InvalidInput
from core.pools import ProcessLocalPool
from inference import metrics
from inference.config import current_config, fresh_config
from inference.errors import (
    DeadlineExceeded,
    DeploymentNotReady,
    EndpointNotFound,
    ModelFailed,
    NoDeploymentForVersion,
    Overloaded,
    TooManyRows,
)
from inference.runtime import client as worker_client
from inference.runtime.aioclient import AsyncWorkerClient
from inference.runtime.cache import PredictionCache
from inference.runtime.inputs import InputError, canonical_key, normalize_inputs
from inference.runtime.protocol import ErrorCode
from inference.runtime.routes import ControlUnavailable, RoutesReader, control_request

logger = logging.getLogger(__name__)
WAKE_POLL_S = 0.05


@lru_cache(maxsize=1)
def routes() -> RoutesReader:
    # Looked at again at most every 50 ms; paths that react to a change (a lost worker, a wake) ask fresh.
    return RoutesReader(str(settings.MODEL_SERVER_DIR / "routes.json"), recheck_s=0.05)


@lru_cache(maxsize=1)
def workers() -> worker_client.WorkerClient:
    return worker_client.WorkerClient()


_async_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncWorkerClient]" = (
    weakref.WeakKeyDictionary())


def async_workers() -> AsyncWorkerClient:
    """The calling event loop's client (its connections belong to that loop)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = _async_clients[loop] = AsyncWorkerClient()
    return client


@lru_cache(maxsize=1)
def prediction_cache() -> PredictionCache:
    # No retries: when Redis is down the cache fails open at once instead of stalling the request.
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.25, socket_connect_timeout=0.25,
                                  retry=Retry(NoBackoff(), 0))
    config = current_config()
    return PredictionCache(client, ttl_s=config["cache_ttl_s"], capacity=config["cache_capacity"])


@dataclass
class PredictRequest:
    endpoint: str
    inputs: Any
    params: dict
    request_id: str | None = None
    subject_id: str | None = None


@dataclass
class Routing:
    """Where an experiment sends one request: the variant's deployment answers, shadows get a copy."""

    endpoint: str
    variant: str
    experiment_id: int
    shadows: list[str] = field(default_factory=list)


class ExperimentHooks:
    """Implemented by the experiments app and registered at start-up (serving knows no experiments).

    `route` must be cheap (no DB query on the hot path) and return None when no running experiment
    owns the endpoint. `record` is told every routed outcome (a response dict or an ApplicationError)
    and must not raise or block for long. `shadow` runs a shadow copy off the request path.
    """

    def route(self, request: PredictRequest) -> Routing | None:
        return None

    def record(self, routing: Routing, request: PredictRequest, outcome: Any, seconds: float) -> None:
        return None

    def shadow(self, routing: Routing, request: PredictRequest) -> None:
        return None

    def may_route(self, endpoint: str) -> bool:
        """False only when `route` would surely return None without blocking (the fast lane asks)."""
        return False


experiment_hooks = ExperimentHooks()


def _route(endpoint: str) -> dict:
    route = routes().endpoint(endpoint)
    if route is None:
        _explain_missing_route(endpoint)
    if route["status"] == "scaled_to_zero" or (route["status"] == "loading" and not route["sockets"]):
        route = _wake(endpoint, route)
    if not route["sockets"]:
        reason = route.get("reason") or f"deployment is {route['status']}"
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


def _wake(endpoint: str, route: dict) -> dict:
    """Scale-to-zero: asks the model server to load the deployment and waits (this request only)."""
    deadline = time.monotonic() + route.get("timeout_ms", 5000) / 1000 + settings.MODEL_LOAD_TIMEOUT_S
    try:
        control_request(str(settings.MODEL_SERVER_DIR / "control.sock"), {"op": "wake", "endpoint": endpoint}, 2.0)
    except ControlUnavailable:
        raise DeploymentNotReady("The model server is not running.", retry_after_s=5) from None
    while time.monotonic() < deadline:
        current = routes().endpoint(endpoint, fresh=True)
        if current and current["sockets"]:
            return current
        if current and current["status"] == "failed":
            break
        time.sleep(WAKE_POLL_S)
    raise DeploymentNotReady(f"Endpoint '{endpoint}' could not be loaded in time.", retry_after_s=5)


def _rows(route: dict, raw: Any) -> list:
    try:
        return normalize_inputs(raw, route.get("signature") or {}, max_rows=route.get("max_rows", 1024))
    except InputError as exc:
        if exc.status == 413:
            raise TooManyRows(exc.message, details={"field": exc.field}) from None
        raise InvalidInput(exc.message, details={"field": exc.field, "row": exc.row}) from None


def _cache_key(route: dict, rows: list, params: dict, config: dict | None = None) -> str | None:
    if not route.get("cache", True):
        return None
    if not (config or current_config())["cache_enabled"]:
        return None
    # A route table written before cache_scope existed names the version alone.
    scope = route.get("cache_scope") or f"{route['model_version_id']}:{route['sha256']}"
    return canonical_key(scope, rows, params)


def _call_worker(route: dict, op: str, rows: list, params: dict) -> dict:
    deadline, message = _worker_message(route, op, rows, params)
    with _worker_errors(route, op):
        return _call_with_reroute(route, message, deadline)


def _worker_message(route: dict, op: str, rows: list, params: dict) -> tuple[float, dict]:
    return _deadline(route), _message(op, rows, params)


def _deadline(route: dict) -> float:
    return time.time() + route.get("timeout_ms", 5000) / 1000


def _message(op: str, rows: list, params: dict) -> dict:
    return {"op": op, "inputs": rows, "params": params}  # the client adds its id and the deadline


_CALL_ERRORS = (worker_client.QueueFull, worker_client.DeadlineExceeded, worker_client.WorkerUnavailable,
                worker_client.WorkerError)


@contextmanager
def _worker_errors(route: dict, op: str) -> Iterator[None]:
    try:
        yield
    except _CALL_ERRORS as exc:
        raise _call_error(route, op, exc) from None


def _call_error(route: dict, op: str, exc: "worker_client.WorkerCallError") -> Exception:
    """What a failed worker call (one of _CALL_ERRORS) answers the client."""
    if isinstance(exc, worker_client.QueueFull):
        return Overloaded(f"Endpoint '{route['endpoint']}' is at capacity; retry shortly.", retry_after_s=1)
    if isinstance(exc, worker_client.DeadlineExceeded):
        return DeadlineExceeded(f"No answer within {route.get('timeout_ms')} ms.")
    if isinstance(exc, worker_client.WorkerUnavailable):
        return DeploymentNotReady(f"Endpoint '{route['endpoint']}' lost its worker; retry.", retry_after_s=1)
    return _worker_error(exc, op)


def _call_with_reroute(route: dict, message: dict, deadline: float) -> dict:
    try:
        return workers().call(route["sockets"], message, deadline=deadline)
    except (worker_client.WorkerUnavailable, worker_client.WorkerError) as exc:
        fresh = _reroute(route, exc, deadline)
    return workers().call(fresh["sockets"], message, deadline=deadline)


async def _call_with_reroute_async(route: dict, message: dict, deadline: float) -> dict:
    try:
        return await async_workers().call(route["sockets"], message, deadline=deadline)
    except (worker_client.WorkerUnavailable, worker_client.WorkerError) as exc:
        fresh = _reroute(route, exc, deadline)
    return await async_workers().call(fresh["sockets"], message, deadline=deadline)


def _reroute(route: dict, exc: Exception, deadline: float) -> dict:
    """A generation swap or a restarted worker changes the sockets: the fresh route for one retry, else `exc`."""
    if isinstance(exc, worker_client.WorkerError) and exc.code != ErrorCode.DRAINING:
        raise exc
    fresh = routes().endpoint(route["endpoint"], fresh=True)
    if not fresh or not fresh["sockets"] or fresh["sockets"] == route["sockets"] or time.time() >= deadline:
        raise exc
    return fresh


def _worker_error(exc: "worker_client.WorkerError", op: str) -> Exception:
    if exc.code == ErrorCode.UNSUPPORTED and op == "predict":
        # The one thing a prediction asks that a model may not offer: Monte Carlo dropout.
        return InvalidInput(exc.message, details={"field": "parameters.uncertainty"})
    if exc.code in (ErrorCode.INVALID_INPUT, ErrorCode.UNSUPPORTED, ErrorCode.BAD_REQUEST):
        return InvalidInput(exc.message, details={"field": "inputs"})
    if exc.code == ErrorCode.DRAINING:
        return DeploymentNotReady("The endpoint is restarting; retry.", retry_after_s=1)
    return ModelFailed(exc.message)


def _worker_params(params: dict) -> dict:
    return {key: value for key, value in params.items() if key in ("uncertainty",)}


@lru_cache(maxsize=1)
def _side_by_side_pool() -> ProcessLocalPool:
    return ProcessLocalPool(settings.PREDICT_BATCH_THREADS, "predict-batch")


def map_side_by_side(function: Callable[[Any], Any], items: Sequence[Any]) -> list:
    """[function(item) for item in items], run side by side in a per-process pool of PREDICT_BATCH_THREADS.

    The batch route (serving_many) runs each deployment's items, and each item an experiment routes, this
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


def predict(request: PredictRequest) -> dict:
    routing = experiment_hooks.route(request)
    if routing is None:
        return predict_direct(request)
    return _predict_routed_by_experiment(routing, request)


def _predict_routed_by_experiment(routing: Routing, request: PredictRequest) -> dict:
    started = time.perf_counter()
    if routing.shadows:
        experiment_hooks.shadow(routing, request)
    try:
        response = predict_direct(replace(request, endpoint=routing.endpoint))
    except ApplicationError as exc:
        experiment_hooks.record(routing, request, exc, time.perf_counter() - started)
        raise
    # The client called the experiment's public endpoint and learns which variant answered.
    response = {**response, "endpoint": request.endpoint, "variant": routing.variant}
    experiment_hooks.record(routing, request, response, time.perf_counter() - started)
    return response


def predict_direct(request: PredictRequest) -> dict:
    started = time.perf_counter()
    route = _route(request.endpoint)
    try:
        return _predict_routed(route, request, started)
    except ApplicationError as exc:
        metrics.observe_error(route, exc.code)
        raise


def _predict_routed(route: dict, request: PredictRequest, started: float) -> dict:
    rows, worker_params, key = _prepare(route, request)
    cached = prediction_cache().get(key) if key else None
    if cached is not None:
        return _observed(route, request, started, json.loads(cached), rows=len(rows), key=key, cached=True)
    answer = _call_worker(route, "predict", rows, worker_params)
    body = _body_of(answer)
    if key:
        prediction_cache().set(key, json.dumps(body).encode())
    return _observed(route, request, started, body, rows=len(rows), key=key, batch_size=answer.get("batch_size"))


async def predict_async(request: PredictRequest, offload: Callable[..., Awaitable[Any]],
                        offload_db: Callable[..., Awaitable[Any]] | None = None) -> dict:
    """predict() for an event loop (the fast lane): `offload(function, *args)` runs blocking code in a thread.

    The common case (a serving route, no experiment on the endpoint, settings in memory) stays in the loop
    and reaches the worker over the multiplexed AsyncWorkerClient; whatever may block on the database or
    wait (an unknown endpoint, a wake from zero, an experiment, a settings refresh) is predict() itself,
    offloaded. Only the Redis calls of the prediction cache leave the loop on the common path.
    """
    route = routes().endpoint(request.endpoint)
    if route is None and offload_db is not None and not experiment_hooks.may_route(request.endpoint):
        # Nothing serves it and no experiment owns it: predict() only asks the database why (404, or 503
        # while it starts), so on `offload_db`, whose threads keep their connections. A client calling
        # endpoints that do not exist must not make a process open a connection per request.
        return await offload_db(predict, request)
    config = fresh_config()
    if route is None or not _serving(route) or config is None or experiment_hooks.may_route(request.endpoint):
        return await offload(predict, request)
    started = time.perf_counter()
    try:
        rows, worker_params, key = _prepare(route, request, config)
        cached = await offload(prediction_cache().get, key) if key else None
        if cached is not None:
            return _observed(route, request, started, json.loads(cached), rows=len(rows), key=key, cached=True)
        deadline, message = _worker_message(route, "predict", rows, worker_params)
        with _worker_errors(route, "predict"):
            answer = await _call_with_reroute_async(route, message, deadline)
        body = _body_of(answer)
        if key:
            await offload(prediction_cache().set, key, json.dumps(body).encode())
    except ApplicationError as exc:
        metrics.observe_error(route, exc.code)
        raise
    return _observed(route, request, started, body, rows=len(rows), key=key, batch_size=answer.get("batch_size"))


def _serving(route: dict) -> bool:
    # What _route lets through without waking the deployment or raising.
    return bool(route["sockets"]) and route["status"] != "scaled_to_zero"


def _prepare(route: dict, request: PredictRequest, config: dict | None = None) -> tuple[list, dict, str | None]:
    rows = _rows(route, request.inputs)
    worker_params = _worker_params(request.params)
    use_cache = request.params.get("cache") is not False
    return rows, worker_params, _cache_key(route, rows, worker_params, config) if use_cache else None


def _body_of(answer: dict) -> dict:
    return {k: answer[k] for k in ("predictions", "probabilities", "classes", "std") if answer.get(k) is not None}


def _observed(route: dict, request: PredictRequest, started: float, body: dict, *, rows: int, key: str | None,
              cached: bool = False, batch_size: int | None = None) -> dict:
    metrics.observe_prediction(route, time.perf_counter() - started, cached=cached, cache_used=key is not None,
                               rows=rows, batch_size=batch_size)
    return _response(route, request, body, started, cached=cached)


def _response(route: dict, request: PredictRequest, body: dict, started: float, *, cached: bool) -> dict:
    response = {
        "request_id": request.request_id or uuid.uuid4().hex,
        "endpoint": route["endpoint"], "model": route["model"], "version": route["version"],
        "predictions": body["predictions"],
    }
    if body.get("probabilities") is not None:
        response["probabilities"] = body["probabilities"]
        response["classes"] = body.get("classes")
    if body.get("std") is not None:
        response["uncertainty"] = {"mean": body["predictions"], "std": body["std"]}
    response["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
    response["cached"] = cached
    return response


def explain(request: PredictRequest) -> dict:
    """Explains with the model that would answer this request: under an experiment, the subject's variant.

    An explanation is not an outcome: it is neither recorded in the experiment nor copied to shadows.
    """
    routing = experiment_hooks.route(request)
    if routing is None:
        return _explain_direct(request)
    answer = _explain_direct(replace(request, endpoint=routing.endpoint))
    return {**answer, "endpoint": request.endpoint, "variant": routing.variant}


def _explain_direct(request: PredictRequest) -> dict:
    started = time.perf_counter()
    route = _route(request.endpoint)
    rows = _rows(route, request.inputs)
    baseline = request.params.get("baseline")
    if baseline is not None:
        baseline = _rows(route, [baseline])[0]
    body = _call_worker(route, "explain", rows, {"baseline": baseline})
    features = (route.get("signature") or {}).get("feature_names")
    return {
        "request_id": request.request_id or uuid.uuid4().hex, "endpoint": route["endpoint"],
        "model": route["model"], "version": route["version"], "feature_names": features,
        "importances": body["importances"], "baseline": body["baseline"],
        "baseline_prediction": body["baseline_prediction"], "predictions": body["predictions"],
        "builtin_importances": body.get("builtin_importances"),
        "method": "ablation against the baseline row", "latency_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def endpoint_for_version(model_version_id: int) -> str:
    """The universal route: any live, routed deployment serving exactly this version."""
    candidates = [name for name, route in routes().table().get("endpoints", {}).items()
                  if route.get("model_version_id") == model_version_id and not route.get("ensemble")]
    ready = [name for name in candidates if routes().endpoint(name)["sockets"]]
    if ready or candidates:
        return (ready or candidates)[0]
    raise NoDeploymentForVersion("No live deployment serves this model version; deploy it first.")
