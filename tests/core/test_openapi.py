import io

import yaml
from django.core.management import call_command
from django.test import SimpleTestCase, TestCase

from tests.factories import key_client, make_model

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


class SchemaMatchesTheApiTests(TestCase):
    """The mismatches schemathesis found (scripts/schema_check.py runs it against a live server in CI), each
    checked on both sides: what the document says and what the route answers."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        out = io.StringIO()
        call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
        cls.schema = yaml.safe_load(out.getvalue())

    def setUp(self):
        self.client = key_client("manage", "ops")
        make_model("churn")  # created without a user: its owner is null

    def component(self, ref: str) -> dict:
        return self.schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]

    def operation(self, path: str, method: str = "get") -> dict:
        return self.schema["paths"][path][method]

    def test_paginated_lists_document_the_envelope_they_return_and_the_404_of_a_bad_page(self):
        paged = [(path, op) for path, ops in self.schema["paths"].items() for op in ops.values()
                 if any(p["name"] == "page" for p in op.get("parameters", []))]
        self.assertGreaterEqual(len(paged), 7)
        for path, op in paged:
            with self.subTest(path=path):
                body = self.component(op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"])
                self.assertEqual(body["required"], ["count", "next", "previous", "results"])
                self.assertTrue(body["properties"]["next"]["nullable"])
                self.assertEqual(body["properties"]["results"]["type"], "array")
                self.assertIn("404", op["responses"])
        answer = self.client.get("/api/v1/models/").json()
        self.assertEqual(set(answer), {"count", "next", "previous", "results"})
        self.assertEqual(self.client.get("/api/v1/models/?page=0").status_code, 404)
        self.assertEqual(self.client.get("/api/v1/models/?page=9").status_code, 404)

    def test_page_size_and_limit_bounds_are_documented_and_enforced(self):
        sizes = {p["name"]: p["schema"] for p in self.operation("/api/v1/models/")["parameters"]}
        self.assertEqual(sizes["page_size"], {"type": "integer", "minimum": 1, "maximum": 100})
        limit = {p["name"]: p["schema"] for p in self.operation("/api/v1/jobs")["parameters"]}["limit"]
        self.assertEqual(limit, {"type": "integer", "minimum": 1, "maximum": 100})
        for query in ("page_size=2.5", "page_size=101", "page_size=0"):
            with self.subTest(query=query):
                response = self.client.get(f"/api/v1/models/?{query}")
                self.assertEqual(response.status_code, 400)
                self.assertIn("page_size", response.json()["error"]["message"])

    def test_user_references_are_nullable_where_they_can_be_null(self):
        for component, field in (("RegisteredModelOut", "owner"), ("ModelVersionOut", "created_by"),
                                 ("DeploymentOut", "created_by"), ("ExperimentOut", "created_by"),
                                 ("JobOut", "model"), ("JobOut", "version")):
            with self.subTest(component=component, field=field):
                self.assertTrue(self.component(component)["properties"][field].get("nullable"))
        self.assertIsNone(self.client.get("/api/v1/models/churn/").json()["owner"])

    def test_non_json_answers_document_their_content_type(self):
        for path, types in (("/metrics", ["text/plain"]),
                            ("/api/v1/batch-jobs/{id}/result", ["text/csv", "application/x-ndjson"]),
                            ("/api/v1/deployments/{endpoint}/predictions.csv", ["text/csv"]),
                            ("/api/v1/deployments/{endpoint}/predictions.jsonl", ["application/x-ndjson"])):
            with self.subTest(path=path):
                self.assertEqual(list(self.operation(path)["responses"]["200"]["content"]), types)
        metrics = self.client.get("/metrics")
        self.assertEqual(metrics.status_code, 200)
        self.assertTrue(metrics["Content-Type"].startswith("text/plain"))

    def test_request_bodies_are_closed_and_the_version_or_alias_rule_is_written(self):
        create = self.component("DeploymentCreateInRequest")
        self.assertIs(create["additionalProperties"], False)
        self.assertEqual(create["oneOf"], [{"required": ["version"]}, {"required": ["alias"]}])
        self.assertEqual(self.component("PatchedDeploymentUpdateInRequest")["not"],
                         {"required": ["version", "alias"]})
        self.assertIs(self.component("PatchedConfigRequest")["additionalProperties"], False)
        refused = self.client.post("/api/v1/models/", {"name": "x", "colour": "red"}, format="json")
        self.assertEqual(refused.status_code, 400)
        self.assertIn("colour", refused.json()["error"]["message"])

    def test_the_config_takes_json_with_json_types_only(self):
        self.assertEqual(list(self.operation("/api/v1/config", "patch")["requestBody"]["content"]),
                         ["application/json"])
        form = self.client.patch("/api/v1/config", "cache_enabled=0", content_type="application/x-www-form-urlencoded")
        self.assertEqual(form.status_code, 415, form.content)
        for body, field in (({"cache_enabled": 0}, "cache_enabled"), ({"cache_enabled": "false"}, "cache_enabled"),
                            ({"cache_ttl_s": 2.5}, "cache_ttl_s"), ({"cache_ttl_s": "60"}, "cache_ttl_s"),
                            ({"max_loaded_models": True}, "max_loaded_models")):
            with self.subTest(body=body):
                response = self.client.patch("/api/v1/config", body, format="json")
                self.assertEqual(response.status_code, 400, response.content)
                self.assertIn(field, response.json()["error"]["message"])
        self.assertEqual(self.client.patch("/api/v1/config", {"cache_enabled": False}, format="json").status_code, 200)
