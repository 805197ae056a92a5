"""The prediction log's retention, which the scheduler enforces (rows reach the log through logwriter.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from monitoring.models import PredictionLog


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
