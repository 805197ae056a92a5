"""Model servers on many hosts, played on loopback: real `run_model_server` processes, each with its own
INSTANCE_NAME, socket folder and TCP listener, against one database and one Redis. This test process is the
web tier: its routing table merges its host's routes.json with the instances' announcements."""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from django.test import TransactionTestCase, override_settings

from core.services import api_key_create
from inference.models import Deployment, InstanceDeployment
from inference.predict import announcements, dispatch
from inference.runtime.contract.gateway import MAGIC, NONCE_BYTES, is_remote
from inference.runtime.contract.protocol import encode
from tests.factories import key_client, make_model
from tests.inference.live import LiveModelServer, LiveWebServer, database_url, free_port, toy_version, wait_for
from tests.paths import REPO_ROOT

SECRET = "loopback-test-secret-0123456789"
ROW = [1.0, 1.0, 1.0]


def instance_requests(name: str, endpoint: str) -> int:
    """Requests the instance's workers answered for `endpoint`, as it last reported (every 2 s)."""
    row = InstanceDeployment.objects.filter(instance__name=name, deployment__endpoint=endpoint).first()
    replicas = (row.runtime or {}).get("replicas", []) if row else []
    return sum(r.get("requests") or 0 for r in replicas)


class ManyHostsTestCase(TransactionTestCase):
    def setUp(self):
        super().setUp()
        self.web_dir = self.private_dir()
        # This process has no model server of its own unless a test starts one on web_dir.
        settings_override = override_settings(MODEL_SERVER_SECRET=SECRET, MODEL_SERVER_DIR=self.web_dir)
        settings_override.enable()
        self.addCleanup(settings_override.disable)
        self.forget_routing()
        self.addCleanup(self.forget_routing)
        self.manage, self.predict = key_client("manage"), key_client("predict")

    def forget_routing(self):
        dispatch.routes().close()
        for cached in (dispatch.routes, dispatch.workers, announcements.gateway_auth):
            cached.cache_clear()

    def private_dir(self):
        path = tempfile.mkdtemp(prefix="mh", dir="/tmp")  # 0700, short: socket paths stay under 108 bytes
        self.addCleanup(shutil.rmtree, path, True)
        return Path(path)

    def model_server(self, name: str, *, directory=None, pool: str = "default", secret: str = SECRET, listen=True):
        env = {"INSTANCE_NAME": name, "MODEL_SERVER_POOL": pool, "MODEL_SERVER_SECRET": secret,
               "MODEL_SERVER_DIR": str(directory or self.private_dir())}
        if listen:
            env["MODEL_SERVER_LISTEN"] = f"127.0.0.1:{free_port()}"
        server = LiveModelServer(**env).start()
        server.listen = env.get("MODEL_SERVER_LISTEN")
        self.addCleanup(server.stop)
        return server

    def deploy(self, endpoint: str, **fields):
        model = make_model(endpoint, task="regression")
        toy_version(model)
        # No prediction cache: every request must reach a worker, for the counts to show where it went.
        created = self.manage.post("/api/v1/deployments/", {"endpoint": endpoint, "model": endpoint, "version": 1,
                                                             "cache_enabled": False, **fields}, format="json")
        self.assertEqual(created.status_code, 201, created.content)
        return created.json()

    def detail(self, endpoint: str) -> dict:
        response = self.manage.get(f"/api/v1/deployments/{endpoint}/")
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()

    def wait_instances(self, endpoint: str, names: set[str], timeout: float = 120.0) -> dict:
        def reached():
            body = self.detail(endpoint)
            ready = {i["name"] for i in body["instances"] if i["status"] == "ready"}
            listed = {i["name"] for i in body["instances"]}
            return body if ready == names == listed else None

        return wait_for(reached, timeout=timeout, interval=0.25, message=f"{endpoint} ready on {sorted(names)}")

    def predict_ok(self, endpoint: str, count: int) -> None:
        for n in range(count):
            response = self.predict.post(f"/api/v1/predict/{endpoint}", {"inputs": [ROW]}, format="json")
            self.assertEqual(response.status_code, 200, f"request {n}: {response.content!r}")
            self.assertEqual(response.json()["predictions"], [6.0])


