"""Bodies sent with `Transfer-Encoding: chunked` (no Content-Length) are read, through Django (a2wsgi, as
servingplatform/asgi.py mounts it) and through the prediction fast lane, under the same limits (413 past them).
tests/core/test_forwarded_and_chunked_served.py sends them over real HTTP to gunicorn."""

import asyncio
import json

from a2wsgi import WSGIMiddleware
from django.test import TestCase, TransactionTestCase, override_settings

from core.auth import forget_cached_keys, key_generation, remember_key
from core.services import api_key_create
from inference.fastlane import FastLane
from registry.models import ModelVersion, RegisteredModel
from servingplatform.asgi import django_application
from tests.conftest import skops_artifact
from tests.factories import make_model


def pieces(body: bytes, size: int = 7) -> list[bytes]:
    return [body[start:start + size] for start in range(0, len(body), size)] or [b""]


def asgi_call(app, path: str, chunks: list[bytes], headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """One request whose body arrives in `chunks`, as uvicorn hands over a chunked body: no Content-Length."""
    sent_headers = {"host": "localhost", "transfer-encoding": "chunked", **headers}
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(name.encode(), value.encode()) for name, value in sent_headers.items()],
             "client": ("127.0.0.1", 50000), "server": ("localhost", 80)}
    messages = [{"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
                for index, chunk in enumerate(chunks)]
    sent: list[dict] = []

    async def run():
        async def receive():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    answer_headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], answer_headers, body


class CountingDjango:
    def __init__(self):
        self.django = WSGIMiddleware(django_application, workers=2)
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send):
        self.paths.append(scope["path"])
        await self.django(scope, receive, send)


def multipart(fields: dict[str, str], files: dict[str, bytes], boundary: str = "b0undary") -> bytes:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.skops"\r\n'
              f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
              for name, data in files.items()]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


class ChunkedThroughDjangoTests(TransactionTestCase):
    """Django runs in a2wsgi's threads, on their own database connections: rows are committed."""

    def setUp(self):
        _, self.manage = api_key_create(name="manager", scope="manage")
        self.django = CountingDjango()

    def post(self, path: str, body: bytes, content_type="application/json", size: int = 7):
        return asgi_call(self.django, path, pieces(body, size), {"content-type": content_type,
                                                                 "x-api-key": self.manage})

    def test_a_chunked_json_body_is_read(self):
        status, _, body = self.post("/api/v1/models/", json.dumps({"name": "s", "task": "classification",
                                                                   "tags": {"team": "a"}}).encode())
        self.assertEqual(status, 201, body)
        self.assertEqual(RegisteredModel.objects.get(name="s").tags, {"team": "a"})

    def test_a_chunked_multipart_upload_is_read(self):
        make_model("churn")
        status, _, body = self.post("/api/v1/models/churn/versions/",
                                    multipart({"flavor": "sklearn", "tags": '{"run": "7"}'},
                                              {"artifact": skops_artifact()}),
                                    content_type="multipart/form-data; boundary=b0undary", size=4096)
        self.assertEqual(status, 201, body)
        self.assertEqual(ModelVersion.objects.get(model__name="churn").tags, {"run": "7"})

    @override_settings(MAX_REQUEST_BYTES=1024)
    def test_a_chunked_body_past_the_limit_is_413_in_the_routes_shape(self):
        big = json.dumps({"name": "s", "task": "classification", "description": "x" * 2000}).encode()
        status, _, body = self.post("/api/v1/models/", big, size=256)
        self.assertEqual(status, 413)
        self.assertEqual(json.loads(body)["error"]["code"], "payload_too_large")
        self.assertFalse(RegisteredModel.objects.exists())
        status, _, body = self.post("/v2/models/churn/infer", big, size=256)
        self.assertEqual(status, 413)
        self.assertIsInstance(json.loads(body)["error"], str)  # the Open Inference Protocol's shape

    @override_settings(MAX_ARTIFACT_BYTES=2048)
    def test_an_upload_past_the_artifact_limit_is_413(self):
        make_model("churn")
        status, _, _ = self.post("/api/v1/models/churn/versions/",
                                 multipart({"flavor": "sklearn"}, {"artifact": b"x" * 4096}),
                                 content_type="multipart/form-data; boundary=b0undary", size=512)
        self.assertEqual(status, 413)
        self.assertFalse(ModelVersion.objects.exists())


class ChunkedThroughTheLaneTests(TestCase):
    def setUp(self):
        forget_cached_keys()
        self.addCleanup(forget_cached_keys)
        self.key, self.secret = api_key_create(name="predictor", scope="predict")
        self.django = CountingDjango()
        self.lane = FastLane(self.django, threads=2)

    def post(self, path: str, body: bytes, size: int = 5):
        # As the first request through Django leaves it (each time: the process's first request starts the
        # invalidation listener, which begins with an empty cache).
        remember_key(self.secret, self.key, key_generation())
        status, _, raw = asgi_call(self.lane, path, pieces(body, size), {"content-type": "application/json",
                                                                        "x-api-key": self.secret})
        return status, json.loads(raw)

    def test_the_lane_reads_a_chunked_body_itself(self):
        # Each answer depends on the body: it was read (an ignored body is `inputs: This field is required`).
        status, answer = self.post("/api/v1/predict/scorer", b'{"inputs": [[1.0, 2.0]], "request_id": 7}')
        self.assertEqual(status, 400)
        self.assertTrue(answer["error"]["message"].startswith("request_id: "), answer)
        status, answer = self.post("/api/v1/predict", b'{"inputs": [[1.0]], "model": ""}')
        self.assertTrue(answer["error"]["message"].startswith("model: "), answer)
        status, answer = self.post("/api/v1/predict/scorer", b"")
        self.assertEqual((status, answer["error"]["message"]), (400, "inputs: This field is required."))
        self.assertEqual(self.django.paths, [])

    @override_settings(MAX_REQUEST_BYTES=1024)
    def test_a_chunked_body_past_the_limit_is_413(self):
        body = json.dumps({"inputs": [[1.0] * 400]}).encode()
        status, answer = self.post("/api/v1/predict/scorer", body, size=100)
        self.assertEqual((status, answer["error"]["code"]), (413, "payload_too_large"))
        status, answer = self.post("/v2/models/scorer/infer", body, size=100)
        self.assertEqual(status, 413)
        self.assertIsInstance(answer["error"], str)
        self.assertEqual(self.django.paths, [])
