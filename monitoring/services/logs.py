"""The prediction log: the flusher's batched insert, and the retention the scheduler enforces."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Count
from django.utils import timezone

from monitoring.models import PredictionLog

if TYPE_CHECKING:
    from monitoring.sink import Logged

# The columns the flusher writes, in the order of each row's values.
FIELDS = ("request_id", "endpoint", "model_version", "version", "variant", "subject_id", "created_at", "inputs",
          "outputs", "latency_ms", "cached")


def prediction_log_write(records: Sequence[Logged]) -> int:
    """One executemany of plain tuples, values adapted by the backend's own adapters (JSON as text on SQLite,
    jsonb on PostgreSQL). It runs in every web process, on the CPU that serves predictions: building model
    instances for bulk_create cost ~40 us a row, this ~10 (bench/bench_monitoring.py measures the whole)."""
    ops = connection.ops
    rows = [(
        record.request_id[:128], record.endpoint, record.model_version_id, record.version,
        (record.request.variant or "")[:64], (record.request.subject_id or "")[:128],
        ops.adapt_datetimefield_value(datetime.fromtimestamp(record.at, tz=UTC)),
        ops.adapt_json_value(record.rows, None), ops.adapt_json_value(record.outputs, None),
        round(record.seconds * 1000, 3), record.cached,
    ) for record in records]
    if not rows:
        return 0
    try:
        _insert(rows)
    except (DatabaseError, ValueError):
        # A value JSON cannot carry (NaN in a row: PostgreSQL's jsonb refuses it) fails the whole batch; only
        # then is every value checked, with non-finite numbers stored as null.
        ops = connection.ops
        _insert([(*row[:7], ops.adapt_json_value(_finite(record.rows), None),
                  ops.adapt_json_value(_finite(record.outputs), None), *row[9:]) for row, record in zip(rows, records)])
    return len(rows)


def _insert(rows: list[tuple[Any, ...]]) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(_insert_sql(), rows)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list):
        return [_finite(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


def _insert_sql() -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(PredictionLog._meta.get_field(name).column) for name in FIELDS)
    return (f"INSERT INTO {quote(PredictionLog._meta.db_table)} ({columns}) "
            f"VALUES ({', '.join(['%s'] * len(FIELDS))})")


def prediction_log_trim(*, now: datetime | None = None) -> dict[str, int]:
    """Deletes rows older than PREDICTION_LOG_DAYS, then the oldest rows of each endpoint over
    PREDICTION_LOG_MAX_ROWS. Returns how many of each went."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.PREDICTION_LOG_DAYS)
    expired = 0
    # Endpoint by endpoint, along the (endpoint, created_at) index: no index of its own on the time alone, which
    # every logged row would pay for on insert.
    for endpoint in PredictionLog.objects.values_list("endpoint", flat=True).distinct().order_by():
        expired += PredictionLog.objects.filter(endpoint=endpoint, created_at__lt=cutoff).delete()[0]
    capped = 0
    cap = settings.PREDICTION_LOG_MAX_ROWS
    for endpoint in _over_cap(cap):
        newest = PredictionLog.objects.filter(endpoint=endpoint).order_by("-created_at", "-id")
        boundary = newest.values_list("created_at", "id")[cap - 1]
        # Everything strictly older than the cap-th newest row (time, then id breaks ties).
        older = PredictionLog.objects.filter(endpoint=endpoint, created_at__lte=boundary[0]) \
            .exclude(created_at=boundary[0], id__gte=boundary[1])
        capped += older.delete()[0]
    return {"expired": expired, "capped": capped}


def _over_cap(cap: int) -> list[str]:
    counts = PredictionLog.objects.values("endpoint").annotate(rows=Count("id")).filter(rows__gt=cap)
    return [row["endpoint"] for row in counts]
