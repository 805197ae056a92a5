import time

from django.test import TestCase, override_settings
from rest_framework.test import APIClient


class HealthTests(TestCase):
    def test_liveness_needs_nothing_and_is_fast(self):
        client = APIClient()
        client.get("/health")  # first request warms URL resolution
        started = time.perf_counter()
        response = client.get("/health")
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"status": "ok"})
        # Not a benchmark: a generous bound that only a liveness check doing I/O would break.
        self.assertLess(elapsed_ms, 100)

    def test_readiness_checks_database_and_redis(self):
        response = APIClient().get("/health/ready")
        self.assertEqual(response.status_code, 200, response.content)
        body = response.json()
        self.assertEqual(body["status"], "ready")
        self.assertTrue(body["checks"]["database"]["ok"])
        self.assertTrue(body["checks"]["redis"]["ok"])

    @override_settings(REDIS_URL="redis://127.0.0.1:1/0")
    def test_readiness_is_503_when_redis_is_unreachable(self):
        response = APIClient().get("/health/ready")
        self.assertEqual(response.status_code, 503)
        body = response.json()
        self.assertEqual(body["status"], "not_ready")
        self.assertFalse(body["checks"]["redis"]["ok"])
        self.assertTrue(body["checks"]["database"]["ok"])

    def test_readiness_is_503_when_the_database_fails(self):
        from unittest import mock

        with mock.patch("core.health.connection.cursor", side_effect=RuntimeError("db down")):
            response = APIClient().get("/health/ready")
        self.assertEqual(response.status_code, 503)
        self.assertFalse(response.json()["checks"]["database"]["ok"])


class DrainingTests(TestCase):
    def test_readiness_is_503_while_the_launcher_drains_and_liveness_stays_200(self):
        import tempfile
        from pathlib import Path

        drain_file = Path(tempfile.mkdtemp()) / "draining"
        with override_settings(DRAIN_FILE=str(drain_file)):
            self.assertEqual(APIClient().get("/health/ready").status_code, 200)
            drain_file.touch()
            ready = APIClient().get("/health/ready")
            self.assertEqual((ready.status_code, ready.json()["status"]), (503, "not_ready"))
            self.assertEqual(ready.json()["checks"]["draining"], {"ok": False, "error": "shutting down"})
            self.assertEqual(APIClient().get("/v2/health/ready").status_code, 503)
            self.assertEqual(APIClient().get("/health").status_code, 200)
