"""Model server instances' announcements in Redis: written by each model server every tick, read by every web
and jobs process in the background (runtime/web/router.py), never on a request's path.

One key per instance, with a short TTL, so a killed instance disappears by itself; a set names the instances
ever seen, so readers fetch them all in two round trips without scanning the keyspace.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from inference.runtime.contract.gateway import GatewayAuth, client_tls

INSTANCES_KEY = "sp:ms:instances"
# Longer than a tick and the readers' refresh together, short enough that a dead instance leaves the routes
# within seconds even if no caller has tried to reach it.
ANNOUNCEMENT_TTL_S = 4


def instance_key(name: str) -> str:
    return f"sp:ms:instance:{name}"


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5,
                                retry=Retry(NoBackoff(), 0))


def announce(announcement: Mapping[str, Any]) -> None:
    """Raises redis.RedisError when Redis cannot be reached (the model server logs it and carries on)."""
    name = str(announcement["name"])
    pipe = _redis().pipeline(transaction=False)
    pipe.sadd(INSTANCES_KEY, name)
    pipe.set(instance_key(name), json.dumps(announcement, separators=(",", ":")), ex=ANNOUNCEMENT_TTL_S)
    pipe.execute()


def withdraw(name: str) -> None:
    pipe = _redis().pipeline(transaction=False)
    pipe.delete(instance_key(name))
    pipe.srem(INSTANCES_KEY, name)
    pipe.execute()


def fetch_all() -> list[dict[str, Any]]:
    client = _redis()
    names = sorted(member.decode() for member in client.smembers(INSTANCES_KEY))  # type: ignore[union-attr]
    if not names:
        return []
    values = client.mget([instance_key(name) for name in names])
    return [json.loads(value) for value in values if value]


@lru_cache(maxsize=1)
def gateway_auth() -> GatewayAuth | None:
    """How this process connects to other instances' gateways; None without MODEL_SERVER_SECRET."""
    if not settings.MODEL_SERVER_SECRET:
        return None
    # The certificate, when given, is shown to gateways that ask for one (MODEL_SERVER_TLS_CA on their side).
    return GatewayAuth(settings.MODEL_SERVER_SECRET.encode(), client_tls(
        settings.MODEL_SERVER_TLS_CERT, settings.MODEL_SERVER_TLS_KEY, settings.MODEL_SERVER_TLS_CA))
