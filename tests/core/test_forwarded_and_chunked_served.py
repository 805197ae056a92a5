"""Over real HTTP, as `make serve` runs the web tier (gunicorn + uvicorn workers, the fast lane, Django):
X-Forwarded-For is believed for TRUSTED_PROXY_COUNT proxies only (uvicorn's own trust of 127.0.0.1 is off),
and chunked request bodies are read under the same limits."""

import http.client
import json

import pytest
from django.test import TransactionTestCase

from core.services import api_key_create
from registry.models import ModelVersion, RegisteredModel
from tests.conftest import skops_artifact
from tests.core.test_chunked_bodies import multipart
from tests.factories import make_model
from tests.inference.live import LiveWebServer


def send(web: LiveWebServer, path: str, body, headers: dict) -> tuple[int, dict, dict]:
    """POSTs `body`; a list of pieces goes out chunked (http.client: no Content-Length, Transfer-Encoding)."""
    connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=60)
    try:
        connection.request("POST", path, body=iter(body) if isinstance(body, list) else body, headers=headers)
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), json.loads(answer.read() or b"null")
    finally:
        connection.close()


def token_attempt(web: LiveWebServer, forwarded_for: str) -> int:
    body = json.dumps({"username": "nobody", "password": "wrong"}).encode()
    return send(web, "/api/v1/auth/token/", body, {"Content-Type": "application/json",
                                                   "X-Forwarded-For": forwarded_for})[0]


def split(body: bytes, size: int) -> list[bytes]:
    return [body[start:start + size] for start in range(0, len(body), size)]


@pytest.mark.slow
class ForwardedForServedTests(TransactionTestCase):
    def serve(self, **env) -> LiveWebServer:
        # Failures are not what is counted here: the anonymous rate is.
        web = LiveWebServer(THROTTLE_RATE_ANON="3/hour", AUTH_FAILURE_LIMIT="1000", **env)
        self.addCleanup(web.stop)
        return web

    def test_a_rotating_x_forwarded_for_is_still_throttled_without_trusted_proxies(self):
        web = self.serve()
        statuses = [token_attempt(web, f"10.0.0.{n}") for n in range(6)]
        self.assertEqual(statuses, [401, 401, 401, 429, 429, 429])

    def test_behind_one_trusted_proxy_the_address_it_saw_is_the_client(self):
        web = self.serve(TRUSTED_PROXY_COUNT="1")
        # A client's own X-Forwarded-For entries come first; the proxy appends the address it saw.
        statuses = [token_attempt(web, f"10.9.9.{n}, 203.0.113.7") for n in range(4)]
        self.assertEqual(statuses, [401, 401, 401, 429])
        self.assertEqual(token_attempt(web, "10.9.9.1, 203.0.113.8"), 401)


@pytest.mark.slow
class ChunkedServedTests(TransactionTestCase):
    def test_chunked_json_and_multipart_bodies_are_read_and_held_to_the_limits(self):
        web = LiveWebServer(MAX_REQUEST_MB="1")
        self.addCleanup(web.stop)
        _, manage = api_key_create(name="manager", scope="manage")
        _, predict = api_key_create(name="predictor", scope="predict")
        json_headers = {"Content-Type": "application/json", "X-API-Key": manage}

        body = json.dumps({"name": "s", "task": "classification", "tags": {"team": "a"}}).encode()
        status, _, answer = send(web, "/api/v1/models/", split(body, 9), json_headers)
        self.assertEqual(status, 201, answer)
        self.assertEqual(RegisteredModel.objects.get(name="s").tags, {"team": "a"})

        big = json.dumps({"name": "t", "task": "classification", "description": "x" * (1024 * 1024)}).encode()
        status, _, answer = send(web, "/api/v1/models/", split(big, 64 * 1024), json_headers)
        self.assertEqual((status, answer["error"]["code"]), (413, "payload_too_large"))

        make_model("churn")
        form = multipart({"flavor": "sklearn", "tags": '{"run": "7"}'}, {"artifact": skops_artifact()})
        status, _, answer = send(web, "/api/v1/models/churn/versions/", split(form, 4096),
                                 {"Content-Type": "multipart/form-data; boundary=b0undary", "X-API-Key": manage})
        self.assertEqual(status, 201, answer)
        self.assertEqual(ModelVersion.objects.get(model__name="churn").tags, {"run": "7"})

        # A prediction: the first request verifies the key (Django), the next the lane answers alone. Each
        # answer depends on the body (an ignored one is `inputs: This field is required`).
        predict_headers = {"Content-Type": "application/json", "X-API-Key": predict}
        for _ in range(2):
            status, _, answer = send(web, "/api/v1/predict/scorer", [b'{"inputs": [[1.0]], ', b'"request_id": 7}'],
                                     predict_headers)
            self.assertEqual(status, 400)
            self.assertTrue(answer["error"]["message"].startswith("request_id: "), answer)
        status, _, answer = send(web, "/api/v1/predict/scorer", split(json.dumps({"inputs": [[1.0] * 300_000]})
                                                                      .encode(), 64 * 1024), predict_headers)
        self.assertEqual((status, answer["error"]["code"]), (413, "payload_too_large"))
