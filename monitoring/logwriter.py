"""The prediction log between the web processes and the database.

A web process's flusher pushes what it sampled to one Redis list, a JSON batch per flush (`push`: the rows the
hot path encoded, joined, in one round trip); whoever needs the rows in the database moves them there
(`drain`): the scheduler's job every PREDICTION_LOG_WRITE_S, and every reader of the log first (the list, the
exports, feedback, quality, drift), so what a client logged a second ago is there when it asks. The database
insert (~20 us of CPU a row on the benchmark machine, SQLite) is never paid in a process that serves
predictions, nor under its GIL. The list keeps the newest PREDICTION_LOG_BUFFER_BATCHES batches: with no drain
for that long (the scheduler down) the oldest give way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson
import redis
from django.conf import settings
from django.db import DataError, IntegrityError, InterfaceError, OperationalError, connection, transaction

from core import redis_clients
from monitoring.models import PredictionLog

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from inference.predict.contract import PredictRequest, Route

KEY = "sp:mon:log"
OUTPUT_FIELDS = ("predictions", "probabilities", "classes", "uncertainty")
POP = 100  # batches per round trip of a drain
# The columns a drain writes, in the order of each pushed row's values.
FIELDS = ("request_id", "endpoint", "model_version", "version", "variant", "subject_id", "created_at", "inputs",
          "outputs", "latency_ms", "cached")


@lru_cache(maxsize=1)
def client() -> redis.Redis:
    return redis_clients.connect(settings.REDIS_URL, socket_timeout=5.0, socket_connect_timeout=2.0)


def encode(route: Route, request: PredictRequest, response: dict[str, Any], rows: list[Any], at: float,
           seconds: float, cached: bool) -> bytes:
    """One sampled request as the JSON of its row, on the hot path (~1 us with orjson: the standard library took
    ~10). Bytes hold no references, so a second of buffered requests costs the garbage collector nothing; NaN and
    infinities become null, which JSON columns (jsonb, SQLite's JSON check) require."""
    outputs = {name: response[name] for name in OUTPUT_FIELDS if name in response}
    return orjson.dumps([str(response["request_id"])[:128], route.endpoint, route.model_version_id, route.version,
                         (request.variant or "")[:64], (request.subject_id or "")[:128], at, rows, outputs,
                         round(seconds * 1000, 3), cached], default=_jsonable, option=orjson.OPT_SERIALIZE_NUMPY)


def push(encoded: Sequence[bytes]) -> None:
    pipe = client().pipeline(transaction=False)
    pipe.rpush(KEY, b"[" + b",".join(encoded) + b"]")
    pipe.ltrim(KEY, -settings.PREDICTION_LOG_BUFFER_BATCHES, -1)
    pipe.execute()


def _jsonable(value: Any) -> Any:
    # What JSON does not know: its Python equivalent (a NumPy array's list), else its text.
    return value.tolist() if hasattr(value, "tolist") else str(value)


def drain() -> int:
    """Moves every pushed row into the database; returns how many. While the database is unreachable the batches
    go back to the head of the list, for the next drain, and the error is raised."""
    written = 0
    while blobs := _pop():
        try:
            written += write([row for blob in blobs for row in orjson.loads(blob)])
        except (OperationalError, InterfaceError):
            client().lpush(KEY, *reversed(blobs))
            raise
        if len(blobs) < POP:
            break
    return written


def _pop() -> list[bytes]:
    popped = client().lpop(KEY, POP)
    return [blob for blob in popped if isinstance(blob, bytes)] if isinstance(popped, list) else []


def write(rows: list[list[Any]]) -> int:
    """One executemany of plain tuples: the JSON columns as text (what both SQLite's JSON column and PostgreSQL's
    jsonb take), the time through the backend's adapter (less than half what bulk_create's model instances cost).
    A batch the database refuses (a row whose version was deleted meanwhile) is written row by row, without the
    rows it refuses, so that one row never holds up the others."""
    adapt = connection.ops.adapt_datetimefield_value
    adapted = [(*row[:6], adapt(datetime.fromtimestamp(row[6], tz=UTC)), orjson.dumps(row[7]).decode(),
                orjson.dumps(row[8]).decode(), *row[9:]) for row in rows]
    try:
        _insert(adapted)
        return len(adapted)
    except (IntegrityError, DataError):
        return sum(_insert_alone(row) for row in adapted)


def _insert(rows: list[tuple[Any, ...]]) -> None:
    if rows:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(_insert_sql(), rows)


def _insert_alone(row: tuple[Any, ...]) -> bool:
    try:
        _insert([row])
    except (IntegrityError, DataError):
        logger.warning("a logged prediction the database refused was dropped (request %s)", row[0], exc_info=True)
        return False
    return True


def _insert_sql() -> str:
    quote = connection.ops.quote_name
    column = {field.name: str(field.column) for field in PredictionLog._meta.concrete_fields}
    columns = ", ".join(quote(column[name]) for name in FIELDS)
    return (f"INSERT INTO {quote(PredictionLog._meta.db_table)} ({columns}) "
            f"VALUES ({', '.join(['%s'] * len(FIELDS))})")
