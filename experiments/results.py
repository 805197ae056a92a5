"""An experiment's results: per-variant traffic, errors, latency, cache hits and outcome statistics."""

from __future__ import annotations

import math
import time
from collections import defaultdict

import redis

from core.errors import ServiceUnavailable
from experiments import recording, stats
from experiments.models import Experiment, ExperimentStatus
from experiments.selectors import variants_of

CONFIDENCE = 0.95
MAX_TRAFFIC_POINTS = 120


def experiment_results(experiment: Experiment) -> dict:
    recording.recorder.flush()
    try:
        raw = recording.read(experiment.pk)
    except redis.RedisError:
        if experiment.final_results:
            return {**experiment.final_results, "source": "snapshot"}
        raise ServiceUnavailable("The experiment figures (Redis) are unavailable.", retry_after_s=5) from None
    if experiment.status == ExperimentStatus.STOPPED and not raw["stats"] and experiment.final_results:
        return {**experiment.final_results, "source": "snapshot"}
    return build_results(experiment, raw)


def build_results(experiment: Experiment, raw: dict) -> dict:
    arms, copies = variants_of(experiment)
    fields = _by_variant(raw["stats"])
    outcomes = _by_variant(raw["outcomes"])
    rate = experiment.measures_rate
    rows = [_variant_row(v, fields.get(v.name, {}), outcomes.get(v.name, {}), rate, control=i == 0)
            for i, v in enumerate([*arms, *copies])]
    compared = [row for row in rows[1:] if not row["shadow"] or row["outcome"]["n"]]
    alpha = stats.adjusted_alpha(len(compared))
    for row in compared:  # none unless there is a control, rows[0]
        row["vs_control"] = stats.compare(_sample(rows[0]), _sample(row), rate=rate,
                                          higher_is_better=experiment.higher_is_better, alpha=alpha)
    verdict, recommended = _verdict(rows, compared)
    return {
        "experiment": experiment.pk, "name": experiment.name, "endpoint": experiment.endpoint,
        "status": experiment.status, "outcome": experiment.outcome, "outcome_kind": "rate" if rate else "mean",
        "higher_is_better": experiment.higher_is_better, "confidence": CONFIDENCE, "alpha": alpha,
        "variants": rows, "verdict": verdict, "recommended_variant": recommended,
        "traffic": _traffic(raw["traffic"], [v.name for v in arms]),
        "latency_histogram": _latency_histogram(fields, [row["name"] for row in rows]),
        "generated_at": time.time(), "source": "live",
    }


def _by_variant(hash_fields: dict[str, str]) -> dict[str, dict[str, float]]:
    grouped: dict[str, dict[str, float]] = defaultdict(dict)
    for field, value in hash_fields.items():
        name, _, rest = field.partition(":")
        grouped[name][rest] = float(value)
    return grouped


def _variant_row(variant, fields: dict, outcome: dict, rate: bool, *, control: bool) -> dict:
    requests, errors, cached = (int(fields.get(k, 0)) for k in ("requests", "errors", "cached"))
    served = requests - errors
    row = {
        "name": variant.name, "deployment": variant.deployment, "weight": variant.weight, "shadow": variant.shadow,
        "control": control, "requests": requests, "errors": errors,
        "error_rate": round(errors / requests, 4) if requests else 0.0,
        "errors_by_code": {k[4:]: int(v) for k, v in fields.items() if k.startswith("err:")},
        "cache_hits": cached, "cache_hit_rate": round(cached / served, 4) if served else None,
        "latency_ms": latency_quantiles(_histogram(fields)),
        "outcome": _outcome(outcome, rate), "vs_control": None,
    }
    if variant.shadow:
        row["shadow_dropped"] = int(fields.get("dropped", 0))
    return row


def _sample(row: dict) -> stats.Sample:
    outcome = row["outcome"]
    return stats.Sample(outcome["n"], outcome["sum"], outcome["sum_sq"])


