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
    config = fresh_config()
    if config is not None:
        return config
    with _lock:
        config = fresh_config()  # another thread may have reloaded it while this one waited
        if config is None:
            try:
                config = _load()
            except DatabaseError:  # keep serving with the last known configuration
                config = _cached or dict(DEFAULTS)
            _apply_to_cache(_cached, config)
            _cached, _loaded_at = config, time.monotonic()
    return config


def _apply_to_cache(old: dict, new: dict) -> None:
    if old and (old["cache_ttl_s"], old["cache_capacity"]) != (new["cache_ttl_s"], new["cache_capacity"]):
        from inference.serving import prediction_cache

        prediction_cache().configure(ttl_s=new["cache_ttl_s"], capacity=new["cache_capacity"])


def invalidate() -> None:
    global _loaded_at
    _loaded_at = 0.0
