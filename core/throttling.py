import logging
import time
from functools import lru_cache

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from core.models import ApiKey

logger = logging.getLogger(__name__)


def _view_scope(view) -> str:
    for permission in view.get_permissions():
        scope = getattr(permission, "scope", None)
        if scope:
            return str(scope)
    return "manage"


@lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    # No retries: a down Redis must cost one timeout, not several (the throttle then fails open).
    return redis.Redis.from_url(url, socket_timeout=settings.REDIS_SOCKET_TIMEOUT_S,
                                socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT_S, retry=Retry(NoBackoff(), 0))


class ClientRateThrottle(SimpleRateThrottle):
    """One bucket per API key (or user); anonymous callers share per-address buckets.

    A fixed window counted with one pipelined INCR + EXPIRE: one Redis round trip per request, where
    DRF's default keeps (and rewrites) the list of every request time in the window.

    The address comes from DRF's get_ident, which trusts X-Forwarded-For only for
    REST_FRAMEWORK['NUM_PROXIES'] hops, so a client rotating that header stays in one bucket.
    """

    def allow_request(self, request, view) -> bool:
        self.scope = self._scope_for(request, view)
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        limit, window = self.parse_rate(self.rate)
        try:
            count, window_end = self._count(self.get_cache_key(request, view), window)
        except redis.RedisError:  # when Redis is down, serve unthrottled rather than fail
            logger.warning("throttle store unavailable; request not rate limited", exc_info=True)
            return True
        self._wait = max(window_end - time.time(), 0.0)
        return count <= limit

    def _count(self, key: str, window: int) -> tuple[int, float]:
        window_start = int(time.time() // window) * window
        pipe = _redis(settings.REDIS_URL).pipeline(transaction=False)
        pipe.incr(f"{key}:{window_start}")
        pipe.expire(f"{key}:{window_start}", window + 1)
        count, _ = pipe.execute()
        return int(count), window_start + window

    def wait(self) -> float:
        return self._wait

    def _scope_for(self, request, view) -> str:
        scope = _view_scope(view)
        authenticated = bool(request.user and request.user.is_authenticated)
        # Anonymous callers only pass permissions on public routes, or on prediction routes
        # when REQUIRE_API_KEY is off: those get the predict rate, per address.
        if not authenticated and scope != "predict":
            return "anon"
        return "predict" if scope == "anon" else scope

    def get_rate(self):
        # Read at request time (not import time) so rate changes in settings take effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view) -> str:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return f"sp:throttle:{self.scope}:{ident}"
