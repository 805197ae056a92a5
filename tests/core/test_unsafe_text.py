"""NUL and lone surrogates are refused wherever a string enters the API (JSON bodies, JSON inside multipart
fields, forms), with a 400 naming the field path: stored, a lone surrogate made every later list a 500 (it
cannot be encoded as UTF-8) and NUL is refused by PostgreSQL; echoed (a request id), it was a 500 at once."""

import asyncio
import json

import pytest
from django.test import TestCase
from rest_framework.exceptions import ParseError

from core.auth import forget_cached_keys, key_generation, remember_key
from core.parsers import UnsafeText, loads_strict
from core.services import api_key_create
from inference.fastlane import FastLane
from registry.models import ModelVersion, RegisteredModel
from tests.conftest import upload
from tests.factories import key_client, make_model
from tests.inference.test_fastlane import CountingFallback

# JSON texts as a client sends them: the escapes are what json.loads turns into NUL or a lone surrogate.
SURROGATE = r"\udfff"
NUL = r"\u0000"


def raw_body(fields: str) -> bytes:
    return ("{" + fields + "}").encode()


def test_json_with_nul_or_a_lone_surrogate_is_refused_at_its_path():
    cases = {
        rf'"tags": {{"a": "{SURROGATE}"}}': "tags.a",
        rf'"tags": {{"a": "x{NUL}y"}}': "tags.a",
        rf'"requests": [{{"inputs": [1]}}, {{"request_id": "{SURROGATE}"}}]': "requests.1.request_id",
        rf'"tags": {{"k{SURROGATE}": "v"}}': r"tags.k\udfff",  # a key: named, escaped, never echoed raw
        r'"high": "\ud800"': "high",
    }
    for fields, path in cases.items():
        with pytest.raises(UnsafeText) as caught:
            loads_strict(raw_body(fields))
        assert caught.value.field == path
        json.dumps(caught.value.detail, ensure_ascii=False).encode()  # the error itself is printable


def test_text_that_merely_looks_risky_is_kept():
    # A surrogate pair is one character (an emoji, as json.dumps writes it); an escaped backslash is text.
    assert loads_strict(rb'{"a": "\ud83d\ude00", "b": "\\u0000", "c": "\\udfff"}') == {
        "a": "\U0001f600", "b": "\\u0000", "c": "\\udfff"}
    with pytest.raises(ParseError):
        loads_strict(b'{"a": "\x00"}')  # a raw control character was already refused by json.loads


