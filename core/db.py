"""Database connections of threads outside Django's request cycle (thread pools), which never sees them."""
from typing import Any

from django.db import close_old_connections, connections


def closing_connections(function: Any, *args: Any) -> Any:
    """function(*args), then this thread's connections closed, if it opened any: for large pools that seldom
    need the database, so their size does not become the process's connection count."""
    try:
        return function(*args)
    finally:
        connections.close_all()


def keeping_connections(function: Any, *args: Any) -> Any:
    """function(*args), then what Django's request_finished signal does: the connection is closed once it is
    older than CONN_MAX_AGE or broken, else kept for the thread's next call (opening one costs ~1 ms)."""
    try:
        return function(*args)
    finally:
        close_old_connections()
