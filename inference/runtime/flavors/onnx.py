# ONNX graphs (from skl2onnx, torch.onnx.export, ...) run by onnxruntime: on the CPU, or with the CUDA provider
# when the deployment's device asks for it and onnxruntime has one. Inputs and outputs are read from the graph:
# one input per column (skl2onnx's DataFrame pipelines: [N, 1] tensors named after the columns, strings
# included) or one [N, k] matrix; a label and a probability output for classifiers, else scores (logits for
# task=classification, values otherwise). The model is loaded from its bytes, so no external data file is read.
from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from inference.runtime.contract.base import (
    ModelRuntime,
    Prediction,
    RuntimeOptions,
    json_safe,
    loaded_signature,
    tabular_batch,
)
from inference.runtime.contract.columns import Column
from inference.runtime.contract.errors import ArtifactLoadError, PredictionError
from inference.runtime.contract.frames import ColumnBatch
from inference.runtime.contract.scores import classify, values
from inference.runtime.contract.signature import Signature, build_signature

_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
           "tensor(string)": "string", "tensor(bool)": "bool"}
_NUMPY = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "bool": np.bool_, "string": object}
_CLASS_ATTRIBUTES = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")


class OnnxRuntime(ModelRuntime):
    format = "onnx"

    def __init__(self) -> None:
        self._session: Any = None
        self._inputs: list[Any] = []
        self._labelled = False  # a label output followed by a probability output (skl2onnx classifiers)
        self._task = ""
        self._classes: list[Any] | None = None
        self._signature: Signature | None = None

    def load(self, path: str, *, task: str, options: RuntimeOptions) -> None:
        self.check_options(options)
        with open(path, "rb") as handle:
            data = handle.read()
        settings = ort.SessionOptions()
        settings.intra_op_num_threads = options.threads or 1
        settings.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(data, settings, providers=_providers(options.device))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidGraph/... types
            raise ArtifactLoadError(f"onnxruntime could not load the model: {str(exc)[:300]}") from exc
        self._inputs, self._task = self._session.get_inputs(), task
        outputs = self._session.get_outputs()
        self._labelled = len(outputs) >= 2 and _is_label(outputs[0])
        self._classes = self._class_labels(data, options.classes)
        self._signature = self._build_signature(outputs)

    def _class_labels(self, data: bytes, given: list[Any] | None) -> list[Any] | None:
        if given is not None:
            return list(given)
        if self._labelled:
            return graph_classes(data)
        return None

    def _build_signature(self, outputs: list[Any]) -> Signature:
        columns = _columns(self._inputs)
        single = None if columns else _matrix_input(self._inputs)
        width = _width(outputs[1 if self._labelled else 0])
        classifier = self._labelled or self._task == "classification"
        if classifier and self._classes is None and width:
            self._classes = [0, 1] if width == 1 else list(range(width))
        return build_signature(
            input_kind="tabular", input_dtype=single[1] if single else "float32",
            n_features=len(columns) if columns else (single[0] if single else None),
            feature_names=[c["name"] for c in columns] if columns else None,
            classes=self._classes if classifier else None, output_width=width, columns=columns,
        )

    def signature(self) -> Signature:
        return loaded_signature(self._signature)

    def predict(self, inputs: Any) -> Prediction:
        feeds = self._feeds(inputs)
        try:
            outputs = self._session.run(None, feeds)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's errors are its own types
            raise PredictionError(f"the model could not predict: {str(exc)[:300]}") from exc
        if self._labelled:
            return self._labelled_prediction(outputs)
        scores = np.asarray(outputs[0], dtype=np.float64)
        scores = scores[:, None] if scores.ndim == 1 else scores
        if self._signature and self._signature.get("classes") is not None:
            return classify(scores, self._classes)
        return values(scores)

    def _feeds(self, inputs: Any) -> dict[str, np.ndarray]:
        if isinstance(inputs, ColumnBatch) and len(self._inputs) > 1:
            return {spec.name: _column_tensor(inputs.arrays[spec.name], spec) for spec in self._inputs}
        spec = self._inputs[0]
        dtype = _NUMPY[_DTYPES[spec.type]]
        if isinstance(inputs, ColumnBatch) and len(inputs.columns) == 1 and len(spec.shape) <= 2:
            return {spec.name: _column_tensor(inputs.arrays[inputs.names[0]], spec)}
        batch = tabular_batch(inputs, n_features=self.signature()["n_features"], dtype=np.float64)
        return {spec.name: batch.astype(dtype, copy=False)}

    def _labelled_prediction(self, outputs: list[Any]) -> Prediction:
        labels, scores = outputs[0], outputs[1]
        if isinstance(scores, list):  # ZipMap: one {class: probability} per row
            classes = (self._classes or list(scores[0])) if scores else (self._classes or [])
            scores = [[row[c] for c in classes] for row in scores]
        proba = np.asarray(scores, dtype=np.float64)
        return Prediction(json_safe(np.asarray(labels).ravel()), proba.tolist(), self._classes)

    def unload(self) -> None:
        self._session = None
        self._signature = None