class UnsafeTextApiTests(TestCase):
    def setUp(self):
        self.client = key_client("manage")

    def post_raw(self, path: str, fields: str, client=None, method="POST"):
        return (client or self.client).generic(method, path, raw_body(fields), content_type="application/json")

    def assert_refused(self, response, path: str, problem: str = "") -> dict:
        self.assertEqual(response.status_code, 400, response.content)
        error = response.json()["error"]
        self.assertEqual(error["code"], "validation_error")
        self.assertTrue(error["message"].startswith(f"{path}: "), error["message"])
        self.assertIn(problem, error["message"])
        return error

    def test_a_model_with_unsafe_tags_is_not_stored_and_the_list_stays_readable(self):
        for fields, path, problem in [
            (rf'"name": "s", "task": "classification", "tags": {{"a": "{SURROGATE}"}}', "tags.a", "surrogate"),
            (rf'"name": "s", "task": "classification", "tags": {{"a": "{NUL}"}}', "tags.a", "NUL"),
            (rf'"name": "s{NUL}", "task": "classification"', "name", "NUL"),
            (rf'"name": "s", "task": "classification", "description": "{SURROGATE}"', "description", ""),
        ]:
            with self.subTest(path):
                self.assert_refused(self.post_raw("/api/v1/models/", fields), path, problem)
        self.assertFalse(RegisteredModel.objects.exists())
        self.assertEqual(self.client.get("/api/v1/models/").status_code, 200)

    def test_patch_keeps_the_stored_tags(self):
        make_model("s", tags={"a": "b"})
        self.assert_refused(self.post_raw("/api/v1/models/s/", rf'"tags": {{"a": "{SURROGATE}"}}', method="PATCH"),
                            "tags.a")
        self.assertEqual(RegisteredModel.objects.get(name="s").tags, {"a": "b"})
        self.assertEqual(self.client.get("/api/v1/models/").status_code, 200)

    def test_a_version_upload_with_unsafe_multipart_fields_is_not_stored(self):
        make_model("churn")
        for fields, path in [({"tags": '{"a": "\\udfff"}'}, "tags.a"), ({"tags": '{"a": "\\u0000"}'}, "tags.a"),
                             ({"description": "x\x00y"}, "description")]:
            with self.subTest(path):
                body = {"artifact": upload("artifact", b"not read"), "flavor": "sklearn", **fields}
                self.assert_refused(self.client.post("/api/v1/models/churn/versions/", body, format="multipart"),
                                    path)
        self.assertFalse(ModelVersion.objects.exists())

    def test_deployments_and_experiments_refuse_unsafe_strings(self):
        self.assert_refused(self.post_raw("/api/v1/deployments/", rf'"endpoint": "e{SURROGATE}", "model": "m"'),
                            "endpoint")
        self.assert_refused(self.post_raw("/api/v1/experiments/", rf'"name": "x", "description": "{NUL}"'),
                            "description")
        self.assert_refused(self.post_raw("/api/v1/auth/token/", rf'"username": "{SURROGATE}", "password": "p"',
                                          client=key_client("predict")), "username")

    def test_prediction_routes_refuse_an_unsafe_request_id_before_anything_is_looked_up(self):
        client = key_client("predict")
        for route, fields, path in [
            ("/api/v1/predict/e", rf'"inputs": [[1]], "request_id": "{SURROGATE}"', "request_id"),
            ("/api/v1/predict", rf'"model": "m", "inputs": [[1]], "request_id": "{SURROGATE}"', "request_id"),
            ("/api/v1/predict/e/explain", rf'"inputs": [[1]], "request_id": "{NUL}"', "request_id"),
            ("/api/v1/predict/batch",
             rf'"requests": [{{"endpoint": "e", "inputs": [[1]], "request_id": "{SURROGATE}"}}]',
             "requests.0.request_id"),
            ("/api/v1/predict/e/score", rf'"candidates": ["a", "b{SURROGATE}"]', "candidates.1"),
        ]:
            with self.subTest(route):
                self.assert_refused(self.post_raw(route, fields, client=client), path)

    def test_query_parameters_refuse_nul(self):
        # PostgreSQL refuses NUL in a filter's value: it was a 500 there.
        self.assert_refused(self.client.get("/api/v1/models/", {"name": "a\x00"}), "name", "NUL")
        self.assertEqual(self.client.get("/api/v1/models/", {"name": "a"}).status_code, 200)

    def test_forms_refuse_nul(self):
        response = self.client.post("/api/v1/models/", {"name": "s\x00", "task": "classification"})
        self.assert_refused(response, "name", "NUL")


class FastLaneUnsafeTextTests(TestCase):
    def test_the_lane_refuses_an_unsafe_request_id_itself(self):
        forget_cached_keys()
        self.addCleanup(forget_cached_keys)
        key, secret = api_key_create(name="predictor", scope="predict")
        remember_key(secret, key, key_generation())  # as the first request through Django leaves it
        fallback = CountingFallback()
        lane = FastLane(fallback, threads=2)
        for path, fields in [("/api/v1/predict/e", rf'"inputs": [[1]], "request_id": "{SURROGATE}"'),
                             ("/api/v1/predict", rf'"model": "m", "inputs": [[1]], "request_id": "{NUL}"')]:
            with self.subTest(path):
                answer = lane_call(lane, path, raw_body(fields), secret)
                self.assertEqual(answer[0], 400)
                self.assertTrue(answer[1]["error"]["message"].startswith("request_id: "), answer[1])
        self.assertEqual(fallback.paths, [])


def lane_call(app, path: str, body: bytes, key: str) -> tuple[int, dict]:
    headers = [(b"host", b"localhost"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), (b"x-api-key", key.encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("localhost", 80)}
    sent: list[dict] = []

    async def run():
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(run())
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, json.loads(b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))
