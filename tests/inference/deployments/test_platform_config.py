"""inference.platform_config: the platform configuration row as the hot path sees it."""

import threading
import time
from unittest import mock

from django.test import TestCase, TransactionTestCase

from core.invalidation import announce, generations
from inference.deployments.selectors import platform_config_get
from inference.models import PlatformConfig
from inference.platform_config import current_config, fresh_config
from inference.predict import dispatch
from tests.core.test_invalidation import announced_elsewhere, listening
from tests.factories import key_client
from tests.inference.live import wait_for


class RuntimeConfigTests(TestCase):
    def setUp(self):
        platform_config_get()  # the one row

    def test_the_row_is_read_again_when_another_process_announces_a_change_and_not_before(self):
        listening()
        current_config()
        time.sleep(1.2)  # past what a process that cannot hear announcements keeps it for
        with self.assertNumQueries(0):
            self.assertIsNotNone(fresh_config())
        PlatformConfig.objects.update(cache_ttl_s=77)  # as another process's write: nothing told this one
        self.assertNotEqual(current_config()["cache_ttl_s"], 77)
        announced_elsewhere("config")
        wait_for(lambda: fresh_config() is None, timeout=5, message="the announcement was heard")
        self.assertEqual(current_config()["cache_ttl_s"], 77)

    def test_a_change_through_the_api_holds_in_this_process_at_once(self):
        current_config()
        response = key_client("manage").patch("/api/v1/config", {"cache_ttl_s": 42}, format="json")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(fresh_config()["cache_ttl_s"], 42)

    def test_while_deaf_the_row_is_read_again_every_second(self):
        with mock.patch.object(type(generations), "listening", new_callable=mock.PropertyMock, return_value=False):
            current_config()
            self.assertIsNotNone(fresh_config())
            time.sleep(1.1)
            self.assertIsNone(fresh_config())


class ConfigReloadTests(TransactionTestCase):
    """Committed rows: the reading thread below has a connection of its own."""

    def test_a_process_without_a_prediction_cache_takes_a_cache_change_without_waiting_on_itself(self):
        # The model server reads this configuration but never predicts: applying a new cache TTL there used
        # to create the prediction cache, which read the configuration under the lock its reader held.
        platform_config_get()
        current_config()
        dispatch.prediction_cache.cache_clear()
        self.addCleanup(dispatch.prediction_cache.cache_clear)
        PlatformConfig.objects.update(cache_ttl_s=55)
        announce("config")
        reader = threading.Thread(target=current_config, daemon=True)
        reader.start()
        reader.join(timeout=10)
        self.assertFalse(reader.is_alive(), "reading the configuration deadlocked")
        self.assertEqual(dispatch.prediction_cache().stats()["ttl_s"], 55)
