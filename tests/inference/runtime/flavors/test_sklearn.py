import json
import os
import pickle
from dataclasses import asdict
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.cluster import KMeans
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, RandomForestRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC

from inference.runtime.contract.base import RuntimeOptions
from inference.runtime.contract.errors import ArtifactLoadError, ModelRuntimeError, PredictionError, UntrustedArtifact
from inference.runtime.flavors.sklearn import PickleRuntime, SkopsRuntime, check_skops_types, forest_predict_proba

RNG = np.random.default_rng(7)
X = RNG.normal(size=(90, 4))
LABELS = np.array(["spam", "ham", "eggs"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 1).astype(int)]


class MarkerWrapper(BaseEstimator, ClassifierMixin):
    """A custom class: loading it would run __setstate__, which drops a marker file."""

    def __init__(self, marker: str = "") -> None:
        self.marker = marker

    def fit(self, x, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, x):
        return np.repeat(self.classes_[0], len(x))

    def __setstate__(self, state):
        Path(state["marker"]).touch()
        self.__dict__.update(state)


def _load_skops(tmp_path: Path, model, *, name: str = "model.skops") -> SkopsRuntime:
    path = tmp_path / name
    sio.dump(model, path)
    runtime = SkopsRuntime()
    runtime.load(str(path), task="classification", options=RuntimeOptions())
    return runtime


def test_probabilities_follow_the_order_of_classes(tmp_path):
    model = LogisticRegression(max_iter=500).fit(X, LABELS)
    runtime = _load_skops(tmp_path, model)
    rows = X[:6].tolist()
    result = runtime.predict(rows)
    assert result.classes == ["eggs", "ham", "spam"] == runtime.signature()["classes"]
    np.testing.assert_allclose(result.probabilities, model.predict_proba(np.array(rows)))
    for label, proba in zip(result.predictions, result.probabilities):
        assert result.classes[int(np.argmax(proba))] == label
    assert result.predictions == model.predict(np.array(rows)).tolist()


@pytest.mark.parametrize("forest", [RandomForestClassifier, ExtraTreesClassifier])
def test_forests_predict_without_joblib_and_give_the_same_floats(tmp_path, forest):
    model = forest(n_estimators=25, max_depth=6, random_state=3).fit(X, LABELS)
    assert forest_predict_proba(model) is not None
    runtime = _load_skops(tmp_path, model)
    rows = RNG.normal(size=(40, 4))
    result = runtime.predict(rows.tolist())
    np.testing.assert_array_equal(np.asarray(result.probabilities), model.predict_proba(rows))
    assert result.predictions == model.predict(rows).tolist()


def test_forest_tables_give_the_same_floats_for_many_classes_and_for_trees_without_splits():
    many = np.digitize(X[:, 0] + X[:, 2], np.linspace(-2, 2, 11))  # 12 classes
    split = RandomForestClassifier(n_estimators=30, random_state=1).fit(X, many)
    unsplit = RandomForestClassifier(n_estimators=5, min_samples_split=1_000).fit(X, LABELS)
    assert all(tree.tree_.node_count == 1 for tree in unsplit.estimators_)
    for model, rows in ((split, RNG.normal(size=(50, 4))), (unsplit, X.astype(np.float32))):
        shortcut = forest_predict_proba(model)
        assert shortcut is not None
        np.testing.assert_array_equal(shortcut(rows), model.predict_proba(rows))
        np.testing.assert_array_equal(shortcut(rows[:1]), model.predict_proba(rows[:1]))


def test_a_forest_whose_own_method_gives_other_floats_keeps_it():
    # As after a scikit-learn release that computes tree probabilities differently: the load-time check
    # against the model's own method must turn the shortcut down.
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, LABELS)
    model.predict_proba = lambda rows: RandomForestClassifier.predict_proba(model, rows) * (1 + 1e-12)
    assert forest_predict_proba(model) is None


def test_only_forests_whose_method_is_reproduced_take_the_shortcut():
    two_outputs = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, np.stack([LABELS, LABELS], axis=1))

    class CustomForest(RandomForestClassifier):
        pass

    assert forest_predict_proba(two_outputs) is None
    assert forest_predict_proba(CustomForest(n_estimators=3).fit(X, LABELS)) is None
    assert forest_predict_proba(LogisticRegression().fit(X, LABELS)) is None


def test_predictions_are_plain_json_types(tmp_path):
    runtime = _load_skops(tmp_path, LogisticRegression().fit(X, (X[:, 0] > 0).astype(np.int64)))
    result = runtime.predict(X[:3])
    assert all(type(p) is int for p in result.predictions)
    assert all(type(c) is int for c in result.classes)
    json.dumps(asdict(result), allow_nan=False)


def test_tabular_signature_reports_width_and_outputs(tmp_path):
    signature = _load_skops(
        tmp_path, make_pipeline(StandardScaler(), LogisticRegression()).fit(X, LABELS)
    ).signature()
    assert signature["input_kind"] == "tabular"
    assert signature["n_features"] == 4
    assert signature["inputs"] == [{"name": "inputs", "dtype": "float64", "shape": [-1, 4]}]
    assert signature["outputs"] == [
        {"name": "predictions", "dtype": "string", "shape": [-1]},
        {"name": "probabilities", "dtype": "float64", "shape": [-1, 3]},
    ]
    assert signature["feature_names"] is None


