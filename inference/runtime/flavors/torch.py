# PyTorch runtimes. Only the registry imports this module, on first use of a torch format, so the
# web process never pays for torch. `import torch` here is the real package (absolute imports).
from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from inference.runtime.contract.base import ModelRuntime, Prediction, RuntimeOptions, scrub_paths, tabular_batch
from inference.runtime.contract.errors import (
    ArtifactLoadError,
    ModelRuntimeError,
    PredictionError,
    UnsupportedOperation,
)
from inference.runtime.contract.scores import classify, probabilities
from inference.runtime.contract.signature import Signature, build_signature

_NUMPY_DTYPES: dict[str, type[np.floating[Any]]] = {"float32": np.float32, "float64": np.float64}
_DROPOUT_NAMES = frozenset(
    {"Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"}
)


@dataclass(frozen=True)
class _InputSpec:
    n_features: int | None = None
    dtype: str = "float32"
    # Exported programs without a dynamic batch dimension only accept this many rows per call.
    static_batch: int | None = None
    # True when n_features comes from a heuristic (first Linear layer) rather than the model's contract.
    guessed: bool = False


class _TorchRuntime(ModelRuntime):
    def __init__(self) -> None:
        self._module: Any = None
        self._device = "cpu"
        self._task = ""
        self._classes: list[Any] | None = None
        self._spec = _InputSpec()
        self._width: int | None = None

    def load(self, path: str, *, task: str, options: RuntimeOptions) -> None:
        self.check_options(options)
        device = resolve_device(options.device)
        if options.threads:
            torch.set_num_threads(options.threads)
        try:
            module, self._spec = self._read(path, device)
            self._module = self._optimize(module, options, device)
        except ModelRuntimeError:
            raise
        except Exception as exc:
            message = scrub_paths(str(exc), path)
            raise ArtifactLoadError(f"could not load the {self.format} artifact: {message}") from exc
        self._device, self._task, self._classes = device, task, options.classes
        self._width = self._probe_width()
        self._check_classes()

    def _read(self, path: str, device: str) -> tuple[Any, _InputSpec]:
        raise NotImplementedError

    def _optimize(self, module: Any, options: RuntimeOptions, device: str) -> Any:
        return module

    def predict_with_dropout(self, inputs: Any, samples: int) -> tuple[Prediction, list[Any]]:
        if self._module is None:
            raise ModelRuntimeError("the model is not loaded")
        layers = dropout_layers(self._module)
        if not layers:
            raise UnsupportedOperation("the model has no dropout layers that can be switched on")
        batch = tabular_batch(inputs, n_features=self._spec.n_features, dtype=_NUMPY_DTYPES[self._spec.dtype])
        # One forward pass over the batch repeated `samples` times: dropout masks are drawn per
        # element, so the copies are independent samples, at the cost of a single call.
        for layer in layers:
            layer.train(True)
        try:
            scores = self._forward(np.concatenate([batch] * samples))
        finally:
            for layer in layers:
                layer.train(False)
        return self._summarize(scores.reshape(samples, len(batch), -1))

    def _summarize(self, scores: np.ndarray) -> tuple[Prediction, list[Any]]:
        if self._task == "classification":
            proba = np.stack([probabilities(sample) for sample in scores])
            mean = proba.mean(axis=0)
            labels = self._labels(mean.shape[1]) or []
            prediction = Prediction([labels[i] for i in mean.argmax(axis=1)], mean.tolist(), labels)
            return prediction, proba.std(axis=0).tolist()
        mean, std = scores.mean(axis=0), scores.std(axis=0)
        if mean.shape[1] == 1:
            return Prediction(mean[:, 0].tolist()), std[:, 0].tolist()
        return Prediction(mean.tolist()), std.tolist()

    def signature(self) -> Signature:
        if self._module is None:
            raise ModelRuntimeError("the model is not loaded")
        return build_signature(
            input_kind="tabular",
            input_dtype=self._spec.dtype,
            n_features=self._spec.n_features,
            classes=self._labels(self._width) if self._task == "classification" else None,
            output_width=self._width,
        )

    def predict(self, inputs: Any) -> Prediction:
        if self._module is None:
            raise ModelRuntimeError("the model is not loaded")
        dtype = _NUMPY_DTYPES[self._spec.dtype]
        batch = tabular_batch(inputs, n_features=self._spec.n_features, dtype=dtype)
        scores = self._forward(batch)
        if self._task == "classification":
            return classify(scores, self._labels(scores.shape[1]))
        return Prediction(scores[:, 0].tolist() if scores.shape[1] == 1 else scores.tolist())

    def unload(self) -> None:
        self._module = None
        gc.collect()
        if self._device.startswith("cuda"):
            torch.cuda.empty_cache()

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        try:
            with torch.inference_mode():
                parts = self._chunks(torch.from_numpy(batch).to(self._device))
                out = torch.cat([_as_scores(self._module(part)) for part in parts])
        except ModelRuntimeError:
            raise
        except Exception as exc:
            raise PredictionError(f"the model could not predict: {scrub_paths(str(exc))}") from exc
        sent = sum(len(part) for part in parts)
        if out.shape[0] != sent:
            raise PredictionError(f"the model returned {out.shape[0]} rows for {sent} inputs")
        return out[: len(batch)].numpy()  # drop the rows padding a static batch

    def _chunks(self, x: Any) -> list[Any]:
        size = self._spec.static_batch
        if size is None or len(x) == size:
            return [x]
        padding = (-len(x)) % size
        if padding:
            x = torch.cat([x, x.new_zeros((padding, x.shape[1]))])
        return list(torch.split(x, size))

    def _probe_width(self) -> int | None:
        n_features = self._spec.n_features
        if n_features is None:
            return None
        zeros = np.zeros((1, n_features), dtype=_NUMPY_DTYPES[self._spec.dtype])
        try:
            return int(self._forward(zeros).shape[1])
        except PredictionError:
            if not self._spec.guessed:
                raise
            # The first Linear layer was not the input layer; leave the width to the signature.
            self._spec = _InputSpec(dtype=self._spec.dtype)
            return None

    def _labels(self, width: int | None) -> list[Any] | None:
        if self._classes is not None:
            return list(self._classes)
        if width is None:
            return None
        return [0, 1] if width == 1 else list(range(width))

    def _check_classes(self) -> None:
        if self._task != "classification" or self._classes is None or self._width is None:
            return
        expected = 2 if self._width == 1 else self._width
        if len(self._classes) != expected:
            raise ArtifactLoadError(
                f"the model scores {expected} classes but {len(self._classes)} were given"
            )


