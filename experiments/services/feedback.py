"""Feedback: observed outcomes attached to routed requests."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import redis

from core.errors import ServiceUnavailable
from experiments import recording
from experiments.errors import (
    FeedbackExists,
    InvalidFeedback,
    RequestNotRecorded,
)
from experiments.models import Experiment, Outcome

MISSING = object()
# Another web process may still hold the request in its buffer (flushed every 0.1 s).
FEEDBACK_WAIT_S = 1.0


def feedback_record(*, request_id: str, label: Any = MISSING, value: Any = MISSING) -> dict:
    """Attaches an observed outcome to a routed request; each request takes one feedback."""
    try:
        return _record(request_id, label, value)
    except redis.RedisError:
        raise ServiceUnavailable("The experiment figures (Redis) are unavailable; send the feedback again.",
                                 retry_after_s=5) from None


def _record(request_id: str, label: Any, value: Any) -> dict:
    if (label is MISSING) == (value is MISSING):
        raise InvalidFeedback("Give exactly one of 'label' (the true answer) or 'value' (the observed outcome).",
                              details={"field": "label"})
    record = _request_record(request_id)
    experiment = Experiment.objects.filter(pk=int(record["e"])).first()
    if experiment is None:
        raise RequestNotRecorded(f"The experiment of request '{request_id}' no longer exists.")
    increments, answer = _outcome_increments(experiment, record, label, value)
    if not recording.add_feedback(request_id, experiment.pk, increments, marker=str(time.time())):
        raise FeedbackExists(f"Request '{request_id}' already has feedback; each request takes one.")
    return {"request_id": request_id, "experiment": experiment.pk, "variant": record["v"],
            "outcome": experiment.outcome, **answer}


def _request_record(request_id: str) -> dict:
    recording.recorder.flush()
    deadline = time.monotonic() + FEEDBACK_WAIT_S
    while True:
        record = recording.request_record(request_id)
        if record is not None:
            return record
        if time.monotonic() >= deadline:
            raise RequestNotRecorded(
                f"No experiment recorded a request '{request_id}': it was not routed by an experiment, it failed, "
                f"or it is older than {recording.feedback_ttl_s() // 3600} hours.", details={"field": "request_id"})
        time.sleep(0.05)


def _outcome_increments(experiment: Experiment, record: dict, label: Any, value: Any) -> tuple[dict, dict]:
    if experiment.outcome == Outcome.ACCURACY:
        if label is MISSING:
            raise InvalidFeedback(f"Experiment '{experiment.name}' measures accuracy: send 'label', the true answer.",
                                  details={"field": "value"})
        return _accuracy_increments(record, label)
    if value is MISSING:
        raise InvalidFeedback(f"Experiment '{experiment.name}' measures {experiment.outcome}: send 'value'.",
                              details={"field": "label"})
    number = _feedback_number(value, conversion=experiment.outcome == Outcome.CONVERSION)
    name = record["v"]
    return {f"{name}:n": 1, f"{name}:sum": number, f"{name}:sumsq": number * number}, {"value": number}


def _feedback_number(value: Any, *, conversion: bool) -> float:
    if conversion:
        if value not in (0, 1) or isinstance(value, str):
            raise InvalidFeedback("value: a conversion is 0 or 1 (or false/true).", details={"field": "value"})
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidFeedback("value: must be a finite number.", details={"field": "value"})
    return float(value)


def _accuracy_increments(record: dict, label: Any) -> tuple[dict, dict]:
    predictions = json.loads(record["p"]) if record.get("p") else []
    labels = label if isinstance(label, list) else [label]
    if len(labels) != len(predictions):
        raise InvalidFeedback(f"label: the request had {len(predictions)} row(s); send one label, or a list with one "
                              "label per row.", details={"field": "label"})
    if any(isinstance(item, (dict, list)) for item in labels):
        raise InvalidFeedback("label: each label is a single class (a string, number or boolean).",
                              details={"field": "label"})
    increments: dict[str, float] = {}
    answered = {record["v"]: predictions}
    answered.update({field[2:]: json.loads(raw) for field, raw in record.items() if field.startswith("s:") and raw})
    correct_here = 0
    for name, rows in answered.items():
        if not isinstance(rows, list) or len(rows) != len(labels):
            continue
        correct = sum(1 for truth, predicted in zip(labels, rows) if truth == predicted)
        increments.update({f"{name}:n": len(labels), f"{name}:sum": correct, f"{name}:sumsq": correct})
        if name == record["v"]:
            correct_here = correct
    return increments, {"rows": len(labels), "correct": correct_here}
