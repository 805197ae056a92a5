# The runtime plug-in contract. No Django and no ML framework here: flavor modules import
# torch / sklearn lazily so that the web process can import the contract cheaply.
from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from inference.runtime.contract.errors import (
    ArtifactLoadError,
    ModelRuntimeError,
    PredictionError,
    UnsupportedOperation,
)
from inference.runtime.contract.frames import ColumnBatch
from inference.runtime.contract.signature import Signature, generate_inputs

# Load-time optimizations a deployment may ask for through `RuntimeOptions.extra`.
OPTIMIZATIONS = ("compile", "quantize")


@dataclass
class Prediction:
    predictions: list[Any]
    probabilities: list[list[float]] | None = None
    classes: list[Any] | None = None


@dataclass
class RuntimeOptions:
    device: str = "cpu"
    threads: int | None = None
    classes: list[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ModelRuntime(abc.ABC):
    """Loads one serialization format and serves predictions from it.

    Subclasses set `format` and are listed in `registry.RUNTIMES`. `predict` returns JSON-safe
    Python values only. `signature()` is valid after `load` and follows `signature.py`'s shape.
    Errors raised are `ModelRuntimeError` subclasses whose messages are safe to show a client.
    """

    format: ClassVar[str]

    @abc.abstractmethod
    def load(self, path: str, *, task: str, options: RuntimeOptions) -> None: ...

    @abc.abstractmethod
    def predict(self, inputs: Any) -> Prediction:
        """`inputs`: rows of numbers or strings, or a ColumnBatch (contract/frames.py) for typed columns."""

    @abc.abstractmethod
    def unload(self) -> None: ...

    @abc.abstractmethod
    def signature(self) -> Signature: ...

    def check_options(self, options: RuntimeOptions) -> None:
        """Refuse optimizations this runtime cannot apply, so a deployment never silently runs without them."""
        for name in OPTIMIZATIONS:
            if options.extra.get(name):
                raise ArtifactLoadError(f"{name} is not available for {self.format} models")

    def predict_with_dropout(self, inputs: Any, samples: int) -> tuple[Prediction, list[Any]]:
        """Monte Carlo dropout: the mean over `samples` stochastic passes and its standard deviation
        (per class probability for classifiers, per value otherwise)."""
        raise UnsupportedOperation(f"uncertainty estimates are not available for {self.format} models")

    def builtin_importances(self) -> list[float] | None:
        """Per-feature importances the model itself records (trees, linear coefficients), if any."""
        return None

    def smoke_inputs(self, rows: int, signature: Signature | None = None) -> Any:
        """Valid generated inputs; `signature` overrides the inferred one (e.g. merged with upload's)."""
        return generate_inputs(signature or self.signature(), rows)


def loaded_signature(signature: Signature | None) -> Signature:
    """A runtime's signature once `load` has set it."""
    if signature is None:
        raise ModelRuntimeError("the model is not loaded")
    return signature


def json_safe(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist()) if value.dtype == object else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def tabular_batch(inputs: Any, *, n_features: int | None, dtype: type[np.floating[Any]]) -> np.ndarray:
    if isinstance(inputs, ColumnBatch):
        inputs = inputs.matrix(dtype)
    try:
        batch = np.asarray(inputs, dtype=dtype)
    except (TypeError, ValueError):
        raise PredictionError("inputs must be a list of rows of numbers") from None
    if batch.ndim != 2 or batch.shape[0] == 0:
        raise PredictionError(f"inputs must be a non-empty 2-D array of rows; got shape {list(batch.shape)}")
    if n_features is not None and batch.shape[1] != n_features:
        raise PredictionError(f"each row must have {n_features} features; got {batch.shape[1]}")
    return batch


def text_batch(inputs: Any) -> list[str]:
    items = inputs.tolist() if isinstance(inputs, np.ndarray) else inputs
    if isinstance(items, str) or not isinstance(items, (list, tuple)) or not items:
        raise PredictionError("inputs must be a non-empty list of strings")
    if not all(isinstance(item, str) for item in items):
        raise PredictionError("every input must be a string")
    return list(items)


# Absolute paths not glued to a word ("float32/float64" survives, "/srv/media/x.pt" does not).
_PATH_RE = re.compile(r"(?<![\w.~])(?:/[^\s'\"():,;]+)+/?")


def scrub_paths(message: str, *known: str) -> str:
    for path in known:
        if path:
            message = message.replace(path, "<artifact>")
    return _PATH_RE.sub("<path>", message)
