"""The two floors (servers/floor_app.py): what the HTTP layer allows, and what a ten-line app that calls
predict_proba in-process, one row at a time, does. Both take the platform's own body."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from .base import SERVERS, Client, Peer

FIXED_PROBABILITIES = [[0.5, 0.5]]


class FloorHttp(Peer):
    """uvicorn's fastest documented setup: the httptools parser, the uvloop event loop, no access log,
    2 worker processes sharing the socket; no lifespan, no framework."""

    name = "floor-http"
    title = "HTTP floor: raw ASGI, uvicorn {version} + httptools, fixed answer"
    venv_name = "floor"
    packages = ("uvicorn", "httptools", "uvloop")
    version_of = "uvicorn"
    workers = 2
    predict: ClassVar[bool] = False

    def command(self, port: int, models: Path) -> list[str]:
        return [str(self.python), "-m", "uvicorn", "floor_app:app", "--app-dir", str(SERVERS),
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(self.workers),
                "--http", "httptools", "--loop", "uvloop", "--no-access-log", "--lifespan", "off",
                "--log-level", "warning"]

    def env(self, models: Path) -> dict[str, str]:
        env = super().env(models)
        env.update(FLOOR_MODELS=str(models), FLOOR_PREDICT="1" if self.predict else "0")
        return env

    def ready_path(self, model: str) -> str:
        return f"/ready/{model}"

    def path(self, model: str) -> str:
        return f"/predict/{model}"

    def template(self, model: str, width: int) -> str:
        return '{"inputs":[{row}]}'

    def probabilities(self, answer: Any) -> list[float]:
        return answer["probabilities"][0]

    def check(self, client: Client, expected: dict[str, Any]) -> None:
        """The fixed answer for a good body, and a 400 for a bad one: proof that the body is parsed."""
        for model, want in expected.items():
            answer = client.ok("POST", self.path(model), self.body(model, want["rows"][0]))
            if answer["probabilities"] != FIXED_PROBABILITIES:
                raise SystemExit(f"{self.name} answered {answer} for {model}")
            status, _ = client.call("POST", self.path(model), {"inputs": [["not", "numbers"]]})
            if status != 400:
                raise SystemExit(f"{self.name} answered {status} to a body without numbers: it does not parse")


class FloorPredict(FloorHttp):
    """The same app, calling the model's predict_proba in the event loop for each request."""

    name = "floor-predict"
    title = "in-process floor: the same app + predict_proba per request"
    predict = True

    def check(self, client: Client, expected: dict[str, Any]) -> None:
        Peer.check(self, client, expected)
