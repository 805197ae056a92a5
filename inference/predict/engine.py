"""The prediction path in web processes: predict (blocking), predict_async (the fast lane's event loop) and
explain, each routed by an experiment when one owns the endpoint (contract.hooks), then answered from the
cache or a worker (dispatch) and observed in the metrics and by the registered sinks (contract.sinks).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from core.errors import ApplicationError
from inference import metrics, platform_config
from inference.predict.contract import PredictRequest, Route, Routing, hooks, sinks
from inference.predict.dispatch import (
    cache_key,
    call_worker,
    call_worker_async,
    prediction_cache,
    route_for,
    routes,
    rows_for,
    worker_params,
)

Offload = Callable[..., Awaitable[Any]]


def predict(request: PredictRequest) -> dict[str, Any]:
    routing = hooks.active.route(request)
    if routing is None:
        return predict_direct(request)
    return _predict_routed_by_experiment(routing, request)


def _predict_routed_by_experiment(routing: Routing, request: PredictRequest) -> dict[str, Any]:
    started = time.perf_counter()
    experiment = hooks.active
    if routing.shadows:
        experiment.shadow(routing, request)
    try:
        response = predict_direct(replace(request, endpoint=routing.endpoint, variant=routing.variant))
    except ApplicationError as exc:
        experiment.record(routing, request, exc, time.perf_counter() - started)
        raise
    # The client called the experiment's public endpoint and learns which variant answered.
    response = {**response, "endpoint": request.endpoint, "variant": routing.variant}
    experiment.record(routing, request, response, time.perf_counter() - started)
    return response


def predict_direct(request: PredictRequest) -> dict[str, Any]:
    """The prediction of the deployment at request.endpoint itself (no experiment routing)."""
    started = time.perf_counter()
    route = route_for(request.endpoint)
    try:
        return _predict_routed(route, request, started)
    except ApplicationError as exc:
        failed(route, request, exc, started)
        raise


def _predict_routed(route: Route, request: PredictRequest, started: float) -> dict[str, Any]:
    rows, params, key = prepare(route, request)
    cached = prediction_cache().get(key) if key else None
    if cached is not None:
        return observed(route, request, started, json.loads(cached), rows=rows, key=key, cached=True)
    answer = call_worker(route, "predict", rows, params, timeout_ms=request.params.get("timeout_ms"))
    body = body_of(answer)
    if key:
        prediction_cache().set(key, json.dumps(body).encode())
    return observed(route, request, started, body, rows=rows, key=key, batch_size=answer.get("batch_size"))


async def predict_async(request: PredictRequest, offload: Offload, offload_db: Offload | None = None) -> dict[str, Any]:
    """predict() for an event loop (the fast lane): `offload(function, *args)` runs blocking code in a thread.

    The common case (a serving route, no experiment on the endpoint, settings in memory) stays in the loop
    and reaches the worker over the multiplexed AsyncWorkerClient; whatever may block on the database or
    wait (an unknown endpoint, a wake from zero, an experiment, a settings refresh) is predict() itself,
    offloaded. Only the Redis calls of the prediction cache leave the loop on the common path.
    """
    route = routes().endpoint(request.endpoint)
    experiment = hooks.active
    if route is None and offload_db is not None and not experiment.may_route(request.endpoint):
        # Nothing serves it and no experiment owns it: predict() only asks the database why (404, or 503
        # while it starts), so on `offload_db`, whose threads keep their connections. A client calling
        # endpoints that do not exist must not make a process open a connection per request.
        unserved: dict[str, Any] = await offload_db(predict, request)
        return unserved
    config = platform_config.fresh_config()
    if route is None or not route.serving or config is None or experiment.may_route(request.endpoint):
        offloaded: dict[str, Any] = await offload(predict, request)
        return offloaded
    started = time.perf_counter()
    try:
        rows, params, key = prepare(route, request, config)
        cached = await offload(prediction_cache().get, key) if key else None
        if cached is not None:
            return observed(route, request, started, json.loads(cached), rows=rows, key=key, cached=True)
        answer = await call_worker_async(route, "predict", rows, params, timeout_ms=request.params.get("timeout_ms"))
        body = body_of(answer)
        if key:
            await offload(prediction_cache().set, key, json.dumps(body).encode())
    except ApplicationError as exc:
        failed(route, request, exc, started)
        raise
    return observed(route, request, started, body, rows=rows, key=key, batch_size=answer.get("batch_size"))


def prepare(route: Route, request: PredictRequest,
            config: dict[str, Any] | None = None) -> tuple[list[Any], dict[str, Any], str | None]:
    """(checked rows, the parameters the worker takes, the cache key or None)."""
    rows = rows_for(route, request.inputs)
    params = worker_params(request.params)
    use_cache = request.params.get("cache") is not False
    return rows, params, cache_key(route, rows, params, config) if use_cache else None


def body_of(answer: dict[str, Any]) -> dict[str, Any]:
    """What of a worker's answer is the prediction (and what the cache keeps)."""
    return {k: answer[k] for k in ("predictions", "probabilities", "classes", "std") if answer.get(k) is not None}


