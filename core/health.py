"""Liveness and readiness, as plain Django views: no auth, no throttling, no DRF overhead."""

import os
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from redis.backoff import NoBackoff
from redis.retry import Retry

from core import invalidation, redis_clients


@require_GET
def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True}


def _check_redis() -> dict[str, Any]:
    client = redis_clients.connect(
        settings.REDIS_URL, socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT_S,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT_S, retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
    finally:
        client.close()
    return {"ok": True}


READINESS_CHECKS = {"database": _check_database, "redis": _check_redis}


def _run(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result: dict[str, Any] = check()
    except Exception as exc:  # any failure means not ready; the class name is enough to act on
        result = {"ok": False, "error": type(exc).__name__}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def draining() -> bool:
    # The launcher (scripts/serve.py) creates this file when it is told to stop: load balancers see the
    # instance not ready and stop sending it new work while the requests in flight finish.
    return bool(settings.DRAIN_FILE) and os.path.exists(settings.DRAIN_FILE)


def readiness() -> tuple[bool, dict[str, dict[str, Any]]]:
    """(ready, each check's result): shared by /health/ready and /v2/health/ready."""
    if draining():
        return False, {"draining": {"ok": False, "error": "shutting down"}}
    checks = {name: _run(check) for name, check in READINESS_CHECKS.items()}
    return all(result["ok"] for result in checks.values()), checks


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    is_ready, checks = readiness()
    body = {"status": "ready" if is_ready else "not_ready", "checks": checks,
            # Not a condition of readiness: a process missing announcements keeps its caches short-lived
            # and stays correct. Shown for the process that answered, so a stuck listener can be seen.
            "cache_invalidation": invalidation.generations.state()}
    return JsonResponse(body, status=200 if is_ready else 503)
