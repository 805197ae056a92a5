# The prediction cache, shared by every web process through Redis. Keys come from
# inputs.canonical_key(f"{version_id}:{sha256}", rows, params), so an entry can only ever answer the exact
# model version and inputs that produced it; this module never interprets keys or values.
#
# Layout (one hash tag, so a Redis Cluster keeps them in one slot and scripts may touch them all):
#   {ns}:e:<key>  the cached bytes, with the TTL            {ns}:index  sorted set key -> insertion µs
#   {ns}:stats    hash of hits / misses / evictions
#
# Writes are Lua scripts, not MULTI: a transaction cannot feed the members ZRANGE picks for eviction into
# the DEL of their entries, and a script does set + index + prune + trim atomically in one round trip.
# Time comes from the Redis server (TIME), so web hosts with skewed clocks agree on what expired.
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from redis.typing import EncodableT

logger = logging.getLogger(__name__)

_WARNING_INTERVAL_S = 10.0
_COUNTERS = ("size", "hits", "misses", "hit_rate", "evictions")

_GET = """
local value = redis.call('GET', KEYS[1])
redis.call('HINCRBY', KEYS[2], value and 'hits' or 'misses', 1)
return value
"""

# Drops index members whose entries expired (they must not count toward the size), then evicts the
# oldest live members beyond capacity. Shared by _SET and _STATS; returns how many were evicted.
_TRIM = """
-- Microseconds, not ms: entries set within one ms must still evict in insertion order, and
-- 1.7e15 is well inside a double's exact integers.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function trim(index, stats, entry_prefix, ttl_ms, capacity, now)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now - ttl_ms * 1000)
  local excess = redis.call('ZCARD', index) - capacity
  if excess <= 0 then
    return 0
  end
  local victims = redis.call('ZRANGE', index, 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', index, 0, excess - 1)
  for first = 1, #victims, 500 do
    local keys = {}
    for i = first, math.min(first + 499, #victims) do
      keys[#keys + 1] = entry_prefix .. victims[i]
    end
    redis.call('UNLINK', unpack(keys))
  end
  redis.call('HINCRBY', stats, 'evictions', excess)
  return excess
end
"""

# KEYS: index, stats, entry. ARGV: value, ttl_ms, capacity, member, entry_prefix.
_SET = (
    _TRIM
    + """
local ttl_ms = tonumber(ARGV[2])
local now = now_us()
redis.call('SET', KEYS[3], ARGV[1], 'PX', ttl_ms)
redis.call('ZADD', KEYS[1], now, ARGV[4])
-- Every member is younger than ttl_ms, so an idle namespace's index vanishes with its last entry.
redis.call('PEXPIRE', KEYS[1], ttl_ms)
return trim(KEYS[1], KEYS[2], ARGV[5], ttl_ms, tonumber(ARGV[3]), now)
"""
)

# KEYS: index, stats. ARGV: ttl_ms, capacity, entry_prefix. Returns size, hits, misses, evictions.
_STATS = (
    _TRIM
    + """
trim(KEYS[1], KEYS[2], ARGV[3], tonumber(ARGV[1]), tonumber(ARGV[2]), now_us())
local counters = redis.call('HMGET', KEYS[2], 'hits', 'misses', 'evictions')
return {redis.call('ZCARD', KEYS[1]), counters[1] or 0, counters[2] or 0, counters[3] or 0}
"""
)


