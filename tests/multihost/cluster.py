"""A platform on several "hosts", played on loopback: every instance is `scripts/serve.py` (as `make serve` runs it)
with its own SERVE_ROLES, VAR_DIR, ports and static files, and nothing shared but the machine's PostgreSQL (a
database of its own), the machine's Redis (one DB number) and a SeaweedFS S3 store. Two web instances sit behind
HAProxy (Debian's, health checks on /health/ready)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from tests.inference.live import free_port, wait_for
from tests.paths import REPO_ROOT as ROOT
from tests.s3 import SeaweedS3

HAPROXY = Path("/usr/sbin/haproxy")
POSTGRES = os.environ.get("MULTIHOST_POSTGRES", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("MULTIHOST_REDIS_URL", "redis://127.0.0.1:6379/6")
SECRET = f"multihost-{uuid.uuid4().hex}"


def missing_prerequisites() -> list[str]:
    """What this machine or this tree lacks for the multi-host test (an empty list: nothing)."""
    missing = []
    if not HAPROXY.exists():
        missing.append(f"HAProxy ({HAPROXY}: apt-get install haproxy)")
    try:
        import psycopg

        psycopg.connect(f"{POSTGRES}/postgres", connect_timeout=3).close()
    except Exception as exc:
        missing.append(f"PostgreSQL at {POSTGRES} ({type(exc).__name__})")
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except Exception as exc:
        missing.append(f"Redis at {REDIS_URL} ({type(exc).__name__})")
    return missing


def descendants(pid: int) -> list[int]:
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *descendants(int(child))]
    except OSError:
        pass
    return found


class Instance:
    """One host: scripts/serve.py with its roles, in a folder of its own."""

    def __init__(self, cluster: "Cluster", name: str, roles: str, **env: str):
        self.name = name
        self.roles = roles
        self.var_dir = Path(tempfile.mkdtemp(prefix=f"mh{name}-", dir="/tmp"))  # short: socket paths
        self.port = free_port()
        self.log_path = self.var_dir / "serve.log"
        inherited = {key: value for key, value in os.environ.items()
                     if key not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR",
                                    "MODEL_STORE_DIR", "MODEL_SERVER_DIR", "BATCH_DIR", "STATIC_ROOT")}
        self.env = {**inherited, **cluster.shared_env(), "VAR_DIR": str(self.var_dir), "PORT": str(self.port),
                    "SERVE_ROLES": roles, "INSTANCE_NAME": name, "WEB_WORKERS": "1", **env}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Instance":
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "scripts/serve.py"], cwd=ROOT, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, the launcher first (so nothing restarts), then everything it had started."""
        if self.process is None:
            return
        tree = descendants(self.process.pid)
        for pid in [self.process.pid, *tree]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            tree = descendants(self.process.pid)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
            for pid in [self.process.pid, *tree]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def cleanup(self) -> None:
        shutil.rmtree(self.var_dir, ignore_errors=True)


