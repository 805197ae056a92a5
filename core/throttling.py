from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import redis
from django.conf import settings
from redis.commands.core import Script
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from core.models import ApiKey
from core.redis_clients import fail_fast

if TYPE_CHECKING:  # DRF's views import the throttle classes named in settings: no runtime import back
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)


def _view_scope(view: APIView) -> str:
    for permission in view.get_permissions():
        scope = getattr(permission, "scope", None)
        if scope:
            return str(scope)
    return "manage"


# One round trip, atomic: what the sliding window has room for, granted and counted in this window.
# KEYS: this window's count, the previous window's. ARGV: lease, limit, the previous window's weight, TTL.
_TAKE = """
local lease, limit, weight = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local before = tonumber(redis.call('GET', KEYS[2]) or '0')
local granted = math.max(0, math.min(lease, math.floor(limit - before * weight) - count))
if granted > 0 then
    redis.call('INCRBY', KEYS[1], granted)
    redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return {granted, count + granted, before}
"""


class QuotaLeases:
    """Sliding-window request counts in Redis, shared by every web process, bought in leases.

    A bucket counts admitted requests per fixed window at `{key}:{window_start}`, and a request is admitted
    while this window's count plus the previous window's, weighted by how much of it the sliding window
    still covers, stays within the limit (the estimate Cloudflare describes): unlike a fixed window it
    never lets 2x the limit through across a window edge, and it keeps two integers per bucket, where DRF's
    default keeps (and rewrites) the time of every request.

    Under a small limit every admitted request is one round trip (exact). Under a large one a process
    reserves a lease of limit/100 requests at once and spends it locally, so a busy prediction route pays a
    round trip per lease, not per request; a process holds back at most one lease (1% of the limit). A
    refusal is remembered until the estimate leaves room again (counts only grow within a window, so room
    cannot come sooner), and that moment is the Retry-After.
    """

    LEASE_FRACTION = 100
    MAX_TRACKED = 10_000
    RETRY_AFTER_S = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> (window_start, requests left in this process's lease, refused until this time.time())
        self._leases: dict[str, tuple[int, int, float]] = {}
        self._down_until = float("-inf")

    def take_local(self, key: str, window: int) -> tuple[bool, float] | None:
        """Answers from this process's lease or remembered refusal without Redis; None when a round trip is needed."""
        now = time.time()
        window_start = int(now // window) * window
        with self._lock:
            lease = self._leases.get(key)
            if lease is None:
                return None
            started, left, refused_until = lease
            if refused_until > now:
                return False, refused_until - now
            if started != window_start or left <= 0:
                return None
            self._leases[key] = (started, left - 1, 0.0)
        return True, 0.0

    def take(self, key: str, limit: int, window: int) -> tuple[bool, float]:
        """(allowed, seconds until a refused caller may retry). Raises redis.RedisError when Redis is down."""
        local = self.take_local(key, window)
        if local is not None:
            return local
        if time.monotonic() < self._down_until:
            # Redis failed a moment ago: fail at once rather than make every request wait out a timeout.
            raise redis.ConnectionError("the throttle store failed less than a second ago")
        now = time.time()
        window_start = int(now // window) * window
        weight = 1.0 - (now - window_start) / window
        lease = max(1, limit // self.LEASE_FRACTION)
        try:
            granted, count, before = _take_script(settings.REDIS_URL)(
                keys=[f"{key}:{window_start}", f"{key}:{window_start - window}"],
                args=[lease, limit, repr(weight), 2 * window + 1])
        except redis.RedisError:
            self._down_until = time.monotonic() + self.RETRY_AFTER_S
            raise
        if granted > 0:
            if lease > 1:
                self._remember(key, window_start, granted - 1, 0.0)
            return True, 0.0
        wait = _until_room(now, window_start, window, limit, int(count), int(before))
        self._remember(key, window_start, 0, now + wait)
        return False, wait

    def allow(self, key: str, limit: int, window: int) -> tuple[bool, float]:
        """take(), failing open: while Redis is down requests are served unthrottled (and logged), not failed."""
        try:
            allowed, wait = self.take(key, limit, window)
        except redis.RedisError:
            logger.warning("throttle store unavailable; request not rate limited", exc_info=True)
            return True, 0.0
        return allowed, max(wait, 0.0)

    def forget(self) -> None:
        with self._lock:
            self._leases.clear()
        self._down_until = float("-inf")

    def _remember(self, key: str, window_start: int, left: int, refused_until: float) -> None:
        with self._lock:
            if len(self._leases) >= self.MAX_TRACKED:
                self._leases.clear()
            self._leases[key] = (window_start, left, refused_until)


@lru_cache(maxsize=4)
def _take_script(url: str) -> Script:
    return fail_fast(url).register_script(_TAKE)


def _until_room(now: float, window_start: int, window: int, limit: int, count: int, before: int) -> float:
    """Seconds until count + before x (the previous window's share of the sliding window) <= limit - 1."""
    room = limit - 1 - count
    if room >= 0:  # this window has room: the previous window's share must shrink to it
        return max(0.0, window_start + window * (1 - room / before) - now) if before else 0.0
    # This window alone is over: in the next one it weighs count x (1 - elapsed fraction).
    return window_start + window * (2 - (limit - 1) / count) - now


leases = QuotaLeases()


def predict_quota() -> tuple[int, int] | None:
    """(requests, window seconds) of the predict scope, for callers outside DRF (the fast lane)."""
    rate = _configured_rate("predict")
    return None if rate is None else _limit_and_window(rate)


def _configured_rate(scope: str) -> str | None:
    # DRF's stub types the rates as numbers; they are strings such as '100/min' (core.env.env_rate).
    return cast("dict[str, str | None]", api_settings.DEFAULT_THROTTLE_RATES).get(scope)


def _limit_and_window(rate: str) -> tuple[int, int]:
    # parse_rate reads nothing from the instance; DRF offers it only as a method (the stub wants a throttle).
    limit, window = SimpleRateThrottle.parse_rate(None, rate)  # type: ignore[arg-type]
    assert limit is not None and window is not None, "parse_rate answers None only for a None rate"
    return limit, window


def bucket_key(scope: str, ident: str) -> str:
    return f"sp:throttle:{scope}:{ident}"


def client_address(meta: Mapping[str, Any]) -> str:
    """The client's address for rate limits and sign-in lockouts: the socket's peer (REMOTE_ADDR), or, behind
    TRUSTED_PROXY_COUNT proxies, the address the farthest trusted one saw (X-Forwarded-For, counted from the
    right: each proxy appends its peer). Whatever a client writes into the header itself is never believed.

    The HTTP server must leave REMOTE_ADDR alone for this to hold: scripts/serve.py and docker/compose.yaml
    start gunicorn with `--forwarded-allow-ips ""`, or uvicorn would replace it from X-Forwarded-For whenever
    the peer is 127.0.0.1 (its default).
    """
    remote = str(meta.get("REMOTE_ADDR") or "")
    proxies = int(api_settings.NUM_PROXIES or 0)
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if proxies == 0 or not forwarded:
        return remote
    hops = [hop.strip() for hop in str(forwarded).split(",")]
    return hops[-min(proxies, len(hops))] or remote


class ClientRateThrottle(SimpleRateThrottle):
    """One bucket per API key (or user); anonymous callers share per-address buckets.

    Counted by QuotaLeases: a sliding window, one Redis round trip per request under small limits and
    per lease under large ones, where DRF's default keeps (and rewrites) the list of every request time.

    The address is client_address's, which trusts X-Forwarded-For only for TRUSTED_PROXY_COUNT hops, so a
    client rotating that header stays in one bucket.
    """

    def allow_request(self, request: Request, view: APIView) -> bool:
        self.scope = self._scope_for(request, view)
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        limit, window = _limit_and_window(self.rate)
        allowed, self._wait = leases.allow(self.get_cache_key(request, view), limit, window)
        return allowed

    def wait(self) -> float:
        return self._wait

    def _scope_for(self, request: Request, view: APIView) -> str:
        scope = _view_scope(view)
        authenticated = bool(request.user and request.user.is_authenticated)
        # Anonymous callers only pass permissions on public routes, or on prediction routes
        # when REQUIRE_API_KEY is off: those get the predict rate, per address.
        if not authenticated and scope != "predict":
            return "anon"
        return "predict" if scope == "anon" else scope

    def get_rate(self) -> str | None:
        # Read at request time (not import time) so rate changes in settings take effect. DRF's __init__
        # asks before allow_request has set a scope.
        return None if self.scope is None else _configured_rate(self.scope)

    def get_cache_key(self, request: Request, view: APIView) -> str:
        assert self.scope is not None, "allow_request sets the scope first"
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{client_address(request.META)}"
        return bucket_key(self.scope, ident)