class PredictionCache:
    """Bytes by key with a TTL and a size bound; every Redis failure reads as a miss, never an error.

    Give it a client built with `retry=None`-like settings and a short socket timeout: redis-py's
    default retries back off for seconds, which a request would wait out before failing open.
    `configure` changes this process's settings only; callers that persist settings apply them in
    each process.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "sp:predcache",
        ttl_s: int,
        capacity: int,
        retry_after_s: float = 1.0,
    ) -> None:
        if client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("the prediction cache stores bytes; give it a client without decode_responses")
        self._client = client
        self._prefix = f"{{{namespace}}}:"
        self._index = self._prefix + "index"
        self._stats = self._prefix + "stats"
        self._ttl_s = _positive("ttl_s", ttl_s)
        self._capacity = _positive("capacity", capacity)
        self._retry_after_s = retry_after_s
        self._get = client.register_script(_GET)
        self._set = client.register_script(_SET)
        self._stats_script = client.register_script(_STATS)
        self._down_until = 0.0
        self._warned_at = float("-inf")
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        if self._is_down():
            return None
        try:
            value: bytes | None = self._run_get(key)
        except redis.RedisError as error:
            self._failed("get", error)
            return None
        return value

    def set(self, key: str, value: bytes) -> None:
        if self._is_down():
            return
        try:
            self._run_set(key, value)
        except redis.RedisError as error:
            self._failed("set", error)

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        """get() for each key, in one round trip (one pipeline of the same script)."""
        if not keys or self._is_down():
            return [None] * len(keys)
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            self._run_get(key, pipe)
        try:
            return list(pipe.execute())
        except redis.RedisError as error:
            self._failed("get", error)
            return [None] * len(keys)

    def set_many(self, items: list[tuple[str, bytes]]) -> None:
        """set() for each (key, value), in one round trip."""
        if not items or self._is_down():
            return
        pipe = self._client.pipeline(transaction=False)
        for key, value in items:
            self._run_set(key, value, pipe)
        try:
            pipe.execute()
        except redis.RedisError as error:
            self._failed("set", error)

    def _run_get(self, key: str, client: Any = None) -> Any:
        # One EVALSHA on the client, or queued on a pipeline (`client`).
        return self._get(keys=[self._entry(key), self._stats], client=client)

    def _run_set(self, key: str, value: bytes, client: Any = None) -> Any:
        args: list[EncodableT] = [value, self._ttl_s * 1000, self._capacity, key, self._prefix + "e:"]
        return self._set(keys=[self._index, self._stats, self._entry(key)], args=args, client=client)

    def stats(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"capacity": self._capacity, "ttl_s": self._ttl_s}
        unavailable = {"available": False, **summary, **dict.fromkeys(_COUNTERS)}
        if self._is_down():
            return unavailable
        try:
            size, hits, misses, evictions = (int(n) for n in self._run_stats())
        except redis.RedisError as error:
            self._failed("stats", error)
            return unavailable
        lookups = hits + misses
        hit_rate = hits / lookups if lookups else 0.0
        counts = dict(zip(_COUNTERS, (size, hits, misses, hit_rate, evictions)))
        return {"available": True, **summary, **counts}

    def clear(self) -> int:
        """Removes every entry and resets the counters. Raises redis.RedisError: an operator asked for it."""
        removed = 0
        pattern = _glob_escape(self._prefix) + "e:*"
        for batch in _batches(self._client.scan_iter(match=pattern, count=1000), 1000):
            removed += int(self._client.unlink(*batch))
        self._client.delete(self._index, self._stats)
        return removed

    def configure(self, ttl_s: int | None = None, capacity: int | None = None) -> None:
        """New entries get the new TTL; a smaller capacity evicts at once (best effort when Redis is down)."""
        if ttl_s is not None:
            self._ttl_s = _positive("ttl_s", ttl_s)
        if capacity is not None:
            self._capacity = _positive("capacity", capacity)
            self.stats()  # trims to the new capacity now rather than at the next set

    def _run_stats(self) -> list[Any]:
        args: list[EncodableT] = [self._ttl_s * 1000, self._capacity, self._prefix + "e:"]
        counts: list[Any] = self._stats_script(keys=[self._index, self._stats], args=args)
        return counts

    def _entry(self, key: str) -> str:
        return f"{self._prefix}e:{key}"

    def _is_down(self) -> bool:
        # After a failure, skip Redis for a moment: otherwise every request pays a connect timeout.
        return time.monotonic() < self._down_until

    def _failed(self, operation: str, error: redis.RedisError) -> None:
        now = time.monotonic()
        self._down_until = now + self._retry_after_s
        with self._lock:
            if now - self._warned_at < _WARNING_INTERVAL_S:
                return
            self._warned_at = now
        logger.warning("prediction cache unavailable during %s, serving without it: %r", operation, error)


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer")
    return value


def _glob_escape(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


def _batches(items: Any, size: int) -> Any:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
