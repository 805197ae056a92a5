"""scripts/serve.py as `make serve` runs it, in a subprocess with its own VAR_DIR and database, for the tests that
kill its children, drain it or start two instances at once."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.inference.live import free_port, wait_for
from tests.paths import REPO_ROOT as ROOT

# Run inside the platform's environment: a toy model (tests/inference/runtime/toy_runtime.py) deployed at
# each endpoint given, and a predict key printed on the last line.
_SEED = """
import json, os, sys
import django
django.setup()
from core.services import api_key_create
from inference.deployments.services import deployment_create
from registry.services import registered_model_create
from tests.inference.live import toy_version
for endpoint, config in json.loads(sys.argv[1]).items():
    model = registered_model_create(name=endpoint, task="classification")
    toy_version(model, weights=(1.0, 2.0, 3.0), task_classes=[0, 1], **config)
    deployment_create(endpoint=endpoint, model=endpoint, version=1)
print(api_key_create(name="platform-test", scope="manage")[1])
"""


class Platform:
    def __init__(self, var_dir: Path, *, database_url: str | None = None, **env: str):
        self.var_dir = var_dir
        self.port = free_port()
        self.log_path = var_dir / "serve.log"
        base = {key: value for key, value in os.environ.items()
                if key not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")}
        self.env = {**base, "VAR_DIR": str(var_dir), "PORT": str(self.port), "WEB_WORKERS": "1",
                    "DATABASE_URL": database_url or f"sqlite:///{var_dir}/db.sqlite3", "SEED_DEMO": "0",
                    "SERVE_COLLECTSTATIC": "0", "STATIC_ROOT": str(var_dir / "static"),
                    "MODEL_STORE_DIR": str(var_dir / "models"), "MODEL_SERVER_DIR": str(var_dir / "ms"),
                    "SERVINGPLATFORM_TEST_HOOKS": "1",
                    "MODEL_SERVER_POLL_MS": "200", "PYTHONUNBUFFERED": "1", "SECRET_KEY": "platform-test", **env}
        self.process: subprocess.Popen | None = None
        self.key = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Platform":
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "scripts/serve.py"], cwd=ROOT, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, *, count: int = 1, timeout: float = 300) -> None:
        def seen():
            if self.process.poll() is not None:
                raise AssertionError(f"serve.py exited with {self.process.returncode}: {self.log()[-3000:]}")
            return self.log().count(text) >= count
        wait_for(seen, timeout=timeout, interval=0.2, message=f"{text!r} x{count} in the log: {self.log()[-1500:]}")

    def seed(self, deployments: dict[str, dict]) -> None:
        env = {**self.env, "DJANGO_SETTINGS_MODULE": "servingplatform.settings"}
        done = subprocess.run([sys.executable, "-c", _SEED, json.dumps(deployments)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        self.key = done.stdout.strip().splitlines()[-1]

    def get(self, path: str, timeout: float = 10) -> tuple[int, dict]:
        return self.request("GET", path, timeout=timeout)

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 10) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"X-API-Key": self.key, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def predict(self, endpoint: str, timeout: float = 10) -> tuple[int, dict]:
        return self.request("POST", f"/api/v1/predict/{endpoint}", {"inputs": [[1.0, 0.0, 0.0]]}, timeout=timeout)

    def answers(self, path: str = "/health/ready") -> bool:
        try:
            return self.get(path, timeout=3)[0] == 200
        except OSError:
            return False

    def predicts(self, endpoint: str) -> bool:
        try:
            return self.predict(endpoint)[0] == 200
        except OSError:
            return False

    def children(self) -> dict[str, int]:
        """name -> pid of the children the launcher says it started last."""
        pids: dict[str, int] = {}
        for line in self.log().splitlines():
            if line.startswith("[platform] started ") and " pid " in line:
                name, pid = line.removeprefix("[platform] started ").split(" pid ")
                pids[name] = int(pid)
        return pids

    def stop(self, timeout: float = 90) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        _kill_leftovers(self.var_dir)
        return self.process.returncode


def _kill_leftovers(var_dir: Path) -> None:
    # The children run in process groups of their own: a failed test must not leave them running.
    for line in (var_dir / "serve.log").read_text(errors="replace").splitlines():
        if line.startswith("[platform] started ") and " pid " in line:
            pid = int(line.rsplit(" pid ", 1)[1])
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def wait_until(predicate, timeout: float = 60, message: str = "condition"):
    return wait_for(predicate, timeout=timeout, interval=0.2, message=message)


def now() -> float:
    return time.monotonic()
