import io

import yaml
from django.core.management import call_command
from django.test import SimpleTestCase

PUBLIC_OPERATIONS = {"auth_token_obtain", "auth_token_refresh", "v2_server_metadata", "v2_health_live",
                     "v2_health_ready", "api_index"}
# The Open Inference Protocol routes answer the protocol's {"error": "..."} (inference/v2/apis.py); readiness
# answers 503 with its usual body.
V2_ERROR_REFS = {"#/components/schemas/V2Error", "#/components/schemas/V2Ready", "#/components/schemas/V2ModelReady"}


class OpenApiTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        out = io.StringIO()
        # --fail-on-warn: an endpoint whose request or responses cannot be resolved fails here.
        call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
        cls.schema = yaml.safe_load(out.getvalue())

    def operations(self):
        for path, methods in self.schema["paths"].items():
            for method, operation in methods.items():
                yield path, method, operation

    def test_every_operation_documents_the_error_shape(self):
        error_ref = "#/components/schemas/Error"
        for path, method, operation in self.operations():
            errors = {code: r for code, r in operation["responses"].items() if code.startswith(("4", "5"))}
            if path != "/v2/health/live":  # answers 200 or nothing at all
                self.assertTrue(errors, f"{method} {path} documents no error response")
            for code, response in errors.items():
                ref = response["content"]["application/json"]["schema"]["$ref"]
                if path.startswith("/v2"):
                    self.assertIn(ref, V2_ERROR_REFS, f"{method} {path} {code}")
                else:
                    self.assertEqual(ref, error_ref, f"{method} {path} {code}")

    def test_protected_operations_document_auth_and_throttling(self):
        for path, method, operation in self.operations():
            if operation["operationId"] in PUBLIC_OPERATIONS:
                continue
            self.assertIn("401", operation["responses"], f"{method} {path}")
            self.assertIn("403", operation["responses"], f"{method} {path}")
            self.assertIn("429", operation["responses"], f"{method} {path}")
            schemes = {name for requirement in operation.get("security", []) for name in requirement}
            self.assertIn("ApiKeyAuth", schemes, f"{method} {path}")

    def test_the_upload_is_documented_as_multipart_with_its_fields(self):
        upload = self.schema["paths"]["/api/v1/models/{name}/versions/"]["post"]
        content = upload["requestBody"]["content"]
        self.assertEqual(list(content), ["multipart/form-data"])
        ref = content["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[-1]
        fields = self.schema["components"]["schemas"][ref]["properties"]
        self.assertTrue({"artifact", "flavor", "signature", "metrics", "tags", "description"} <= set(fields))
        self.assertEqual(fields["artifact"]["format"], "binary")

    def test_docs_pages_are_served(self):
        for path in ("/api/schema/", "/api/docs/", "/api/redoc/"):
            self.assertEqual(self.client.get(path).status_code, 200, path)
