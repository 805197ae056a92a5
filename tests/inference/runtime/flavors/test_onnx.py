"""ONNX graphs run by onnxruntime: one input per column (skl2onnx DataFrame pipelines, strings included) or one
matrix (torch.onnx.export), answers equal to onnxruntime's own run of the same graph and close to the model
that wrote it."""

import numpy as np
import pandas as pd
import pytest

from inference.runtime.contract.base import RuntimeOptions
from inference.runtime.contract.errors import ArtifactLoadError
from inference.runtime.contract.flavor_table import create_runtime
from inference.runtime.contract.formats import detect_format
from inference.runtime.web.inputs import normalize_inputs
from inference.runtime.worker.model import Member, ServedModel

ort = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")


def mixed(rows: int = 300):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(3)
    data = pd.DataFrame({"country": rng.choice(["fr", "de", "es"], size=rows),
                         "age": rng.integers(18, 80, size=rows).astype("float32"),
                         "income": rng.normal(40000, 9000, size=rows).astype("float32")})
    target = np.where((data["country"] == "fr") ^ (data["age"] > 50), "yes", "no")
    encode = ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["country"]),
                                ("n", StandardScaler(), ["age", "income"])])
    return data, make_pipeline(encode, LogisticRegression()).fit(data, target)


def served(path, task="classification") -> ServedModel:
    runtime = create_runtime(detect_format(path))
    runtime.load(str(path), task=task, options=RuntimeOptions())
    return ServedModel([Member(runtime, 1.0)], task=task, given=None)


@pytest.mark.parametrize("zipmap", [False, True])
def test_a_skl2onnx_dataframe_pipeline_takes_one_typed_column_per_input(tmp_path, zipmap):
    data, pipeline = mixed()
    onx = skl2onnx.to_onnx(pipeline, data.iloc[:1], options={"zipmap": zipmap})
    path = tmp_path / "model.onnx"
    path.write_bytes(onx.SerializeToString())
    assert detect_format(path) == "onnx"
    deployed = served(path)
    assert deployed.signature["columns"] == [{"name": "country", "dtype": "string", "nullable": False},
                                             {"name": "age", "dtype": "float32", "nullable": False},
                                             {"name": "income", "dtype": "float32", "nullable": False}]
    assert deployed.signature["classes"] == ["no", "yes"]
    sample = data.iloc[:40]
    result = deployed.predict(normalize_inputs(sample.to_dict("records"), deployed.signature, max_rows=100))
    session = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
    labels, proba = session.run(None, {name: sample[[name]].to_numpy() for name in sample.columns})
    if zipmap:
        proba = [[row[c] for c in ("no", "yes")] for row in proba]
    np.testing.assert_allclose(result.probabilities, proba, rtol=1e-6)
    assert result.predictions == labels.tolist() == pipeline.predict(sample).tolist()
    np.testing.assert_allclose(result.probabilities, pipeline.predict_proba(sample), atol=1e-5)


def test_a_torch_export_takes_a_matrix_and_a_classifier_gets_softmax_probabilities(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    x = torch.randn(6, 4)
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (x,), str(path), input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    deployed = served(path)
    assert (deployed.signature["n_features"], deployed.signature["classes"]) == (4, [0, 1, 2])
    result = deployed.predict(x.numpy().tolist())
    np.testing.assert_allclose(result.probabilities, torch.softmax(net(x), 1).detach().numpy(), atol=1e-6)
    regression = served(path, task="regression")
    np.testing.assert_allclose(regression.predict(x.numpy().tolist()).predictions, net(x).detach().numpy(),
                               atol=1e-6)


def test_an_image_model_is_refused_saying_what_is_unsupported(tmp_path):
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten()).eval()
    path = tmp_path / "conv.onnx"
    torch.onnx.export(net, (torch.randn(1, 3, 8, 8),), str(path), input_names=["image"], dynamo=False)
    with pytest.raises(ArtifactLoadError, match=r"input 'image' has shape \[1, 3, 8, 8\]"):
        served(path)


def test_a_gpu_asked_for_where_onnxruntime_has_none_is_refused(tmp_path):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    data, pipeline = mixed()
    path = tmp_path / "model.onnx"
    path.write_bytes(skl2onnx.to_onnx(pipeline, data.iloc[:1]).SerializeToString())
    runtime = create_runtime("onnx")
    with pytest.raises(ArtifactLoadError, match="no CUDA provider"):
        runtime.load(str(path), task="classification", options=RuntimeOptions(device="cuda"))
    runtime.load(str(path), task="classification", options=RuntimeOptions(device="auto"))  # falls back to CPU
