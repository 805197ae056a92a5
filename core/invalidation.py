"""Tells every process when something it may have cached changed, so per-process caches can skip the
database on hot paths without answering with what a write just replaced.

A writer calls `announce(topic)` inside its transaction. Once the transaction commits, one Redis
PUBLISH reaches a listener thread in every process, which bumps the topic's generation. A
`GenerationCache` keeps each entry with the generation it was read under and trusts it only while
that generation holds, so a read that raced a write is dropped, never kept. When the listener loses
Redis it may miss messages: it bumps every topic, and again when it is back. Entries also expire
after their own TTL, which bounds the harm of a PUBLISH lost to a timeout.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from prometheus_client import Counter

from core import redis_clients

logger = logging.getLogger(__name__)

TOPICS = ("api_keys", "registry", "config", "experiments")
_HEALTH_CHECK_S = 5.0
_RETRY_MAX_S = 10.0

# A counter, not a gauge: it sums correctly over every process, those that exited included.
OUTAGES = Counter("sp_invalidation_outages", "Times a process's cache invalidation listener lost Redis "
                  "(its caches fell back to short lifetimes until it was back)")


def _channel() -> str:
    # Redis delivers a channel's messages to subscribers of every database: name the database in it,
    # so two deployments (or a test run) sharing one server never bump each other's caches.
    db = redis_clients.db_number(settings.REDIS_URL)
    return f"sp:invalidate:{db}"


class _Generations:
    """This process's generation per topic, and the listener thread that moves them."""

    def __init__(self) -> None:
        self._counts = dict.fromkeys(TOPICS, 0)
        self._after_fork()
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        # A forked child has no listener thread (and maybe a lock another thread held): it starts
        # deaf, and bumps rather than resets so entries copied from the parent can never match again.
        self._lock = threading.Lock()
        self._listening = False
        self._deaf_since = time.monotonic()
        self._thread: threading.Thread | None = None
        self._for_good = False
        self.bump()

    def current(self, topic: str) -> int:
        if self._thread is None:
            self._start()
        return self._counts[topic]

    def stay_deaf(self) -> None:
        """Never listen in this process: one too short-lived to be worth a thread, a Redis connection and
        a SUBSCRIBE (an RQ work horse runs one job). Its caches stay correct: deaf, they keep nothing, or
        keep it for their deaf TTL."""
        self._for_good = True

    @property
    def listening(self) -> bool:
        """False while this process may be missing messages. Every change of this bumps every topic."""
        return self._listening

    def state(self) -> dict[str, Any]:
        """For /health/ready: whether this process hears changes, and for how long it has not."""
        if self._thread is None and self._start():  # nothing cached yet: it listens now, give it a moment
            give_up_at = time.monotonic() + 1.0
            while not self._listening and time.monotonic() < give_up_at:
                time.sleep(0.01)
        deaf_for = None if self._listening else round(time.monotonic() - self._deaf_since, 1)
        return {"listening": self._listening, "deaf_for_s": deaf_for}

    def bump(self, *topics: str) -> None:
        with self._lock:
            for topic in topics or TOPICS:
                if topic in self._counts:
                    self._counts[topic] += 1

    def _start(self) -> bool:
        """Starts the listener unless one runs or this process stays deaf; True if this call started it."""
        with self._lock:
            if self._thread is not None or self._for_good:
                return False
            self._deaf_since = time.monotonic()  # deaf from now on until it subscribes, not since start-up
            self._thread = threading.Thread(target=self._listen, name="invalidation-listener", daemon=True)
            self._thread.start()
            return True

    def _listen(self) -> None:
        delay, logged = 0.5, False
        while True:
            try:
                self._listen_once()
            except Exception as exc:  # noqa: BLE001 - any failure means messages may be missed
                if self._listening:  # it was up: a new outage
                    delay, logged = 0.5, False
                    self._deaf_since = time.monotonic()
                if not logged:  # once an outage, not once a retry
                    OUTAGES.inc()
                    logger.warning("cannot hear cache invalidations from Redis (%s): per-process caches are "
                                   "bypassed or bounded by their TTL until it is back", exc)
                    logged = True
            self._listening = False
            self.bump()
            time.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_S)

    def _listen_once(self) -> None:
        client = redis_clients.connect(settings.REDIS_URL, socket_timeout=_HEALTH_CHECK_S * 2,
                                      socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT_S,
                                      health_check_interval=_HEALTH_CHECK_S)
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(_channel())
            while True:
                # get_message PINGs every _HEALTH_CHECK_S, so a silently dead connection raises.
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    self.bump()  # anything cached before now may have missed a message
                    self._listening = True
                elif message["type"] == "message":
                    self.bump(message["data"].decode())
        finally:
            pubsub.close()
            client.close()


