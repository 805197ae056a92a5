"""The experiments side of the prediction hot path (see inference.predict.engine.ExperimentHooks).

`route` answers from a per-process table of active experiments, loaded from the database by one request
while the others keep using the previous table. It is loaded again when an experiment changes anywhere
(every lifecycle write announces "experiments", core/invalidation.py), when the next experiment is due to
end, and at the latest every HEARD_TTL_S; while this process may be missing announcements (Redis down),
every TABLE_TTL_S. `record` appends to the recorder's in-process buffer. Shadow copies run on a small
thread pool behind a semaphore: when it is full the copy is dropped (and counted) rather than making a
client wait.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

from django.conf import settings
from django.db import connections
from django.utils import timezone

from core.errors import ApplicationError
from core.invalidation import Freshness
from core.pools import ProcessLocalPool
from experiments import recording
from experiments.routing import TABLE_TTL_S, Arm, CompiledExperiment
from inference.predict.contract import ExperimentHooks, PredictRequest, Routing
from inference.predict.engine import predict_direct

logger = logging.getLogger(__name__)

HEARD_TTL_S = 30.0


@dataclass
class ExperimentRouting(Routing):
    compiled: CompiledExperiment | None = None


@dataclass(frozen=True)
class _Loaded:
    stamp: tuple[int, float]
    table: dict[str, CompiledExperiment]
    due_at: float  # time.monotonic() when the next experiment ends (inf: none does)


class ExperimentTable:
    def __init__(self, ttl_s: float = TABLE_TTL_S, heard_ttl_s: float = HEARD_TTL_S):
        self._freshness = Freshness("experiments", heard_ttl_s=heard_ttl_s, deaf_ttl_s=ttl_s)
        # Swapped whole, so lock-free readers see one consistent table.
        self._state: _Loaded | None = None
        self._lock = threading.Lock()

    def get(self, endpoint: str) -> CompiledExperiment | None:
        state = self._state
        if not self._holds(state):
            state = self._refresh(state)
        return state.table.get(endpoint)

    def may_hold(self, endpoint: str) -> bool:
        """Without loading: False only when the current table is fresh and has no experiment on `endpoint`."""
        state = self._state
        return not self._holds(state) or endpoint in state.table

    def _holds(self, state: _Loaded | None) -> TypeGuard[_Loaded]:
        return state is not None and self._freshness.holds(state.stamp) and time.monotonic() < state.due_at

    def _refresh(self, seen: _Loaded | None) -> _Loaded:
        if seen is not None and not self._lock.acquire(blocking=False):
            return seen  # another thread is reloading; this request routes by the previous table
        if seen is None:
            self._lock.acquire()
        try:
            current = self._state
            if current is not seen and self._holds(current):
                return current
            stamp = self._freshness.stamp()
            table, due_at = self._load(seen)
            self._state = _Loaded(stamp, table, due_at)
            return self._state
        finally:
            self._lock.release()

    def _load(self, seen: _Loaded | None) -> tuple[dict[str, CompiledExperiment], float]:
        from experiments import selectors, services

        try:
            table = selectors.experiment_routing_table()
            if any(entry.due for entry in table.values()):
                services.experiments_stop_due()
                table = selectors.experiment_routing_table()
            return {endpoint: entry.compiled for endpoint, entry in table.items()}, _due_at(table.values())
        except Exception:
            # The database is unreachable: keep routing as before rather than failing predictions.
            logger.warning("could not load the experiments table; keeping the previous one", exc_info=True)
            return (seen.table if seen else {}), time.monotonic() + self._freshness.deaf_ttl_s


def _due_at(entries) -> float:
    """When the next of these experiments reaches its end, on the time.monotonic() clock. Ends already
    past do not count: the load stopped those it could, and one it could not must not make every
    request load the table again."""
    now = timezone.now()
    ends = [entry.ends_at for entry in entries
            if entry.ends_at is not None and entry.ends_at > now and not entry.compiled.promoting_to]
    if not ends:
        return float("inf")
    return time.monotonic() + (min(ends) - now).total_seconds()


class ExperimentRouter(ExperimentHooks):
    def __init__(self):
        self.table = ExperimentTable()
        threads = int(getattr(settings, "EXPERIMENT_SHADOW_THREADS", 4))
        self._pool = ProcessLocalPool(threads, "experiment-shadow")
        # Running plus waiting shadow copies; past this a copy is dropped, never queued without bound.
        self._slots = threading.BoundedSemaphore(threads * 2)

    def route(self, request: PredictRequest) -> Routing | None:
        compiled = self.table.get(request.endpoint)
        if compiled is None:
            return None
        subject = request.subject_id if request.subject_id not in (None, "") else request.request_id
        arm = compiled.assign(str(subject) if subject is not None else uuid.uuid4().hex)
        shadows = [shadow.endpoint for shadow in compiled.shadows] if compiled.recording else []
        return ExperimentRouting(endpoint=arm.endpoint, variant=arm.name, experiment_id=compiled.id,
                                 shadows=shadows, compiled=compiled)

    def may_route(self, endpoint: str) -> bool:
        return self.table.may_hold(endpoint)

    def record(self, routing, request, outcome, seconds: float) -> None:
        compiled = getattr(routing, "compiled", None)
        if compiled is None or not compiled.recording:
            return
        try:
            recording.recorder.add(_event(compiled, routing.variant, request, outcome, seconds, shadow=False))
        except Exception:  # recording must never fail a prediction
            logger.warning("could not record an experiment outcome", exc_info=True)

    def shadow(self, routing, request) -> None:
        compiled = getattr(routing, "compiled", None)
        if compiled is None or not compiled.recording:
            return
        for arm in compiled.shadows:
            if not self._slots.acquire(blocking=False):
                recording.count_dropped_shadow(compiled.id, arm.name)
                continue
            try:
                self._pool.get().submit(self._run_shadow, compiled, arm, request)
            except Exception:
                self._slots.release()
                logger.warning("could not start a shadow copy", exc_info=True)

    def _run_shadow(self, compiled: CompiledExperiment, arm: Arm, request: PredictRequest) -> None:
        started = time.perf_counter()
        outcome: dict[str, Any] | Exception
        try:
            outcome = predict_direct(replace(request, endpoint=arm.endpoint, variant=arm.name))
        except ApplicationError as exc:
            outcome = exc
        except Exception as exc:  # a shadow's failure is a figure in its results, never a client's error
            logger.warning("shadow copy to %s failed", arm.endpoint, exc_info=True)
            outcome = exc
        finally:
            self._slots.release()
            # The serving path may have asked the database (its config, once a second; a missing route):
            # closed here so that idle pool threads never hold database connections.
            connections.close_all()
        recording.recorder.add(_event(compiled, arm.name, request, outcome, time.perf_counter() - started,
                                      shadow=True))


def _event(compiled: CompiledExperiment, variant: str, request, outcome, seconds: float, *,
           shadow: bool) -> recording.Event:
    keep_predictions = compiled.outcome == "accuracy"
    if isinstance(outcome, dict):
        return recording.Event(
            compiled.id, variant, shadow, None, bool(outcome.get("cached")), seconds, time.time(),
            outcome.get("request_id") or request.request_id,
            outcome.get("predictions") if keep_predictions else None,
        )
    code = getattr(outcome, "code", None) or "internal_error"
    return recording.Event(compiled.id, variant, shadow, code, False, seconds, time.time(), request.request_id)


router = ExperimentRouter()
