"""Shared by the monitoring tests: routes and deployments without a model server, a webhook receiver on
127.0.0.1, and (for the live tests) the scheduler and RQ worker processes as `make serve` runs them."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.conf import settings

from inference.models import Deployment
from inference.predict.contract import PredictRequest, Route
from monitoring.sink import sink
from tests.experiments.helpers import deployment
from tests.inference.jobs.support import RqWorker
from tests.inference.live import ROOT, database_url


def route_of(endpoint_or_deployment: str | Deployment, **fields: Any) -> Route:
    """The route the model server would write for a deployment row (no sockets: nothing is called)."""
    row = endpoint_or_deployment if isinstance(endpoint_or_deployment, Deployment) else deployment(
        endpoint_or_deployment)
    version = row.model_version
    base = Route(endpoint=row.endpoint, deployment_id=row.pk, model=row.model.name, version=version.version,
                 model_version_id=version.pk, sha256=version.sha256, generation=row.generation, status="ready",
                 sockets=(), task=row.model.task, signature=version.signature or {},
                 classes=(version.signature or {}).get("classes"), log_predictions=row.log_predictions)
    return replace(base, **fields)


def serve(route: Route, rows: list, predictions: list, *, request_id: str, seconds: float = 0.002,
          subject: str | None = None, variant: str | None = None, cached: bool = False, cache_used: bool = True,
          probabilities: list | None = None) -> dict:
    """What engine.observed tells the sinks about one answered request."""
    request = PredictRequest(endpoint=route.endpoint, inputs=rows, params={}, request_id=request_id,
                             subject_id=subject, variant=variant)
    response = {"request_id": request_id, "endpoint": route.endpoint, "model": route.model,
                "version": route.version, "predictions": predictions, "latency_ms": seconds * 1000,
                "cached": cached}
    if probabilities is not None:
        response.update(probabilities=probabilities, classes=route.classes)
    sink.served(route, request, response, rows, seconds, cached=cached, cache_used=cache_used, batch_size=len(rows))
    return response


def fail(route: Route, *, status: int = 504, seconds: float = 0.05) -> None:
    request = PredictRequest(endpoint=route.endpoint, inputs=[[0]], params={}, request_id="failed")
    sink.failed(route, request, "deadline_exceeded", status, seconds)


def valid_signature(secret: str, body: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 recording every POST; answers `statuses` in turn, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                with receiver.arrived:
                    receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                              "answered": status})
                    receiver.arrived.notify_all()
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"

    def wait(self, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout):
                raise AssertionError(f"{len(self.received)} webhook call(s) after {timeout:.0f}s, wanted {count}")
            return list(self.received)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(call["body"]) for call in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Scheduler:
    """`manage.py sweep_jobs --schedule` (RQ's cron scheduler, as `make serve` runs it) on the test database."""

    def __init__(self, **env: str) -> None:
        full = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
                "MODEL_SERVER_DIR": str(settings.MODEL_SERVER_DIR), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING",
                **env}
        self.process = subprocess.Popen([sys.executable, "manage.py", "sweep_jobs", "--schedule"], cwd=ROOT,
                                        env=full, start_new_session=True, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class SchedulingWorker(RqWorker):
    """An RQ worker that also runs RQ's scheduler (retries with back-off), as `make serve`'s does."""

    def start(self) -> SchedulingWorker:
        self.queues = (*self.queues, "--with-scheduler")
        super().start()
        return self


def stack(test, **env: str) -> None:
    """The scheduler and a worker for the test, stopped when it ends. `env`: settings both processes share."""
    worker = SchedulingWorker(**env).start()
    test.addCleanup(worker.stop)
    scheduler = Scheduler(**env)
    test.addCleanup(scheduler.stop)


class Http:
    """JSON over HTTP to a live web server, with an API key."""

    def __init__(self, base: str, key: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30.0)

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> tuple[int, Any]:
        response = self.client.request(method, path, json=body, params=params or None)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def ok(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        status, answer = self.call(method, path, body, **params)
        assert 200 <= status < 300, (method, path, status, answer)
        return answer

    def close(self) -> None:
        self.client.close()
