"""The prediction fast lane (inference/fastlane.py): what it answers, it answers exactly as the DRF view
would (body, status, error shape, headers, shared rate limit); everything else reaches Django untouched."""

import asyncio
import gzip
import json
import threading
import time
from unittest import mock

from a2wsgi import WSGIMiddleware
from django.conf import settings
from django.test import TestCase, override_settings
from rest_framework.test import APIClient

from core.auth import forget_cached_keys, key_generation, remember_key
from core.services import api_key_create
from inference import fastlane
from inference.fastlane import FastLane
from inference.predict import dispatch, engine
from registry.models import RegisteredModel
from registry.services import model_alias_set
from servingplatform.asgi import django_application
from tests.factories import key_client, make_model
from tests.inference.live import LiveServerTestCase, toy_version

ROWS = [[1.0, 2.0, 3.0], [0.5, -1.5, 0.25]]
# Fields that differ between any two answers to one request.
VOLATILE = ("request_id", "latency_ms")


def scope(path="/api/v1/predict/scorer", *, method="POST", headers=None, body=b"{}", scheme="http"):
    sent = {"host": "localhost", "content-type": "application/json", "content-length": str(len(body)),
            **(headers or {})}
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": scheme,
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(name.lower().encode(), value.encode()) for name, value in sent.items() if value is not None],
            "client": ("127.0.0.1", 50000), "server": ("localhost", 80)}


class Answer:
    def __init__(self, messages: list[dict]):
        start = next(m for m in messages if m["type"] == "http.response.start")
        self.status = start["status"]
        self.headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
        self.body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")

    def json(self):
        raw = gzip.decompress(self.body) if self.headers.get("content-encoding") == "gzip" else self.body
        return json.loads(raw)


def call(app, path="/api/v1/predict/scorer", *, body=None, headers=None, method="POST") -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def run():
        messages = [{"type": "http.request", "body": raw, "more_body": False}]
        sent = []

        async def receive():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await app(scope(path, method=method, headers=headers, body=raw), receive, send)
        return sent

    return Answer(asyncio.run(run()))


class CountingFallback:
    """Django behind a2wsgi, as servingplatform/asgi.py mounts it, counting what reaches it."""

    def __init__(self):
        self.django = WSGIMiddleware(django_application, workers=2)
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send):
        self.paths.append(scope["path"])
        await self.django(scope, receive, send)


