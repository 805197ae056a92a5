"""Charts of traffic, errors and latency over the last hour and the last day, for the admin's pages: every
deployment's from one read of the day's minutes (one query and one Redis read however many deployments).

Values are ready to plot: requests and errors per minute (a 5-minute step divides by 5), the error rate in %,
latency quantiles in ms; None where a step had no request, so a line breaks instead of dropping to 0."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from monitoring import minutes
from monitoring.figures import Figures
from monitoring.selectors.history import figures_by_endpoint_minute

# name: (label, span in seconds, step in seconds); the steps are the timeseries API's for the same windows.
CHART_WINDOWS = {"1h": ("Last hour", 3600, 60), "24h": ("Last day", 86_400, 300)}


def history_charts(endpoints: Sequence[str], *, now: float | None = None) -> dict[str, Any]:
    """{"windows": {name: {label, step_s, t: [epoch seconds], series: [one per endpoint, in order]}}}."""
    # Up to the last whole minute: the open one (and the 5 minutes it ends) would draw a dip at the end of every
    # chart. Pages show the live figures beside the charts.
    end = minutes.minute_of(time.time() if now is None else now) - minutes.MINUTE_S
    longest = max(span for _, span, _ in CHART_WINDOWS.values())
    by_endpoint = figures_by_endpoint_minute(endpoints, end - longest + minutes.MINUTE_S, end)
    return {"windows": {name: _window(by_endpoint, label=label, span=span, step=step, end=end)
                        for name, (label, span, step) in CHART_WINDOWS.items()}}


def _window(by_endpoint: dict[str, dict[int, Figures]], *, label: str, span: int, step: int,
            end: int) -> dict[str, Any]:
    start = end - span + minutes.MINUTE_S
    times = list(range(start, end + 1, step))
    return {"label": label, "step_s": step, "t": times,
            "series": [_series(endpoint, by_minute, start=start, step=step, times=times)
                       for endpoint, by_minute in by_endpoint.items()]}


def _series(endpoint: str, by_minute: dict[int, Figures], *, start: int, step: int,
            times: list[int]) -> dict[str, Any]:
    buckets: dict[int, Figures] = defaultdict(Figures)
    for minute, figures in by_minute.items():
        if minute >= start:
            buckets[start + (minute - start) // step * step].add(figures)
    steps = [buckets[t] for t in times]
    total = Figures()
    for figures in steps:
        total.add(figures)
    per_minute = step / minutes.MINUTE_S
    return {
        "endpoint": endpoint,
        "requests_per_min": [round(f.requests / per_minute, 2) for f in steps],
        "errors_per_min": [round(f.errors / per_minute, 2) for f in steps],
        "error_rate_pct": [_percent(f.error_rate) for f in steps],
        "p50_ms": [_ms(f.quantile_ms(0.5)) for f in steps],
        "p99_ms": [_ms(f.quantile_ms(0.99)) for f in steps],
        "total": {"requests": total.requests, "errors": total.errors, "error_rate": total.error_rate,
                  "requests_per_min": round(total.requests / (len(times) * per_minute), 2),
                  "p50_ms": _ms(total.quantile_ms(0.5)), "p99_ms": _ms(total.quantile_ms(0.99))},
    }


def _percent(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 2)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
