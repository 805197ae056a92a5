"""Redis high availability: REDIS_URL naming a Sentinel service (Debian's redis-server and redis-sentinel, started
here on free loopback ports, all with a password) survives the master's death; with no Redis at all predictions
still answer and job submissions are refused with nothing stored."""

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis

from core import redis_clients
from inference.models import InferenceJob, JobStatus
from tests.core.platform_live import wait_until
from tests.factories import key_client
from tests.inference.jobs.support import RqWorker, deploy_toy
from tests.inference.live import LiveServerTestCase, LiveWebServer, free_port

PASSWORD = "sentinel-test-secret"
SERVICE = "spmaster"
ROWS = [[1.0, 2.0, 3.0]]

pytestmark = [
    pytest.mark.timeout(900),
    pytest.mark.skipif(not (shutil.which("redis-server") and shutil.which("redis-sentinel")),
                       reason="Debian's redis-server and redis-sentinel are needed"),
]


class RedisGroup:
    """A master, a replica and `sentinels` sentinels, each its own process on a free loopback port."""

    def __init__(self, sentinels: int = 1):
        self.folder = Path(tempfile.mkdtemp(prefix="sp-sentinel-"))
        self.master_port, self.replica_port = free_port(), free_port()
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self) -> "RedisGroup":
        auth = ["--requirepass", PASSWORD, "--masterauth", PASSWORD, "--save", "", "--appendonly", "no"]
        self._server("master", self.master_port, auth)
        self._server("replica", self.replica_port, [*auth, "--replicaof", "127.0.0.1", str(self.master_port)])
        for index, port in enumerate(self.sentinel_ports):
            config = self.folder / f"sentinel-{index}.conf"  # sentinels rewrite their config: one file each
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.folder}\nrequirepass {PASSWORD}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 1\n"
                f"sentinel auth-pass {SERVICE} {PASSWORD}\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\nsentinel failover-timeout {SERVICE} 10000\n")
            self.processes[f"sentinel-{index}"] = subprocess.Popen(
                ["redis-sentinel", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.client(self.replica_port).info("replication").get("master_link_status") == "up",
                   timeout=30, message="the replica in sync")
        for port in self.sentinel_ports:
            wait_until(lambda port=port: self._answers(port), timeout=30, message="the sentinels")
        return self

    def _server(self, name: str, port: int, args: list[str]) -> None:
        self.processes[name] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.folder), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self._answers(port), timeout=30, message=f"redis {name}")

    def _answers(self, port: int) -> bool:
        try:
            return bool(self.client(port).ping())
        except redis.RedisError:
            return False

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=PASSWORD, socket_timeout=1, socket_connect_timeout=1)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://:{PASSWORD}@{hosts}/{SERVICE}/0"

    def master_port_now(self) -> int:
        host, port = self.client(self.sentinel_ports[0]).execute_command("SENTINEL GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(port)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class SentinelFailoverTests(LiveServerTestCase):
    def setUp(self):
        self.group = RedisGroup(sentinels=1).start()
        self.addCleanup(self.group.stop)
        self.server_env = {"REDIS_URL": self.group.url}
        super().setUp()
        deploy_toy(self, "scorer")
        self.web = LiveWebServer(REDIS_URL=self.group.url)
        self.addCleanup(self.web.stop)
        self.predict_key = key_client("predict", "ha")._credentials["HTTP_X_API_KEY"]

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        import json
        import urllib.error
        import urllib.request

        request = urllib.request.Request(f"{self.web.url}{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"X-API-Key": self.predict_key, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=15) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def test_killing_the_master_loses_no_job_and_predictions_keep_answering(self):
        accepted = [self.post("/api/v1/predict/scorer/async", {"inputs": ROWS}) for _ in range(5)]
        self.assertEqual([status for status, _ in accepted], [202] * 5, accepted)
        master = self.group.client(self.group.master_port)
        self.assertEqual(master.execute_command("WAIT", 1, 5000), 1)  # the replica holds the queued jobs too

        self.group.processes["master"].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        during, refused = [], []
        while self.group.master_port_now() != self.group.replica_port:
            during.append(self.post("/api/v1/predict/scorer", {"inputs": ROWS, "parameters": {"cache": False}})[0])
            status, body = self.post("/api/v1/predict/scorer/async", {"inputs": ROWS})
            (accepted if status == 202 else refused).append((status, body))
            self.assertLess(time.monotonic() - killed, 60, "no failover within 60 s")
            time.sleep(0.2)
        failover_s = time.monotonic() - killed
        print(f"\nsentinel failover: replica promoted {failover_s:.1f} s after the master was killed")

        self.assertEqual(set(during), {200})  # sync predictions never needed Redis
        for status, body in refused:  # while no master was known: refused, nothing stored
            self.assertEqual((status, body["error"]["code"]), (503, "queue_unavailable"))
        wait_until(lambda: self.post("/api/v1/predict/scorer/async", {"inputs": ROWS})[0] == 202, timeout=30,
                   message="submissions accepted by the new master")
        accepted.append((202, None))
        accepted_ids = {body["job_id"] for status, body in accepted if body}
        worker = RqWorker(burst=True, REDIS_URL=self.group.url).start()
        self.addCleanup(worker.stop)
        self.assertEqual(worker.wait(), 0)
        jobs = InferenceJob.objects.all()
        self.assertEqual(jobs.count(), len(accepted))  # every accepted job has its row, none more
        self.assertTrue(accepted_ids <= {str(job.pk) for job in jobs})
        self.assertEqual({job.status for job in jobs}, {JobStatus.SUCCEEDED})
        self.assertEqual(self.post("/api/v1/predict/scorer", {"inputs": ROWS})[0], 200)


class NoRedisTests(LiveServerTestCase):
    def setUp(self):
        self.nowhere = f"redis://:pw@127.0.0.1:{free_port()}/0"  # nothing listens there
        self.server_env = {"REDIS_URL": self.nowhere}
        super().setUp()
        deploy_toy(self, "scorer")
        self.web = LiveWebServer(REDIS_URL=self.nowhere)
        self.addCleanup(self.web.stop)

    def test_sync_predictions_answer_and_job_submissions_are_refused_with_nothing_stored(self):
        import requests

        headers = {"X-API-Key": key_client("predict")._credentials["HTTP_X_API_KEY"]}
        sync = requests.post(f"{self.web.url}/api/v1/predict/scorer", json={"inputs": ROWS}, headers=headers,
                             timeout=30)
        self.assertEqual(sync.status_code, 200, sync.text)
        refused = requests.post(f"{self.web.url}/api/v1/predict/scorer/async", json={"inputs": ROWS},
                                headers=headers, timeout=30)
        self.assertEqual(refused.status_code, 503, refused.text)
        self.assertEqual(set(refused.json()["error"]), {"code", "message", "details"})
        self.assertEqual(refused.json()["error"]["code"], "queue_unavailable")
        self.assertEqual(InferenceJob.objects.count(), 0)


def test_a_sentinel_url_is_parsed_and_shown_without_its_password():
    service = redis_clients.parse_sentinel("redis+sentinel://user:s3cret@10.0.0.1:26379,[::1]:26380/main/2")
    assert (service.sentinels, service.service, service.db) == ((("10.0.0.1", 26379), ("::1", 26380)), "main", 2)
    assert (service.username, service.password) == ("user", "s3cret")
    assert "s3cret" not in repr(service)
    assert redis_clients.redacted("redis+sentinel://user:s3cret@h:1/main") == "redis+sentinel://user:***@h:1/main"
    for bad in ("redis+sentinel://h:1/", "redis+sentinel://h/main", "redis+sentinel://h:1/main/x"):
        with pytest.raises(ValueError):
            redis_clients.parse_sentinel(bad)


@pytest.mark.django_db
def test_the_test_session_redis_asks_for_a_password_and_every_client_uses_the_url_s():
    from django.conf import settings
    from django.core.cache import cache

    from inference.jobs.queue import get_queue
    from inference.predict.dispatch import prediction_cache

    if not redis.connection.parse_url(settings.REDIS_URL).get("password"):
        pytest.skip("this run's REDIS_URL has no password (the private Redis of tests/services_plugin.py has one)")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(settings.REDIS_URL.replace(settings.REDIS_URL.split("@")[0] + "@", "redis://")).ping()
    cache.set("sp-auth-probe", 1, 10)
    assert cache.get("sp-auth-probe") == 1
    assert get_queue("low").connection.ping()
    assert prediction_cache().stats()["available"] is True  # the fast lane's cache
    assert redis_clients.fail_fast(settings.REDIS_URL).ping()


def test_redis_sentinels_and_service_name_the_service_with_redis_password(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from core.env import env_redis_url

    monkeypatch.setenv("REDIS_SENTINELS", "10.0.0.1:26379,10.0.0.2:26379")
    monkeypatch.setenv("REDIS_SERVICE", "main")
    monkeypatch.setenv("REDIS_PASSWORD", "pw")
    assert env_redis_url("REDIS_URL", "redis://unused") == "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/main/0"
    monkeypatch.setenv("REDIS_SENTINELS", "10.0.0.1")
    with pytest.raises(ImproperlyConfigured, match="REDIS_SENTINELS / REDIS_SERVICE: the sentinel '10.0.0.1' is not"):
        env_redis_url("REDIS_URL", "redis://unused")


def test_the_deploy_check_refuses_a_redis_url_without_a_password():
    from django.core.checks import run_checks
    from django.test import override_settings

    def warned(url: str) -> bool:
        with override_settings(REDIS_URL=url):
            return "core.W001" in {message.id for message in run_checks(include_deployment_checks=True)}

    assert warned("redis://redis.internal:6379/0")
    assert not warned("redis://:s3cret@redis.internal:6379/0")
    assert not warned("redis+sentinel://:s3cret@s1:26379/main/0")
