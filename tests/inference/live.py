"""A real model server (`manage.py run_model_server` in a subprocess) against the test database."""

import importlib.util
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from django.conf import settings
from django.db import connection
from django.test import TransactionTestCase

from inference.models import Deployment
from inference.predict.dispatch import routes
from registry import storage
from registry.models import ModelVersion, RegisteredModel, VersionStatus
from tests.inference.runtime.toy_runtime import FORMAT as TOY_FORMAT
from tests.paths import REPO_ROOT as ROOT


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for(predicate, *, timeout: float = 60.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}")


class LiveModelServer:
    def __init__(self, **env: str):
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self) -> "LiveModelServer":
        env = {**os.environ, "DATABASE_URL": database_url(), "MODEL_STORE_DIR": str(settings.MODEL_STORE_DIR),
               "MODEL_SERVER_DIR": str(settings.MODEL_SERVER_DIR), "SERVINGPLATFORM_TEST_HOOKS": "1",
               "MODEL_SERVER_POLL_MS": "100", "PYTHONUNBUFFERED": "1", **self.env}
        self.process = subprocess.Popen([sys.executable, "manage.py", "run_model_server"], cwd=ROOT, env=env,
                                        start_new_session=True)
        return self

    def stop(self) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode if self.process else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_script():
    """scripts/serve.py as a module (it is a script, not in a package)."""
    spec = importlib.util.spec_from_file_location("serve_script", ROOT / "scripts" / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LiveWebServer:
    """The web tier exactly as scripts/serve.py starts it (gunicorn + uvicorn workers), on the test database."""

    def __init__(self, **env: str):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix="web-", suffix=".log", delete=False)
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "servingplatform.settings", "DATABASE_URL": database_url(),
               "MODEL_SERVER_DIR": str(settings.MODEL_SERVER_DIR), "MODEL_STORE_DIR": str(settings.MODEL_STORE_DIR),
               "PYTHONUNBUFFERED": "1", **env}
        command = serve_script().web_command("127.0.0.1", self.port, 1)
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_for(self._answers, timeout=90, interval=0.2, message=f"gunicorn on port {self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited: {open(self.log.name).read()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/v2/health/live", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        os.unlink(self.log.name)


class LiveServerTestCase(TransactionTestCase):
    """Each test gets a fresh model server: deployment ids restart after the table flush."""

    server_env: dict = {}

    def setUp(self):
        super().setUp()
        self.server = LiveModelServer(**self.server_env).start()
        self.addCleanup(self.server.stop)

    def wait_ready(self, endpoint: str, timeout: float = 90.0) -> dict:
        def ready():
            route = routes().endpoint(endpoint)
            return route if route and route.sockets and route.status == "ready" else None

        return wait_for(ready, timeout=timeout, message=f"endpoint {endpoint} to be ready")

    def wait_status(self, endpoint: str, status: str, timeout: float = 90.0) -> Deployment:
        def reached():
            deployment = Deployment.objects.filter(endpoint=endpoint).order_by("-pk").first()
            return deployment if deployment and deployment.status == status else None

        return wait_for(reached, timeout=timeout, message=f"{endpoint} to be {status}")


def toy_version(model: RegisteredModel, *, weights=(1.0, 2.0, 3.0), task_classes=None, **config) -> ModelVersion:
    """A ready version served by the toy runtime (tests/inference/runtime/toy_runtime.py) through the real worker."""
    body = json.dumps({"weights": list(weights), **config}).encode()
    stored = storage.store_artifact(io.BytesIO(body), model_id=model.pk)
    model.last_version += 1
    model.save(update_fields=["last_version"])
    signature = {"n_features": len(weights), "input_kind": "tabular",
                 "inputs": [{"name": "input", "dtype": "float64", "shape": [-1, len(weights)]}],
                 "feature_names": None, "classes": task_classes}
    return ModelVersion.objects.create(
        model=model, version=model.last_version, flavor="sklearn", format=TOY_FORMAT,
        artifact_path=stored.relative_path, sha256=stored.sha256, size_bytes=stored.size_bytes,
        signature=signature, status=VersionStatus.READY,
    )