class TwoInstancesTests(ManyHostsTestCase):
    def test_two_instances_serve_one_deployment_share_the_load_and_survive_one_being_killed(self):
        self.model_server("ms-a")
        doomed = self.model_server("ms-b")
        self.deploy("churn")
        body = self.wait_instances("churn", {"ms-a", "ms-b"})
        self.assertEqual((body["status"], body["instances_ready"]), ("ready", 2))
        self.assertEqual(set(body["instances"][0]), {"name", "pool", "status", "loaded", "heartbeat_at",
                                                     "memory_mb", "queue_depth"})
        self.assertEqual(Deployment.objects.get(endpoint="churn").status, "ready")  # the column agrees

        route = wait_for(lambda: (r := dispatch.routes().endpoint("churn")) and len(r.sockets) == 2 and r,
                         timeout=10, message="both instances in the routing table")
        self.assertTrue(all(is_remote(address) for address in route.sockets))  # no local model server here
        before = {name: instance_requests(name, "churn") for name in ("ms-a", "ms-b")}
        self.predict_ok("churn", 30)
        answers = asyncio.run(self.predict_async(route, 10))  # the fast lane's event-loop client, over TCP too
        self.assertEqual([a["predictions"] for a in answers], [[6.0]] * 10)
        self.predict_over_http("churn", 20)  # gunicorn + uvicorn: the fast lane's event loop, no model server here
        wait_for(lambda: all(instance_requests(name, "churn") > before[name] + 15 for name in before), timeout=15,
                 message=f"requests spread over both instances (from {before}: "
                         f"{list(InstanceDeployment.objects.values_list('instance__name', 'runtime'))})")

        os.killpg(doomed.process.pid, signal.SIGKILL)
        killed = time.monotonic()
        body = self.wait_instances("churn", {"ms-a"}, timeout=15)
        self.assertLess(time.monotonic() - killed, 15)
        self.assertEqual((body["status"], body["instances_ready"]), ("ready", 1))
        wait_for(lambda: len(dispatch.routes().endpoint("churn").sockets) == 1, timeout=10,
                 message="the dead instance off the routes")
        self.predict_ok("churn", 30)  # none fails once it left

        metrics = self.manage.get("/api/v1/metrics").json()
        (churn,) = [d for d in metrics["deployments"] if d["endpoint"] == "churn"]
        self.assertEqual((churn["instances_ready"], [i["name"] for i in churn["instances"]]), (1, ["ms-a"]))
        health = {i["name"]: i["live"] for i in metrics["instances"]}
        self.assertEqual(health, {"ms-a": True, "ms-b": False})
        reach = self.client.get("/health/ready").json()["checks"]["model_server_instances"]
        self.assertEqual((reach["ok"], reach["instances"], reach["unreachable"]), (True, ["ms-a"], []))

    def predict_over_http(self, endpoint: str, count: int) -> None:
        _, key = api_key_create(name="web", scope="predict")
        web = LiveWebServer(MODEL_SERVER_SECRET=SECRET, MODEL_SERVER_DIR=str(self.private_dir()), INSTANCE_NAME="web")
        try:
            for n in range(count):
                request = urllib.request.Request(f"{web.url}/api/v1/predict/{endpoint}", method="POST",
                                                 data=json.dumps({"inputs": [ROW]}).encode(),
                                                 headers={"Content-Type": "application/json", "X-API-Key": key})
                with urllib.request.urlopen(request, timeout=30) as answer:
                    self.assertEqual(json.loads(answer.read())["predictions"], [6.0], f"request {n}")
        finally:
            web.stop()

    async def predict_async(self, route, count):
        return await asyncio.gather(*[dispatch.call_worker_async(route, "predict", [ROW], {}) for _ in range(count)])


