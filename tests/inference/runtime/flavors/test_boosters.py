"""XGBoost (JSON, UBJSON) and LightGBM (text) runtimes: formats told from the bytes, signatures read from the
booster, answers equal to the scikit-learn wrapper's own on the same rows (missing values included)."""

import pickle

import numpy as np
import pandas as pd
import pytest

from inference.runtime.contract.base import RuntimeOptions
from inference.runtime.contract.errors import ArtifactLoadError
from inference.runtime.contract.flavor_table import create_runtime
from inference.runtime.contract.formats import UnknownFormat, detect_format
from inference.runtime.web.inputs import normalize_inputs
from inference.runtime.worker.model import Member, ServedModel

xgboost = pytest.importorskip("xgboost")
lightgbm = pytest.importorskip("lightgbm")


def frame(rows: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows), "c": rng.integers(0, 5, rows)})
    data.loc[::7, "b"] = np.nan
    return data, ((data["a"] > 0).astype(int) + (data["c"] > 2)).to_numpy()


def records(data: pd.DataFrame) -> list[dict]:
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in data.to_dict("records")]


def served(path, task="classification", given=None) -> ServedModel:
    runtime = create_runtime(detect_format(path))
    runtime.load(str(path), task=task, options=RuntimeOptions())
    return ServedModel([Member(runtime, 1.0)], task=task, given=given)


def answer(model: ServedModel, data: pd.DataFrame):
    return model.predict(normalize_inputs(records(data), model.signature, max_rows=1000))


@pytest.mark.parametrize("suffix", ["json", "ubj"])
@pytest.mark.parametrize("labels", [2, 3])
def test_xgboost_classifiers_answer_as_xgbclassifier(tmp_path, suffix, labels):
    data, target = frame()
    target = np.minimum(target, labels - 1)
    model = xgboost.XGBClassifier(n_estimators=8, max_depth=3).fit(data, target)
    path = tmp_path / f"model.{suffix}"
    model.save_model(path)
    assert detect_format(path) == f"xgboost_{suffix}"
    deployed = served(path)
    assert deployed.signature["columns"] == [{"name": "a", "dtype": "float64", "nullable": True},
                                             {"name": "b", "dtype": "float64", "nullable": True},
                                             {"name": "c", "dtype": "int64", "nullable": True}]
    result = answer(deployed, data.iloc[:50])
    np.testing.assert_allclose(result.probabilities, model.predict_proba(data.iloc[:50]), rtol=1e-6)
    assert result.predictions == model.predict(data.iloc[:50]).tolist()
    assert result.classes == list(range(labels))


def test_an_xgboost_regressor_answers_values_and_an_array_model_takes_rows(tmp_path):
    data, target = frame()
    model = xgboost.XGBRegressor(n_estimators=8).fit(data.to_numpy(), target.astype(float))
    model.save_model(tmp_path / "model.ubj")
    deployed = served(tmp_path / "model.ubj", task="regression")
    assert deployed.signature["columns"] is None and deployed.signature["n_features"] == 3
    rows = data.to_numpy()[:20]
    result = deployed.predict(np.nan_to_num(rows).tolist())
    np.testing.assert_allclose(result.predictions, model.predict(np.nan_to_num(rows)), rtol=1e-6)


def test_an_xgboost_categorical_feature_is_refused_saying_so(tmp_path):
    data, target = frame()
    data["c"] = data["c"].astype("category")
    model = xgboost.XGBClassifier(n_estimators=3, enable_categorical=True, tree_method="hist").fit(data, target)
    model.save_model(tmp_path / "model.json")
    with pytest.raises(ArtifactLoadError, match="column 'c' is an XGBoost categorical feature"):
        served(tmp_path / "model.json")


@pytest.mark.parametrize("labels", [2, 3])
def test_lightgbm_classifiers_answer_as_lgbmclassifier(tmp_path, labels):
    data, target = frame()
    target = np.minimum(target, labels - 1)
    model = lightgbm.LGBMClassifier(n_estimators=8, verbose=-1).fit(data, target)
    model.booster_.save_model(tmp_path / "model.txt")
    assert detect_format(tmp_path / "model.txt") == "lightgbm_text"
    deployed = served(tmp_path / "model.txt")
    result = answer(deployed, data.iloc[:50])
    np.testing.assert_allclose(result.probabilities, model.predict_proba(data.iloc[:50]), rtol=1e-9)
    assert result.predictions == model.predict(data.iloc[:50]).tolist()


def test_lightgbm_pandas_categories_take_strings(tmp_path):
    data, target = frame()
    data["city"] = pd.Categorical(np.random.default_rng(1).choice(["paris", "lyon", "nice"], len(data)))
    model = lightgbm.LGBMRegressor(n_estimators=8, verbose=-1, min_child_samples=5).fit(data, target)
    model.booster_.save_model(tmp_path / "model.txt")
    deployed = served(tmp_path / "model.txt", task="regression")
    assert deployed.signature["columns"][3] == {"name": "city", "dtype": "string", "nullable": True}
    result = answer(deployed, data.iloc[:40])
    np.testing.assert_allclose(result.predictions, model.predict(data.iloc[:40]), rtol=1e-9)


def test_pickles_and_strangers_are_never_taken_for_native_formats(tmp_path):
    data, target = frame()
    model = xgboost.XGBClassifier(n_estimators=2).fit(data, target)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    assert detect_format(tmp_path / "model.pkl") == "pickle"
    (tmp_path / "v0.pkl").write_bytes(pickle.dumps({"learner": 1}, protocol=0))  # a text pickle
    (tmp_path / "text.json").write_bytes(b'{"learnt": {}}')
    (tmp_path / "tree.txt").write_bytes(b"trees\nversion=v4\n")
    for name in ("v0.pkl", "text.json", "tree.txt"):
        with pytest.raises(UnknownFormat):
            detect_format(tmp_path / name)
