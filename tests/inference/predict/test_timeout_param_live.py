"""parameters.timeout_ms against a real model server, a toy model slow per row: a deadline shorter than the
deployment's is honoured, a longer one is clamped to it and a bad one is a 400 naming the field, on the
by-endpoint, universal and V2 routes, through Django and through the fast lane."""

import json
import time

from rest_framework.test import APIClient

from core.auth import forget_cached_keys
from core.services import api_key_create
from inference.fastlane import FastLane
from registry.services import model_alias_set
from tests.factories import make_model
from tests.inference.live import LiveServerTestCase, toy_version
from tests.inference.predict.test_serving_features import deploy
from tests.inference.test_fastlane import CountingFallback, call
from tests.inference.v2.test_apis import infer_body

ROW_MS = 10  # the toy model's time per row
DEPLOYMENT_TIMEOUT_MS = 2000
FAST = [[1.0, 0.0, 0.0]] * 30  # 300 ms of model time
SLOW = [[1.0, 0.0, 0.0]] * 600  # 6 s: past the deployment's timeout


class TimeoutParameterTests(LiveServerTestCase):
    def setUp(self):
        super().setUp()
        forget_cached_keys()
        self.addCleanup(forget_cached_keys)
        model = make_model("patient", task="regression")
        toy_version(model, weights=(2.0, 0.0, 0.0), row_ms=ROW_MS)
        model_alias_set(model=model, alias="production", version_number=1)
        deploy("patient", "patient", timeout_ms=DEPLOYMENT_TIMEOUT_MS, max_rows=1000)
        self.wait_ready("patient")
        _, self.secret = api_key_create(name="predictor", scope="predict")
        self.django = APIClient()
        self.django.credentials(HTTP_X_API_KEY=self.secret)
        self.lane = FastLane(CountingFallback(), threads=2)

    def post(self, path: str, body: dict, via: str) -> tuple[int, dict, float]:
        started = time.perf_counter()
        if via == "django":
            response = self.django.post(path, json.dumps(body), content_type="application/json")
            status, answer = response.status_code, response.json()
        else:
            reply = call(self.lane, path, body=body, headers={"x-api-key": self.secret})
            status, answer = reply.status, reply.json()
        return status, answer, time.perf_counter() - started

    def routes(self, rows: list, timeout_ms):
        """(path, body) of each prediction route for `rows` with parameters.timeout_ms = `timeout_ms`."""
        params = {"cache": False, "timeout_ms": timeout_ms}
        return {
            "endpoint": ("/api/v1/predict/patient", {"inputs": rows, "parameters": params}),
            "universal": ("/api/v1/predict", {"model": "patient", "inputs": rows, "parameters": params}),
            "v2": ("/v2/models/patient/infer", infer_body(rows, parameters=params)),
        }

    def test_a_shorter_deadline_is_honoured_a_longer_one_clamped_and_a_bad_one_refused(self):
        self.post("/api/v1/predict/patient", {"inputs": FAST}, "lane")  # the first request verifies the key
        for via in ("django", "lane"):
            for route, (path, body) in self.routes(FAST, 150).items():
                with self.subTest("shorter", via=via, route=route):
                    status, answer, took = self.post(path, body, via)
                    self.assertEqual(status, 504, answer)
                    self.assertIn("150 ms", json.dumps(answer))
                    self.assertLess(took, 1.5)  # well before the deployment's 2 s
            for route, (path, body) in self.routes(FAST, 1500).items():
                with self.subTest("long enough", via=via, route=route):
                    status, answer, _ = self.post(path, body, via)
                    self.assertEqual(status, 200, answer)
            for route, (path, body) in self.routes(SLOW, 10**9).items():
                with self.subTest("clamped", via=via, route=route):
                    status, answer, took = self.post(path, body, via)
                    self.assertEqual(status, 504, answer)
                    self.assertIn(f"{DEPLOYMENT_TIMEOUT_MS} ms", json.dumps(answer))
                    self.assertLess(took, 5.0)  # the model would have taken 6 s
            for bad in (0, -1, 2.5, "100", True):
                for route, (path, body) in self.routes(FAST, bad).items():
                    with self.subTest("bad", via=via, route=route, value=bad):
                        status, answer, _ = self.post(path, body, via)
                        self.assertEqual(status, 400, answer)
                        self.assertIn("parameters.timeout_ms", json.dumps(answer))