class TorchScriptRuntime(_TorchRuntime):
    format = "torchscript"

    def check_options(self, options: RuntimeOptions) -> None:
        if options.extra.get("compile"):
            raise ArtifactLoadError(
                "torch.compile cannot compile TorchScript models; upload a torch.export program to compile it"
            )

    def _read(self, path: str, device: str) -> tuple[Any, _InputSpec]:
        module = torch.jit.load(path, map_location=device)  # type: ignore[no-untyped-call]  # unannotated in torch
        module.eval()
        return module, _script_input_spec(module)

    def _optimize(self, module: Any, options: RuntimeOptions, device: str) -> Any:
        if not options.extra.get("quantize"):
            return module
        return quantize_script(module, device)


class TorchExportRuntime(_TorchRuntime):
    format = "torch_export"

    def _read(self, path: str, device: str) -> tuple[Any, _InputSpec]:
        program = torch.export.load(path)
        spec = _export_input_spec(program)
        module = program.module()
        # Exported modules refuse .eval(); their graph is already fixed in inference form.
        return (module if device == "cpu" else module.to(device)), spec

    def check_options(self, options: RuntimeOptions) -> None:
        if options.extra.get("quantize"):
            raise ArtifactLoadError(
                "int8 quantization is available for TorchScript models only: an exported program has "
                "no Linear modules to swap for quantized ones"
            )

    def _optimize(self, module: Any, options: RuntimeOptions, device: str) -> Any:
        if not options.extra.get("compile"):
            return module
        compiled = torch.compile(module, dynamic=True)
        self._warm_compiled(compiled, device)
        return compiled

    def _warm_compiled(self, compiled: Any, device: str) -> None:
        # Compilation is lazy: pay for it here, not on the first requests. Two shapes because a
        # dynamic graph still specializes one-row batches.
        if self._spec.n_features is None:
            return
        dtype = getattr(torch, self._spec.dtype)
        try:
            with torch.inference_mode():
                for rows in (1, 2):
                    size = self._spec.static_batch or rows
                    compiled(torch.zeros((size, self._spec.n_features), dtype=dtype, device=device))
        except Exception as exc:
            raise ArtifactLoadError(f"torch.compile failed: {scrub_paths(str(exc))[:500]}") from exc


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ArtifactLoadError("a GPU was requested but none is available")
    if requested == "cpu" or requested.startswith("cuda"):
        return requested
    raise ArtifactLoadError(f"unsupported device {requested!r}; use cpu, cuda or auto")


