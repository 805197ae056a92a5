"""The API's slash policy (core.middleware.ApiSlashMiddleware): every route answers with and without a trailing
slash, POST included (no redirect that loses the body); the admin keeps Django's redirect."""

import re
import uuid

from django.test import RequestFactory, TestCase
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from core.middleware import API_PREFIXES, ApiSlashMiddleware
from tests.factories import key_client, make_model

SAMPLES = {"str": "churn", "int": "1", "uuid": str(uuid.UUID(int=1)), "slug": "churn", "path": "x"}


def api_routes(patterns=None, prefix: str = "/") -> list[str]:
    """A concrete path for every route under the policy's prefixes (converters filled with samples)."""
    found = []
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = str(entry.pattern)
        if route.startswith("^"):  # a regular expression: the /v2 catch-all, nothing to fill
            continue
        path = prefix + re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLES[m.group(1) or "str"], route)
        if isinstance(entry, URLResolver):
            found += api_routes(entry.url_patterns, path)
        elif isinstance(entry, URLPattern) and path.startswith(API_PREFIXES):
            found.append(path)
    return found


def served_path(path: str, method: str = "get") -> str:
    """The path Django resolves once the middleware has seen `path`."""
    seen = []
    middleware = ApiSlashMiddleware(lambda request: seen.append(request.path_info))
    middleware(getattr(RequestFactory(), method)(path))
    return seen[0]


class EveryRouteTests(TestCase):
    def test_every_api_route_is_reached_in_both_forms(self):
        routes = api_routes()
        self.assertGreater(len(routes), 40)
        for path in routes:
            other = path[:-1] if path.endswith("/") else f"{path}/"
            with self.subTest(path):
                self.assertEqual(served_path(path), path)  # a path that routes is left alone
                self.assertEqual(resolve(served_path(other)).func, resolve(path).func)

    def test_a_path_no_form_of_which_routes_is_left_to_the_404(self):
        self.assertEqual(served_path("/api/v1/nothing-here"), "/api/v1/nothing-here")
        self.assertEqual(served_path("/api/v1/nothing-here/"), "/api/v1/nothing-here/")


class BothFormsOverHttpTests(TestCase):
    def setUp(self):
        self.client = key_client("manage")

    def test_post_without_the_slash_creates_a_model(self):
        response = self.client.post("/api/v1/models", {"name": "churn", "task": "classification"}, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json()["name"], "churn")

    def test_get_without_the_slash_lists_models(self):
        make_model("churn")
        response = self.client.get("/api/v1/models")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual([m["name"] for m in response.json()["results"]], ["churn"])

    def test_post_with_a_slash_reaches_the_prediction_view(self):
        response = self.client.post("/api/v1/predict/churn-logreg/", {"inputs": [[1, 2]]}, format="json")
        self.assertEqual(response.status_code, 404, response.content)
        # The view's own answer (no such deployment), not the site's "no route matches".
        self.assertEqual(response.json()["error"]["code"], "endpoint_not_found")

    def test_get_with_a_slash_lists_jobs(self):
        response = self.client.get("/api/v1/jobs/", {"status": "failed"})
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["results"], [])

    def test_the_v2_catch_all_does_not_hide_a_route(self):
        response = self.client.get("/v2/models/nope/")
        self.assertEqual(response.status_code, 404)
        self.assertNotIn("does not implement", response.json()["error"])
        self.assertIn("does not implement", self.client.get("/v2/repository/index").json()["error"])

    def test_an_unknown_path_is_the_json_404(self):
        response = self.client.post("/api/v1/nothing-here", {}, format="json")
        self.assertEqual(response.status_code, 404)
        self.assertEqual(response.json()["error"]["code"], "not_found")

    def test_the_admin_keeps_djangos_redirect(self):
        response = self.client.get("/admin")
        self.assertEqual((response.status_code, response["Location"]), (301, "/admin/"))
