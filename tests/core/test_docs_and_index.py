"""The docs pages work offline, `/` and `/api/v1/` say where things are, the browsable API can log in, and an
API key sent as a bearer token is told where it goes."""

import io
import re

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import SimpleTestCase, TestCase
from rest_framework.test import APIClient

from core.services import api_key_create

PREDICTION_OPERATIONS = {"predict", "predict_explain", "predict_universal", "predict_batch", "predict_async",
                         "predict_score"}


class OfflineDocsTests(TestCase):
    def test_swagger_and_redoc_load_only_the_apps_own_static_files(self):
        for path in ("/api/docs/", "/api/redoc/"):
            page = self.client.get(path).content.decode()
            assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', page)
            self.assertTrue(assets, f"{path} loads no script or stylesheet")
            for asset in assets:
                with self.subTest(page=path, asset=asset):
                    self.assertTrue(asset.startswith(settings.STATIC_URL), f"{asset} is not a local file")
                    self.assertIsNotNone(finders.find(asset.removeprefix(settings.STATIC_URL)),
                                         f"{asset} is not among the static files")
            self.assertNotIn("cdn.jsdelivr", page)
            self.assertNotIn("@latest", page)


class RequestExamplesTests(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        out = io.StringIO()
        call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
        cls.schema = yaml.safe_load(out.getvalue())

    def request_properties(self, body: dict) -> set[str]:
        schema = body["schema"]
        name = schema["$ref"].rsplit("/", 1)[-1]
        return set(self.schema["components"]["schemas"][name]["properties"])

    def test_every_prediction_route_shows_example_bodies_with_only_fields_it_takes(self):
        seen = set()
        for path, methods in self.schema["paths"].items():
            for method, operation in methods.items():
                if operation["operationId"] not in PREDICTION_OPERATIONS and not path.endswith("/infer"):
                    continue
                seen.add(operation["operationId"])
                body = operation["requestBody"]["content"]["application/json"]
                self.assertTrue(body.get("examples"), f"{method} {path} shows no example body")
                for name, example in body["examples"].items():
                    with self.subTest(path=path, example=name):
                        self.assertLessEqual(set(example["value"]), self.request_properties(body))
                        self.assertTrue(example["summary"])
        self.assertLessEqual(PREDICTION_OPERATIONS, seen)


class IndexTests(TestCase):
    def test_root_and_api_root_list_links_that_lead_somewhere(self):
        for path in ("/", "/api/v1/"):
            response = self.client.get(path, HTTP_ACCEPT="application/json")
            self.assertEqual(response.status_code, 200, path)
            body = response.json()
            self.assertEqual(body["name"], "Serving Platform API")
            links = body["links"]
            self.assertTrue({"docs", "redoc", "schema", "health", "admin", "api", "login"} <= set(links), path)
            for label, url in links.items():
                with self.subTest(index=path, link=label):
                    self.assertTrue(url.startswith("http://testserver/"), url)
                    answer = self.client.get(url.removeprefix("http://testserver"))
                    # Protected resources answer 401 (or the admin's login redirect), never 404.
                    self.assertIn(answer.status_code, (200, 302, 401, 405), f"{label}: {url}")
        self.assertIn("models", self.client.get("/api/v1/").json()["links"])
        self.assertNotIn("models", self.client.get("/").json()["links"])


class BrowsableApiLoginTests(TestCase):
    def test_the_browsable_api_login_lets_a_staff_user_in(self):
        anonymous = self.client.get("/api/v1/models/", HTTP_ACCEPT="text/html")
        self.assertEqual((anonymous.status_code, anonymous["Content-Type"]), (401, "application/json"))

        get_user_model().objects.create_user("ana", password="s3cret-pass!", is_staff=True)
        login = self.client.get("/api-auth/login/?next=/api/v1/models/")
        self.assertEqual(login.status_code, 200)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.content.decode()).group(1)
        done = self.client.post("/api-auth/login/?next=/api/v1/models/",
                                {"username": "ana", "password": "s3cret-pass!", "csrfmiddlewaretoken": token,
                                 "next": "/api/v1/models/"})
        self.assertEqual((done.status_code, done["Location"]), (302, "/api/v1/models/"))
        page = self.client.get("/api/v1/models/", HTTP_ACCEPT="text/html")
        self.assertEqual(page.status_code, 200)
        self.assertIn("Log out", page.content.decode())


