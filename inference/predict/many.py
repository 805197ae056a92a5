"""Many predictions in one call (POST /api/v1/predict/batch): each answered as engine.predict would.

Items bound for one deployment are checked one by one, looked up in the cache in one round trip, and
written to its worker down one connection before any answer is read (WorkerClient.call_many), so they
reach its batcher together and share forward passes; the worker still answers, and fails, each on its
own. Items an experiment may route, or that ask for Monte Carlo dropout or a deadline of their own
(parameters.timeout_ms), take engine.predict itself.
"""

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from core.errors import ApplicationError, client_error
from inference.predict.contract import PredictRequest, Route, hooks
from inference.predict.dispatch import (
    call_error,
    call_worker,
    deadline,
    map_side_by_side,
    prediction_cache,
    route_for,
    worker_message,
    workers,
)
from inference.predict.engine import body_of, failed, observed, predict, prepare
from inference.runtime.web import client as worker_client

logger = logging.getLogger(__name__)


@dataclass
class _Item:
    index: int
    request: PredictRequest
    route: Route
    rows: list[Any]
    key: str | None
    started: float


def predict_many(requests: list[PredictRequest]) -> list[dict[str, Any] | ApplicationError]:
    """One outcome per request, in order: the response engine.predict gives, or the error it raises."""
    outcomes: list[Any] = [None] * len(requests)
    prepared: list[_Item] = []
    alone: list[tuple[int, PredictRequest]] = []
    for index, request in enumerate(requests):
        # An experiment's endpoint routes per subject (and records, and shadows): engine.predict does that. An
        # item with a deadline of its own (parameters.timeout_ms) cannot share its group's one deadline either.
        alone_params = request.params.get("uncertainty") is not None or "timeout_ms" in request.params
        if alone_params or hooks.active.route(request) is not None:
            alone.append((index, request))
        elif item := _prepared(index, request, outcomes):
            prepared.append(item)
    groups: dict[str, list[_Item]] = defaultdict(list)
    for item in _from_cache(prepared, outcomes):
        groups[item.request.endpoint].append(item)
    # Each deployment's group and each lone item in a thread of its own: one does not wait for another.
    work = [([item.index for item in items], partial(_predict_group, items)) for items in groups.values()]
    work += [([index], partial(_predict_alone, index, request)) for index, request in alone]
    for done in map_side_by_side(_run, work):
        for index, outcome in done:
            outcomes[index] = outcome
    return outcomes


def _prepared(index: int, request: PredictRequest, outcomes: list[Any]) -> _Item | None:
    started, route = time.perf_counter(), None
    try:
        route = route_for(request.endpoint)
        rows, _, key = prepare(route, request)
    except Exception as exc:  # noqa: BLE001 - one bad item never fails the rest
        outcomes[index] = _as_error(exc)
        failed(route, request, outcomes[index], started)
        return None
    return _Item(index, request, route, rows, key, started)


def _from_cache(items: list[_Item], outcomes: list[Any]) -> list[_Item]:
    keys = [item.key for item in items if item.key]
    found = dict(zip(keys, prediction_cache().get_many(keys)))
    missing = []
    for item in items:
        cached = found.get(item.key) if item.key else None
        if cached is None:
            missing.append(item)
        else:
            outcomes[item.index] = observed(item.route, item.request, item.started, json.loads(cached),
                                             rows=item.rows, key=item.key, cached=True)
    return missing


def _run(work: tuple[list[int], Callable[[], list[tuple[int, Any]]]]) -> list[tuple[int, Any]]:
    indexes, predict_them = work
    try:
        return predict_them()
    except Exception as exc:  # noqa: BLE001 - one bad item (or group) never fails the rest
        error = _as_error(exc)
        return [(index, error) for index in indexes]


def _predict_alone(index: int, request: PredictRequest) -> list[tuple[int, Any]]:
    return [(index, predict(request))]


def _as_error(exc: Exception) -> ApplicationError:
    # A failure inside the platform is the item's 500, never the client's 400.
    return client_error(exc, where="a batch item")


def _predict_group(items: list[_Item]) -> list[tuple[int, Any]]:
    route = items[0].route
    messages = [worker_message("predict", item.rows, {}) for item in items]
    answers = workers().call_many(route.sockets, messages, deadline=deadline(route))
    done: list[tuple[int, Any]] = []
    to_cache: list[tuple[str, bytes]] = []
    for item, outcome in zip(items, answers):
        answer: dict[str, Any] | ApplicationError
        if isinstance(outcome, worker_client.NotDelivered):
            # No worker took it (a generation swap drains the old one): alone, it may be rerouted.
            answer = _call_alone(item)
        elif isinstance(outcome, worker_client.WorkerCallError):
            answer = call_error(route, "predict", outcome)
        else:
            answer = outcome
        if isinstance(answer, ApplicationError):
            failed(route, item.request, answer, item.started)
            done.append((item.index, answer))
            continue
        body = body_of(answer)
        if item.key:
            to_cache.append((item.key, json.dumps(body).encode()))
        done.append((item.index, observed(route, item.request, item.started, body, rows=item.rows,
                                           key=item.key, batch_size=answer.get("batch_size"))))
    prediction_cache().set_many(to_cache)
    return done


def _call_alone(item: _Item) -> dict[str, Any] | ApplicationError:
    try:
        return call_worker(item.route, "predict", item.rows, {})
    except ApplicationError as exc:
        return exc
