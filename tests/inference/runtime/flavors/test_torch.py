import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.runtime.contract.base import RuntimeOptions
from inference.runtime.contract.errors import ArtifactLoadError, ModelRuntimeError, PredictionError
from inference.runtime.flavors.torch import TorchExportRuntime, TorchScriptRuntime

INPUTS = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)


class Mlp(torch.nn.Module):
    def __init__(self, outputs: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Linear(4, 8)
        self.head = torch.nn.Linear(8, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


class HeadFirst(torch.nn.Module):
    # Registers the output layer first, so "the first Linear" is not the input layer.
    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(8, 2)
        self.body = torch.nn.Linear(4, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class Sequence3d(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=-1)


def _scripted(tmp_path: Path, module: torch.nn.Module, *, trace: bool = False) -> str:
    path = tmp_path / "model.pt"
    compiled = torch.jit.trace(module.eval(), torch.zeros(2, 4)) if trace else torch.jit.script(module.eval())
    torch.jit.save(compiled, path)
    return str(path)


def _exported(tmp_path: Path, module: torch.nn.Module, example: torch.Tensor, *, dynamic: bool) -> str:
    shapes = {"x": {0: torch.export.Dim("batch")}} if dynamic else None
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(module.eval(), (example,), dynamic_shapes=shapes), path)
    return str(path)


def _expected(module: torch.nn.Module) -> np.ndarray:
    with torch.no_grad():
        return module.eval()(torch.from_numpy(INPUTS)).double().numpy()


def _load(runtime, path: str, task: str, **options):
    runtime.load(path, task=task, options=RuntimeOptions(**options))
    return runtime


def test_torchscript_classifier_softmaxes_logits_into_labelled_probabilities(tmp_path):
    module = Mlp(3)
    runtime = _load(
        TorchScriptRuntime(), _scripted(tmp_path, module), "classification", classes=["a", "b", "c"]
    )
    result = runtime.predict(INPUTS.tolist())
    logits = _expected(module)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-5)
    assert result.predictions == [["a", "b", "c"][i] for i in logits.argmax(axis=1)]
    assert result.classes == ["a", "b", "c"]
    json.dumps(asdict(result), allow_nan=False)


def test_torchscript_signature_uses_the_first_linear_layer(tmp_path):
    runtime = _load(TorchScriptRuntime(), _scripted(tmp_path, Mlp(3)), "classification")
    signature = runtime.signature()
    assert signature["n_features"] == 4
    assert signature["inputs"] == [{"name": "inputs", "dtype": "float32", "shape": [-1, 4]}]
    assert signature["classes"] == [0, 1, 2]
    assert signature["outputs"][1] == {"name": "probabilities", "dtype": "float64", "shape": [-1, 3]}


def test_traced_regressor_returns_column_zero_as_floats(tmp_path):
    module = Mlp(1)
    runtime = _load(TorchScriptRuntime(), _scripted(tmp_path, module, trace=True), "regression")
    result = runtime.predict(INPUTS)
    assert result.probabilities is None and result.classes is None
    np.testing.assert_allclose(result.predictions, _expected(module)[:, 0], rtol=1e-5)
    assert all(type(value) is float for value in result.predictions)


def test_single_logit_classifier_gets_sigmoid_probabilities(tmp_path):
    module = Mlp(1)
    runtime = _load(TorchScriptRuntime(), _scripted(tmp_path, module), "classification")
    result = runtime.predict(INPUTS)
    positive = 1 / (1 + np.exp(-_expected(module)[:, 0]))
    np.testing.assert_allclose(np.array(result.probabilities)[:, 1], positive, rtol=1e-5)
    assert result.classes == [0, 1]


def test_wrong_first_linear_guess_is_dropped_and_a_declared_width_works(tmp_path):
    runtime = _load(TorchScriptRuntime(), _scripted(tmp_path, HeadFirst()), "regression")
    assert runtime.signature()["n_features"] is None
    declared = dict(runtime.signature(), n_features=4)
    declared["inputs"] = [{"name": "inputs", "dtype": "float32", "shape": [-1, 4]}]
    assert len(runtime.predict(runtime.smoke_inputs(3, declared)).predictions) == 3


def test_export_with_static_batch_serves_any_number_of_rows(tmp_path):
    module = Mlp(3)
    path = _exported(tmp_path, module, torch.zeros(2, 4), dynamic=False)
    runtime = _load(TorchExportRuntime(), path, "classification", classes=[10, 20, 30])
    result = runtime.predict(INPUTS)  # 5 rows through a graph fixed at 2 rows per call
    assert result.predictions == [[10, 20, 30][i] for i in _expected(module).argmax(axis=1)]
    assert len(result.probabilities) == 5
    assert runtime.signature()["n_features"] == 4


def test_export_with_dynamic_batch_multi_output_regression(tmp_path):
    module = Mlp(2)
    runtime = _load(
        TorchExportRuntime(), _exported(tmp_path, module, torch.zeros(3, 4), dynamic=True), "scoring"
    )
    result = runtime.predict(INPUTS)
    np.testing.assert_allclose(result.predictions, _expected(module), rtol=1e-5)
    assert runtime.signature()["outputs"] == [{"name": "predictions", "dtype": "float64", "shape": [-1, 2]}]


def test_export_with_non_tabular_input_is_refused(tmp_path):
    path = _exported(tmp_path, Sequence3d(), torch.zeros(2, 3, 4), dynamic=False)
    with pytest.raises(ArtifactLoadError, match=r"\[rows, features\]"):
        _load(TorchExportRuntime(), path, "regression")


def test_class_count_must_match_the_model(tmp_path):
    with pytest.raises(ArtifactLoadError, match="3 classes"):
        _load(TorchScriptRuntime(), _scripted(tmp_path, Mlp(3)), "classification", classes=["a", "b"])


def test_wrong_width_is_a_prediction_error(tmp_path):
    runtime = _load(TorchScriptRuntime(), _scripted(tmp_path, Mlp(3)), "classification")
    with pytest.raises(PredictionError, match="4 features"):
        runtime.predict([[1.0, 2.0]])


def test_devices(tmp_path):
    path = _scripted(tmp_path, Mlp(1))
    assert (
        len(
            _load(TorchScriptRuntime(), path, "regression", device="auto", threads=1)
            .predict(INPUTS)
            .predictions
        )
        == 5
    )
    with pytest.raises(ArtifactLoadError, match="unsupported device"):
        _load(TorchScriptRuntime(), path, "regression", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ArtifactLoadError, match="GPU"):
            _load(TorchScriptRuntime(), path, "regression", device="cuda")


def test_unload_frees_the_module(tmp_path):
    runtime = _load(TorchScriptRuntime(), _scripted(tmp_path, Mlp(1)), "regression")
    runtime.unload()
    with pytest.raises(ModelRuntimeError, match="not loaded"):
        runtime.predict(INPUTS)
