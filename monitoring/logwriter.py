"""The prediction log between the web processes and the database.

A web process's flusher pushes what it sampled to one Redis list, a JSON batch per flush (`push`: one C-encoder
call and one round trip, a few microseconds a row); whoever needs the rows in the database moves them there
(`drain`): the scheduler's job every PREDICTION_LOG_WRITE_S, and every reader of the log first (the list, the
exports, feedback, quality, drift), so what a client logged a second ago is there when it asks. The database
insert (15-50 us of CPU a row on the benchmark machine, with SQLite) is never paid in a process that serves
predictions, nor under its GIL. The list keeps the newest PREDICTION_LOG_BUFFER_BATCHES batches: with no drain
for that long (the scheduler down) the oldest give way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from monitoring.models import PredictionLog

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
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5.0, socket_connect_timeout=2.0)


def encode(route: Route, request: PredictRequest, response: dict[str, Any], rows: list[Any], at: float,
           seconds: float, cached: bool) -> str:
    """One sampled request as the JSON text of its row, on the hot path (~5 us: the serialisation is due anyway,
    and a string holds no references, so a second of buffered requests costs the garbage collector nothing)."""
    outputs = {name: response[name] for name in OUTPUT_FIELDS if name in response}
    # The inputs and outputs travel as JSON text inside the row: the drain hands that text to the database as it
    # is (a JSON column takes text), instead of decoding and encoding every value again.
    return json.dumps([str(response["request_id"])[:128], route.endpoint, route.model_version_id, route.version,
                       (request.variant or "")[:64], (request.subject_id or "")[:128], at, _text(rows),
                       _text(outputs), round(seconds * 1000, 3), cached], separators=(",", ":"))


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_jsonable)


def push(encoded: Sequence[str]) -> None:
    pipe = client().pipeline(transaction=False)
    pipe.rpush(KEY, "[" + ",".join(encoded) + "]")
    pipe.ltrim(KEY, -settings.PREDICTION_LOG_BUFFER_BATCHES, -1)
    pipe.execute()


def _jsonable(value: Any) -> Any:
    # What JSON does not know (a NumPy scalar or array in a row): its Python equivalent, else its text.
    return value.tolist() if hasattr(value, "tolist") else str(value)


def drain() -> int:
    """Moves every pushed row into the database; returns how many. A batch the database refused goes back to the
    head of the list, for the next drain, and the error is raised."""
    written = 0
    while blobs := client().lpop(KEY, POP):
        try:
            written += write([row for blob in blobs for row in json.loads(blob)])
        except Exception:
            client().lpush(KEY, *reversed(blobs))
            raise
        if len(blobs) < POP:
            break
    return written


def write(rows: list[list[Any]]) -> int:
    """One executemany of plain tuples: the JSON columns as the text the web process encoded, the time through the
    backend's adapter (less than half of what bulk_create's model instances cost a row)."""
    ops = connection.ops
    adapted = [(*row[:6], ops.adapt_datetimefield_value(datetime.fromtimestamp(row[6], tz=UTC)), *row[7:])
               for row in rows]
    if not adapted:
        return 0
    try:
        _insert(adapted)
    except (DatabaseError, ValueError):
        # A value JSON cannot carry (NaN in a row: neither PostgreSQL's jsonb nor SQLite's JSON check takes it)
        # fails the whole batch; only then is every value checked, non-finite numbers stored as null.
        _insert([(*row[:7], _text(_finite(json.loads(row[7]))), _text(_finite(json.loads(row[8]))), *row[9:])
                 for row in adapted])
    return len(adapted)


def _insert(rows: list[tuple[Any, ...]]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(_insert_sql(), rows)


def _insert_sql() -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(PredictionLog._meta.get_field(name).column) for name in FIELDS)
    return (f"INSERT INTO {quote(PredictionLog._meta.db_table)} ({columns}) "
            f"VALUES ({', '.join(['%s'] * len(FIELDS))})")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value