def _providers(device: str) -> list[str]:
    available = ort.get_available_providers()
    if device in ("cuda", "auto") or device.startswith("cuda:"):
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device != "auto":
            raise ArtifactLoadError("a GPU was requested but onnxruntime has no CUDA provider here "
                                    "(onnxruntime-gpu and a GPU are needed)")
    elif device != "cpu":
        raise ArtifactLoadError(f"unsupported device {device!r}; use cpu, cuda or auto")
    return ["CPUExecutionProvider"]


def _dtype(spec: Any) -> str:
    dtype = _DTYPES.get(spec.type)
    if dtype is None:
        raise ArtifactLoadError(f"input '{spec.name[:64]}' is a {spec.type}, which the platform does not serve "
                                "(float, double, int64, string and bool tensors)")
    return dtype


def _columns(inputs: list[Any]) -> list[Column] | None:
    if len(inputs) < 2:
        return None
    for spec in inputs:
        if len(spec.shape) not in (1, 2) or (len(spec.shape) == 2 and spec.shape[1] not in (1, None)):
            raise ArtifactLoadError(f"input '{spec.name[:64]}' has shape {spec.shape}; a graph with several inputs "
                                    "is served when each is one column ([N] or [N, 1])")
    return [{"name": spec.name, "dtype": _dtype(spec), "nullable": False} for spec in inputs]


def _matrix_input(inputs: list[Any]) -> tuple[int | None, str]:
    spec = inputs[0]
    dtype = _dtype(spec)
    if len(spec.shape) != 2 or dtype == "string":
        raise ArtifactLoadError(f"input '{spec.name[:64]}' has shape {spec.shape} and type {spec.type}; the "
                                "platform serves one [N, k] numeric matrix or one [N, 1] tensor per column")
    width = spec.shape[1]
    return (width if isinstance(width, int) else None), dtype


def _column_tensor(array: np.ndarray, spec: Any) -> np.ndarray:
    dtype = _NUMPY[_DTYPES[spec.type]]
    values_ = array.astype(dtype, copy=False) if dtype is not object else array
    return values_.reshape(-1, 1) if len(spec.shape) == 2 else values_


def _is_label(spec: Any) -> bool:
    return spec.type in ("tensor(int64)", "tensor(string)") and len(spec.shape) == 1


def _width(spec: Any) -> int | None:
    shape = getattr(spec, "shape", None) or []
    return shape[1] if len(shape) == 2 and isinstance(shape[1], int) else (1 if len(shape) == 1 else None)


def graph_classes(data: bytes) -> list[Any] | None:
    """The class labels a classifier node records (skl2onnx writes them as an attribute), or None."""
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load_model_from_string(data)
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.name in _CLASS_ATTRIBUTES:
                found = onnx.helper.get_attribute_value(attribute)
                return [item.decode() if isinstance(item, bytes) else int(item) for item in found]
    return None

