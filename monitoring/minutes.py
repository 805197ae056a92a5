"""Open minutes in Redis: every web process (on every host) adds its requests to the same per-minute hashes, so
the figures are whole however many processes served; the scheduler moves closed minutes into the database
(services/history.py) and readers merge both.

Keys: `sp:mon:m:{endpoint}:{version}:{minute}` (a hash of Figures fields, expiring after a day if never rolled
up), indexed by minute in the sorted set `sp:mon:m:index`, so readers and the roll-up find them without SCAN.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import redis
from django.conf import settings

from core import redis_clients
from monitoring.figures import SUMS, Figures

PREFIX = "sp:mon:m"
INDEX = f"{PREFIX}:index"
KEY_TTL_S = 86_400
MINUTE_S = 60

# Takes a minute's hash and forgets it in one step: a process adding to it meanwhile starts a new hash, which a
# later roll-up adds to the same database row, so nothing is counted twice or lost.
_CLAIM = """
local fields = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
return fields
"""

Slot = tuple[str, int, int]  # (endpoint, version, minute as epoch seconds)


@lru_cache(maxsize=1)
def client() -> redis.Redis:
    return redis_clients.connect(settings.REDIS_URL, socket_timeout=2.0, socket_connect_timeout=2.0)


def minute_of(at: float) -> int:
    return int(at // MINUTE_S) * MINUTE_S


def key(slot: Slot) -> str:
    endpoint, version, minute = slot
    return f"{PREFIX}:{endpoint}:{version}:{minute}"


def slot_of(name: str) -> Slot:
    endpoint, version, minute = name[len(PREFIX) + 1:].rsplit(":", 2)
    return endpoint, int(version), int(minute)


def add(figures: dict[Slot, Figures]) -> None:
    """One pipelined round trip for everything a process buffered."""
    pipe = client().pipeline(transaction=False)
    for slot, counted in figures.items():
        name = key(slot)
        for field, amount in counted.as_fields().items():
            if field in SUMS:
                pipe.hincrbyfloat(name, field, amount)
            else:
                pipe.hincrby(name, field, int(amount))
        pipe.expire(name, KEY_TTL_S)
        pipe.zadd(INDEX, {name: slot[2]})
    pipe.execute()


def read(endpoint: str, start: int, end: int) -> dict[Slot, Figures]:
    """The open minutes of `endpoint` in [start, end] (epoch seconds)."""
    names = [_text(name) for name in client().zrangebyscore(INDEX, start, end)]
    names = [name for name in names if slot_of(name)[0] == endpoint]
    if not names:
        return {}
    pipe = client().pipeline(transaction=False)
    for name in names:
        pipe.hgetall(name)
    return {slot_of(name): Figures.from_fields(raw) for name, raw in zip(names, pipe.execute()) if raw}


def closed_before(minute: int) -> list[Slot]:
    return [slot_of(_text(name)) for name in client().zrangebyscore(INDEX, "-inf", f"({minute}")]


def _text(name: object) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def claim(slots: Iterable[Slot]) -> dict[Slot, Figures]:
    script = client().register_script(_CLAIM)
    claimed = {}
    for slot in slots:
        flat = script(keys=[key(slot), INDEX])
        if flat:
            claimed[slot] = Figures.from_fields(dict(zip(flat[::2], flat[1::2])))
    return claimed


def give_back(figures: dict[Slot, Figures]) -> None:
    """Claimed figures that could not be stored: added again, for the next roll-up."""
    add(figures)