def test_classifier_without_predict_proba_has_labels_but_no_probabilities(tmp_path):
    runtime = _load_skops(tmp_path, LinearSVC().fit(X, LABELS))
    result = runtime.predict(X[:2])
    assert result.probabilities is None
    assert result.classes == ["eggs", "ham", "spam"]
    assert [o["name"] for o in runtime.signature()["outputs"]] == ["predictions"]


def test_feature_names_come_from_feature_names_in(tmp_path):
    # pandas is not installed: set the attribute fit() would set for a DataFrame.
    model = LinearRegression().fit(X[:, :3], X[:, 3])
    model.feature_names_in_ = np.array(["age", "height", "weight"], dtype=object)
    signature = _load_skops(tmp_path, model).signature()
    assert signature["feature_names"] == ["age", "height", "weight"]
    assert signature["n_features"] == 3


def test_text_pipeline_takes_strings(tmp_path):
    texts = ["great product", "awful service", "great value", "awful delay"] * 5
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, [1, 0, 1, 0] * 5)
    runtime = _load_skops(tmp_path, model)
    signature = runtime.signature()
    assert signature["input_kind"] == "text"
    assert signature["inputs"] == [{"name": "inputs", "dtype": "string", "shape": [-1]}]
    assert signature["n_features"] is None
    assert runtime.predict(["great great", "awful awful"]).predictions == [1, 0]
    smoke = runtime.smoke_inputs(3)
    assert len(smoke) == 3 and all(isinstance(s, str) and len(s.split()) >= 2 for s in smoke)
    with pytest.raises(PredictionError, match="string"):
        runtime.predict([1.0, 2.0])


def test_regressor_has_no_probabilities(tmp_path):
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, X[:, 0] * 2)
    runtime = _load_skops(tmp_path, model)
    result = runtime.predict(runtime.smoke_inputs(4))
    assert result.probabilities is None and result.classes is None
    assert len(result.predictions) == 4 and all(type(p) is float for p in result.predictions)
    assert runtime.signature()["outputs"] == [{"name": "predictions", "dtype": "float64", "shape": [-1]}]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1.0, 2.0, 3.0]], "4 features"),
        ([[1, 2], [3]], "rows"),
        ([["a", "b", "c", "d"]], "numbers"),
        ([], "non-empty"),
    ],
)
def test_bad_tabular_inputs_are_prediction_errors(tmp_path, rows, message):
    runtime = _load_skops(tmp_path, LogisticRegression().fit(X, LABELS))
    with pytest.raises(PredictionError, match=message):
        runtime.predict(rows)


def test_type_outside_the_allow_list_is_refused_without_loading(tmp_path):
    marker = tmp_path / "loaded"
    path = tmp_path / "wrapped.skops"
    sio.dump(MarkerWrapper(marker=str(marker)).fit(X, LABELS), path)
    with pytest.raises(UntrustedArtifact) as caught:
        SkopsRuntime().load(str(path), task="classification", options=RuntimeOptions())
    assert f"{__name__}.MarkerWrapper" in caught.value.types
    assert not marker.exists()
    # The payload is real: trusting the type runs __setstate__.
    sio.load(path, trusted=[f"{__name__}.MarkerWrapper"])
    assert marker.exists()


def test_function_transformer_calling_os_system_is_refused(tmp_path):
    path = tmp_path / "system.skops"
    sio.dump(make_pipeline(FunctionTransformer(func=os.system), LinearRegression()), path)
    with pytest.raises(UntrustedArtifact, match="system") as caught:
        check_skops_types(str(path))
    assert f"{os.system.__module__}.system" in caught.value.types


def test_estimator_skops_trusts_but_the_platform_does_not_is_refused(tmp_path):
    path = tmp_path / "kmeans.skops"
    sio.dump(KMeans(n_clusters=2, n_init=1, random_state=0).fit(X), path)
    assert sio.get_untrusted_types(file=path) == []
    with pytest.raises(UntrustedArtifact, match="KMeans"):
        check_skops_types(str(path))


def test_allow_listed_internal_types_are_passed_as_trusted(tmp_path):
    path = tmp_path / "forest.skops"
    sio.dump(RandomForestRegressor(n_estimators=2).fit(X, X[:, 0]), path)
    assert check_skops_types(str(path)) == ["sklearn.tree._tree.Tree"]


def test_pickle_runtime_loads_joblib_files(tmp_path):
    model = LogisticRegression().fit(X, LABELS)
    joblib.dump(model, tmp_path / "model.joblib")
    runtime = PickleRuntime()
    runtime.load(str(tmp_path / "model.joblib"), task="classification", options=RuntimeOptions())
    assert runtime.predict(X[:2]).predictions == model.predict(X[:2]).tolist()


def test_pickle_without_an_estimator_is_a_load_error(tmp_path):
    (tmp_path / "data.pkl").write_bytes(pickle.dumps({"weights": [1, 2]}, protocol=4))
    with pytest.raises(ArtifactLoadError, match="estimator"):
        PickleRuntime().load(str(tmp_path / "data.pkl"), task="regression", options=RuntimeOptions())


def test_unload_drops_the_model(tmp_path):
    runtime = _load_skops(tmp_path, LogisticRegression().fit(X, LABELS))
    runtime.unload()
    with pytest.raises(ModelRuntimeError, match="not loaded"):
        runtime.predict(X[:1])
