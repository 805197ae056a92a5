"""Platform configuration as the hot path sees it: the DB row, read again when a change is announced
(core/invalidation.py), or once a second while this process may be missing announcements."""

import threading

from django.db import DatabaseError

from core.invalidation import Freshness

# The heard TTL only bounds a lost announcement; reading the row costs a query and, in the fast lane, a
# trip through a thread, so once a second would send one prediction a second per process the slow way.
_freshness = Freshness("config", heard_ttl_s=60.0, deaf_ttl_s=1.0)
_lock = threading.Lock()
_cached: dict = {}
_stamp: tuple[int, float] | None = None
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
    # Outside the lock: a process that has no prediction cache yet creates it here, reading this module.
    _apply_to_cache(old, config)
    return config


def _apply_to_cache(old: dict, new: dict) -> None:
    if old and (old["cache_ttl_s"], old["cache_capacity"]) != (new["cache_ttl_s"], new["cache_capacity"]):
        from inference.serving import prediction_cache

        prediction_cache().configure(ttl_s=new["cache_ttl_s"], capacity=new["cache_capacity"])

