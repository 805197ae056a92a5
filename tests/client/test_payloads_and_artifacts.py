"""What the client sends: DataFrames, arrays and records as JSON the API takes, and fitted models saved in
formats the platform serves (never pickle)."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from servingplatform_client import artifacts
from servingplatform_client.payloads import dumps, example_records, to_inputs
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def test_a_dataframe_becomes_records_with_python_values_and_null_for_missing():
    frame = pd.DataFrame({"country": ["fr", None], "age": [31, 55], "income": [42000.5, np.nan],
                          "member": [True, False]})
    records = to_inputs(frame)
    assert records == [{"country": "fr", "age": 31, "income": 42000.5, "member": True},
                       {"country": None, "age": 55, "income": None, "member": False}]
    assert json.loads(dumps({"inputs": records})) == {"inputs": records}


def test_arrays_and_numpy_scalars_become_plain_json_and_floats_keep_every_digit():
    rows = np.array([[0.1, 1 / 3], [2.5e-300, 7.0]])
    assert to_inputs(rows) == rows.tolist()
    body = json.loads(dumps({"inputs": to_inputs(rows), "n": np.int64(3), "w": np.float32(0.5)}))
    assert body == {"inputs": rows.tolist(), "n": 3, "w": 0.5}
    assert np.array_equal(np.asarray(body["inputs"]), rows)  # round-trips bit for bit


def test_nan_is_sent_as_null_and_infinity_is_refused_before_sending():
    assert json.loads(dumps({"inputs": [[1.0, float("nan")]]})) == {"inputs": [[1.0, None]]}
    with pytest.raises(ValueError, match="infinite"):
        dumps({"inputs": np.array([[1.0, np.inf]]).tolist()})


def test_an_input_example_is_records_when_names_are_known_else_rows():
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    assert example_records(frame) == [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}]
    assert example_records(np.array([[1.0, 2.0]]), ["a", "b"]) == [{"a": 1.0, "b": 2.0}]
    assert example_records([[1.0, 2.0], [3.0, 4.0]]) == [[1.0, 2.0], [3.0, 4.0]]
    assert example_records([1.0, 2.0], ["a", "b"]) == [{"a": 1.0, "b": 2.0}]  # one row
    with pytest.raises(ValueError, match="2 values"):
        example_records([[1.0, 2.0, 3.0]], ["a", "b"])


def test_a_fitted_pipeline_is_saved_with_skops_and_loads_back_equal():
    x = pd.DataFrame(np.random.default_rng(0).normal(size=(60, 3)), columns=["a", "b", "c"])
    y = (x["a"] > 0).astype(int)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    with artifacts.saved(pipeline, flavor=None) as artifact:
        assert (artifact.flavor, artifact.task, artifact.feature_names) == ("sklearn", "classification",
                                                                            ["a", "b", "c"])
        assert zipfile.is_zipfile(artifact.path) and artifact.path.suffix == ".skops"
        loaded = sio.load(artifact.path, trusted=sio.get_untrusted_types(file=artifact.path))
        path = artifact.path
    np.testing.assert_array_equal(loaded.predict_proba(x), pipeline.predict_proba(x))
    assert not path.exists()  # the temporary copy is gone after the upload


def test_a_regressor_creates_a_regression_model_and_a_wrong_flavor_is_refused():
    regressor = LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0])
    with artifacts.saved(regressor, flavor="sklearn") as artifact:
        assert artifact.task == "regression"
    with pytest.raises(ValueError, match="does not match"), artifacts.saved(regressor, flavor="torch"):
        pass
    with pytest.raises(TypeError, match="cannot save a dict"), artifacts.saved({"weights": [1]}, flavor=None):
        pass


def test_a_path_is_uploaded_as_is_with_its_flavor_from_the_suffix(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07")
    with artifacts.saved(path, flavor=None) as artifact:
        assert (artifact.path, artifact.flavor) == (path, "onnx")
    ambiguous = tmp_path / "model.json"
    ambiguous.write_text("{}")
    with pytest.raises(ValueError, match="pass flavor="), artifacts.saved(ambiguous, flavor=None):
        pass
    with artifacts.saved(ambiguous, flavor="xgboost") as artifact:
        assert artifact.flavor == "xgboost"


def test_a_torch_module_is_exported_with_a_dynamic_batch_from_its_input_example():
    torch = pytest.importorskip("torch")
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    with artifacts.saved(module, flavor=None, input_example=[[0.1, 0.2, 0.3, 0.4]]) as artifact:  # one row
        assert (artifact.flavor, artifact.path.suffix) == ("torch", ".pt2")
        program = torch.export.load(str(artifact.path))
    for rows in (1, 5):
        batch = torch.randn(rows, 4)
        torch.testing.assert_close(program.module()(batch), module(batch))
    with pytest.raises(ValueError, match="input_example"), artifacts.saved(module, flavor=None):
        pass


def test_boosters_are_saved_in_their_native_formats():
    xgboost = pytest.importorskip("xgboost")  # installed with issue 14's flavors
    lightgbm = pytest.importorskip("lightgbm")
    x = np.random.default_rng(0).normal(size=(80, 3))
    y = (x[:, 0] > 0).astype(int)
    booster = xgboost.XGBClassifier(n_estimators=5).fit(x, y)
    with artifacts.saved(booster, flavor=None) as artifact:
        assert artifact.flavor == "xgboost"
        loaded = xgboost.XGBClassifier()
        loaded.load_model(str(artifact.path))
        json.loads(artifact.path.read_text())  # XGBoost's JSON format, not a pickle
    np.testing.assert_allclose(loaded.predict_proba(x), booster.predict_proba(x))
    gbm = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y)
    with artifacts.saved(gbm, flavor=None) as artifact:
        assert artifact.flavor == "lightgbm"
        text = artifact.path.read_text()
    assert text.startswith("tree")
    np.testing.assert_allclose(lightgbm.Booster(model_str=text).predict(x), gbm.predict_proba(x)[:, 1])
