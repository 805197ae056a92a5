"""Per-process caches and the Redis announcements that drop them (real Redis)."""

import os
import time
from unittest import mock

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import TestCase, override_settings
from rest_framework.test import APIClient

from core import invalidation
from core.invalidation import Freshness, GenerationCache, announce, generations
from core.models import ApiKey
from core.services import api_key_create
from tests.inference.live import wait_for


def listening() -> None:
    """Waits until this process hears announcements (caches that refuse to guess while deaf then keep entries)."""
    generations.current("registry")  # starts this process's listener if nothing has yet
    wait_for(lambda: generations.listening, timeout=10, message="the invalidation listener subscribed")


def announced_elsewhere(topic: str) -> None:
    """What another process's announce() sends once its transaction commits."""
    other = redis.Redis.from_url(settings.REDIS_URL)
    try:
        other.publish(invalidation._channel(), topic)
    finally:
        other.close()


def in_forked_child(report) -> str:
    """repr(report()) as a forked child of this process sees it. The child leaves at once, running none
    of the parent's cleanup (nor, should `report` raise, the rest of the test)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, repr(report()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    try:
        return os.read(read_end, 1000).decode()
    finally:
        os.close(read_end)


def counting_lookup():
    calls = []

    def lookup():
        calls.append(1)
        return len(calls)

    return lookup


class GenerationCacheTests(TestCase):
    def setUp(self):
        listening()
        self.cache = GenerationCache("registry", lambda: 60, while_deaf=False)

    def test_an_entry_holds_until_its_own_topic_is_announced(self):
        lookup = counting_lookup()
        self.assertEqual([self.cache.cached("k", lookup), self.cache.cached("k", lookup)], [1, 1])
        with self.captureOnCommitCallbacks(execute=True):
            announce("api_keys")
        self.assertEqual(self.cache.cached("k", lookup), 1, "another topic's change dropped it")
        announce("registry")  # this process drops it at once, before the transaction commits
        self.assertEqual(self.cache.cached("k", lookup), 2)

    def test_a_value_read_while_a_write_landed_is_not_kept(self):
        generation = self.cache.generation()
        announce("registry")  # the write, between the read's start and its put
        self.cache.put("k", "old", generation)
        self.assertIsNone(self.cache.get("k"))
        self.cache.put("k", "new", self.cache.generation())
        self.assertEqual(self.cache.get("k"), "new")

    def test_entries_expire_after_their_ttl_and_a_zero_ttl_keeps_nothing(self):
        short = GenerationCache("registry", lambda: 0.05, while_deaf=False)
        short.put("k", "v", short.generation())
        self.assertEqual(short.get("k"), "v")
        time.sleep(0.1)
        self.assertIsNone(short.get("k"))
        off = GenerationCache("registry", lambda: 0, while_deaf=True)
        off.put("k", "v", off.generation())
        self.assertIsNone(off.get("k"))

    def test_while_deaf_only_caches_that_ask_for_it_keep_entries(self):
        keeps = GenerationCache("api_keys", lambda: 60, while_deaf=True)
        self.cache.put("k", "v", self.cache.generation())
        deaf = mock.patch.object(type(generations), "listening", new_callable=mock.PropertyMock, return_value=False)
        with deaf:
            self.assertIsNone(self.cache.get("k"), "an entry was trusted while messages could be missed")
            self.cache.put("j", "v", self.cache.generation())
            keeps.put("j", "v", keeps.generation())
        self.assertIsNone(self.cache.get("j"))
        self.assertEqual(keeps.get("j"), "v")

    def test_a_message_from_another_process_drops_entries(self):
        self.cache.put("k", "v", self.cache.generation())
        announced_elsewhere("registry")
        wait_for(lambda: self.cache.get("k") is None, timeout=5, message="the announcement was heard")

    def test_announce_publishes_only_once_the_transaction_commits(self):
        subscriber = redis.Redis.from_url(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
        self.addCleanup(subscriber.close)
        subscriber.subscribe(invalidation._channel())
        subscriber.get_message(timeout=1)  # the subscription's confirmation
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            announce("api_keys")
        self.assertIsNone(subscriber.get_message(timeout=0.2), "published before the commit")
        for callback in callbacks:
            callback()
        message = subscriber.get_message(timeout=2)
        self.assertEqual(message and message["data"], b"api_keys")

    def test_a_write_still_commits_and_drops_local_entries_when_redis_cannot_take_the_announcement(self):
        self.cache.put("k", "v", self.cache.generation())
        down = mock.Mock(publish=mock.Mock(side_effect=redis.ConnectionError("down")))
        with mock.patch.object(invalidation.redis_clients, "fail_fast", return_value=down), \
                self.assertLogs("core.invalidation", "WARNING") as logged, \
                self.captureOnCommitCallbacks(execute=True):
            announce("registry")
        self.assertEqual(down.publish.call_count, 1)
        self.assertIsNone(self.cache.get("k"))
        self.assertIn("could not announce a change of registry", logged.output[0])

    def test_an_unknown_topic_is_a_programming_error(self):
        with self.assertRaises(ValueError):
            announce("aliases")

    def test_a_lost_connection_drops_entries_and_the_listener_comes_back(self):
        self.cache.put("k", "v", self.cache.generation())
        outages = invalidation.OUTAGES._value.get()
        admin = redis.Redis.from_url(settings.REDIS_URL)
        self.addCleanup(admin.close)
        admin.client_kill_filter(_type="pubsub")
        wait_for(lambda: self.cache.get("k") is None, timeout=5, message="entries dropped with the connection")
        listening()
        self.cache.put("k", "again", self.cache.generation())
        self.assertEqual(self.cache.get("k"), "again")
        self.assertEqual(invalidation.OUTAGES._value.get(), outages + 1)

    def test_readiness_shows_whether_the_answering_process_hears_changes(self):
        self.assertEqual(APIClient().get("/health/ready").json()["cache_invalidation"],
                         {"listening": True, "deaf_for_s": None})
        with mock.patch.object(generations, "_listening", False), \
                mock.patch.object(generations, "_deaf_since", time.monotonic() - 42):
            response = APIClient().get("/health/ready")
        self.assertEqual(response.status_code, 200, "a deaf process is still ready: its caches stay short-lived")
        state = response.json()["cache_invalidation"]
        self.assertFalse(state["listening"])
        self.assertGreaterEqual(state["deaf_for_s"], 42)

    def test_a_process_told_to_stay_deaf_never_listens_and_its_caches_keep_nothing(self):
        def horse():  # an RQ work horse, say
            generations.stay_deaf()
            self.cache.put("k", "v", self.cache.generation())
            return generations._thread is None, generations.state()["listening"], self.cache.get("k")

        self.assertEqual(in_forked_child(horse), "(True, False, None)")

    def test_a_process_that_cached_nothing_yet_reports_listening_after_starting_its_listener(self):
        fresh = in_forked_child(lambda: (generations._thread is not None, generations.state()))
        self.assertEqual(fresh, "(False, {'listening': True, 'deaf_for_s': None})")

    def test_a_forked_child_starts_deaf_and_trusts_nothing_from_its_parent(self):
        self.cache.put("k", "v", self.cache.generation())
        self.assertEqual(in_forked_child(lambda: (generations.listening, self.cache.get("k"))), "(False, None)")
        self.assertEqual(self.cache.get("k"), "v", "the parent's own entry was dropped")


class FreshnessTests(TestCase):
    def test_a_value_holds_until_its_topic_changes_then_for_the_heard_or_deaf_ttl(self):
        listening()
        freshness = Freshness("config", heard_ttl_s=0.3, deaf_ttl_s=0.1)
        stamp = freshness.stamp()
        time.sleep(0.15)
        self.assertTrue(freshness.holds(stamp), "the deaf TTL applied while listening")
        time.sleep(0.2)
        self.assertFalse(freshness.holds(stamp))
        stamp = freshness.stamp()
        announce("experiments")
        self.assertTrue(freshness.holds(stamp), "another topic's change dropped it")
        announce("config")
        self.assertFalse(freshness.holds(stamp))
        self.assertFalse(freshness.holds(None))
        stamp = freshness.stamp()
        with mock.patch.object(type(generations), "listening", new_callable=mock.PropertyMock, return_value=False):
            time.sleep(0.15)
            self.assertFalse(freshness.holds(stamp), "the heard TTL applied while deaf")


@override_settings(API_KEY_CACHE_S=300)
class KeyRevocationTests(TestCase):
    def setUp(self):
        listening()
        self.key, secret = api_key_create(name="ops", scope="manage")
        self.client = APIClient()
        self.client.credentials(HTTP_X_API_KEY=secret)
        admin = get_user_model().objects.create_superuser("root", password="pw-not-used-1")
        self.admin = APIClient()
        self.admin.force_login(admin)

    def assert_cached(self):
        # A revocation the application never hears of: the verified key is still answered from memory.
        ApiKey.objects.filter(pk=self.key.pk).update(revoked=True)
        self.assertEqual(self.client.get("/api/v1/models/").status_code, 200)

    def test_a_revocation_in_the_admin_holds_at_once(self):
        self.assertEqual(self.client.get("/api/v1/models/").status_code, 200)
        self.assert_cached()
        change = f"/admin/core/apikey/{self.key.pk}/change/"
        form = {"name": "ops", "scope": "manage", "owner": "", "expiry_date_0": "", "expiry_date_1": "",
                "revoked": "on"}
        with self.captureOnCommitCallbacks(execute=True):
            saved = self.admin.post(change, form)
        self.assertEqual(saved.status_code, 302, saved.content[-2000:])
        self.assertEqual(self.client.get("/api/v1/models/").status_code, 401)

    def test_a_key_deleted_in_the_admin_stops_working_at_once(self):
        self.assertEqual(self.client.get("/api/v1/models/").status_code, 200)
        self.assert_cached()
        ApiKey.objects.filter(pk=self.key.pk).update(revoked=False)
        with self.captureOnCommitCallbacks(execute=True):
            deleted = self.admin.post("/admin/core/apikey/", {"action": "delete_selected", "post": "yes",
                                                              "_selected_action": [self.key.pk]})
        self.assertEqual(deleted.status_code, 302)
        self.assertFalse(ApiKey.objects.filter(pk=self.key.pk).exists())
        self.assertEqual(self.client.get("/api/v1/models/").status_code, 401)