class AdmissionTests(TestCase):
    """Which requests the lane takes: only those it can answer exactly as Django would."""

    def setUp(self):
        forget_cached_keys()
        self.addCleanup(forget_cached_keys)
        self.key, self.secret = api_key_create(name="predictor", scope="predict")
        remember_key(self.secret, self.key, key_generation())  # as the first request through Django leaves it
        manage_key, self.manage_secret = api_key_create(name="manager", scope="manage")
        remember_key(self.manage_secret, manage_key, key_generation())

    def admit(self, path="/api/v1/predict/scorer", *, headers=None, **options):
        return fastlane._admit(scope(path, headers={"x-api-key": self.secret, **(headers or {})}, **options))

    def test_a_json_prediction_with_a_verified_predict_key_is_admitted(self):
        admitted = self.admit(headers={"x-request-id": "abc-1", "x-subject-id": "user-7",
                                       "accept": "application/json", "accept-encoding": "gzip, br",
                                       "content-type": "application/json; charset=utf-8"})
        self.assertIsNotNone(admitted)
        self.assertEqual(admitted.endpoint, "scorer")
        self.assertEqual(admitted.bucket, f"sp:throttle:predict:key:{self.key.pk}")
        self.assertEqual((admitted.request_id, admitted.subject), ("abc-1", "user-7"))
        self.assertTrue(admitted.accepts_gzip)
        self.assertIsNotNone(self.admit(headers={"x-api-key": self.manage_secret}))  # manage keys may predict
        v2 = self.admit("/v2/models/scorer/versions/3/infer", headers={"content-type": "application/octet-stream"})
        self.assertEqual((v2.kind, v2.endpoint, v2.version), ("v2", "scorer", "3"))
        self.assertEqual(self.admit("/v2/models/scorer/infer").version, None)
        self.assertEqual(self.admit("/api/v1/predict").kind, "universal")

    def test_routes_are_admitted_with_or_without_a_trailing_slash_as_django_answers_both(self):
        self.assertEqual(self.admit("/api/v1/predict/scorer/").endpoint, "scorer")
        self.assertEqual(self.admit("/api/v1/predict/").kind, "universal")
        v2 = self.admit("/v2/models/scorer/versions/3/infer/")
        self.assertEqual((v2.kind, v2.endpoint, v2.version), ("v2", "scorer", "3"))
        self.assertIsNone(self.admit("/api/v1/predict/batch/"))
        self.assertIsNone(self.admit("/api/v1/predict/scorer/explain/"))

    def test_everything_else_goes_to_django(self):
        cases = {
            "another route": dict(path="/api/v1/predict/batch"),
            "explain": dict(path="/api/v1/predict/scorer/explain"),
            "the batch route with a slash": dict(path="/api/v1/predict/batch/"),
            "V2 metadata": dict(path="/v2/models/scorer"),
            "V2 readiness": dict(path="/v2/models/scorer/ready"),
            "a V2 form body": dict(path="/v2/models/scorer/infer",
                                   headers={"content-type": "application/x-www-form-urlencoded"}),
            "a GET": dict(method="GET"),
            "no key": dict(headers={"x-api-key": None}),
            "a key not verified in this process": dict(headers={"x-api-key": "AbCdEfGh.not-seen-here"}),
            "a CORS request": dict(headers={"origin": "https://app.example.com"}),
            "the browsable API": dict(headers={"accept": "text/html,*/*"}),
            "an unacceptable media type": dict(headers={"accept": "application/xml"}),
            "a form body": dict(headers={"content-type": "application/x-www-form-urlencoded"}),
            # (a chunked body alone the lane reads itself: tests/core/test_chunked_bodies.py)
            "a chunked body with a length too": dict(headers={"transfer-encoding": "chunked"}),
            "an empty body": dict(body=b""),
            "an oversize body": dict(headers={"content-length": str(settings.MAX_REQUEST_BYTES + 1)}),
            "a host not allowed": dict(headers={"host": "evil.example.com"}),
        }
        for name, options in cases.items():
            with self.subTest(name):
                self.assertIsNone(self.admit(**options))

    def test_an_expired_key_goes_to_django(self):
        self.key.expiry_date = "2000-01-01T00:00:00Z"
        self.key.save()
        remember_key(self.secret, type(self.key).objects.get(pk=self.key.pk), key_generation())
        self.assertIsNone(self.admit())

    @override_settings(SECURE_SSL_REDIRECT=True)
    def test_plain_http_is_left_to_djangos_https_redirect(self):
        self.assertIsNone(self.admit())
        self.assertIsNotNone(self.admit(scheme="https"))

    def test_requests_the_lane_does_not_take_are_answered_by_django(self):
        fallback = CountingFallback()
        app = FastLane(fallback, threads=2)
        answer = call(app, body={"inputs": ROWS}, headers={"x-api-key": "AbCdEfGh.unknown"})
        self.assertEqual(answer.status, 401)
        self.assertEqual(answer.json()["error"]["code"], "authentication_failed")
        self.assertEqual(fallback.paths, ["/api/v1/predict/scorer"])


def test_database_work_runs_in_a_pool_no_larger_than_db_threads():
    # Its threads keep their database connections, so its size bounds how many a web process holds.
    lane = FastLane(CountingFallback(), threads=8, db_threads=2)

    def where() -> str:
        time.sleep(0.02)
        return threading.current_thread().name

    async def both():
        db = await asyncio.gather(*(lane.run_db(where) for _ in range(12)))
        work = await asyncio.gather(*(lane.run(where) for _ in range(12)))
        return set(db), set(work)

    db, work = asyncio.run(both())
    assert len(db) == 2 and all(name.startswith("fastlane-db") for name in db)
    assert len(work) > 2 and all(name.startswith("fastlane-work") for name in work)


