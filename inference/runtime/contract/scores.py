# Scores a model computed -> labels and probabilities, shared by the flavors that get raw scores (torch modules,
# ONNX graphs without a label output) or booster probabilities (XGBoost, LightGBM). NumPy only.
from __future__ import annotations

from typing import Any

import numpy as np

from inference.runtime.contract.base import Prediction, json_safe
from inference.runtime.contract.errors import PredictionError


def probabilities(scores: np.ndarray) -> np.ndarray:
    """Scores are logits: one column means a sigmoid head, several a softmax head."""
    if scores.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        return np.stack([1.0 - positive, positive], axis=1)
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    normalized: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return normalized


def classify(scores: np.ndarray, labels: list[Any] | None) -> Prediction:
    return from_probabilities(probabilities(scores), labels)


def from_probabilities(proba: np.ndarray, labels: list[Any] | None) -> Prediction:
    """Labels as scikit-learn's wrappers give them: the most probable class (the first one on a tie)."""
    if proba.ndim == 1:
        proba = np.stack([1.0 - proba, proba], axis=1)  # a binary model's probability of the positive class
    proba = np.asarray(proba, dtype=np.float64)
    if labels is None or len(labels) != proba.shape[1]:
        raise PredictionError(f"the model scores {proba.shape[1]} classes; the class labels do not match")
    return Prediction([labels[i] for i in proba.argmax(axis=1)], proba.tolist(), list(labels))


def values(output: np.ndarray) -> Prediction:
    """A regressor's outputs: one value per row, or a list per row for several targets."""
    output = np.asarray(output, dtype=np.float64)
    if output.ndim == 2 and output.shape[1] == 1:
        output = output[:, 0]
    return Prediction(json_safe(output))
