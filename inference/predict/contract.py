"""What the prediction path and its plug-ins agree on: the request, the route it takes (written by the model
server, inference.runtime.contract.routes), where an experiment sends it, and the registry of hooks.

Serving knows no experiments: the experiments app registers its hooks at start-up (experiments/apps.py) with
`hooks.register(...)`, and every caller asks `hooks.active` at call time, so no module keeps a stale copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from inference.runtime.contract.routes import Route

__all__ = ["ExperimentHooks", "HookRegistry", "PredictRequest", "Route", "Routing", "hooks"]


@dataclass
class PredictRequest:
    endpoint: str
    inputs: Any
    params: dict[str, Any]
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
