import io

from django.core.management import CommandError, call_command
from django.test import TestCase
from rest_framework.test import APIClient

from core.models import ApiKey

MODELS = "/api/v1/models/"


def create_api_key(*args: str) -> tuple[str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("create_api_key", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def key_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return client


class CreateApiKeyCommandTests(TestCase):
    def test_it_prints_the_key_alone_on_the_last_line(self):
        stdout, stderr = create_api_key("ci", "--scope", "manage")
        key = stdout.strip().splitlines()[-1]
        row = ApiKey.objects.get(name="ci")
        self.assertRegex(key, r"^\S+\.\S+$")
        self.assertTrue(key.startswith(row.prefix + "."))
        self.assertEqual(row.scope, "manage")
        self.assertIn(f"prefix {row.prefix}", stderr)
        self.assertNotIn(key, stderr)

    def test_a_manage_key_lists_models(self):
        stdout, _ = create_api_key("ci", "--scope", "manage")
        response = key_client(stdout.strip().splitlines()[-1]).get(MODELS)
        self.assertEqual(response.status_code, 200, response.content)

    def test_a_predict_key_is_forbidden_from_the_registry(self):
        stdout, _ = create_api_key("app", "--scope", "predict")
        response = key_client(stdout.strip().splitlines()[-1]).get(MODELS)
        self.assertEqual(response.status_code, 403)
        self.assertEqual(ApiKey.objects.get(name="app").scope, "predict")

    def test_the_default_scope_is_predict(self):
        create_api_key("app")
        self.assertEqual(ApiKey.objects.get(name="app").scope, "predict")

    def test_a_mangled_key_is_refused(self):
        stdout, _ = create_api_key("ci", "--scope", "manage")
        key = stdout.strip().splitlines()[-1]
        response = key_client(key[:-1] + ("x" if key[-1] != "x" else "y")).get(MODELS)
        self.assertEqual(response.status_code, 401)

    def test_it_stores_a_hash_and_never_the_key(self):
        stdout, _ = create_api_key("ci", "--scope", "manage")
        key = stdout.strip().splitlines()[-1]
        secret = key.partition(".")[2]
        row = ApiKey.objects.filter(name="ci").values().get()
        self.assertTrue(row["hashed_key"])
        self.assertNotEqual(row["hashed_key"], secret)
        self.assertFalse(any(secret in str(value) for value in row.values()))
        self.assertTrue(ApiKey.objects.get(name="ci").is_valid(key))

    def test_it_refuses_an_unknown_scope(self):
        with self.assertRaisesMessage(CommandError, "invalid choice: 'admin'"):
            create_api_key("ci", "--scope", "admin")
        self.assertFalse(ApiKey.objects.exists())

    def test_it_refuses_a_blank_name(self):
        with self.assertRaisesMessage(CommandError, "name: must not be blank."):
            create_api_key("   ", "--scope", "manage")
        self.assertFalse(ApiKey.objects.exists())
