"""The prediction log: the flusher's batched insert, and the retention the scheduler enforces."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from monitoring.models import PredictionLog

if TYPE_CHECKING:
    from monitoring.sink import Logged

# The columns the flusher writes, in the order of each row's values.
FIELDS = ("request_id", "endpoint", "model_version", "version", "variant", "subject_id", "created_at", "inputs",
          "outputs", "latency_ms", "cached")


def prediction_log_write(records: Iterable[Logged]) -> int:
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
    if rows:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(_insert_sql(), rows)
    return len(rows)


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