class LocalFirstAndPoolTests(ManyHostsTestCase):
    def test_local_workers_are_preferred_and_a_pool_is_loaded_only_by_its_own_instances(self):
        self.model_server("ms-local", directory=self.web_dir)  # on this "host": same socket folder
        self.model_server("ms-remote")
        self.deploy("churn")
        refused = self.manage.post("/api/v1/deployments/", {"endpoint": "bad", "model": "churn", "version": 1,
                                                            "pool": "GPU pool"}, format="json")
        self.assertEqual(refused.status_code, 400)
        self.assertIn("pool", str(refused.json()))
        self.deploy("vision", pool="gpu")
        self.wait_instances("churn", {"ms-local", "ms-remote"})

        route = dispatch.routes().endpoint("churn")
        self.assertTrue(route.sockets and not any(is_remote(address) for address in route.sockets))
        time.sleep(2.5)  # a stats report after warm-up, then compare
        remote_before = instance_requests("ms-remote", "churn")
        local_before = instance_requests("ms-local", "churn")
        self.predict_ok("churn", 20)
        wait_for(lambda: instance_requests("ms-local", "churn") >= local_before + 20, timeout=15,
                 message="the local instance's report")
        self.assertEqual(instance_requests("ms-remote", "churn"), remote_before)

        vision = self.detail("vision")
        self.assertEqual((vision["status"], vision["status_reason"], vision["instances"]),
                         ("pending", "no live model server in pool 'gpu'", []))
        self.assertFalse(InstanceDeployment.objects.filter(deployment__endpoint="vision").exists())

        self.model_server("ms-gpu", pool="gpu")
        body = self.wait_instances("vision", {"ms-gpu"})
        self.assertEqual([i["pool"] for i in body["instances"]], ["gpu"])
        self.assertEqual({i["name"] for i in self.detail("churn")["instances"]}, {"ms-local", "ms-remote"})
        wait_for(lambda: dispatch.routes().endpoint("vision"), timeout=10, message="vision routed")
        self.predict_ok("vision", 3)


class AuthenticationTests(ManyHostsTestCase):
    def test_an_instance_with_another_secret_serves_nothing(self):
        stranger = self.model_server("ms-stranger", secret="not-the-platform-secret-at-all")
        self.deploy("churn")
        self.wait_instances("churn", {"ms-stranger"})  # it loads it, but cannot be used from here
        wait_for(lambda: dispatch.routes().endpoint("churn"), timeout=10, message="its announcement")
        time.sleep(2.5)
        served_before = instance_requests("ms-stranger", "churn")
        for _ in range(3):
            response = self.predict.post("/api/v1/predict/churn", {"inputs": [ROW]}, format="json")
            self.assertEqual(response.status_code, 503, response.content)
        reach = self.client.get("/health/ready").json()["checks"]["model_server_instances"]
        self.assertEqual((reach["ok"], reach["unreachable"]), (False, ["churn"]))  # says which it cannot reach
        host, port = stranger.listen.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            self.assertTrue(raw.recv(len(MAGIC) + NONCE_BYTES).startswith(MAGIC))
            raw.sendall(bytes(64) + encode({"endpoint": "churn", "replica": 0}))
            self.assertEqual(raw.recv(100), b"")  # closed, nothing answered
        time.sleep(2.5)
        self.assertEqual(instance_requests("ms-stranger", "churn"), served_before)

    def test_a_listener_without_a_secret_is_refused_at_start(self):
        env = {**os.environ, "DATABASE_URL": database_url(), "MODEL_SERVER_LISTEN": f"127.0.0.1:{free_port()}",
               "MODEL_SERVER_SECRET": "", "MODEL_SERVER_DIR": str(self.private_dir())}
        done = subprocess.run([sys.executable, "manage.py", "run_model_server"], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("MODEL_SERVER_SECRET", done.stderr)
