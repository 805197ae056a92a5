import pytest

from inference.runtime.contract.errors import ModelRuntimeError, SignatureMismatch
from inference.runtime.contract.signature import build_signature, generate_inputs, merge_signatures


def _inferred(**overrides):
    fields = {"input_kind": "tabular", "input_dtype": "float32", "n_features": None, "classes": None}
    return build_signature(**{**fields, **overrides})


def test_given_values_fill_what_the_model_cannot_tell():
    merged = merge_signatures(_inferred(), {"n_features": 3, "feature_names": ["a", "b", "c"]})
    assert merged["n_features"] == 3
    assert merged["feature_names"] == ["a", "b", "c"]
    assert merged["inputs"] == [{"name": "inputs", "dtype": "float32", "shape": [-1, 3]}]


def test_feature_names_alone_give_the_width():
    assert merge_signatures(_inferred(), {"feature_names": ["a", "b"]})["n_features"] == 2


def test_no_given_signature_keeps_the_inferred_one():
    inferred = _inferred(n_features=4)
    assert merge_signatures(inferred, None) is inferred


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"n_features": 5}, "n_features"),
        ({"feature_names": ["a", "b"]}, "2 feature names"),
        ({"input_kind": "text"}, "text"),
        ({"n_features": "4"}, "positive integer"),
        ({"feature_names": [1, 2, 3, 4]}, "strings"),
    ],
)
def test_contradictions_are_refused(given, message):
    with pytest.raises(SignatureMismatch, match=message):
        merge_signatures(_inferred(n_features=4), given)


def test_classes_compare_by_label_text_and_keep_the_models_values():
    merged = merge_signatures(_inferred(n_features=2, classes=[0, 1]), {"classes": ["0", "1"]})
    assert merged["classes"] == [0, 1]
    with pytest.raises(SignatureMismatch, match="classes"):
        merge_signatures(_inferred(n_features=2, classes=[0, 1]), {"classes": ["no", "yes"]})
    with pytest.raises(SignatureMismatch, match="not a classifier"):
        merge_signatures(_inferred(n_features=2), {"classes": ["no", "yes"]})


def test_generated_rows_are_deterministic_and_of_the_right_width():
    signature = _inferred(n_features=5)
    rows = generate_inputs(signature, 3)
    assert rows == generate_inputs(signature, 3)
    assert [len(row) for row in rows] == [5, 5, 5]
    assert all(0 <= value < 1 for row in rows for value in row)


def test_unknown_width_cannot_generate_inputs():
    with pytest.raises(ModelRuntimeError, match="n_features"):
        generate_inputs(_inferred(), 3)
