"""Per-minute figures as readers see them: closed minutes from the database plus open ones from Redis."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from monitoring import minutes
from monitoring.figures import FIELDS, Figures
from monitoring.models import MetricMinute
from monitoring.sink import sink

WINDOWS = {"1h": (3600, 60), "24h": (86_400, 300), "7d": (7 * 86_400, 3600)}


def figures_by_minute(endpoint: str, start: int, end: int, *, version: int | None = None) -> dict[int, Figures]:
    """{minute: figures} for minutes in [start, end] (epoch seconds), every version unless one is named."""
    return figures_by_endpoint_minute([endpoint], start, end, version=version)[endpoint]


def figures_by_endpoint_minute(endpoints: Collection[str], start: int, end: int, *,
                               version: int | None = None) -> dict[str, dict[int, Figures]]:
    """{endpoint: {minute: figures}}: one query and one Redis read however many endpoints (the overview's)."""
    sink.flush()  # this process's own latest requests count too
    found: dict[str, dict[int, Figures]] = {endpoint: {} for endpoint in endpoints}
    rows = MetricMinute.objects.filter(endpoint__in=list(found), minute__gte=_at(start), minute__lte=_at(end))
    if version is not None:
        rows = rows.filter(version=version)
    # Plain values, not model instances: a day of many deployments is tens of thousands of rows.
    for values in rows.values("endpoint", "minute", *FIELDS).iterator(chunk_size=2000):
        endpoint, minute = values.pop("endpoint"), int(values.pop("minute").timestamp())
        _merge(found[endpoint], minute, Figures.from_values(values))
    for (endpoint, row_version, minute), figures in minutes.read_many(list(found), start, end).items():
        if version is None or row_version == version:
            _merge(found[endpoint], minute, figures)
    return found


def _merge(by_minute: dict[int, Figures], minute: int, figures: Figures) -> None:
    if minute in by_minute:
        by_minute[minute].add(figures)
    else:
        by_minute[minute] = figures


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
