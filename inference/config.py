"""Platform configuration as the hot path sees it: the DB row, re-read at most once a second."""

import threading
import time

from django.db import DatabaseError

_TTL_S = 1.0
_lock = threading.Lock()
_cached: dict = {}
_loaded_at = 0.0
DEFAULTS = {"cache_enabled": True, "cache_ttl_s": 300, "cache_capacity": 100_000, "max_loaded_models": 32}


def _load() -> dict:
    from inference.models import PlatformConfig

    row = PlatformConfig.objects.filter(pk=1).values(*DEFAULTS).first()
    return {**DEFAULTS, **(row or {})}


def fresh_config() -> dict | None:
    """The configuration when it needs no database read now (callers in an event loop), else None."""
    if _cached and time.monotonic() - _loaded_at < _TTL_S:
        return _cached
    return None


def current_config() -> dict:
    global _cached, _loaded_at
    if time.monotonic() - _loaded_at < _TTL_S and _cached:
        return _cached
    with _lock:
        if time.monotonic() - _loaded_at >= _TTL_S or not _cached:
            try:
                fresh = _load()
            except DatabaseError:  # keep serving with the last known configuration
                fresh = _cached or dict(DEFAULTS)
            _apply_to_cache(_cached, fresh)
            _cached, _loaded_at = fresh, time.monotonic()
    return _cached


def _apply_to_cache(old: dict, new: dict) -> None:
    if old and (old["cache_ttl_s"], old["cache_capacity"]) != (new["cache_ttl_s"], new["cache_capacity"]):
        from inference.serving import prediction_cache

        prediction_cache().configure(ttl_s=new["cache_ttl_s"], capacity=new["cache_capacity"])


def invalidate() -> None:
    global _loaded_at
    _loaded_at = 0.0
