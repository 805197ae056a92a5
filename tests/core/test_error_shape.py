"""Every 4xx/5xx of the API has the one shape {"error": {"code", "message", "details"}}."""

from unittest import mock

from django.test import TestCase, override_settings
from rest_framework.test import APIClient

from tests.factories import key_client, make_model


class ErrorShapeTests(TestCase):
    def setUp(self):
        self.client = key_client("manage")

    def assertError(self, response, status: int, code: str) -> dict:
        self.assertEqual(response.status_code, status, response.content)
        self.assertEqual(response["Content-Type"], "application/json")
        body = response.json()
        self.assertEqual(set(body), {"error"})
        self.assertEqual(set(body["error"]), {"code", "message", "details"})
        self.assertEqual(body["error"]["code"], code)
        self.assertTrue(body["error"]["message"])
        return body["error"]

    def post_raw(self, path: str, body: bytes, content_type="application/json", **extra):
        return self.client.generic("POST", path, body, content_type=content_type, **extra)

    def test_validation_errors_name_the_field(self):
        error = self.assertError(self.client.post("/api/v1/models/", {"task": "x"}, format="json"),
                                 400, "validation_error")
        self.assertIn("name", error["message"])
        self.assertIn("name", error["details"]["fields"])

    def test_missing_credentials_are_401(self):
        response = APIClient().get("/api/v1/models/")
        self.assertError(response, 401, "not_authenticated")
        self.assertIn("WWW-Authenticate", response)

    def test_a_wrong_key_is_401(self):
        client = APIClient()
        client.credentials(HTTP_X_API_KEY="abcdefgh.not-a-real-key")
        self.assertError(client.get("/api/v1/models/"), 401, "authentication_failed")

    def test_a_key_without_the_scope_is_403(self):
        self.assertError(key_client("predict").get("/api/v1/models/"), 403, "permission_denied")

    def test_unknown_objects_and_routes_are_404(self):
        self.assertError(self.client.get("/api/v1/models/nope/"), 404, "model_not_found")
        self.assertError(self.client.get("/api/v1/no/such/route"), 404, "not_found")
        self.assertError(APIClient().get("/no-such-page"), 404, "not_found")

    def test_wrong_method_is_405(self):
        self.assertError(self.client.put("/api/v1/models/", {}, format="json"), 405, "method_not_allowed")

    def test_malformed_json_is_400(self):
        self.assertError(self.post_raw("/api/v1/models/", b'{"name": '), 400, "parse_error")
        self.assertError(self.post_raw("/api/v1/models/", b"\xff\xfe"), 400, "parse_error")

    def test_nan_and_infinity_literals_are_400(self):
        error = self.assertError(self.post_raw("/api/v1/models/", b'{"name": "a", "x": NaN}'), 400, "parse_error")
        self.assertIn("NaN", error["message"])

    def test_deeply_nested_json_is_400_not_500(self):
        deep = b"[" * 100_000 + b"]" * 100_000
        self.assertError(self.post_raw("/api/v1/models/", deep), 400, "parse_error")
        deep_object = b'{"a":' * 5000 + b"1" + b"}" * 5000
        self.assertError(self.post_raw("/api/v1/models/", deep_object), 400, "parse_error")

    @override_settings(MAX_REQUEST_BYTES=1024)
    def test_oversize_bodies_are_413(self):
        big = b'{"name": "' + b"a" * 4096 + b'"}'
        error = self.assertError(self.post_raw("/api/v1/models/", big), 413, "payload_too_large")
        self.assertEqual(error["details"]["limit_bytes"], 1024)

    @override_settings(MAX_ARTIFACT_BYTES=2048)
    def test_oversize_artifacts_are_413(self):
        make_model("churn")
        from tests.conftest import upload

        response = self.client.post("/api/v1/models/churn/versions/",
                                    {"artifact": upload("a", b"\x80" * 10_000), "flavor": "sklearn"},
                                    format="multipart")
        self.assertError(response, 413, "payload_too_large")

    def test_unsupported_content_types_are_415(self):
        self.assertError(self.post_raw("/api/v1/models/", b"name=x", content_type="text/plain"),
                         415, "unsupported_media_type")

    @override_settings(REST_FRAMEWORK={
        **__import__("django.conf").conf.settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"predict": "1000/day", "manage": "2/day", "anon": "2/day"},
    })
    def test_throttling_is_429_with_retry_after(self):
        self.client.get("/api/v1/models/")
        self.client.get("/api/v1/models/")
        response = self.client.get("/api/v1/models/")
        error = self.assertError(response, 429, "throttled")
        self.assertGreaterEqual(int(response["Retry-After"]), 1)
        self.assertGreaterEqual(error["details"]["retry_after_s"], 1)

    def test_unexpected_errors_are_500_without_internals(self):
        secret = "/srv/secret/path/model.bin Traceback"
        with mock.patch("registry.apis.selectors.registered_model_list", side_effect=RuntimeError(secret)), \
                self.assertLogs("core.errors", level="ERROR"):
            response = self.client.get("/api/v1/models/")
        error = self.assertError(response, 500, "internal_error")
        self.assertNotIn("/srv", response.content.decode())
        self.assertNotIn("Traceback", error["message"])

    def test_every_response_carries_a_request_id(self):
        response = self.client.get("/api/v1/models/", HTTP_X_REQUEST_ID="abc-123")
        self.assertEqual(response["X-Request-ID"], "abc-123")
        generated = self.client.get("/api/v1/models/", HTTP_X_REQUEST_ID="bad id with spaces")
        self.assertRegex(generated["X-Request-ID"], r"^[0-9a-f]{32}$")