class BearerMessagesTests(TestCase):
    def test_an_api_key_sent_as_a_bearer_token_is_told_to_use_x_api_key(self):
        _, secret = api_key_create(name="k", scope="manage")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        response = client.get("/api/v1/models/")
        self.assertEqual(response.status_code, 401)
        error = response.json()["error"]
        self.assertEqual(error["code"], "authentication_failed")
        self.assertIn("X-API-Key", error["message"])
        self.assertNotIn("ErrorDetail", error["message"])
        client.credentials(HTTP_X_API_KEY=secret)
        self.assertEqual(client.get("/api/v1/models/").status_code, 200)  # the same key, where it belongs

    def test_an_invalid_jwt_gets_a_plain_message_not_a_python_repr(self):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Bearer eyJhbGciOiJIUzI1NiJ9.eyJ4IjoxfQ.bm90LWEtc2lnbmF0dXJl")
        response = client.get("/api/v1/models/")
        self.assertEqual(response.status_code, 401)
        message = response.json()["error"]["message"]
        self.assertEqual(message, "Given token not valid for any token type")


HTML_ACCEPT = "text/html,application/xhtml+xml,*/*;q=0.8"


class BrowsableApiAccessTests(TestCase):
    """The browsable API stays (with DEBUG off too) for staff signed in to a session, held to CSRF; API keys,
    tokens, anonymous callers and non-staff sessions get JSON whatever they accept."""

    def setUp(self):
        self.staff = get_user_model().objects.create_user("ana", password="s3cret-pass!", is_staff=True)
        _, self.secret = api_key_create(name="k", scope="manage")

    def content_type(self, client, path="/api/v1/models/", **headers) -> str:
        response = client.get(path, **{"HTTP_ACCEPT": HTML_ACCEPT, **headers})
        self.assertLess(response.status_code, 500)
        return response["Content-Type"].split(";")[0]

    def test_only_a_staff_session_gets_html(self):
        self.assertFalse(settings.DEBUG)
        staff = APIClient()
        staff.force_login(self.staff)
        self.assertEqual(self.content_type(staff), "text/html")
        # The same browser sending a key is a machine credential: JSON.
        self.assertEqual(self.content_type(staff, HTTP_X_API_KEY=self.secret), "application/json")
        keyed = APIClient()
        self.assertEqual(self.content_type(keyed, HTTP_X_API_KEY=self.secret), "application/json")
        self.assertEqual(self.content_type(keyed, HTTP_X_API_KEY=self.secret, HTTP_ACCEPT="text/html"),
                         "application/json")
        self.assertEqual(self.content_type(APIClient()), "application/json")
        self.assertEqual(self.content_type(APIClient(), path="/api/v1/"), "application/json")
        member = APIClient()
        member.force_login(get_user_model().objects.create_user("bo", password="pw-bo-12345"))
        self.assertEqual(self.content_type(member), "application/json")

    def test_a_staff_session_is_held_to_csrf(self):
        browser = APIClient(enforce_csrf_checks=True)
        browser.force_login(self.staff)
        refused = browser.post("/api/v1/models/", {"name": "m"}, format="json")
        self.assertEqual(refused.status_code, 403)
        self.assertIn("CSRF", refused.json()["error"]["message"])


class DocsOptionsTests(SimpleTestCase):
    def test_options_on_the_docs_pages_answers_json(self):
        for path in ("/api/docs/", "/api/redoc/", "/api/schema/"):
            with self.subTest(path=path):
                response = self.client.options(path)
                self.assertEqual((response.status_code, response["Content-Type"]), (200, "application/json"))
                self.assertIn("name", response.json())
