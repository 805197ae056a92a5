#!/usr/bin/env python
"""`make schema-check`: the OpenAPI document against the live API. Starts the web app (gunicorn) on a free
loopback port with a fresh SQLite database and a private Redis in a temporary folder, creates a manage-scope
API key, and runs schemathesis over every operation, bounded in time. Any 5xx, any response whose status,
content type or body the document does not describe, fails (exit status 1). No model server runs: the
prediction routes answer their documented 503/404, which is part of what is checked.

Options (environment): SCHEMA_CHECK_MAX_TIME_S (default 150) bounds the fuzzing, SCHEMA_CHECK_MAX_EXAMPLES
(default 20) the cases per operation, SCHEMA_CHECK_SEED fixes the random seed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.embedded_redis import start_private_redis  # noqa: E402 - after the path above

BIN = Path(sys.executable).parent
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def log(message: str) -> None:
    print(f"[schema-check] {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment(var_dir: str, redis_url: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update({
        "VAR_DIR": var_dir, "REDIS_URL": redis_url, "SECRET_KEY": secrets.token_urlsafe(40), "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        # Fuzzing sends thousands of requests from one key: the throttle must not turn them into 429s only.
        "THROTTLE_RATE_MANAGE": "1000000/min", "THROTTLE_RATE_PREDICT": "1000000/min",
        "THROTTLE_RATE_ANON": "1000000/min",
        # Its wrong keys and passwords on purpose must not lock the address out (core/lockout.py) for the rest.
        "AUTH_FAILURE_LIMIT": "1000000000",
    })
    return env


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True, timeout=300)
    return done.stdout


def wait_healthy(url: str, server: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the web server exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback server
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("the web server did not answer /health in time")


def run_schemathesis(base: str, key: str, report_dir: str) -> int:
    max_time = os.environ.get("SCHEMA_CHECK_MAX_TIME_S", "150")
    command = [
        str(BIN / "schemathesis"), "run", f"{base}/api/schema/", "--url", base,
        "--header", f"X-API-Key: {key}", "--checks", CHECKS, "--mode", "all",
        "--max-examples", os.environ.get("SCHEMA_CHECK_MAX_EXAMPLES", "20"), "--max-time", max_time,
        # One worker: with two, hypothesis parses lambda sources in two threads at once, which CPython 3.11's AST
        # constructor cannot do (SystemError "AST constructor recursion depth mismatch", cpython gh-106905), and
        # schemathesis reports that as a runtime error of the run, hiding the operations it was generating for.
        "--phases", "examples,coverage,fuzzing", "--workers", "1", "--request-timeout", "30",
        "--suppress-health-check", "all", "--no-shrink", "--report", "junit", "--report-dir", report_dir,
    ]
    if seed := os.environ.get("SCHEMA_CHECK_SEED"):
        command += ["--seed", seed]
    # The run's own bound plus time for the last requests and the report.
    # Run in the temporary folder: schemathesis keeps a cache folder in its working directory.
    return subprocess.run(command, cwd=Path(report_dir).parent, timeout=int(max_time) + 240).returncode


def main() -> int:
    var_dir = tempfile.mkdtemp(prefix="servingplatform-schema-check-")
    redis = start_private_redis()
    server: subprocess.Popen[bytes] | None = None
    try:
        env = environment(var_dir, redis.url)
        manage(env, "migrate", "--noinput")
        key = manage(env, "create_api_key", "schema-check", "--scope", "manage").strip().splitlines()[-1]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [str(BIN / "gunicorn"), "servingplatform.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "--threads", "4", "--timeout", "60", "--log-level", "warning",
             # gunicorn's sync workers answer 414 past a 4094-byte request line; production's uvicorn workers
             # (scripts/serve.py) set no such limit, and the check is of the API, not of this stand-in server.
             "--limit-request-line", "0"],
            cwd=ROOT, env=env, start_new_session=True)
        wait_healthy(f"{base}/health", server)
        log(f"web app up at {base}; running schemathesis")
        status = run_schemathesis(base, key, os.path.join(var_dir, "report"))
        log("no findings" if status == 0 else f"schemathesis found problems (exit status {status})")
        return 0 if status == 0 else 1
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        redis.stop()
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
