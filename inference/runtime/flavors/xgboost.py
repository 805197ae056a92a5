# XGBoost models saved with `save_model` as JSON or UBJSON: XGBoost's own format, loaded by XGBoost's own loader
# (no pickle anywhere on the way). Classifiers answer labels and probabilities as XGBClassifier does, regressors
# values; a missing value is NaN, which XGBoost treats as missing. Imported only by the processes that load one.
from __future__ import annotations

import json
from typing import Any

import numpy as np
import xgboost

from inference.runtime.contract.base import (
    ModelRuntime,
    Prediction,
    RuntimeOptions,
    loaded_signature,
    scrub_paths,
    tabular_batch,
)
from inference.runtime.contract.columns import Column
from inference.runtime.contract.errors import ArtifactLoadError, PredictionError
from inference.runtime.contract.frames import ColumnBatch
from inference.runtime.contract.scores import from_probabilities, values
from inference.runtime.contract.signature import Signature, build_signature

_TYPES = {"float": "float64", "q": "float64", "int": "int64", "i": "int64"}
_SERVED_OBJECTIVES = ("binary:logistic", "binary:hinge", "multi:softprob", "multi:softmax", "reg:", "count:",
                      "survival:")


class _XGBoostRuntime(ModelRuntime):
    def __init__(self) -> None:
        self._booster: Any = None
        self._objective = ""
        self._classes: list[Any] | None = None
        self._signature: Signature | None = None

    def load(self, path: str, *, task: str, options: RuntimeOptions) -> None:
        self.check_options(options)
        if options.device.startswith("cuda"):
            raise ArtifactLoadError("XGBoost models are served on the CPU; use device cpu or auto")
        booster = xgboost.Booster()
        try:
            with open(path, "rb") as handle:
                booster.load_model(bytearray(handle.read()))
        except xgboost.core.XGBoostError as exc:
            raise ArtifactLoadError(f"could not load the XGBoost model: {scrub_paths(str(exc), path)[:300]}") from exc
        booster.set_param({"nthread": options.threads or 1})
        learner = json.loads(booster.save_config())["learner"]
        self._objective = learner["objective"]["name"]
        if not self._objective.startswith(_SERVED_OBJECTIVES):
            raise ArtifactLoadError(f"the XGBoost objective {self._objective} is not served (classification with "
                                    "binary:logistic, binary:hinge, multi:softprob or multi:softmax; regression)")
        width = int(learner["learner_model_param"].get("num_class") or 0)
        self._classes = self._class_labels(width, options.classes)
        self._booster = booster
        self._signature = build_signature(
            input_kind="tabular", input_dtype="float32", n_features=booster.num_features(),
            feature_names=list(booster.feature_names) if booster.feature_names else None,
            classes=self._classes, output_width=int(learner["learner_model_param"].get("num_target") or 1),
            probabilities=self._objective in ("binary:logistic", "multi:softprob"), columns=_columns(booster),
        )

    def _class_labels(self, width: int, given: list[Any] | None) -> list[Any] | None:
        if not self._objective.startswith(("binary:", "multi:")):
            return None
        count = 2 if self._objective.startswith("binary:") else width
        if given is not None and len(given) != count:
            raise ArtifactLoadError(f"the model scores {count} classes but {len(given)} were given")
        # XGBClassifier's classes_ are 0..k-1 (it takes encoded labels); names may come with the signature.
        return list(given) if given is not None else list(range(count))

    def signature(self) -> Signature:
        return loaded_signature(self._signature)

    def predict(self, inputs: Any) -> Prediction:
        signature = self.signature()
        if isinstance(inputs, ColumnBatch):
            batch = inputs.matrix(np.float32)
        else:
            batch = tabular_batch(inputs, n_features=signature["n_features"], dtype=np.float32)
        try:
            # The row's columns are in the model's feature order already (the signature's), so no names check.
            output = self._booster.inplace_predict(batch, validate_features=False)
        except xgboost.core.XGBoostError as exc:
            raise PredictionError(f"the model could not predict: {scrub_paths(str(exc))[:300]}") from exc
        if self._objective in ("binary:logistic", "multi:softprob"):
            return from_probabilities(np.asarray(output, dtype=np.float64), self._classes)
        if self._classes is not None:
            # binary:hinge and multi:softmax predict the class index itself.
            return Prediction([self._classes[int(i)] for i in np.asarray(output).ravel()], None, self._classes)
        return values(output)

    def builtin_importances(self) -> list[float] | None:
        signature = self.signature()
        scores = self._booster.get_score(importance_type="gain")
        names = signature["feature_names"] or [f"f{i}" for i in range(signature["n_features"] or 0)]
        total = sum(scores.values()) or 1.0
        return [float(scores.get(name, 0.0)) / total for name in names] if names else None

    def unload(self) -> None:
        self._booster = None
        self._signature = None


def _columns(booster: Any) -> list[Column] | None:
    names, types = booster.feature_names, booster.feature_types or []
    if not names:
        return None
    for name, kind in zip(names, types):
        if kind not in _TYPES:
            raise ArtifactLoadError(f"column '{str(name)[:64]}' is an XGBoost {'categorical' if kind == 'c' else kind} "
                                    "feature, which the platform does not serve: encode categories before XGBoost "
                                    "(for example one-hot in a scikit-learn pipeline) and keep numeric columns")
    # Exact dtypes: XGBoost recorded them at fit time. Every column takes missing values (NaN is XGBoost's missing).
    return [{"name": str(name), "dtype": _TYPES.get(kind, "float64"), "nullable": True}
            for name, kind in zip(names, types or ["float"] * len(names))]


class XGBoostJsonRuntime(_XGBoostRuntime):
    format = "xgboost_json"


class XGBoostUbjRuntime(_XGBoostRuntime):
    format = "xgboost_ubj"