def _outcome(fields: dict, rate: bool) -> dict:
    sample = stats.Sample(fields.get("n", 0.0), fields.get("sum", 0.0), fields.get("sumsq", 0.0))
    interval = stats.wilson_interval(sample.total, sample.n, CONFIDENCE) if rate else \
        stats.mean_interval(sample, CONFIDENCE)
    result = {"n": int(sample.n), "value": sample.mean, "ci": list(interval) if interval else None,
              "sum": sample.total, "sum_sq": sample.total_sq}
    if not rate:
        result["std"] = math.sqrt(sample.variance) if sample.variance is not None else None
    return result


def _verdict(rows: list[dict], compared: list[dict]) -> tuple[str, str | None]:
    if not rows:
        return "no variants", None
    if not compared:
        return "nothing to compare: the experiment has one variant", None
    better = [row for row in compared if row["vs_control"]["significant"] and row["vs_control"]["better"]]
    if better:
        best = max(better, key=lambda row: abs(row["vs_control"]["difference"]))
        return f"'{best['name']}' better than control '{rows[0]['name']}', significant", best["name"]
    answering = [row for row in compared if not row["shadow"]]
    if answering and all(row["vs_control"]["significant"] for row in answering):
        return f"control '{rows[0]['name']}' better, significant", rows[0]["name"]
    if any(row["vs_control"]["verdict"] == "not enough data yet" for row in compared):
        return "not enough data yet", None
    return "no significant difference", None


def _histogram(fields: dict) -> list[int]:
    counts = [0] * (len(recording.LATENCY_BOUNDS_S) + 1)
    for key, value in fields.items():
        if key.startswith("lat:"):
            counts[min(int(key[4:]), len(counts) - 1)] += int(value)
    return counts


def latency_quantiles(counts: list[int]) -> dict[str, float | None]:
    """p50/p95/p99 in ms, interpolated linearly within the histogram bucket that holds each rank."""
    total, bounds = sum(counts), recording.LATENCY_BOUNDS_S
    result: dict[str, float | None] = {}
    for q in (0.5, 0.95, 0.99):
        if not total:
            result[f"p{int(q * 100)}"] = None
            continue
        rank, seen = q * total, 0
        for index, count in enumerate(counts):
            if count and seen + count >= rank:
                lower = bounds[index - 1] if index else 0.0
                upper = bounds[index] if index < len(bounds) else bounds[-1]
                value = lower + (upper - lower) * (rank - seen) / count
                break
            seen += count
        result[f"p{int(q * 100)}"] = round(value * 1000, 3)
    return result


def _traffic(fields: dict[str, str], names: list[str]) -> dict:
    per_minute: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for field, value in fields.items():
        minute, _, name = field.partition(":")
        if name in names:
            per_minute[int(minute)][name] += int(value)
    if not per_minute:
        return {"bucket_s": recording.TRAFFIC_BUCKET_S, "points": []}
    first, last = min(per_minute), max(per_minute)
    minutes = (last - first) // recording.TRAFFIC_BUCKET_S + 1
    bucket_s = recording.TRAFFIC_BUCKET_S * max(1, math.ceil(minutes / MAX_TRAFFIC_POINTS))
    merged: dict[int, dict[str, int]] = {}
    for at in range(first, last + 1, recording.TRAFFIC_BUCKET_S):
        start = first + (at - first) // bucket_s * bucket_s
        slot = merged.setdefault(start, {name: 0 for name in names})
        for name, count in per_minute.get(at, {}).items():
            slot[name] += count
    return {"bucket_s": bucket_s, "points": [{"t": t, "counts": counts} for t, counts in sorted(merged.items())]}


def _latency_histogram(fields: dict, names: list[str]) -> dict:
    histograms = {name: _histogram(fields.get(name, {})) for name in names}
    used = [i for i in range(len(recording.LATENCY_BOUNDS_S) + 1) if any(h[i] for h in histograms.values())]
    if not used:
        return {"bounds_ms": [], "counts": {name: [] for name in names}}
    low, high = used[0], used[-1] + 1
    bounds = [*recording.LATENCY_BOUNDS_S, math.inf]
    return {"bounds_ms": [round(b * 1000, 3) if math.isfinite(b) else None for b in bounds[low:high]],
            "counts": {name: histogram[low:high] for name, histogram in histograms.items()}}
