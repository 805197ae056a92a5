from functools import lru_cache

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry


@lru_cache(maxsize=4)
def fail_fast(url: str) -> redis.Redis:
    """A shared client without retries: a down Redis must cost its callers one timeout, not several (they
    fail open: throttling, announcing cache invalidations)."""
    return redis.Redis.from_url(url, socket_timeout=settings.REDIS_SOCKET_TIMEOUT_S,
                                socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT_S, retry=Retry(NoBackoff(), 0))
