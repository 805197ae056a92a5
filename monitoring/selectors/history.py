"""Per-minute figures as readers see them: closed minutes from the database plus open ones from Redis."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from monitoring import minutes
from monitoring.figures import Figures
from monitoring.models import MetricMinute
from monitoring.sink import sink

WINDOWS = {"1h": (3600, 60), "24h": (86_400, 300), "7d": (7 * 86_400, 3600)}


def figures_by_minute(endpoint: str, start: int, end: int, *, version: int | None = None) -> dict[int, Figures]:
    """{minute: figures} for minutes in [start, end] (epoch seconds), every version unless one is named."""
    sink.flush()  # this process's own latest requests count too
    by_minute: dict[int, Figures] = defaultdict(Figures)
    rows = MetricMinute.objects.filter(endpoint=endpoint, minute__gte=_at(start), minute__lte=_at(end))
    if version is not None:
        rows = rows.filter(version=version)
    for row in rows:
        by_minute[int(row.minute.timestamp())].add(Figures.from_row(row))
    for (_, row_version, minute), figures in minutes.read(endpoint, start, end).items():
        if version is None or row_version == version:
            by_minute[minute].add(figures)
    return by_minute


def window_figures(endpoint: str, seconds: int, *, version: int | None = None, now: float | None = None,
                   since: float | None = None) -> Figures:
    """The figures of the minutes that overlap the last `seconds` (or start at `since`)."""
    now = time.time() if now is None else now
    start = minutes.minute_of(since if since is not None else now - seconds)
    total = Figures()
    for figures in figures_by_minute(endpoint, start, int(now), version=version).values():
        total.add(figures)
    return total


def timeseries(endpoint: str, window: str, *, version: int | None = None, now: float | None = None) -> dict[str, Any]:
    span, step = WINDOWS[window]
    now = time.time() if now is None else now
    end = minutes.minute_of(now)
    start = end - span + minutes.MINUTE_S
    buckets: dict[int, Figures] = defaultdict(Figures)
    for minute, figures in figures_by_minute(endpoint, start, end, version=version).items():
        buckets[start + (minute - start) // step * step].add(figures)
    points = [{"t": t, **buckets[t].point()} for t in range(start, end + 1, step)]
    return {"endpoint": endpoint, "window": window, "step_s": step, "version": version, "points": points}


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)
