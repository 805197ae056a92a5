"""Per-variant figures of routed requests, kept in Redis so every web process adds to the same totals.

The request path only appends a tuple to an in-process buffer (about a microsecond); a daemon thread
started lazily in each process (so a gunicorn fork never inherits a dead one) drains it every
FLUSH_INTERVAL_S, sums the events per experiment and variant, and writes them in ONE pipelined round
trip. One pipelined write per request would cost a Redis round trip (~0.1-0.3 ms on loopback, more
over a network) inside every routed request; measured in bench/bench_experiments.py.

Keys (sp:exp:{id}:...): `stats` (requests, errors by code, cache hits, latency histogram), `traffic`
(requests per minute and variant), `outcomes` (n, sum, sum of squares of feedback per variant), and one
`sp:exp:req:{request_id}` hash per recorded request (experiment, variant, predictions) for feedback,
expiring after FEEDBACK_TTL_S.
"""

from __future__ import annotations

import atexit
import bisect
import json
import logging
import os
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import redis
from django.conf import settings

from core import redis_clients

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.1
BUFFER_CAPACITY = 100_000
TRAFFIC_BUCKET_S = 60
# Latency histogram upper bounds: 0.1 ms growing by 25% per bucket up to ~60 s (2-3% error on quantiles).
LATENCY_BOUNDS_S = tuple(0.0001 * 1.25 ** i for i in range(61))
PREFIX = "sp:exp"

# Claims the feedback slot of a request and adds its outcome in one step, so a retried or duplicated
# feedback call can never count twice, and two processes racing on it cannot both win.
_FEEDBACK_SCRIPT = """
if redis.call('HSETNX', KEYS[1], 'fb', ARGV[1]) == 0 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
"""


def feedback_ttl_s() -> int:
    return int(getattr(settings, "EXPERIMENT_FEEDBACK_TTL_S", 7 * 24 * 3600))


@lru_cache(maxsize=1)
def client() -> redis.Redis:
    return redis_clients.connect(settings.REDIS_URL, socket_timeout=1.0, socket_connect_timeout=1.0)


def stats_key(experiment_id: int, kind: str) -> str:
    return f"{PREFIX}:{experiment_id}:{kind}"


def request_key(request_id: str) -> str:
    return f"{PREFIX}:req:{request_id}"


@dataclass(frozen=True, slots=True)
class Event:
    experiment_id: int
    variant: str
    shadow: bool
    error: str | None  # None for a served request, else the error code
    cached: bool
    seconds: float
    at: float
    request_id: str | None = None
    predictions: Any = None


class Recorder:
    def __init__(self, interval_s: float = FLUSH_INTERVAL_S, capacity: int = BUFFER_CAPACITY):
        self.interval_s = interval_s
        self._events: deque[Event] = deque(maxlen=capacity)
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._last_warning = 0.0
        self.lost = 0

    def add(self, event: Event) -> None:
        if len(self._events) == self._events.maxlen:
            self.lost += 1  # Redis has been unreachable for a while: the oldest events give way
        self._events.append(event)
        if self._pid != os.getpid():
            self._start()

    def _start(self) -> None:
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="experiment-recorder", daemon=True).start()
            # The daemon thread dies with the process; what it has not written yet is written on the way out.
            atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            self.flush()

    def discard(self) -> None:
        self._events.clear()

    def flush(self) -> int:
        """Writes what is buffered; returns the number of events written (0 when Redis failed)."""
        with self._flush_lock:
            events = self._drain()
            if not events:
                return 0
            try:
                _write(events)
            except redis.RedisError:
                self._warn(len(events))
                return 0
            return len(events)

    def _drain(self) -> list[Event]:
        events = []
        while True:
            try:
                events.append(self._events.popleft())
            except IndexError:
                return events

    def _warn(self, count: int) -> None:
        if time.monotonic() - self._last_warning > 10:
            self._last_warning = time.monotonic()
            logger.warning("experiment figures lost: Redis unavailable (%d events dropped)", count, exc_info=True)


def latency_bucket(seconds: float) -> int:
    return bisect.bisect_left(LATENCY_BOUNDS_S, seconds)


def _write(events: list[Event]) -> None:
    counters: dict[tuple[int, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    pipe = client().pipeline(transaction=False)
    ttl = feedback_ttl_s()
    for event in events:
        _count(counters, event)
        if event.request_id and event.error is None:
            _remember(pipe, event, event.request_id, ttl)
    for (experiment_id, kind), fields in counters.items():
        for field, amount in fields.items():
            pipe.hincrby(stats_key(experiment_id, kind), field, amount)
    pipe.execute()


def _count(counters: dict, event: Event) -> None:
    stats, name = counters[(event.experiment_id, "stats")], event.variant
    stats[f"{name}:requests"] += 1
    if event.error is not None:
        stats[f"{name}:errors"] += 1
        stats[f"{name}:err:{event.error}"] += 1
    elif event.cached:
        stats[f"{name}:cached"] += 1
    stats[f"{name}:lat:{latency_bucket(event.seconds)}"] += 1
    minute = int(event.at // TRAFFIC_BUCKET_S) * TRAFFIC_BUCKET_S
    counters[(event.experiment_id, "traffic")][f"{minute}:{name}"] += 1


def _remember(pipe, event: Event, request_id: str, ttl: int) -> None:
    key = request_key(request_id)
    predictions = json.dumps(event.predictions, separators=(",", ":")) if event.predictions is not None else ""
    if event.shadow:
        pipe.hset(key, f"s:{event.variant}", predictions)
    else:
        pipe.hset(key, mapping={"e": event.experiment_id, "v": event.variant, "p": predictions})
    pipe.expire(key, ttl)


@lru_cache(maxsize=1)
def _feedback_script():
    return client().register_script(_FEEDBACK_SCRIPT)


def count_dropped_shadow(experiment_id: int, variant: str) -> None:
    try:
        client().hincrby(stats_key(experiment_id, "stats"), f"{variant}:dropped", 1)
    except redis.RedisError:
        pass  # a lost count of a dropped shadow copy is not worth a client's time


def read(experiment_id: int) -> dict[str, dict[str, str]]:
    pipe = client().pipeline(transaction=False)
    kinds = ("stats", "traffic", "outcomes")
    for kind in kinds:
        pipe.hgetall(stats_key(experiment_id, kind))
    answers = pipe.execute()
    return {kind: {k.decode(): v.decode() for k, v in answer.items()} for kind, answer in zip(kinds, answers)}


def forget(experiment_id: int) -> None:
    client().delete(*(stats_key(experiment_id, kind) for kind in ("stats", "traffic", "outcomes")))


def request_record(request_id: str) -> dict[str, str] | None:
    # This client does not decode responses (redis-py types a reply as bytes or str, for either kind).
    raw = cast("dict[bytes, bytes]", client().hgetall(request_key(request_id)))
    record = {k.decode(): v.decode() for k, v in raw.items()}
    return record if "e" in record else None


def add_feedback(request_id: str, experiment_id: int, increments: dict[str, float], marker: str) -> bool:
    """Adds the outcome increments unless this request already has feedback; True when added."""
    args: list = [marker]
    for field, amount in increments.items():
        args.extend((field, repr(float(amount))))
    return bool(_feedback_script()(keys=[request_key(request_id), stats_key(experiment_id, "outcomes")], args=args))


recorder = Recorder()
