import io
import json
import logging
from unittest import mock

from django.conf import settings
from django.test import TestCase, override_settings
from pythonjsonlogger.json import JsonFormatter
from rest_framework.test import APIClient

from core.logging import RequestIdFilter
from tests.factories import key_client

RATES = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"predict": "100/day", "manage": "3/day",
                                                                "anon": "3/day"}}


@override_settings(REST_FRAMEWORK=RATES)
class ThrottlingTests(TestCase):
    def token_attempt(self, client, forwarded_for: str):
        return client.post("/api/v1/auth/token/", {"username": "x", "password": "y"},
                           HTTP_X_FORWARDED_FOR=forwarded_for)

    def test_rotating_x_forwarded_for_does_not_escape_the_limit(self):
        client = APIClient()
        statuses = [self.token_attempt(client, f"10.0.0.{n}").status_code for n in range(6)]
        self.assertEqual(statuses[:3], [401, 401, 401])
        self.assertEqual(statuses[3:], [429, 429, 429])

    @override_settings(REST_FRAMEWORK={**RATES, "NUM_PROXIES": 1})
    def test_with_a_trusted_proxy_the_forwarded_address_is_the_client(self):
        client = APIClient()
        for _ in range(3):
            self.assertEqual(self.token_attempt(client, "203.0.113.7").status_code, 401)
        self.assertEqual(self.token_attempt(client, "203.0.113.7").status_code, 429)
        self.assertEqual(self.token_attempt(client, "203.0.113.8").status_code, 401)

    def test_each_key_has_its_own_bucket(self):
        first, second = key_client("manage", "first"), key_client("manage", "second")
        for _ in range(3):
            self.assertEqual(first.get("/api/v1/models/").status_code, 200)
        self.assertEqual(first.get("/api/v1/models/").status_code, 429)
        self.assertEqual(second.get("/api/v1/models/").status_code, 200)

    def test_when_the_throttle_store_is_down_requests_are_served(self):
        client = key_client("manage")
        import redis

        with mock.patch("core.throttling.QuotaLeases.take", side_effect=redis.ConnectionError("down")), \
                self.assertLogs("core.throttling", level="WARNING"):
            for _ in range(5):
                self.assertEqual(client.get("/api/v1/models/").status_code, 200)


class JsonLogTests(TestCase):
    def test_log_lines_are_json_and_carry_the_request_id(self):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s %(request_id)s"))
        logger = logging.getLogger("registry.selectors")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)

        def logging_list():
            logger.info("listing models")
            from registry.models import RegisteredModel

            return RegisteredModel.objects.none()

        try:
            with mock.patch("registry.apis.selectors.registered_model_list", side_effect=logging_list):
                key_client("manage").get("/api/v1/models/", HTTP_X_REQUEST_ID="req-42")
        finally:
            logger.removeHandler(handler)
        record = json.loads(stream.getvalue().strip().splitlines()[-1])
        self.assertEqual(record["message"], "listing models")
        self.assertEqual(record["request_id"], "req-42")