class Cluster:
    def __init__(self):
        self.database = f"multihost_{uuid.uuid4().hex[:8]}"
        self.s3 = SeaweedS3(bucket="multihost")
        self.prefix = "platform"
        self.instances: dict[str, Instance] = {}
        self.haproxy: subprocess.Popen | None = None
        self.haproxy_port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="mhcluster-"))
        self.key = ""

    @property
    def database_url(self) -> str:
        return f"{POSTGRES}/{self.database}"

    def shared_env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.database_url, "REDIS_URL": REDIS_URL, "SECRET_KEY": SECRET,
                "MODEL_SERVER_SECRET": SECRET, "SEED_DEMO": "0", "MODEL_SERVER_POLL_MS": "200",
                "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING",
                "SHUTDOWN_DRAIN_DELAY_S": "0", **self.s3.env(self.prefix)}

    # --- start and stop ---------------------------------------------------------------------------

    def start(self) -> "Cluster":
        import psycopg
        import redis

        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.database}"')
        redis.Redis.from_url(REDIS_URL).flushdb()
        self.s3.start()
        plan = {"web-1": "web", "web-2": "web", "jobs-1": "jobs,scheduler",
                "ms-1": "model-server", "ms-2": "model-server"}
        for name, roles in plan.items():
            extra = {"MODEL_SERVER_LISTEN": f"127.0.0.1:{free_port()}"} if roles == "model-server" else {}
            self.instances[name] = Instance(self, name, roles, **extra)
        for instance in self.instances.values():  # together: their setup races for the schema
            instance.start()
        for name in ("web-1", "web-2"):
            self.wait_ready(self.instances[name])
        self.start_haproxy()
        self.key = self.manage("create_api_key", "multihost", "--scope", "manage").strip().splitlines()[-1]
        return self

    def add_model_server(self, name: str, **env: str) -> Instance:
        instance = Instance(self, name, "model-server", MODEL_SERVER_LISTEN=f"127.0.0.1:{free_port()}", **env)
        self.instances[name] = instance
        return instance.start()

    def wait_ready(self, instance: Instance, timeout: float = 1200) -> None:
        def ready():
            if not instance.alive():
                raise AssertionError(f"{instance.name} exited: {instance.log()[-3000:]}")
            try:
                return httpx.get(f"{instance.url}/health/ready", timeout=3).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=timeout, interval=0.5, message=f"{instance.name} ready")

    def start_haproxy(self) -> None:
        servers = "\n".join(f"    server {name} 127.0.0.1:{self.instances[name].port} check"
                            for name in ("web-1", "web-2"))
        config = self.folder / "haproxy.cfg"
        config.write_text(f"""global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # A busy machine answers a readiness check in well over the 500 ms interval: give it time.
    timeout check 5s
    retries 3
    option redispatch
frontend platform
    bind 127.0.0.1:{self.haproxy_port}
    default_backend web
backend web
    balance roundrobin
    option httpchk GET /health/ready
    http-check expect status 200
    default-server inter 1s fall 3 rise 1
{servers}
""")
        self.haproxy = subprocess.Popen([str(HAPROXY), "-f", str(config), "-db"], stdout=subprocess.DEVNULL,
                                        stderr=(self.folder / "haproxy.log").open("wb"), start_new_session=True)
        wait_for(lambda: self.haproxy_answers(), timeout=30, interval=0.2, message="HAProxy")

    def haproxy_answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health/ready", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.haproxy and self.haproxy.poll() is None:
            self.haproxy.terminate()
            self.haproxy.wait(timeout=10)
        for instance in self.instances.values():
            instance.stop()
        self.s3.stop()
        self._drop_database()
        for instance in self.instances.values():
            instance.cleanup()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _drop_database(self) -> None:
        import psycopg
        import redis

        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                          (self.database,))
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database}"')
        redis.Redis.from_url(REDIS_URL).flushdb()

    # --- talking to it ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """HAProxy's front."""
        return f"http://127.0.0.1:{self.haproxy_port}"

    def client(self, base: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=base or self.url, headers={"X-API-Key": self.key}, timeout=30)

    def manage(self, *args: str) -> str:
        """`manage.py ARGS` as another process on this network would run it (no role, the shared services)."""
        env = {**self.instances["web-1"].env, "VAR_DIR": str(self.folder)}
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def query(self, code: str) -> object:
        """Runs Python with Django set up against the cluster's database; `result` is returned (JSON)."""
        script = f"import django, json\ndjango.setup()\n{code}\nprint(json.dumps(result))"
        env = {**self.instances["web-1"].env, "VAR_DIR": str(self.folder),
               "DJANGO_SETTINGS_MODULE": "servingplatform.settings"}
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def instance_requests(self, endpoint: str) -> dict[str, int]:
        """Requests each model server's workers answered for `endpoint`, as they last reported."""
        return self.query(f"""
from inference.models import InstanceDeployment
result = {{}}
for row in InstanceDeployment.objects.filter(deployment__endpoint={endpoint!r}).select_related("instance"):
    replicas = (row.runtime or {{}}).get("replicas", [])
    result[row.instance.name] = sum(r.get("requests") or 0 for r in replicas)
""")


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
