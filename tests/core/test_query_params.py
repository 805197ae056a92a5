"""A list endpoint refuses a query parameter it does not take (400 naming it), as bodies refuse unknown fields:
`?statu=failed` must not answer 200 with every job. Checked on every list operation of the OpenAPI document, so
a list added later is held to it too."""

from django.test import TestCase
from drf_spectacular.generators import SchemaGenerator

from tests.experiments.helpers import deployment
from tests.factories import key_client


def list_operations() -> dict[str, tuple[str, list[str]]]:
    """operationId -> (path, its documented query parameters), for every GET that lists."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = {}
    for path, methods in schema["paths"].items():
        operation = methods.get("get")
        if operation and operation["operationId"].endswith("_list"):
            query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            found[operation["operationId"]] = (path, query)
    return found


class UnknownQueryParameterTests(TestCase):
    def setUp(self):
        self.client = key_client("manage")
        deployment("churn", model="churn")  # a model and an endpoint for the lists under them
        self.operations = list_operations()

    def url(self, path: str) -> str:
        return path.replace("{name}", "churn").replace("{endpoint}", "churn")

    def test_the_lists_are_found(self):
        self.assertLessEqual({"models_list", "versions_list", "deployments_list", "jobs_list", "batch_jobs_list",
                              "experiments_list"}, set(self.operations))

    def test_every_list_refuses_an_unknown_parameter_and_names_it(self):
        for operation, (path, query) in self.operations.items():
            with self.subTest(operation):
                response = self.client.get(self.url(path), {"bogus": "1"})
                self.assertEqual(response.status_code, 400, response.content)
                error = response.json()["error"]
                self.assertEqual(list(error["details"]["fields"]), ["bogus"])
                self.assertIn("bogus: Unknown query parameter; expected one of: ", error["message"])
                for name in query:
                    self.assertIn(name, error["message"])  # the documented ones are the accepted ones

    def test_a_near_miss_gets_a_suggestion(self):
        for operation, (path, query) in self.operations.items():
            if "page_size" not in query:
                continue
            with self.subTest(operation):
                response = self.client.get(self.url(path), {"pagesize": "5"})
                self.assertEqual(response.status_code, 400, response.content)
                self.assertEqual(response.json()["error"]["details"]["fields"]["pagesize"],
                                 ["Unknown query parameter; did you mean 'page_size'?"])

    def test_documented_parameters_and_drf_format_are_accepted(self):
        for operation, (path, query) in self.operations.items():
            size = "page_size" if "page_size" in query else "limit"
            with self.subTest(operation):
                response = self.client.get(self.url(path), {size: "5", "format": "json"})
                self.assertEqual(response.status_code, 200, response.content)

    def test_the_job_list_still_filters(self):
        response = self.client.get("/api/v1/jobs", {"statu": "failed"})
        self.assertEqual(response.json()["error"]["details"]["fields"]["statu"],
                         ["Unknown query parameter; did you mean 'status'?"])
        self.assertEqual(self.client.get("/api/v1/jobs", {"status": "failed"}).status_code, 200)
