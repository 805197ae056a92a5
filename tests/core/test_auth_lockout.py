"""Failed sign-ins are counted per client address and per credential (an API key's prefix, a username):
past AUTH_FAILURE_LIMIT, attempts are refused unchecked (429 with Retry-After on the API, a message on the
login pages), whether the attacker rotates addresses or credentials."""

from unittest import mock

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import TestCase, override_settings
from rest_framework.test import APIClient

from core.auth import forget_cached_keys
from core.services import api_key_create

# The anonymous rate stays out of the way: what is counted here is failures.
RATES = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"predict": "1000/day", "manage": "1000/day",
                                                                "anon": "1000/day"}}
BEHIND_A_PROXY = {**RATES, "NUM_PROXIES": 1}


def from_address(address: str) -> dict:
    return {"HTTP_X_FORWARDED_FOR": address}


@override_settings(AUTH_FAILURE_LIMIT=3, AUTH_LOCKOUT_S=600, REST_FRAMEWORK=RATES)
class ApiKeyLockoutTests(TestCase):
    def models(self, key: str, **extra):
        return APIClient().get("/api/v1/models/", HTTP_X_API_KEY=key, **extra)

    def assert_locked_out(self, response):
        self.assertEqual(response.status_code, 429, response.content)
        self.assertEqual(response.json()["error"]["code"], "throttled")
        self.assertIn("Too many failed sign-in attempts", response.json()["error"]["message"])
        self.assertGreaterEqual(int(response["Retry-After"]), 590)

    def test_guessed_keys_lock_out_the_address(self):
        _, secret = api_key_create(name="manager", scope="manage")
        self.assertEqual(self.models(secret).status_code, 200)  # verified before the attack: this process knows it
        statuses = [self.models(f"Guess{n:03d}.wrong").status_code for n in range(3)]
        self.assertEqual(statuses, [401, 401, 401])
        self.assert_locked_out(self.models("Guess999.wrong"))
        _, fresh = api_key_create(name="another", scope="manage")
        self.assert_locked_out(self.models(fresh))  # not verified yet: refused unchecked, as any guess
        self.assertEqual(self.models(secret).status_code, 200)

    @override_settings(REST_FRAMEWORK=BEHIND_A_PROXY)
    def test_guesses_at_one_key_prefix_lock_it_out_from_every_address(self):
        key, secret = api_key_create(name="target", scope="manage")
        statuses = [self.models(f"{key.prefix}.guess{n}", **from_address(f"10.0.0.{n}")).status_code
                    for n in range(3)]
        self.assertEqual(statuses, [401, 401, 401])
        self.assert_locked_out(self.models(f"{key.prefix}.guess9", **from_address("10.0.0.99")))
        self.assertEqual(self.models("Zzzzzzzz.guess", **from_address("10.0.0.98")).status_code, 401)
        forget_cached_keys()
        self.assert_locked_out(self.models(secret, **from_address("10.0.0.97")))

    def test_expired_keys_are_not_guesses(self):
        key, secret = api_key_create(name="old", scope="manage")
        key.expiry_date = "2000-01-01T00:00:00Z"
        key.save()
        self.assertEqual([self.models(secret).status_code for _ in range(5)], [401] * 5)

    def test_while_the_store_is_down_keys_are_still_checked(self):
        _, secret = api_key_create(name="manager", scope="manage")
        with mock.patch("core.lockout.Script.__call__", side_effect=redis.ConnectionError("down")), \
                self.assertLogs("core.lockout", level="WARNING"):
            self.assertEqual([self.models("Guess000.wrong").status_code for _ in range(5)], [401] * 5)
            self.assertEqual(self.models(secret).status_code, 200)


@override_settings(AUTH_FAILURE_LIMIT=3, AUTH_LOCKOUT_S=600, REST_FRAMEWORK=BEHIND_A_PROXY)
class PasswordLockoutTests(TestCase):
    def setUp(self):
        get_user_model().objects.create_user("alice", password="right-password", is_staff=True)
        get_user_model().objects.create_user("bob", password="bobs-password", is_staff=True)

    def token(self, username: str, password: str, address: str):
        return APIClient().post("/api/v1/auth/token/", {"username": username, "password": password},
                                format="json", **from_address(address))

    def test_wrong_passwords_lock_out_the_username_from_every_address(self):
        statuses = [self.token("alice", "guess", f"10.0.0.{n}").status_code for n in range(3)]
        self.assertEqual(statuses, [401, 401, 401])
        locked = self.token("alice", "right-password", "10.0.0.50")
        self.assertEqual(locked.status_code, 429)
        self.assertIn("Retry-After", locked)
        self.assertEqual(self.token("bob", "bobs-password", "10.0.0.51").status_code, 200)

    def test_wrong_passwords_lock_out_the_address_whatever_the_username(self):
        statuses = [self.token(f"user{n}", "guess", "10.0.0.7").status_code for n in range(3)]
        self.assertEqual(statuses, [401, 401, 401])
        self.assertEqual(self.token("bob", "bobs-password", "10.0.0.7").status_code, 429)
        self.assertEqual(self.token("bob", "bobs-password", "10.0.0.8").status_code, 200)

    def test_the_admin_login_locks_out_after_repeated_failures_with_a_clear_message(self):
        for _ in range(3):
            page = self.client.post("/admin/login/", {"username": "alice", "password": "guess"})
            self.assertEqual(page.status_code, 200)
            self.assertContains(page, "Please enter the correct username and password")
        page = self.client.post("/admin/login/", {"username": "alice", "password": "right-password"})
        self.assertContains(page, "Too many failed sign-in attempts")
        self.assertNotIn("_auth_user_id", self.client.session)
        other = self.client.post("/admin/login/", {"username": "bob", "password": "bobs-password"},
                                 **from_address("10.0.0.9"))
        self.assertEqual(other.status_code, 302)  # another user from another address signs in

    def test_the_browsable_apis_login_shares_the_lockout(self):
        for _ in range(3):
            self.client.post("/admin/login/", {"username": "alice", "password": "guess"})
        page = self.client.post("/api-auth/login/", {"username": "alice", "password": "right-password"})
        self.assertContains(page, "Too many failed sign-in attempts")
        self.assertNotIn("_auth_user_id", self.client.session)
