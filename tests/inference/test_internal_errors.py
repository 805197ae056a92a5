"""A failure inside the platform is the server's fault: every path that turns an exception into a response
(core.errors.render_error) answers it as a 500 `internal_error`, logged once, never as the client's 400."""

import json
from unittest import mock

from django.test import TestCase

from core.auth import forget_cached_keys, key_generation, remember_key
from core.services import api_key_create
from inference.fastlane import FastLane
from inference.predict import dispatch
from tests.factories import key_client
from tests.inference.test_fastlane import CountingFallback, call

INTERNAL = {"error": {"code": "internal_error", "message": "Internal server error.", "details": {}}}
ROWS = [[1.0, 2.0, 3.0]]


def broken(*args, **kwargs):
    raise RuntimeError("a bug with a secret path /srv/models/x")


class BatchItemTests(TestCase):
    def test_an_item_that_fails_inside_the_platform_is_its_own_500_and_the_rest_still_answer(self):
        real = dispatch.route_for

        def route_for(endpoint):
            return broken() if endpoint == "boom" else real(endpoint)

        items = [{"endpoint": "boom", "inputs": ROWS}, {"endpoint": "nowhere", "inputs": ROWS}]
        with mock.patch("inference.predict.many.route_for", side_effect=route_for), \
                self.assertLogs("core.errors", "ERROR") as logs:
            response = key_client("predict").post("/api/v1/predict/batch", {"requests": items}, format="json")
        self.assertEqual(response.status_code, 200, response.content)
        boom, nowhere = response.json()["results"]
        self.assertEqual(boom, {"index": 0, "ok": False, "status": 500, **INTERNAL})
        self.assertEqual((nowhere["status"], nowhere["error"]["code"]), (404, "endpoint_not_found"))
        self.assertIn("a batch item", logs.output[0])
        self.assertNotIn("/srv/models", response.content.decode())


class FastLaneTests(TestCase):
    def setUp(self):
        forget_cached_keys()
        self.addCleanup(forget_cached_keys)
        key, self.secret = api_key_create(name="predictor", scope="predict")
        remember_key(self.secret, key, key_generation())  # as the first request through Django leaves it
        self.fallback = CountingFallback()
        self.app = FastLane(self.fallback, threads=2)

    def post(self, path: str, body: dict):
        return call(self.app, path, body=body, headers={"x-api-key": self.secret, "content-type": "application/json"})

    def test_an_unexpected_error_in_the_lane_is_a_500_in_the_platforms_shape(self):
        with mock.patch("inference.predict.engine.predict_async", side_effect=broken), \
                self.assertLogs("core.errors", "ERROR"):
            answer = self.post("/api/v1/predict/scorer", {"inputs": ROWS})
        self.assertEqual((answer.status, answer.json()), (500, INTERNAL))
        self.assertEqual(self.fallback.paths, [])  # the lane answered it itself

    def test_an_unexpected_error_on_a_v2_route_is_a_500_in_the_protocols_shape(self):
        with mock.patch("inference.v2.infer.read_infer_body", side_effect=broken), \
                self.assertLogs("core.errors", "ERROR"):
            answer = self.post("/v2/models/scorer/infer", {"inputs": []})
        self.assertEqual((answer.status, answer.json()), (500, {"error": "Internal server error."}))
        self.assertEqual(self.fallback.paths, [])


class V2ViewTests(TestCase):
    def test_an_unexpected_error_in_the_django_view_is_a_500_in_the_protocols_shape(self):
        with mock.patch("inference.v2.apis.read_infer_body", side_effect=broken), \
                self.assertLogs("core.errors", "ERROR"):
            response = key_client("predict").post("/v2/models/scorer/infer", json.dumps({"inputs": []}),
                                                  content_type="application/json")
        self.assertEqual((response.status_code, response.json()), (500, {"error": "Internal server error."}))