def quantize_script(module: Any, device: str) -> Any:
    """Dynamic int8 quantization of a TorchScript module's Linear layers (graph mode).

    Eager `quantize_dynamic` leaves a ScriptModule untouched without a word, so the JIT pass is the
    one that works here. It freezes the graph: dropout can no longer be switched on afterwards.
    """
    if device != "cpu":
        raise ArtifactLoadError("int8 quantized models run on CPU only; deploy on cpu or turn quantize off")
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic_jit

    quantized = quantize_dynamic_jit(module, {"": default_dynamic_qconfig})  # type: ignore[no-untyped-call]  # as above
    if "quantized::linear_dynamic" not in str(quantized.graph):
        raise ArtifactLoadError("quantize found no Linear layers to convert to int8")
    return quantized


def dropout_layers(module: Any) -> list[Any]:
    """Dropout modules whose behaviour follows their `training` flag.

    A traced module bakes `training=False` into its graph, so its Dropout submodules are inert.
    """
    found = []
    for _, sub in module.named_modules():
        if isinstance(sub, torch.nn.modules.dropout._DropoutNd):
            found.append(sub)
        elif getattr(sub, "original_name", None) in _DROPOUT_NAMES and "self.training" in _script_code(sub):
            found.append(sub)
    return found


def _script_code(module: Any) -> str:
    try:
        return str(module.code)
    except (AttributeError, RuntimeError):
        return ""


def _as_scores(result: Any) -> Any:
    if isinstance(result, (tuple, list)) and result:
        result = result[0]
    if not isinstance(result, torch.Tensor):
        raise PredictionError(f"the model returned {type(result).__name__}, not a tensor")
    if result.dim() == 1:
        result = result.unsqueeze(1)
    if result.dim() != 2:
        raise PredictionError(
            f"the model output has shape {list(result.shape)}; expected [rows] or [rows, k]"
        )
    return result.detach().to("cpu", torch.float64)


def _script_input_spec(module: Any) -> _InputSpec:
    for _, sub in module.named_modules():
        if getattr(sub, "original_name", None) == "Linear":
            weight = sub.weight
            dtype = "float64" if str(weight.dtype) == "torch.float64" else "float32"
            return _InputSpec(n_features=int(weight.shape[1]), dtype=dtype, guessed=True)
    return _InputSpec()


def _export_input_spec(program: Any) -> _InputSpec:
    names = list(program.graph_signature.user_inputs)
    if len(names) != 1:
        raise ArtifactLoadError(f"the exported model must take one tensor input; it takes {len(names)}")
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == names[0])
    value = node.meta.get("val")
    shape = tuple(getattr(value, "shape", ()))
    if len(shape) != 2:
        raise ArtifactLoadError(f"the exported model's input must be [rows, features]; it is {list(shape)}")
    dtype = str(getattr(value, "dtype", "")).removeprefix("torch.")
    if dtype not in _NUMPY_DTYPES:
        raise ArtifactLoadError(
            f"the exported model takes {dtype or 'unknown'} input; expected float32 or float64"
        )
    rows, features = shape
    return _InputSpec(
        n_features=features if isinstance(features, int) else None,
        dtype=dtype,
        static_batch=rows if isinstance(rows, int) else None,
    )
