"""Per-minute history: closed minutes move from Redis into the database, and age out after
METRICS_HISTORY_DAYS (with the drift reports and resolved alerts of that age)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from monitoring import minutes
from monitoring.figures import Figures
from monitoring.models import Alert, AlertState, DriftReport, MetricMinute

# A minute is rolled up once this long has passed since it ended: a web process flushes every second or so.
SETTLE_S = 15


def metric_minutes_roll_up(*, now: float | None = None) -> int:
    """Moves every closed minute out of Redis; returns how many minute rows were written."""
    now = time.time() if now is None else now
    claimed = minutes.claim(minutes.closed_before(minutes.minute_of(now - SETTLE_S)))
    try:
        with transaction.atomic():
            for slot, figures in claimed.items():
                _store(slot, figures)
    except Exception:
        minutes.give_back(claimed)
        raise
    return len(claimed)


def _store(slot: minutes.Slot, figures: Figures) -> None:
    endpoint, version, minute = slot
    row, _ = MetricMinute.objects.select_for_update().get_or_create(
        endpoint=endpoint, version=version, minute=datetime.fromtimestamp(minute, tz=UTC))
    # A row exists already when a process flushed late, after the minute's first roll-up: the two add up.
    total = Figures.from_row(row).add(figures)
    for name, value in vars(total).items():
        setattr(row, name, value)
    row.save()


def history_trim(*, now: datetime | None = None) -> dict[str, int]:
    before = (now or timezone.now()) - timedelta(days=settings.METRICS_HISTORY_DAYS)
    return {
        "minutes": MetricMinute.objects.filter(minute__lt=before).delete()[0],
        "drift_reports": DriftReport.objects.filter(computed_at__lt=before).delete()[0],
        "alerts": Alert.objects.filter(state=AlertState.RESOLVED, resolved_at__lt=before).delete()[0],
    }
