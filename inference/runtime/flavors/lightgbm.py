# LightGBM models saved with `Booster.save_model`: LightGBM's text format, read by LightGBM's own parser (no
# pickle anywhere on the way). Classifiers answer labels and probabilities as LGBMClassifier does, regressors
# values; NaN is a missing value. Categorical columns fitted from pandas categories (their values recorded in the
# file as `pandas_categorical`) take strings. Imported only by the processes that load one.
from __future__ import annotations

import json
import re
from typing import Any

import lightgbm
import numpy as np

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
from inference.runtime.contract.examples import NUMBER
from inference.runtime.contract.frames import ColumnBatch
from inference.runtime.contract.scores import from_probabilities, values
from inference.runtime.contract.signature import Signature, build_signature

_CLASSIFIERS = ("binary", "multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr")
_RANKERS = ("lambdarank", "rank_xendcg", "xendcg", "xe_ndcg", "xe_ndcg_mart", "xendcg_mart")
_UNNAMED = re.compile(r"^Column_\d+$")


class LightGBMTextRuntime(ModelRuntime):
    format = "lightgbm_text"

    def __init__(self) -> None:
        self._booster: Any = None
        self._threads = 1
        self._classes: list[Any] | None = None
        self._categories: dict[str, list[Any]] = {}
        self._signature: Signature | None = None

    def load(self, path: str, *, task: str, options: RuntimeOptions) -> None:
        self.check_options(options)
        if options.device.startswith("cuda"):
            raise ArtifactLoadError("LightGBM models are served on the CPU; use device cpu or auto")
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            booster = lightgbm.Booster(model_str=text)
        except (lightgbm.basic.LightGBMError, UnicodeDecodeError, ValueError) as exc:
            raise ArtifactLoadError(f"could not load the LightGBM model: {scrub_paths(str(exc), path)[:300]}") \
                from exc
        header = _header(text)
        objective = header.get("objective", "").split(" ")[0]
        if objective in _RANKERS:
            raise ArtifactLoadError(f"the LightGBM objective {objective} (ranking) is not served")
        width = int(header.get("num_class") or 1)
        self._classes = _class_labels(objective, width, options.classes)
        names = booster.feature_name()
        columns, self._categories = _columns(names, header, _pandas_categorical(text))
        self._booster, self._threads = booster, options.threads or 1
        self._signature = build_signature(
            input_kind="tabular", input_dtype="float64", n_features=booster.num_feature(),
            feature_names=None if columns is None else names, classes=self._classes,
            output_width=1 if self._classes else width, columns=columns,
        )

    def signature(self) -> Signature:
        return loaded_signature(self._signature)

    def predict(self, inputs: Any) -> Prediction:
        signature = self.signature()
        try:
            output = self._booster.predict(self._batch(inputs, signature), num_threads=self._threads)
        except (lightgbm.basic.LightGBMError, ValueError, TypeError) as exc:
            raise PredictionError(f"the model could not predict: {scrub_paths(str(exc))[:300]}") from exc
        if self._classes is not None:
            return from_probabilities(np.asarray(output, dtype=np.float64), self._classes)
        return values(output)

    def _batch(self, inputs: Any, signature: Signature) -> Any:
        if not isinstance(inputs, ColumnBatch):
            return tabular_batch(inputs, n_features=signature["n_features"], dtype=np.float64)
        if not self._categories:
            return inputs.matrix(np.float64)
        import pandas as pd

        frame = inputs.frame()
        for name, categories in self._categories.items():
            # The categories the model was fitted with, in their order: LightGBM reads the codes.
            frame[name] = pd.Categorical(frame[name], categories=categories)
        return frame

    def builtin_importances(self) -> list[float] | None:
        gains = np.asarray(self._booster.feature_importance(importance_type="gain"), dtype=np.float64)
        total = gains.sum() or 1.0
        return [float(g) / total for g in gains]

    def unload(self) -> None:
        self._booster = None
        self._signature = None


def _header(text: str) -> dict[str, str]:
    """The `key=value` lines before the first tree (objective, num_class, feature_infos, ...)."""
    found: dict[str, str] = {}
    for line in text.split("\n", 64)[:64]:
        if line.startswith("Tree="):
            break
        key, sep, value = line.partition("=")
        if sep:
            found[key.strip()] = value.strip()
    return found


def _pandas_categorical(text: str) -> list[list[Any]]:
    tail = text[-(1 << 20):]
    marker = tail.rfind("\npandas_categorical:")
    if marker < 0:
        return []
    try:
        found = json.loads(tail[marker + len("\npandas_categorical:"):].split("\n", 1)[0])
    except ValueError:
        raise ArtifactLoadError("the LightGBM model's pandas_categorical line is not valid JSON") from None
    return found if isinstance(found, list) else []


def _class_labels(objective: str, width: int, given: list[Any] | None) -> list[Any] | None:
    if objective not in _CLASSIFIERS:
        return None
    count = 2 if objective == "binary" else width
    if given is not None and len(given) != count:
        raise ArtifactLoadError(f"the model scores {count} classes but {len(given)} were given")
    # The text format keeps no label values (LGBMClassifier encodes them 0..k-1); names may come with the signature.
    return list(given) if given is not None else list(range(count))


def _columns(names: list[str], header: dict[str, str],
             pandas_categorical: list[list[Any]]) -> tuple[list[Column] | None, dict[str, list[Any]]]:
    if all(_UNNAMED.match(name) for name in names):
        return None, {}  # fitted on an array: LightGBM named the columns itself
    infos = header.get("feature_infos", "").split(" ")
    categorical = [name for name, info in zip(names, infos) if info and info != "none" and not info.startswith("[")]
    if categorical and len(pandas_categorical) != len(categorical):
        pandas_categorical = []  # categories given as integer codes, not from pandas: numbers then
    categories = dict(zip(categorical, pandas_categorical))
    columns: list[Column] = []
    for name in names:
        known = categories.get(name)
        strings = bool(known) and all(isinstance(value, str) for value in known or [])
        columns.append({"name": name, "dtype": "string" if strings else NUMBER, "nullable": True})
    return columns, {name: values for name, values in categories.items() if values}