def observed(route: Route, request: PredictRequest, started: float, body: dict[str, Any], *, rows: list[Any],
             key: str | None, cached: bool = False, batch_size: int | None = None) -> dict[str, Any]:
    """The response for `body`, counted in the metrics and told to the sinks."""
    seconds = time.perf_counter() - started
    metrics.observe_prediction(route, seconds, cached=cached, cache_used=key is not None, rows=len(rows),
                               batch_size=batch_size)
    response = _response(route, request, body, started, cached=cached)
    for sink in sinks.active:
        sink.served(route, request, response, rows, seconds, cached=cached, cache_used=key is not None,
                    batch_size=batch_size)
    return response


def failed(route: Route | None, request: PredictRequest, error: ApplicationError, started: float) -> None:
    """A request that reached a route and failed, counted in the metrics and told to the sinks."""
    metrics.observe_error(route, error.code)
    if route is None:
        return  # never routed: nothing to attribute it to (and a client must not mint deployments)
    seconds = time.perf_counter() - started
    for sink in sinks.active:
        sink.failed(route, request, error.code, error.status_code, seconds)


def _response(route: Route, request: PredictRequest, body: dict[str, Any], started: float, *,
              cached: bool) -> dict[str, Any]:
    response = {
        "request_id": request.request_id or uuid.uuid4().hex,
        "endpoint": route.endpoint, "model": route.model, "version": route.version,
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


def explain(request: PredictRequest) -> dict[str, Any]:
    """Explains with the model that would answer this request: under an experiment, the subject's variant.

    An explanation is not an outcome: it is neither recorded in the experiment nor copied to shadows.
    """
    routing = hooks.active.route(request)
    if routing is None:
        return _explain_direct(request)
    answer = _explain_direct(replace(request, endpoint=routing.endpoint))
    return {**answer, "endpoint": request.endpoint, "variant": routing.variant}


def _explain_direct(request: PredictRequest) -> dict[str, Any]:
    started = time.perf_counter()
    route = route_for(request.endpoint)
    rows = rows_for(route, request.inputs)
    baseline = request.params.get("baseline")
    if baseline is not None:
        baseline = rows_for(route, [baseline])[0]
    body = call_worker(route, "explain", rows, {"baseline": baseline}, timeout_ms=request.params.get("timeout_ms"))
    return {
        "request_id": request.request_id or uuid.uuid4().hex, "endpoint": route.endpoint,
        "model": route.model, "version": route.version, "feature_names": route.signature.get("feature_names"),
        "importances": body["importances"], "baseline": body["baseline"],
        "baseline_prediction": body["baseline_prediction"], "predictions": body["predictions"],
        "builtin_importances": body.get("builtin_importances"),
        **({"skipped": body["skipped"]} if body.get("skipped") else {}),
        "method": "ablation against the baseline row", "latency_ms": round((time.perf_counter() - started) * 1000, 3),
    }
