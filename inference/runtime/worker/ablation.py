# Ablation explanations: replace one feature at a time by a baseline value and measure how much the score of
# the row's own prediction (its class probability, or its value) drops. Typed columns ablate numbers to the
# baseline's number (0 by default) and categories (strings, booleans) to their most frequent value in the input
# example; a categorical column with neither a baseline nor an example is skipped, and the answer says so.
from __future__ import annotations

from collections import Counter
from typing import Any, Protocol

import numpy as np

from inference.runtime.contract.base import Prediction
from inference.runtime.contract.columns import Column, ColumnError, typed_rows
from inference.runtime.contract.errors import PredictionError, UnsupportedOperation

MAX_EXPLAIN_ROWS = 100_000
NO_EXAMPLE = "a categorical column is ablated to its most frequent value in the input example, and there is none"


class Predicts(Protocol):
    def predict(self, rows: Any) -> Prediction: ...

    def builtin_importances(self) -> list[float] | None: ...


def explain_columns(model: Predicts, rows: list[list[Any]], baseline: list[Any] | None, columns: list[Column],
                    example: list[Any] | None) -> dict[str, Any]:
    count, width = len(rows), len(columns)
    if count * width > MAX_EXPLAIN_ROWS:
        raise PredictionError(f"explain takes at most {MAX_EXPLAIN_ROWS} rows x features per request")
    base, skipped = _baseline(baseline, columns, example)
    active = [j for j in range(width) if columns[j]["name"] not in skipped]
    # The baseline row itself: a skipped column keeps the first row's value (it is never ablated).
    base_row = [rows[0][j] if columns[j]["name"] in skipped else base[j] for j in range(width)]
    perturbed = []
    for row in rows:
        for j in active:
            copy = list(row)
            copy[j] = base[j]
            perturbed.append(copy)
    result = model.predict([*rows, base_row, *perturbed])
    scores = importances(result, count, len(active)) if active else np.zeros((count, 0))
    full: list[list[float | None]] = [[None] * width for _ in range(count)]
    for i in range(count):
        for k, j in enumerate(active):
            full[i][j] = float(scores[i, k])
    return {
        "importances": full,
        "baseline": base_row,
        "baseline_prediction": result.predictions[count],
        "predictions": result.predictions[:count],
        "builtin_importances": model.builtin_importances(),
        "skipped": skipped,
    }


def _baseline(given: list[Any] | None, columns: list[Column],
              example: list[Any] | None) -> tuple[list[Any], dict[str, str]]:
    if given is not None:
        if len(given) != len(columns):
            raise PredictionError(f"the baseline must have {len(columns)} values; it has {len(given)}")
        return list(given), {}
    records = _example_rows(example, columns)
    base: list[Any] = []
    skipped: dict[str, str] = {}
    for j, column in enumerate(columns):
        if column["dtype"] in ("string", "bool"):
            seen = [row[j] for row in records if row[j] is not None]
            if not seen:
                skipped[column["name"]] = NO_EXAMPLE
            base.append(Counter(seen).most_common(1)[0][0] if seen else None)
        else:
            base.append(0 if column["dtype"] == "int64" else 0.0)
    return base, skipped


def _example_rows(example: list[Any] | None, columns: list[Column]) -> list[list[Any]]:
    if not example or not isinstance(example[0], dict):
        return []
    try:
        return typed_rows(example, columns, max_rows=len(example), field="input_example")
    except ColumnError:
        return []  # an example that no longer fits (signature corrected since): no categorical baseline from it


def importances(result: Prediction, count: int, width: int) -> np.ndarray:
    """Per row and feature, how much the row's own score drops with that feature ablated."""
    first = count + 1  # the perturbed rows follow the originals and the baseline
    if result.probabilities is not None:
        proba = np.asarray(result.probabilities, dtype=np.float64)
        target = proba[:count].argmax(axis=1)
        scores = proba[first:].reshape(count, width, -1)
        dropped = np.take_along_axis(scores, target[:, None, None], axis=2)[:, :, 0]
        drops: np.ndarray = proba[np.arange(count), target][:, None] - dropped
        return drops
    if result.classes is not None:
        # Labels only (no probabilities): a feature matters when removing it flips the label.
        labels = result.predictions
        return np.array(
            [[float(labels[first + i * width + j] != labels[i]) for j in range(width)] for i in range(count)]
        )
    try:
        values = np.asarray(result.predictions, dtype=np.float64)
    except (TypeError, ValueError):
        raise UnsupportedOperation("explanations need numeric predictions or class probabilities") from None
    if values.ndim != 1:
        raise UnsupportedOperation("explanations are available for models with one output per row")
    return values[:count, None] - values[first:].reshape(count, width)
