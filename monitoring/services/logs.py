"""The prediction log: the flusher's batched insert, and the retention the scheduler enforces."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from monitoring.models import PredictionLog

if TYPE_CHECKING:
    from monitoring.sink import Logged

INSERT_BATCH = 500


def prediction_log_write(records: Iterable[Logged]) -> int:
    rows = [PredictionLog(
        request_id=record.request_id[:128], endpoint=record.endpoint, model_version_id=record.model_version_id,
        version=record.version, variant=record.variant[:64], subject_id=record.subject_id[:128],
        created_at=datetime.fromtimestamp(record.at, tz=UTC), inputs=record.rows, outputs=record.outputs,
        latency_ms=round(record.seconds * 1000, 3), cached=record.cached,
    ) for record in records]
    with transaction.atomic():
        PredictionLog.objects.bulk_create(rows, batch_size=INSERT_BATCH)
    return len(rows)


def prediction_log_trim(*, now: datetime | None = None) -> dict[str, int]:
    """Deletes rows older than PREDICTION_LOG_DAYS, then the oldest rows of each endpoint over
    PREDICTION_LOG_MAX_ROWS. Returns how many of each went."""
    now = now or timezone.now()
    expired, _ = PredictionLog.objects.filter(created_at__lt=now - timedelta(days=settings.PREDICTION_LOG_DAYS)) \
        .delete()
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
