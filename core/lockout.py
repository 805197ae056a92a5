"""Failed sign-ins, counted per client address and per credential, with a lockout once there are too many.

A guessed API key, a password tried on POST /api/v1/auth/token/, /admin/login/ or the browsable API's login:
each failure counts against the address it came from (core.throttling.client_address, which believes
X-Forwarded-For for TRUSTED_PROXY_COUNT proxies only) and against what it tried (an API key's prefix, a
username), so neither rotating addresses nor rotating credentials escapes. After AUTH_FAILURE_LIMIT failures
within AUTH_LOCKOUT_S, attempts from that address or for that credential are refused unchecked for
AUTH_LOCKOUT_S from the last failure: a 429 with Retry-After on the API, a message on the login pages.

The counts live in Redis (every web process sees them). While Redis is down, sign-ins are checked but not
counted (logged), as the rate limits fail open.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings
from redis.commands.core import Script
from rest_framework.exceptions import Throttled

from core.redis_clients import fail_fast
from core.throttling import bucket_key

logger = logging.getLogger(__name__)

# KEYS: the counts. ARGV: limit. Seconds until the last locked one unlocks, 0 when none is locked.
_LOCKED_FOR = """
local wait = 0
for _, key in ipairs(KEYS) do
    if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[1]) then
        wait = math.max(wait, redis.call('PTTL', key))
    end
end
return wait
"""
# KEYS: the counts. ARGV: lockout seconds. Each count lives AUTH_LOCKOUT_S from its latest failure.
_FAILED = """
for _, key in ipairs(KEYS) do
    redis.call('INCR', key)
    redis.call('EXPIRE', key, ARGV[1])
end
"""


@dataclass(frozen=True)
class SignIn:
    """One attempt: where it came from and what it tried (`key:<prefix>`, `user:<name>`)."""

    address: str
    credential: str | None

    def keys(self) -> list[str]:
        # Under the throttle's prefix: cleared with the rate-limit buckets (tests, `redis-cli --scan`).
        keys = [bucket_key("auth-failures", f"ip:{self.address}")]
        if self.credential:
            keys.append(bucket_key("auth-failures", self.credential))
        return keys

    def locked_for(self) -> float:
        """Seconds until this attempt may be made; 0 when it may be made now."""
        try:
            wait_ms = _script(settings.REDIS_URL, _LOCKED_FOR)(keys=self.keys(), args=[settings.AUTH_FAILURE_LIMIT])
        except redis.RedisError:
            logger.warning("sign-in lockout store unavailable; attempt not checked", exc_info=True)
            return 0.0
        return max(0, int(wait_ms)) / 1000

    def check(self) -> None:
        """Raises Throttled (429 with Retry-After) while this attempt is locked out."""
        wait = self.locked_for()
        if wait > 0:
            raise Throttled(wait=wait, detail=lockout_message(wait))

    def failed(self) -> None:
        try:
            _script(settings.REDIS_URL, _FAILED)(keys=self.keys(), args=[settings.AUTH_LOCKOUT_S])
        except redis.RedisError:
            logger.warning("sign-in lockout store unavailable; failure not counted", exc_info=True)


def lockout_message(wait: float) -> str:
    minutes = max(1, math.ceil(wait / 60))
    return (f"Too many failed sign-in attempts from this address or for this account; try again in "
            f"{minutes} minute{'s' if minutes > 1 else ''}.")


def username_credential(username: object) -> str | None:
    if not isinstance(username, str) or not username:
        return None
    return f"user:{username[:150].lower()}"


@lru_cache(maxsize=8)
def _script(url: str, source: str) -> Script:
    return fail_fast(url).register_script(source)
