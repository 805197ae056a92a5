"""Ground truth for any logged prediction, experiment or not (POST /api/v1/feedback).

A request in the prediction log takes one feedback (a second answers 409). A request an experiment routed
is also scored in the experiment's results by experiments' own feedback service, with its rules (accuracy
takes `label`, conversion and mean take `value`); one it routed but nobody logged goes to experiments alone,
so experiments behave as before. The log row may still sit in another web process's buffer: it is waited for,
briefly.
"""

from __future__ import annotations

import math
import time
from typing import Any

import redis
from django.conf import settings
from django.db import IntegrityError, transaction

from experiments import recording
from experiments import services as experiments
from experiments.errors import FeedbackExists, InvalidFeedback, RequestNotRecorded
from experiments.services.feedback import MISSING
from monitoring.models import Feedback, PredictionLog
from monitoring.sink import caught_up

POLL_S = 0.05


def feedback_wait_s() -> float:
    # Long enough for every web process to have flushed its buffer (this process flushes its own first).
    return 2.5 * settings.PREDICTION_LOG_FLUSH_S


def feedback_record(*, request_id: str, label: Any = MISSING, value: Any = MISSING) -> dict[str, Any]:
    if (label is MISSING) == (value is MISSING):
        raise InvalidFeedback("Give exactly one of 'label' (the true answer) or 'value' (the observed outcome).",
                              details={"field": "label"})
    logged = _logged(request_id)
    if not logged:
        return _experiment_only(request_id, label, value)
    answer = _checked(logged[0], label, value)
    try:
        with transaction.atomic():
            Feedback.objects.create(request_id=request_id, label=answer.get("label"), value=answer.get("value"))
            experiment = _experiment_feedback(logged, request_id, label, value)
    except IntegrityError:
        raise FeedbackExists(f"Request '{request_id}' already has feedback; each request takes one.") from None
    primary = next((row for row in logged if not row.variant or row.variant == (experiment or {}).get("variant")),
                   logged[0])
    return {**(experiment or {}), "request_id": request_id, "endpoint": primary.endpoint,
            "version": primary.version, "logged": True, **answer}


def _logged(request_id: str) -> list[PredictionLog]:
    caught_up()
    rows = _rows(request_id)
    if rows or _experiment_knows(request_id):
        # One an experiment routed is answered at once: waiting on the log would hold up every experiment
        # feedback for requests the deployment does not log.
        return rows
    deadline = time.monotonic() + feedback_wait_s()
    while not rows and time.monotonic() < deadline:
        time.sleep(POLL_S)
        caught_up()  # another web process may have pushed it meanwhile
        rows = _rows(request_id)
    return rows


def _rows(request_id: str) -> list[PredictionLog]:
    return list(PredictionLog.objects.filter(request_id=request_id).order_by("id"))


def _experiment_knows(request_id: str) -> bool:
    try:
        recording.recorder.flush()
        return recording.request_record(request_id) is not None
    except redis.RedisError:
        return False


def _experiment_only(request_id: str, label: Any, value: Any) -> dict[str, Any]:
    try:
        return experiments.feedback_record(request_id=request_id, label=label, value=value)
    except RequestNotRecorded:
        raise RequestNotRecorded(
            f"No logged prediction and no experiment-routed request has the id '{request_id}': the deployment "
            "does not log this share of its requests (log_predictions), the request failed, or it has aged out.",
            details={"field": "request_id"}) from None


def _experiment_feedback(logged: list[PredictionLog], request_id: str, label: Any, value: Any) -> dict | None:
    if not any(row.variant for row in logged):
        return None
    try:
        return experiments.feedback_record(request_id=request_id, label=label, value=value)
    except RequestNotRecorded:
        return None  # a shadow copy's row, or the experiment is gone: the log's feedback stands on its own


def _checked(row: PredictionLog, label: Any, value: Any) -> dict[str, Any]:
    rows = len((row.outputs or {}).get("predictions") or [])
    if value is not MISSING:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidFeedback("value: must be a finite number.", details={"field": "value"})
        return {"value": float(value)}
    labels = label if isinstance(label, list) else [label]
    if len(labels) != rows:
        raise InvalidFeedback(f"label: the request had {rows} row(s); send one label, or a list with one label per "
                              "row.", details={"field": "label"})
    if any(isinstance(item, (dict, list)) for item in labels):
        raise InvalidFeedback("label: each label is a single class (a string, number or boolean).",
                              details={"field": "label"})
    return {"label": label}
