"""Every Redis client of the platform is made here, so REDIS_URL may name a plain server or a Sentinel service.

A Sentinel service is named `redis+sentinel://[[user]:password@]host:port[,host:port...]/<service>[/<db>]`
(settings.py also builds one from REDIS_SENTINELS + REDIS_SERVICE). The credentials authenticate to the
master and to the sentinels alike: anything reachable over the network asks for them. Clients of a Sentinel
service ask the sentinels for the current master on every new connection, so after a failover the next
command reaches the promoted replica.
"""

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelService:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def credentials(self) -> dict[str, Any]:
        return {"username": self.username, "password": self.password}


def is_sentinel(url: str) -> bool:
    return url.startswith(f"{SENTINEL_SCHEME}://")


def parse_sentinel(url: str) -> SentinelService:
    """Raises ValueError naming what is wrong (settings turn it into ImproperlyConfigured)."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    sentinels = tuple(_host_port(item) for item in hosts.split(",") if item)
    path = [segment for segment in parts.path.split("/") if segment]
    if not sentinels or not path or len(path) > 2:
        raise ValueError("expected redis+sentinel://[:password@]host:port[,host:port]/<service>[/<db>]")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"the database {path[1]!r} is not a number")
    return SentinelService(sentinels=sentinels, service=unquote(path[0]), db=int(path[1]) if len(path) == 2 else 0,
                           username=unquote(parts.username) if parts.username else None,
                           password=unquote(parts.password) if parts.password else None)


def _host_port(item: str) -> tuple[str, int]:
    host, _, port = item.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"the sentinel {item!r} is not host:port")
    return host.strip("[]"), int(port)


def sentinel_url(sentinels: str, service: str, *, password: str = "", db: int = 0) -> str:
    auth = f":{password}@" if password else ""
    return f"{SENTINEL_SCHEME}://{auth}{sentinels}/{service}/{db}"


def db_number(url: str) -> int:
    if is_sentinel(url):
        return parse_sentinel(url).db
    return int(redis.connection.parse_url(url).get("db", 0))  # type: ignore[no-untyped-call]  # unannotated


def redacted(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{parts.netloc.rpartition('@')[2]}").geturl()


def _sentinel_pool(url: str, **kwargs: Any) -> SentinelConnectionPool:
    service = parse_sentinel(url)
    timeouts: dict[str, Any] = {key: kwargs[key] for key in ("socket_timeout", "socket_connect_timeout")
                                if key in kwargs}
    manager = Sentinel(list(service.sentinels), sentinel_kwargs={**service.credentials(), **timeouts})
    return SentinelConnectionPool(  # type: ignore[no-untyped-call]  # unannotated in redis-py
        service.service, manager, **service.credentials(), db=service.db, **kwargs)


class UrlConnectionPool(redis.ConnectionPool):
    """A `pool_class` for Django's RedisCache: `from_url` that understands Sentinel services too."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Any:
        if is_sentinel(url):
            return _sentinel_pool(url, **kwargs)
        return redis.ConnectionPool.from_url(url, **kwargs)


def connect(url: str, **kwargs: Any) -> redis.Redis:
    """A client for REDIS_URL (plain or Sentinel) with the given socket options."""
    if is_sentinel(url):
        # With a pool given, redis-py takes the retry policy from the pool's connection options.
        return redis.Redis(connection_pool=_sentinel_pool(url, **kwargs))
    return redis.Redis.from_url(url, **kwargs)


def rq_connection(url: str, socket_timeout_s: float) -> dict[str, Any]:
    """django-rq's connection settings for one queue (RQ_QUEUES)."""
    if not is_sentinel(url):
        return {"URL": url}
    service = parse_sentinel(url)
    return {"SENTINELS": list(service.sentinels), "MASTER_NAME": service.service, "DB": service.db,
            "PASSWORD": service.password, "SOCKET_TIMEOUT": None,
            "CONNECTION_KWARGS": {"username": service.username, "socket_connect_timeout": socket_timeout_s},
            "SENTINEL_KWARGS": {**service.credentials(), "socket_timeout": socket_timeout_s,
                                "socket_connect_timeout": socket_timeout_s}}


@lru_cache(maxsize=4)
def fail_fast(url: str) -> redis.Redis:
    """A shared client without retries: a down Redis must cost its callers one timeout, not several (they
    fail open: throttling, announcing cache invalidations)."""
    from django.conf import settings

    return connect(url, socket_timeout=settings.REDIS_SOCKET_TIMEOUT_S,
                   socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT_S, retry=Retry(NoBackoff(), 0))
