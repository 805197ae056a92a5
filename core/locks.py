"""A lock held across processes and hosts, for the steps that must run once per database (migrations, seeding)."""

import fcntl
import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

logger = logging.getLogger(__name__)


@contextmanager
def database_lock(name: str) -> Iterator[None]:
    """Held by one process at a time per database: PostgreSQL's advisory lock (any host), on SQLite a file lock
    next to the database file (one host, which is all SQLite serves). Both are released by the server or the
    kernel if the holder dies, so a crashed instance never leaves the others waiting for ever."""
    if connection.vendor == "postgresql":
        with _advisory_lock(zlib.crc32(f"servingplatform:{name}".encode())):
            yield
    elif connection.vendor == "sqlite":
        with _file_lock(Path(f"{connection.settings_dict['NAME']}.{name}.lock")):
            yield
    else:
        logger.warning("no cross-process lock for %s databases: %s runs unguarded", connection.vendor, name)
        yield


@contextmanager
def _advisory_lock(key: int) -> Iterator[None]:
    # Session-level: held across the transactions the guarded steps commit, on this very connection.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