generations = _Generations()


def _known(topic: str) -> str:
    if topic not in TOPICS:
        raise ValueError(f"unknown invalidation topic {topic!r}")
    return topic


def announce(topic: str) -> None:
    """Marks `topic` changed: at once in this process, and in every process once the transaction commits."""
    generations.bump(_known(topic))
    transaction.on_commit(lambda: _publish(topic))


def _publish(topic: str) -> None:
    # Bumped again here: a reader in this process may have cached the old row between announce and commit.
    generations.bump(topic)
    try:
        redis_clients.fail_fast(settings.REDIS_URL).publish(_channel(), topic)
    except redis.RedisError as exc:
        logger.warning("could not announce a change of %s to other processes (%s); their caches hold "
                       "the old value until it expires", topic, exc)


def forget_all() -> None:
    """Drops every entry of every GenerationCache in this process (tests; a database reset)."""
    generations.bump()


class Freshness:
    """Whether a value loaded whole (a settings row, a routing table) may still be used: while its topic
    is unchanged, for `heard_ttl_s` while this process hears announcements and `deaf_ttl_s` while it may
    be missing them. Take the stamp *before* loading, as GenerationCache.put wants its generation."""

    def __init__(self, topic: str, *, heard_ttl_s: float, deaf_ttl_s: float) -> None:
        self.topic, self.heard_ttl_s, self.deaf_ttl_s = _known(topic), heard_ttl_s, deaf_ttl_s

    def stamp(self) -> tuple[int, float]:
        return generations.current(self.topic), time.monotonic()

    def holds(self, stamp: tuple[int, float] | None) -> bool:
        if stamp is None:
            return False
        generation, loaded_at = stamp
        ttl = self.heard_ttl_s if generations.listening else self.deaf_ttl_s
        return generation == generations.current(self.topic) and time.monotonic() - loaded_at < ttl


_MISSING = object()


class GenerationCache:
    """A bounded per-process map whose entries hold while their topic's generation does, at most ttl_s.

    Read the generation *before* the lookup that fills an entry: `put` then refuses a value that a
    write may have replaced meanwhile. With `while_deaf` False nothing is kept or trusted while the
    process is not listening; with it True entries hold for their TTL then too, and since the listener
    bumps every topic when it drops or returns, none outlives such a change.
    """

    def __init__(self, topic: str, ttl_s: Callable[[], float], *, while_deaf: bool, max_entries: int = 10_000):
        self.topic, self._ttl_s, self._while_deaf, self._max = topic, ttl_s, while_deaf, max_entries
        self._entries: dict[Hashable, tuple[Any, int, float]] = {}
        self._lock = threading.Lock()

    def generation(self) -> int:
        return generations.current(self.topic)

    def get(self, key: Hashable, default: Any = None) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return default
        value, generation, expires = entry
        if generation != generations.current(self.topic) or expires <= time.monotonic():
            return default
        if not (self._while_deaf or generations.listening):
            return default
        return value

    def put(self, key: Hashable, value: Any, generation: int) -> None:
        ttl = self._ttl_s()
        if ttl <= 0 or not (self._while_deaf or generations.listening):
            return
        if generation != generations.current(self.topic):
            return  # a write landed while the value was being read
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[key] = (value, generation, time.monotonic() + ttl)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def cached(self, key: Hashable, lookup: Callable[[], Any]) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            generation = self.generation()
            value = lookup()
            self.put(key, value, generation)
        return value
