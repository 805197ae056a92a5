"""scikit-learn models fitted on a DataFrame: columns read from the fitted model, called with a DataFrame built
once per batch, explained with categories ablated to the input example's most frequent value; and validation
in the sandbox with an input example (its rows are the smoke prediction) or a reason when it cannot work."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from inference.runtime.contract.base import RuntimeOptions
from inference.runtime.flavors.sklearn import SkopsRuntime
from inference.runtime.sandbox.validate import validate_request
from inference.runtime.web.inputs import normalize_inputs
from inference.runtime.worker.ablation import NO_EXAMPLE
from inference.runtime.worker.model import Member, ServedModel


def mixed_frame(rows: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"country": rng.choice(["fr", "de", "es"], size=rows),
                          "age": rng.integers(18, 80, size=rows).astype(float),
                          "income": rng.normal(40000, 9000, size=rows)})
    frame.loc[frame.sample(frac=0.1, random_state=0).index, "income"] = np.nan
    return frame, ((frame["country"] == "fr") ^ (frame["age"] > 50)).astype(int).to_numpy()


def mixed_pipeline(frame, target):
    encode = ColumnTransformer([("country", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                                 ["country"])], remainder="passthrough")
    return make_pipeline(encode, HistGradientBoostingClassifier(max_iter=30)).fit(frame, target)


def records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def load(tmp_path: Path, model) -> tuple[SkopsRuntime, Path]:
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    runtime = SkopsRuntime()
    runtime.load(str(path), task="classification", options=RuntimeOptions())
    return runtime, path


def test_columns_come_from_the_fitted_pipeline(tmp_path):
    frame, target = mixed_frame()
    runtime, _ = load(tmp_path, mixed_pipeline(frame, target))
    columns = {c["name"]: c for c in runtime.signature()["columns"]}
    assert columns["country"] == {"name": "country", "dtype": "string", "nullable": True}  # unknown: ignored
    assert columns["income"]["nullable"] is True  # passed through to a model that takes NaN
    imputed = make_pipeline(ColumnTransformer([("n", make_pipeline(SimpleImputer(), StandardScaler()), ["age"]),
                                               ("c", OneHotEncoder(), ["country"])]),
                            LogisticRegression()).fit(frame[["age", "country"]], target)
    columns = {c["name"]: c for c in load(tmp_path, imputed)[0].signature()["columns"]}
    assert columns["age"]["nullable"] is True and columns["country"] == {
        "name": "country", "dtype": "string", "nullable": False}


def test_a_dataframe_pipeline_answers_as_itself_on_strings_and_missing_values(tmp_path):
    frame, target = mixed_frame()
    pipeline = mixed_pipeline(frame, target)
    runtime, _ = load(tmp_path, pipeline)
    served = ServedModel([Member(runtime, 1.0)], task="classification", given=None, example=records(frame[:5]))
    sample = frame.iloc[:60]
    rows = normalize_inputs(records(sample), served.signature, max_rows=100)
    result = served.predict(rows)
    assert result.predictions == pipeline.predict(sample).tolist()
    np.testing.assert_allclose(result.probabilities, pipeline.predict_proba(sample), rtol=1e-12)
    columns = {name: sample[name].tolist() for name in sample.columns}
    columns["income"] = [None if np.isnan(v) else v for v in columns["income"]]
    assert served.predict(normalize_inputs(columns, served.signature, max_rows=100)).predictions == \
        result.predictions


def test_explain_ablates_categories_to_the_examples_most_frequent_value(tmp_path):
    frame, target = mixed_frame()
    runtime, _ = load(tmp_path, mixed_pipeline(frame, target))
    example = [{"country": "de", "age": 30.0, "income": 1.0}] * 3 + [{"country": "fr", "age": 60.0, "income": None}]
    with_example = ServedModel([Member(runtime, 1.0)], task="classification", given=None, example=example)
    rows = normalize_inputs([{"country": "fr", "age": 31.0, "income": 42000.0}], with_example.signature, max_rows=9)
    explained = with_example.explain(rows, None)
    assert explained["baseline"] == ["de", 0.0, 0.0] and explained["skipped"] == {}
    assert all(isinstance(value, float) for value in explained["importances"][0])
    without = ServedModel([Member(runtime, 1.0)], task="classification", given=None)
    explained = without.explain(rows, None)
    assert explained["skipped"] == {"country": NO_EXAMPLE}
    assert explained["importances"][0][0] is None and isinstance(explained["importances"][0][1], float)


def _request(path: Path, **fields) -> dict:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"path": str(path), "format": "skops", "sha256": digest, "task": "classification",
            "allow_pickle": False, "signature": None, "classes": None, **fields}


def test_validation_uses_the_input_example_for_types_and_the_smoke_prediction(tmp_path):
    frame, target = mixed_frame()
    pipeline = mixed_pipeline(frame, target)
    _, path = load(tmp_path, pipeline)
    example = records(frame[:4])
    answer = validate_request(_request(path, input_example=example))
    assert answer["ok"], answer
    assert answer["smoke"]["from"] == "input_example" and answer["smoke"]["rows"] == 4
    assert answer["smoke"]["predictions"] == pipeline.predict(frame[:4]).tolist()
    assert [c["dtype"] for c in answer["signature"]["columns"]] == ["string", "float64", "float64"]
    contradicted = validate_request(_request(path, input_example=[{"country": 7, "age": 1.0, "income": 2.0}]))
    assert not contradicted["ok"]
    assert "column 'country'" in contradicted["error"] and "model takes strings" in contradicted["error"]


def test_a_model_that_cannot_take_what_it_is_given_fails_with_a_reason_not_a_numpy_error(tmp_path):
    frame, target = mixed_frame()
    numeric = LogisticRegression().fit(frame[["age"]], target)
    _, path = load(tmp_path, numeric)
    answer = validate_request(_request(path, signature={"columns": [{"name": "age", "dtype": "string"}]}))
    assert not answer["ok"]
    assert "column 'age': the signature says string but the model takes numbers" in answer["error"]
    answer = validate_request(_request(path, input_example=[{"age": None}]))
    assert not answer["ok"]
    assert answer["error"].startswith("the smoke prediction on the input example failed")


def test_an_ensemble_of_dataframe_pipelines_averages_their_probabilities(tmp_path):
    frame, target = mixed_frame()
    first, second = mixed_pipeline(frame, target), mixed_pipeline(frame.iloc[:200], target[:200])
    one, _ = load(tmp_path, first)
    (tmp_path / "two").mkdir()
    two, _ = load(tmp_path / "two", second)
    ensemble = ServedModel([Member(one, 1.0), Member(two, 3.0)], task="classification", given=None)
    sample = frame.iloc[:20]
    result = ensemble.predict(normalize_inputs(records(sample), ensemble.signature, max_rows=100))
    expected = 0.25 * first.predict_proba(sample) + 0.75 * second.predict_proba(sample)
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-12)
