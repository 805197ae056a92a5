"""Waits, at a container's start, until what it needs answers: WAIT_FOR lists any of `database`, `redis` and
`migrations` (all applied), WAIT_TIMEOUT_S bounds the wait (default 300). Run by docker/entrypoint.sh.

Compose's `depends_on: condition` is ignored by podman-compose 1.0.3 and Kubernetes starts pods in any order,
so each container waits for itself instead of crashing and being restarted until its turn comes. A database or
Redis that is not configured (DATABASE_URL / REDIS_URL unset: the embedded SQLite and private Redis) is not
waited for.
"""

import os
import sys
import time

TARGETS = ("database", "redis", "migrations")


def _setup_django() -> None:
    sys.path.insert(0, os.getcwd())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servingplatform.settings")
    import django

    django.setup()


def database() -> None:
    from django.db import connection

    connection.ensure_connection()
    connection.close()


def redis() -> None:
    from django.conf import settings

    from core import redis_clients

    client = redis_clients.connect(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def migrations() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    connection.close()
    if pending:
        raise RuntimeError(f"{len(pending)} migrations not applied yet")


def wanted() -> list[str]:
    names = [name.strip() for name in os.environ.get("WAIT_FOR", "").split(",") if name.strip()]
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        sys.exit(f"[wait_for] WAIT_FOR: unknown {', '.join(unknown)} (allowed: {', '.join(TARGETS)})")
    configured = {"database": "DATABASE_URL", "redis": "REDIS_URL", "migrations": "DATABASE_URL"}
    return [name for name in names if os.environ.get(configured[name]) or os.environ.get(f"{configured[name]}_FILE")]


def main() -> int:
    targets = wanted()
    if not targets:
        return 0
    _setup_django()
    deadline = time.monotonic() + float(os.environ.get("WAIT_TIMEOUT_S", "300"))
    checks = {"database": database, "redis": redis, "migrations": migrations}
    for name in targets:
        last_said = 0.0
        while True:
            try:
                checks[name]()
                break
            except Exception as exc:  # any failure means "not yet"; the class and message say why
                now = time.monotonic()
                if now > deadline:
                    print(f"[wait_for] gave up waiting for {name}: {type(exc).__name__}: {exc}", flush=True)
                    return 1
                if now - last_said > 10:
                    print(f"[wait_for] waiting for {name}: {type(exc).__name__}: {exc}", flush=True)
                    last_said = now
                time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