# Per day: a window that ends mid-test would start to refill the bucket.
EIGHT_A_DAY = {**settings.REST_FRAMEWORK,
               "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "predict": "8/day"}}


class FastLaneLiveTests(LiveServerTestCase):
    """Against a real model server: the same request through DRF and through the lane."""

    def setUp(self):
        super().setUp()
        forget_cached_keys()
        self.addCleanup(forget_cached_keys)
        model = make_model("scorer", task="classification")
        toy_version(model, weights=(0.3, -0.2, 0.5), task_classes=[0, 1])
        created = key_client("manage").post("/api/v1/deployments/", {"endpoint": "scorer", "model": "scorer",
                                                                      "version": 1, "max_rows": 4}, format="json")
        self.assertEqual(created.status_code, 201, created.content)
        self.wait_ready("scorer")
        _, self.secret = api_key_create(name="predictor", scope="predict")
        self.drf = APIClient()
        self.drf.credentials(HTTP_X_API_KEY=self.secret)
        self.fallback = CountingFallback()
        self.app = FastLane(self.fallback, threads=4)

    def both(self, body, path="/api/v1/predict/scorer", **headers):
        """The DRF view's answer (Django's test client), then the lane's."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        django = self.drf.post(path, raw, content_type="application/json", headers=headers)
        lane = call(self.app, path, body=raw, headers={"x-api-key": self.secret, **headers})
        return django, lane

    def assert_same(self, django, lane):
        self.assertEqual(lane.status, django.status_code, lane.body)
        expected, got = django.json(), lane.json()
        for field in VOLATILE:
            expected.pop(field, None), got.pop(field, None)
        self.assertEqual(got, expected)
        ignored = {"date", "server", "content-length", "content-encoding"}
        self.assertEqual(set(lane.headers) - ignored, {name.lower() for name in django.headers} - ignored)
        for name in ("vary", "allow", "x-frame-options", "x-content-type-options", "retry-after"):
            self.assertEqual(lane.headers.get(name), django.headers.get(name), name)

    def test_answers_and_errors_match_the_drf_view(self):
        uncached = {"cache": False}
        cases = {
            "rows": {"inputs": ROWS, "parameters": uncached},
            "a single row": {"inputs": ROWS[0], "parameters": uncached},
            "a wrong feature count": {"inputs": [[1.0, 2.0]]},
            "ragged rows": {"inputs": [[1.0, 2.0, 3.0], [1.0]]},
            "a string where a number belongs": {"inputs": [[1.0, "x", 3.0]]},
            "too many rows": {"inputs": [ROWS[0]] * 5},
            "no inputs": {"parameters": {}},
            "bad uncertainty samples": {"inputs": ROWS, "parameters": {"uncertainty": {"samples": 1}}},
            "an unknown field": {"inputs": ROWS, "instances": ROWS},
            "a cache flag that is not a boolean": {"inputs": ROWS, "parameters": {"cache": "no"}},
            "a body that is not an object": [1, 2, 3],
            "NaN": b'{"inputs": [[NaN, 1.0, 2.0]]}',
            "broken JSON": b'{"inputs": [[1.0, 2.0',
        }
        # The first request verifies the key (Django); from then on this process's lane takes it.
        self.assertEqual(call(self.app, body={"inputs": ROWS}, headers={"x-api-key": self.secret}).status, 200)
        self.assertEqual(len(self.fallback.paths), 1)
        for name, body in cases.items():
            with self.subTest(name):
                self.assert_same(*self.both(body))
        self.assertEqual(len(self.fallback.paths), 1, "the lane handed requests to Django")

    @override_settings(REST_FRAMEWORK=EIGHT_A_DAY)
    def test_the_rate_limit_is_one_bucket_for_both_paths(self):
        statuses = []
        for _ in range(5):
            django, lane = self.both({"inputs": ROWS})
            statuses += [django.status_code, lane.status]
        self.assertEqual(statuses[:8], [200] * 8)  # the DRF requests verified the key: the lane took its own
        self.assertEqual(self.fallback.paths, [])
        self.assertEqual(statuses[8:], [429, 429])
        django, lane = self.both({"inputs": ROWS})
        self.assert_same(django, lane)
        self.assertEqual(lane.json()["error"]["code"], "throttled")
        self.assertGreaterEqual(int(lane.headers["retry-after"]), 1)

    def test_request_ids_subjects_gzip_and_unknown_endpoints(self):
        call(self.app, body={"inputs": ROWS}, headers={"x-api-key": self.secret})  # verifies the key
        answer = call(self.app, body={"inputs": ROWS}, headers={"x-api-key": self.secret, "x-request-id": "req-9"})
        self.assertEqual((answer.headers["x-request-id"], answer.json()["request_id"]), ("req-9", "req-9"))
        chosen = call(self.app, body={"inputs": ROWS, "request_id": "mine"}, headers={"x-api-key": self.secret})
        self.assertEqual(chosen.json()["request_id"], "mine")

        many = {"inputs": [ROWS[0]] * 4, "parameters": {"cache": False}}
        zipped = call(self.app, body=many, headers={"x-api-key": self.secret, "accept-encoding": "gzip"})
        self.assertEqual(zipped.headers["content-encoding"], "gzip")
        self.assertEqual(len(zipped.json()["predictions"]), 4)
        self.assertEqual(zipped.headers["vary"], "Accept, Accept-Encoding, origin")

        explained_in = []
        real = dispatch._explain_missing_route

        def spy(endpoint):
            explained_in.append(threading.current_thread().name)
            return real(endpoint)

        with mock.patch.object(dispatch, "_explain_missing_route", side_effect=spy):
            missing = [call(self.app, "/api/v1/predict/nowhere", body={"inputs": ROWS},
                            headers={"x-api-key": self.secret}) for _ in range(3)]
        for answer in missing:
            self.assertEqual((answer.status, answer.json()["error"]["code"]), (404, "endpoint_not_found"))
        self.assertEqual(len(self.fallback.paths), 1)
        # The database says why: in the pool whose threads keep their connections, not one opened per 404
        # (the first may refresh the experiments table, which the large pool does).
        self.assertEqual(len(explained_in), 3)
        self.assertTrue(all(name.startswith("fastlane-db") for name in explained_in[1:]), explained_in)


    def test_the_universal_route_answers_as_the_drf_view(self):
        model = RegisteredModel.objects.get(name="scorer")
        toy_version(model, weights=(1.0, 1.0, 1.0), task_classes=[0, 1])  # version 2: ready, never deployed
        model_alias_set(model=model, alias="production", version_number=1)
        model_alias_set(model=model, alias="staging", version_number=2)
        uncached = {"cache": False}
        cases = {
            "the production alias by default": {"model": "scorer", "inputs": ROWS, "parameters": uncached},
            "a version": {"model": "scorer", "version": 1, "inputs": ROWS, "parameters": uncached},
            "an alias": {"model": "scorer", "alias": "production", "inputs": ROWS[0], "parameters": uncached},
            "a version nobody serves": {"model": "scorer", "version": 2, "inputs": ROWS},
            "an alias on a version nobody serves": {"model": "scorer", "alias": "staging", "inputs": ROWS},
            "an unknown version": {"model": "scorer", "version": 9, "inputs": ROWS},
            "an unknown alias": {"model": "scorer", "alias": "nope", "inputs": ROWS},
            "an unknown model": {"model": "nobody", "inputs": ROWS},
            "no model": {"inputs": ROWS},
            "a version and an alias": {"model": "scorer", "version": 1, "alias": "production", "inputs": ROWS},
            "an alias given as the version": {"model": "scorer", "version": "production", "inputs": ROWS},
            "an endpoint in a universal body": {"model": "scorer", "endpoint": "scorer", "inputs": ROWS},
            "no inputs": {"model": "scorer"},
            "a wrong feature count": {"model": "scorer", "inputs": [[1.0, 2.0]]},
            "a body that is not an object": [1, 2, 3],
        }
        call(self.app, body={"inputs": ROWS}, headers={"x-api-key": self.secret})  # verifies the key
        for name, body in cases.items():
            with self.subTest(name):
                self.assert_same(*self.both(body, path="/api/v1/predict"))
        self.assertEqual(len(self.fallback.paths), 1, "the lane handed requests to Django")

    def test_big_bodies_are_parsed_and_predicted_off_the_event_loop(self):
        from tests.inference.v2.test_apis import infer_body

        call(self.app, body={"inputs": ROWS}, headers={"x-api-key": self.secret})  # verifies the key
        padding = b" " * (fastlane.LOOP_BODY_BYTES + 1)  # JSON allows it; only the size matters here
        rest = json.dumps({"inputs": ROWS, "parameters": {"cache": False}}).encode() + padding
        infer = json.dumps(infer_body(id="r1", parameters={"cache": False})).encode() + padding
        with mock.patch.object(engine, "predict_async", side_effect=AssertionError("predicted in the loop")):
            self.assert_same(*self.both(rest))
            django = self.drf.post("/v2/models/scorer/infer", infer, content_type="application/json")
            lane = call(self.app, "/v2/models/scorer/infer", body=infer, headers={"x-api-key": self.secret})
        self.assertEqual((lane.status, json.loads(lane.body)), (200, json.loads(django.content)))
        self.assertEqual(len(self.fallback.paths), 1)

    def test_v2_infer_answers_and_errors_match_the_v2_view(self):
        from tests.inference.v2.test_apis import binary_body, infer_body

        call(self.app, body={"inputs": ROWS}, headers={"x-api-key": self.secret})  # verifies the key
        binary, header_length = binary_body(ROWS, id="r1")
        cases = {
            "JSON tensors": ("/v2/models/scorer/infer", json.dumps(infer_body(id="r1")).encode(), {}),
            "the served version": ("/v2/models/scorer/versions/1/infer", json.dumps(infer_body(id="r1")).encode(), {}),
            "binary outputs": ("/v2/models/scorer/infer", json.dumps(infer_body(
                id="r1", outputs=[{"name": "probabilities", "parameters": {"binary_data": True}}])).encode(), {}),
            "binary inputs": ("/v2/models/scorer/infer", binary,
                              {"content-type": "application/octet-stream",
                               "inference-header-content-length": str(header_length)}),
            "another version": ("/v2/models/scorer/versions/7/infer", json.dumps(infer_body(id="r1")).encode(), {}),
            "a wrong shape": ("/v2/models/scorer/infer", json.dumps(
                {"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3]}]}).encode(),
                {}),
            "an unknown model": ("/v2/models/nowhere/infer", json.dumps(infer_body(id="r1")).encode(), {}),
        }
        for name, (path, body, headers) in cases.items():
            with self.subTest(name):
                content_type = headers.get("content-type", "application/json")
                extra = {key: value for key, value in headers.items() if key != "content-type"}
                django = self.drf.post(path, body, content_type=content_type, headers=extra)
                lane = call(self.app, path, body=body, headers={"x-api-key": self.secret, **headers})
                self.assertEqual(lane.status, django.status_code, lane.body)
                self.assertEqual(lane.headers["content-type"], django.headers["Content-Type"])
                ignored = {"date", "server", "content-length", "content-encoding"}
                self.assertEqual(set(lane.headers) - ignored, {h.lower() for h in django.headers} - ignored)
                if lane.headers["content-type"] == "application/json":
                    self.assertEqual(json.loads(lane.body), json.loads(django.content))
                else:  # the JSON header, then the raw tensors: compared byte for byte
                    self.assertEqual(lane.headers["inference-header-content-length"],
                                     django.headers["Inference-Header-Content-Length"])
                    self.assertEqual(lane.body, django.content)
        self.assertEqual(len(self.fallback.paths), 1, "the lane handed requests to Django")
