"""An unknown key prefix and a wrong secret are refused after the same work (one query, one hash comparison),
so the time of a refusal does not tell which prefixes exist. What is compared is the calls made, not times."""

from unittest import mock

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from rest_framework_api_key.crypto import KeyGenerator, Sha512ApiKeyHasher

from core.auth import forget_cached_keys, verify_api_key
from core.services import api_key_create


class ApiKeyRefusalTests(TestCase):
    def setUp(self):
        forget_cached_keys()
        self.key, self.secret = api_key_create(name="real", scope="manage")
        prefix, _, secret = self.secret.partition(".")
        self.wrong_secret = f"{prefix}.{'x' * len(secret)}"
        self.unknown_prefix = f"{'z' * len(prefix)}.{secret}"

    def work(self, raw: str) -> tuple[int, int, int, list[str]]:
        forget_cached_keys()
        with mock.patch.object(KeyGenerator, "verify", autospec=True, side_effect=KeyGenerator.verify) as verify, \
                mock.patch.object(Sha512ApiKeyHasher, "encode", autospec=True,
                                  side_effect=Sha512ApiKeyHasher.encode) as encode, \
                CaptureQueriesContext(connection) as queries:
            response = self.client.get("/api/v1/models/", HTTP_X_API_KEY=raw)
        self.assertEqual(response.status_code, 401, response.content)
        tables = [q["sql"].split(" FROM ", 1)[1].split(" ", 1)[0] for q in queries.captured_queries]
        return response.status_code, verify.call_count, encode.call_count, tables

    def test_an_unknown_prefix_and_a_wrong_secret_cost_the_same_calls(self):
        unknown, wrong = self.work(self.unknown_prefix), self.work(self.wrong_secret)
        self.assertEqual(unknown, wrong)
        self.assertEqual(unknown[1:3], (1, 1))  # one comparison, one hash, on either path
        self.assertEqual(self.work("not-even-a-key")[1:], unknown[1:])

    def test_the_right_key_still_verifies_and_a_revoked_one_does_not(self):
        self.assertEqual(verify_api_key(self.secret), self.key)
        self.assertIsNone(verify_api_key(self.wrong_secret))
        self.key.revoked = True
        self.key.save()
        self.assertIsNone(verify_api_key(self.secret))
