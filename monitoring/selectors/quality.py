"""Live quality: logged predictions joined with their feedback, per version, over a time window.

Classifiers: accuracy (and precision/recall of the second class for binary ones); regressors: MAE and RMSE.
The arithmetic is scikit-learn's (labels compared by their JSON form, so 1 and "1" differ as they do in JSON).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.utils import timezone

from inference.models import Deployment
from monitoring.models import Feedback, PredictionLog
from monitoring.selectors.logs import endpoint_check
from monitoring.sink import caught_up

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
POINTS = 12
MAX_ROWS = 200_000


def deployment_task(endpoint: str) -> str:
    deployment = Deployment.objects.filter(endpoint=endpoint).select_related("model").order_by("-pk").first()
    return deployment.model.task if deployment else "other"


def quality(endpoint: str, window: str) -> dict[str, Any]:
    endpoint_check(endpoint)
    caught_up()
    span, now = WINDOWS[window], timezone.now()
    since = now - span
    task = deployment_task(endpoint)
    logged = PredictionLog.objects.filter(endpoint=endpoint, created_at__gte=since)
    answered = logged.filter(request_id__in=Feedback.objects.values("request_id"))
    truths = {fb.request_id: fb for fb in Feedback.objects.filter(request_id__in=answered.values("request_id"))}
    requests_per_version: defaultdict[int, int] = defaultdict(int)
    for version in logged.values_list("version", flat=True).iterator():
        requests_per_version[version] += 1
    pairs: dict[int, list[tuple[Any, Any, float]]] = defaultdict(list)
    classes: dict[int, list[Any]] = {}
    for row in answered.only("request_id", "version", "outputs", "created_at")[:MAX_ROWS]:
        outputs = row.outputs or {}
        if outputs.get("classes"):
            classes.setdefault(row.version, outputs["classes"])
        truth = _truths(truths[row.request_id], len(outputs.get("predictions") or []))
        offset = (row.created_at - since).total_seconds()
        pairs[row.version] += [(t, p, offset) for t, p in zip(truth, outputs.get("predictions") or [])]
    regression = task == "regression"
    versions = [_version_figures(v, pairs.get(v, []), requests_per_version[v], classes.get(v), regression,
                                 span.total_seconds()) for v in sorted(requests_per_version)]
    return {"endpoint": endpoint, "window": window, "since": since.isoformat(), "until": now.isoformat(),
            "task": task, "metric": "rmse" if regression else "accuracy", "versions": versions}


def _truths(feedback: Feedback, rows: int) -> list[Any]:
    truth = feedback.label if feedback.label is not None else feedback.value
    return truth if isinstance(truth, list) else [truth] * min(rows, 1)


def _version_figures(version: int, pairs: list[tuple[Any, Any, float]], logged: int, classes: list[Any] | None,
                     regression: bool, span_s: float) -> dict[str, Any]:
    figures = {"version": version, "logged_requests": logged, "rows_with_feedback": len(pairs),
               **_scores(pairs, classes, regression)}
    step = span_s / POINTS
    buckets: dict[int, list] = defaultdict(list)
    for pair in pairs:
        buckets[min(int(pair[2] // step), POINTS - 1)].append(pair)
    figures["points"] = [{"offset_s": int(i * step), "n": len(buckets[i]), **_scores(buckets[i], classes, regression)}
                         for i in range(POINTS)]
    return figures


def _scores(pairs: list[tuple[Any, Any, float]], classes: list[Any] | None, regression: bool) -> dict[str, Any]:
    if regression:
        return _regression_scores(pairs)
    from sklearn.metrics import accuracy_score, precision_score, recall_score

    if not pairs:
        return {"accuracy": None, "precision": None, "recall": None}
    truth = [json.dumps(t) for t, _, _ in pairs]
    predicted = [json.dumps(p) for _, p, _ in pairs]
    scores: dict[str, Any] = {"accuracy": round(float(accuracy_score(truth, predicted)), 4),
                              "precision": None, "recall": None}
    if classes and len(classes) == 2:
        positive = json.dumps(classes[1])
        scores["precision"] = round(float(precision_score(truth, predicted, pos_label=positive, average="binary",
                                                          labels=[positive], zero_division=0)), 4)
        scores["recall"] = round(float(recall_score(truth, predicted, pos_label=positive, average="binary",
                                                    labels=[positive], zero_division=0)), 4)
    return scores


def _regression_scores(pairs: list[tuple[Any, Any, float]]) -> dict[str, Any]:
    from sklearn.metrics import mean_absolute_error, root_mean_squared_error

    numbers = [(float(t), float(p)) for t, p, _ in pairs if _finite(t) and _finite(p)]
    if not numbers:
        return {"mae": None, "rmse": None}
    truth, predicted = zip(*numbers)
    return {"mae": round(float(mean_absolute_error(truth, predicted)), 6),
            "rmse": round(float(root_mean_squared_error(truth, predicted)), 6)}


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def quality_value(endpoint: str, window_s: int) -> float | None:
    """What a `quality` alert rule compares: accuracy of the current version (classifiers), RMSE (regressors)."""
    window = next((name for name, span in WINDOWS.items() if span.total_seconds() >= window_s), "30d")
    figures = quality(endpoint, window)
    metric = figures["metric"]
    scored = [v for v in figures["versions"] if v.get(metric) is not None]
    return scored[-1][metric] if scored else None
