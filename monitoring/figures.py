"""Per-minute figures of one deployment and version, and how they add up: the same arithmetic for what web
processes write to Redis, what the scheduler rolls into the database, and what readers merge from both.

Latency is a histogram over inference.metrics.LATENCY_BUCKETS (the Prometheus histogram's buckets), so a
quantile over any set of minutes and processes comes from summed counts, as Prometheus computes it.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from inference.metrics import LATENCY_BUCKETS, histogram_quantile

BUCKETS = len(LATENCY_BUCKETS)
COUNTERS = ("requests", "errors", "server_errors", "cache_hits", "cache_lookups", "batch_count")
SUMS = ("batch_sum", "latency_sum_s")


def latency_bucket(seconds: float) -> int:
    return min(bisect.bisect_left(LATENCY_BUCKETS, seconds), BUCKETS - 1)


@dataclass
class Figures:
    requests: int = 0
    errors: int = 0
    server_errors: int = 0
    cache_hits: int = 0
    cache_lookups: int = 0
    batch_count: int = 0
    batch_sum: float = 0.0
    latency_sum_s: float = 0.0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def add(self, other: Figures) -> Figures:
        # Spelled out rather than a loop over the names: charts add up a day of minutes for every deployment.
        self.requests += other.requests
        self.errors += other.errors
        self.server_errors += other.server_errors
        self.cache_hits += other.cache_hits
        self.cache_lookups += other.cache_lookups
        self.batch_count += other.batch_count
        self.batch_sum += other.batch_sum
        self.latency_sum_s += other.latency_sum_s
        self.latency_buckets = [a + b for a, b in zip(self.latency_buckets, other.latency_buckets)]
        return self

    def count(self, seconds: float, *, status: int, cached: bool, cache_used: bool, batch_size: int | None) -> None:
        """One request: status 0 when it was answered, else the HTTP status of its error."""
        self.requests += 1
        if status:
            self.errors += 1
            self.server_errors += status >= 500
        self.cache_hits += cached
        self.cache_lookups += cache_used
        if batch_size:
            self.batch_count += 1
            self.batch_sum += batch_size
        self.latency_sum_s += seconds
        self.latency_buckets[latency_bucket(seconds)] += 1

    # --- the Redis hash of one minute (field -> increment) ---------------------------------------------------

    def as_fields(self) -> dict[str, int | float]:
        fields: dict[str, int | float] = {name: getattr(self, name) for name in (*COUNTERS, *SUMS)}
        fields.update({f"b{i}": n for i, n in enumerate(self.latency_buckets) if n})
        return {name: value for name, value in fields.items() if value}

    @classmethod
    def from_fields(cls, raw: dict[Any, Any]) -> Figures:
        decoded = {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}
        figures = cls()
        for name in COUNTERS:
            setattr(figures, name, int(decoded.get(name, 0)))
        for name in SUMS:
            setattr(figures, name, decoded.get(name, 0.0))
        figures.latency_buckets = [int(decoded.get(f"b{i}", 0)) for i in range(BUCKETS)]
        return figures

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Figures:
        """From a MetricMinute row read with .values(*FIELDS)."""
        return cls(**{**values, "latency_buckets": list(values["latency_buckets"] or [0] * BUCKETS)})

    @classmethod
    def from_row(cls, row: Any) -> Figures:
        """From a MetricMinute row (the same fields)."""
        figures = cls()
        for name in (*COUNTERS, *SUMS):
            setattr(figures, name, getattr(row, name))
        figures.latency_buckets = list(row.latency_buckets) or figures.latency_buckets
        return figures

    # --- what readers see ------------------------------------------------------------------------------------

    def quantile_ms(self, q: float) -> float | None:
        cumulative, running = [], 0
        for upper, count in zip(LATENCY_BUCKETS, self.latency_buckets):
            running += count
            cumulative.append((upper, float(running)))
        value = histogram_quantile(cumulative, q)
        return None if value is None else round(value * 1000, 3)

    @property
    def error_rate(self) -> float | None:
        return round(self.errors / self.requests, 4) if self.requests else None

    @property
    def cache_miss_rate(self) -> float | None:
        return round(1 - self.cache_hits / self.cache_lookups, 4) if self.cache_lookups else None

    def point(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "errors": self.errors, "server_errors": self.server_errors,
            "error_rate": self.error_rate, "cache_hits": self.cache_hits, "cache_lookups": self.cache_lookups,
            "cache_miss_rate": self.cache_miss_rate,
            "p50_ms": self.quantile_ms(0.5), "p95_ms": self.quantile_ms(0.95), "p99_ms": self.quantile_ms(0.99),
            "mean_latency_ms": round(self.latency_sum_s / self.requests * 1000, 3) if self.requests else None,
            "mean_batch_size": round(self.batch_sum / self.batch_count, 2) if self.batch_count else None,
        }


FIELDS = tuple(item.name for item in dataclasses.fields(Figures))  # a MetricMinute row's columns of figures
