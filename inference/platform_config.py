"""Platform configuration (the PlatformConfig row: cache on/off, TTL and size, the cap on loaded models) as
the hot path sees it: the row, read again when a change is announced (core/invalidation.py), or once a second
while this process may be missing announcements. Whoever applies a setting in this process (the prediction
cache's TTL and size) subscribes with on_change."""

import threading
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError

from core.invalidation import Freshness

# The heard TTL only bounds a lost announcement; reading the row costs a query and, in the fast lane, a
# trip through a thread, so once a second would send one prediction a second per process the slow way.
_freshness = Freshness("config", heard_ttl_s=60.0, deaf_ttl_s=1.0)
_lock = threading.Lock()
_cached: dict = {}
_stamp: tuple[int, float] | None = None
_listeners: list[Callable[[dict[str, Any], dict[str, Any]], None]] = []
DEFAULTS = {"cache_enabled": True, "cache_ttl_s": 300, "cache_capacity": 100_000, "max_loaded_models": 32}


def _load() -> dict:
    from inference.models import PlatformConfig

    row = PlatformConfig.objects.filter(pk=1).values(*DEFAULTS).first()
    return {**DEFAULTS, **(row or {})}


def fresh_config() -> dict | None:
    """The configuration when it needs no database read now (callers in an event loop), else None."""
    if _cached and _freshness.holds(_stamp):
        return _cached
    return None


def current_config() -> dict:
    global _cached, _stamp
    config = fresh_config()
    if config is not None:
        return config
    with _lock:
        config = fresh_config()  # another thread may have reloaded it while this one waited
        if config is not None:
            return config
        stamp, old = _freshness.stamp(), _cached
        try:
            config = _load()
        except DatabaseError:  # keep serving with the last known configuration
            config = _cached or dict(DEFAULTS)
        _cached, _stamp = config, stamp
    # Outside the lock: a listener may read the configuration itself (a prediction cache created now does).
    for listener in list(_listeners):
        listener(old, config)
    return config


def on_change(listener: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
    """Calls listener(old, new) after every reload in this process (old is {} on the first)."""
    if listener not in _listeners:
        _listeners.append(listener)

