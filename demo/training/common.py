"""What every demo model shares: its record, its tags, its metrics and how skops files are written."""

from __future__ import annotations

import pathlib
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.metrics import accuracy_score, f1_score

DEMO_MODEL_NAMES = ("churn-logreg", "fraud-forest", "sentiment-text", "demand-mlp", "router-scorer", "churn-mixed",
                    "churn-lightgbm")
# Later versions registered after the first ones, under aliases of their own: (model, alias).
DEMO_CANDIDATES = (("churn-logreg", "staging"),)
SENTIMENT_CLASSES = ("negative", "neutral", "positive")
DEMAND_CLASSES = ("low", "medium", "high")
ROUTER_SEPARATOR = " || "
ROUTER_CANDIDATES = ("gpt-small", "gpt-large", "claude-mini", "llama-8b", "mistral-7b")
ROUTER_TOPICS = ("code", "math", "chit-chat", "summarization", "translation", "creative")

# The hidden truth behind router-scorer's data, public so tests (and curious humans) can check that
# the scorer learned each candidate's strong and weak topics. Rows follow ROUTER_TOPICS.
ROUTER_SKILLS: dict[str, dict[str, float]] = {
    name: dict(zip(ROUTER_TOPICS, row))
    for name, row in {
        "gpt-small": (0.40, 0.35, 0.80, 0.65, 0.55, 0.60),
        "gpt-large": (0.85, 0.85, 0.70, 0.85, 0.80, 0.80),
        "claude-mini": (0.70, 0.55, 0.85, 0.90, 0.65, 0.75),
        "llama-8b": (0.60, 0.30, 0.70, 0.55, 0.45, 0.90),
        "mistral-7b": (0.80, 0.70, 0.50, 0.60, 0.90, 0.45),
    }.items()
}

TEST_SIZE = 0.2
SKOPS_SUFFIX = ".skops"
TORCHSCRIPT_SUFFIX = ".pt"


@dataclass(frozen=True)
class DemoModel:
    name: str
    description: str
    task: str  # "classification" | "regression" | "scoring"
    flavor: str  # "sklearn" | "torch" | "lightgbm"
    path: pathlib.Path
    # Only what the artifact cannot tell about itself (input kind, class names of a torch net, ...).
    signature: dict[str, Any] | None
    metrics: dict[str, float]
    params: dict[str, Any]
    tags: dict[str, str]
    alias: str = "production"  # moved to the version once it validates
    input_example: list[dict[str, Any]] | None = None  # a few real rows (records), uploaded with the version


def demo_tags(family: str, **extra: str) -> dict[str, str]:
    return {"demo": "true", "data": "synthetic", "family": family, **extra}


def dump_skops(model: Any, path: pathlib.Path) -> pathlib.Path:
    # Deflate: tree arrays compress several-fold, and these files are copied into storage on every seed.
    sio.dump(model, path, compression=zipfile.ZIP_DEFLATED)
    return path


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "f1_macro": round(float(f1_score(y_true, y_pred, average="macro")), 4),
    }
