"""A toy runtime for exercising the real worker and batching paths without ML libraries.

The worker loads it through `MemberSpec(format="tests.inference.runtime.toy_runtime:ToyRuntime")`, honoured only
with SERVINGPLATFORM_TEST_HOOKS=1. Its "artifact" is a JSON file:
    {"weights": [w0, w1, ...], "bias": 0.0, "sleep_ms": 0, "row_ms": 0, "record": "/path/batches.log",
     "text": false, "fail_load": null, "classes": [0, 1]}
sleep_ms is per call, row_ms per row (and per sample of Monte Carlo dropout, which it answers, std 0.0, only with
"dropout": true).
A tabular row's score is bias + w . row; classifiers (task "classification") answer their two classes
with sigmoid probabilities. Marker values in a row's first column drive failure modes:
    POISON  -> the call raises PredictionError (only that request must fail)
    CRASH   -> the process SIGKILLs itself
    HANG    -> the call sleeps HANG_S first
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from inference.runtime.contract.base import ModelRuntime, Prediction, RuntimeOptions, tabular_batch, text_batch
from inference.runtime.contract.errors import ArtifactLoadError, PredictionError
from inference.runtime.contract.signature import Signature, build_signature

FORMAT = "tests.inference.runtime.toy_runtime:ToyRuntime"
POISON = -999.0
CRASH = -666.0
HANG = -777.0
HANG_S = 30.0


def write_toy(path: Path, **config: Any) -> Path:
    path.write_text(json.dumps({"weights": [1.0, 2.0, 3.0], **config}))
    return path


def toy_scores(rows: Any, weights: list[float], bias: float = 0.0) -> np.ndarray:
    return bias + np.asarray(rows, dtype=np.float64) @ np.asarray(weights, dtype=np.float64)


class ToyRuntime(ModelRuntime):
    format = "toy"

    def load(self, path: str, *, task: str, options: RuntimeOptions) -> None:
        config = json.loads(Path(path).read_text())
        if config.get("fail_load"):
            raise ArtifactLoadError(str(config["fail_load"]))
        time.sleep(float(config.get("load_ms", 0)) / 1000.0)  # a model that takes a while to load
        self._weights = [float(w) for w in config["weights"]]
        self._bias = float(config.get("bias", 0.0))
        self._sleep_s = float(config.get("sleep_ms", 0)) / 1000.0
        self._row_s = float(config.get("row_ms", 0)) / 1000.0
        self._dropout = bool(config.get("dropout", False))
        self._record = config.get("record")
        self._text = bool(config.get("text", False))
        self._classes = list(config.get("classes", [0, 1])) if task == "classification" else None

    def signature(self) -> Signature:
        classes = self._classes
        if self._text:
            return build_signature(input_kind="text", input_dtype="string", n_features=None, classes=classes)
        return build_signature(
            input_kind="tabular", input_dtype="float64", n_features=len(self._weights), classes=classes
        )

    def predict(self, inputs: Any) -> Prediction:
        if self._text:
            rows = np.array([[float(len(text))] + [0.0] * (len(self._weights) - 1) for text in text_batch(inputs)])
        else:
            rows = tabular_batch(inputs, n_features=len(self._weights), dtype=np.float64)
        self._note(len(rows), rows[:, 0])
        if self._sleep_s or self._row_s:
            time.sleep(self._sleep_s + self._row_s * len(rows))
        scores = toy_scores(rows, self._weights, self._bias)
        if self._classes is None:
            return Prediction(scores.tolist())
        positive = 1.0 / (1.0 + np.exp(-scores))
        proba = np.stack([1.0 - positive, positive], axis=1)
        return Prediction([self._classes[int(p > 0.5)] for p in positive], proba.tolist(), self._classes)

    def predict_with_dropout(self, inputs: Any, samples: int) -> tuple[Prediction, list[Any]]:
        if not self._dropout:
            return super().predict_with_dropout(inputs, samples)
        if self._row_s:
            time.sleep(self._row_s * len(inputs) * (samples - 1))  # predict sleeps for the first sample
        prediction = self.predict(inputs)
        return prediction, [0.0] * len(prediction.predictions)

    def unload(self) -> None:
        self._weights = []

    def _note(self, size: int, first_column: np.ndarray) -> None:
        if self._record:
            with open(self._record, "a") as fh:
                fh.write(f"{size} {int(POISON in first_column)}\n")
        if CRASH in first_column:
            os.kill(os.getpid(), signal.SIGKILL)
        if HANG in first_column:
            time.sleep(HANG_S)
        if POISON in first_column:
            raise PredictionError("a poison row")
