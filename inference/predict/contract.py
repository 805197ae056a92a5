"""What the prediction path and its plug-ins agree on: the request, the route it takes (written by the model
server, inference.runtime.contract.routes), where an experiment sends it, and the registries of hooks and sinks.

Serving knows no experiments and no monitoring: the experiments app registers its hooks at start-up
(experiments/apps.py) with `hooks.register(...)`, the monitoring app its sink with `sinks.register(...)`
(monitoring/apps.py), and every caller asks `hooks.active` / `sinks.active` at call time, so no module keeps a
stale copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from inference.runtime.contract.routes import Route

__all__ = ["ExperimentHooks", "HookRegistry", "PredictRequest", "PredictionSink", "Route", "Routing", "SinkRegistry",
           "hooks", "sinks"]


@dataclass
class PredictRequest:
    endpoint: str
    inputs: Any
    params: dict[str, Any]
    request_id: str | None = None
    subject_id: str | None = None
    # The experiment's variant this request answers for (set by the prediction path when one routes it).
    variant: str | None = None


@dataclass
class Routing:
    """Where an experiment sends one request: the variant's deployment answers, shadows get a copy."""

    endpoint: str
    variant: str
    experiment_id: int
    shadows: list[str] = field(default_factory=list)


class ExperimentHooks:
    """What the prediction path asks of experiments; this base class is the no-experiments answer.

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


class HookRegistry:
    """The one place the active hooks live; registered explicitly, read at every call."""

    def __init__(self) -> None:
        self._default = ExperimentHooks()
        self.active: ExperimentHooks = self._default

    def register(self, hooks: ExperimentHooks) -> None:
        self.active = hooks

    def unregister(self) -> None:
        self.active = self._default

    @contextmanager
    def registered(self, hooks: ExperimentHooks) -> Iterator[ExperimentHooks]:
        """For a block only (tests): the previous hooks come back afterwards."""
        previous, self.active = self.active, hooks
        try:
            yield hooks
        finally:
            self.active = previous


hooks = HookRegistry()


class PredictionSink:
    """Told of every prediction a route answered or failed, in the process that answered it.

    Called on the hot path (the fast lane's event loop included): an implementation appends to an in-process
    buffer and returns; anything slower (a database or Redis write) happens on a thread of its own. `rows` are
    the checked rows the model received, `response` the body the client gets. `flush` writes what is buffered
    now (a process about to exit: an RQ work horse after its job).
    """

    def served(self, route: Route, request: PredictRequest, response: dict[str, Any], rows: list[Any],
               seconds: float, *, cached: bool, cache_used: bool, batch_size: int | None) -> None:
        return None

    def failed(self, route: Route, request: PredictRequest, code: str, status: int, seconds: float) -> None:
        return None

    def flush(self) -> None:
        return None


class SinkRegistry:
    """The sinks told of predictions; a tuple swapped whole, so the hot path iterates without a lock."""

    def __init__(self) -> None:
        self.active: tuple[PredictionSink, ...] = ()

    def register(self, sink: PredictionSink) -> None:
        if sink not in self.active:
            self.active = (*self.active, sink)

    def unregister(self, sink: PredictionSink) -> None:
        self.active = tuple(each for each in self.active if each is not sink)

    def flush(self) -> None:
        for sink in self.active:
            sink.flush()

    @contextmanager
    def only(self, *replacement: PredictionSink) -> Iterator[tuple[PredictionSink, ...]]:
        """For a block only (tests): these sinks instead of the registered ones."""
        previous, self.active = self.active, replacement
        try:
            yield replacement
        finally:
            self.active = previous


sinks = SinkRegistry()
