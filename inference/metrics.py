"""Prometheus metrics, correct across gunicorn processes (prometheus_client multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set, which `make serve` does), plus the JSON summary of /api/v1/metrics."""

import math
import os
from collections import defaultdict
from typing import Protocol

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048,
                   4.096, 8.192, math.inf)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, math.inf)
LABELS = ("endpoint", "model", "version")

REQUESTS = Counter("sp_prediction_requests", "Prediction requests by outcome", (*LABELS, "outcome"))
LATENCY = Histogram("sp_prediction_latency_seconds", "Server-side prediction latency", LABELS,
                    buckets=LATENCY_BUCKETS)
BATCH_SIZE = Histogram("sp_batch_size_rows", "Rows in the forward pass a request rode", LABELS,
                       buckets=BATCH_BUCKETS)
CACHE = Counter("sp_cache_requests", "Prediction cache lookups", ("endpoint", "result"))
QUEUE_DEPTH = Gauge("sp_queue_depth", "Requests waiting in worker queues", ("endpoint",),
                    multiprocess_mode="mostrecent")
MODEL_LOAD = Gauge("sp_model_load_seconds", "Time the serving workers took to load the model", LABELS,
                   multiprocess_mode="mostrecent")
# 0 while the deployment has failed (its workers cannot load or keep crashing), else 1: what "failed health
# checks" alert on, as the monitoring app's `health` metric does.
DEPLOYMENT_HEALTHY = Gauge("sp_deployment_healthy", "0 while the deployment has failed, else 1", ("endpoint",),
                           multiprocess_mode="mostrecent")
WORKER_MEMORY = Gauge("sp_worker_memory_bytes", "Resident memory of the serving workers", ("endpoint",),
                      multiprocess_mode="mostrecent")


class Served(Protocol):
    """What a prediction is labelled by: a route, or anything else that names the same three."""

    @property
    def endpoint(self) -> str: ...

    @property
    def model(self) -> str: ...

    @property
    def version(self) -> int: ...


def _labels(route: Served) -> tuple[str, str, str]:
    return route.endpoint, route.model, str(route.version)


def observe_prediction(route: Served, seconds: float, *, cached: bool, cache_used: bool, rows: int,
                       batch_size: int | None = None) -> None:
    labels = _labels(route)
    REQUESTS.labels(*labels, "ok").inc()
    LATENCY.labels(*labels).observe(seconds)
    if cache_used:
        CACHE.labels(route.endpoint, "hit" if cached else "miss").inc()
    if batch_size:
        BATCH_SIZE.labels(*labels).observe(batch_size)


def observe_error(route: Served | None, code: str) -> None:
    # Only routed endpoints get labels: a client must not mint label values (unbounded series).
    if route is not None:
        REQUESTS.labels(*_labels(route), code).inc()


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        MultiProcessCollector(collected)
        return collected
    return DEFAULT_REGISTRY


def exposition() -> bytes:
    return generate_latest(registry())


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus-style quantile from cumulative (upper bound, count) buckets, linear within a bucket."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    rank, lower, previous = q * total, 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - previous) / max(count - previous, 1e-12)
        lower, previous = upper, count
    return lower


def _samples() -> dict:
    data: dict = defaultdict(lambda: {"outcomes": defaultdict(float), "latency": defaultdict(float), "cache": {},
                                      "batch_sum": 0.0, "batch_count": 0.0})
    for family in registry().collect():
        for sample in family.samples:
            _absorb(data, sample)
    return data


def _absorb(data: dict, sample) -> None:
    labels, name = sample.labels, sample.name
    endpoint = labels.get("endpoint")
    if endpoint is None:
        return
    entry = data[endpoint]
    if name == "sp_prediction_requests_total":
        entry["outcomes"][labels["outcome"]] += sample.value
    elif name == "sp_prediction_latency_seconds_bucket":
        entry["latency"][float(labels["le"])] += sample.value
    elif name == "sp_cache_requests_total":
        entry["cache"][labels["result"]] = entry["cache"].get(labels["result"], 0.0) + sample.value
    elif name == "sp_batch_size_rows_sum":
        entry["batch_sum"] += sample.value
    elif name == "sp_batch_size_rows_count":
        entry["batch_count"] += sample.value


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def summary(endpoint: str, data: dict) -> dict:
    entry = data.get(endpoint)
    if entry is None:
        return {"requests": 0, "errors": 0, "error_rate": 0.0, "latency_ms": {"p50": None, "p95": None, "p99": None},
                "mean_batch_size": None, "cache_hit_rate": None}
    requests = sum(entry["outcomes"].values())
    errors = requests - entry["outcomes"].get("ok", 0.0)
    buckets = sorted(entry["latency"].items())
    hits, misses = entry["cache"].get("hit", 0.0), entry["cache"].get("miss", 0.0)
    return {
        "requests": int(requests), "errors": int(errors),
        "error_rate": round(errors / requests, 4) if requests else 0.0,
        "latency_ms": {f"p{int(q * 100)}": _ms(histogram_quantile(buckets, q)) for q in (0.5, 0.95, 0.99)},
        "mean_batch_size": round(entry["batch_sum"] / entry["batch_count"], 2) if entry["batch_count"] else None,
        "cache_hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
    }


def collect() -> dict:
    return _samples()
