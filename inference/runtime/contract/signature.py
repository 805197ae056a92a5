# The signature dict shared across the platform:
# {"inputs": [{"name", "dtype", "shape"}], "outputs": [...], "feature_names": list[str] | None,
#  "n_features": int | None, "input_kind": "tabular" | "text", "classes": list | None,
#  "columns": [{"name", "dtype", "nullable"}] | None}   (typed tabular columns: columns.py, examples.py)
from __future__ import annotations

from typing import Any

from inference.runtime.contract.columns import Column, generated_rows
from inference.runtime.contract.errors import ModelRuntimeError, SignatureMismatch
from inference.runtime.contract.examples import merge_columns

Signature = dict[str, Any]

_WORDS = ("good", "service", "model", "quick", "report", "late", "great", "value", "broken")


def build_signature(
    *,
    input_kind: str,
    input_dtype: str,
    n_features: int | None,
    feature_names: list[str] | None = None,
    classes: list[Any] | None = None,
    output_width: int | None = None,
    probabilities: bool = True,
    columns: list[Column] | None = None,
) -> Signature:
    """`columns` may leave a column's dtype or nullable None where the model cannot tell (examples.py)."""
    return {
        "inputs": [_input_spec(input_kind, input_dtype, n_features)],
        "outputs": _output_specs(classes, output_width, probabilities),
        "feature_names": feature_names,
        "n_features": n_features,
        "input_kind": input_kind,
        "classes": classes,
        "columns": columns,
    }


def label_dtype(classes: list[Any]) -> str:
    if all(isinstance(c, bool) for c in classes):
        return "bool"
    if all(isinstance(c, int) for c in classes):
        return "int64"
    if all(isinstance(c, (int, float)) for c in classes):
        return "float64"
    return "string"


def merge_signatures(inferred: Signature, given: Signature | None, example: list[Any] | None = None) -> Signature:
    """Fill what the model cannot tell from the signature given at upload and the input example; refuse
    contradictions (SignatureMismatch naming the field or the column)."""
    given = given or {}
    if inferred.get("input_kind") != "text":
        inferred = _with_columns(inferred, given, example)
    if not given:
        return inferred
    n_features = _merge_value("n_features", inferred.get("n_features"), _given_n_features(given))
    names = _merge_value("feature_names", inferred.get("feature_names"), _given_names(given))
    classes = _merge_classes(inferred.get("classes"), given.get("classes"))
    if names is not None and n_features is not None and len(names) != n_features:
        raise SignatureMismatch(f"{len(names)} feature names given for a model with {n_features} features")
    kind = inferred["input_kind"]
    if given.get("input_kind") not in (None, kind):
        raise SignatureMismatch(f"the signature says {given['input_kind']} input; the model takes {kind}")
    n_features = len(names) if n_features is None and names is not None else n_features
    merged = dict(inferred, n_features=n_features, feature_names=names, classes=classes)
    merged["inputs"] = [_input_spec(kind, inferred["inputs"][0]["dtype"], n_features)]
    return merged


def _with_columns(inferred: Signature, given: Signature, example: list[Any] | None) -> Signature:
    """The inferred signature with its columns settled; the names and width follow them."""
    columns = merge_columns(inferred.get("columns"), given.get("columns"), example)
    if columns is None:
        return inferred
    names = [column["name"] for column in columns]
    for key, value in (("feature_names", inferred.get("feature_names")), ("n_features", inferred.get("n_features"))):
        if value is not None and value != (names if key == "feature_names" else len(names)):
            raise SignatureMismatch(f"the columns ({', '.join(n[:40] for n in names[:8])}) contradict the "
                                    f"model's {key.replace('_', ' ')} ({value})")
    merged = dict(inferred, columns=columns, feature_names=names, n_features=len(names))
    merged["inputs"] = [_input_spec("tabular", inferred["inputs"][0]["dtype"], len(names))]
    return merged


def generate_inputs(signature: Signature, rows: int) -> Any:
    if signature.get("columns"):
        return generated_rows(signature["columns"], rows)
    if signature.get("input_kind") == "text":
        return [" ".join(_WORDS[(row + k) % len(_WORDS)] for k in range(3)) for row in range(rows)]
    width = signature.get("n_features")
    if not width:
        raise ModelRuntimeError(
            "the number of input features is unknown; declare n_features in the signature"
        )
    integer = signature["inputs"][0]["dtype"] == "int64"
    # Small deterministic values in [0, 1): safe for scalers, trees and logits alike.
    return [[_cell(row, col, width, integer) for col in range(width)] for row in range(rows)]


def _cell(row: int, col: int, width: int, integer: bool) -> float | int:
    step = (row * width + col) % 7
    return step % 2 if integer else step / 7.0


def _input_spec(kind: str, dtype: str, n_features: int | None) -> dict[str, Any]:
    shape = [-1] if kind == "text" else [-1, n_features if n_features is not None else -1]
    return {"name": "inputs", "dtype": dtype, "shape": shape}


def _output_specs(classes: list[Any] | None, width: int | None, probabilities: bool) -> list[dict[str, Any]]:
    if classes is None:
        shape = [-1, width] if width and width > 1 else [-1]
        return [{"name": "predictions", "dtype": "float64", "shape": shape}]
    labels = {"name": "predictions", "dtype": label_dtype(classes), "shape": [-1]}
    if not probabilities:
        return [labels]
    return [labels, {"name": "probabilities", "dtype": "float64", "shape": [-1, len(classes)]}]


def _merge_value(name: str, inferred: Any, given: Any) -> Any:
    if inferred is None or given is None:
        return given if inferred is None else inferred
    if inferred != given:
        raise SignatureMismatch(f"the signature's {name} ({given}) contradicts the model ({inferred})")
    return inferred


def _merge_classes(inferred: list[Any] | None, given: Any) -> list[Any] | None:
    if given is None:
        return inferred
    if inferred is None:
        raise SignatureMismatch("the signature lists classes but the model is not a classifier")
    # Labels come back from JSON, so 1 and "1" name the same class; the model's own values win.
    if [str(c) for c in inferred] != [str(c) for c in _as_list("classes", given)]:
        raise SignatureMismatch(f"the signature's classes ({given}) contradict the model ({inferred})")
    return inferred


def _given_n_features(given: Signature) -> int | None:
    value = given.get("n_features")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise SignatureMismatch("n_features must be a positive integer")
    return value


def _given_names(given: Signature) -> list[str] | None:
    names = given.get("feature_names")
    if names is not None and not all(isinstance(n, str) for n in _as_list("feature_names", names)):
        raise SignatureMismatch("feature_names must be a list of strings")
    return names


def _as_list(name: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise SignatureMismatch(f"{name} must be a list")
    return value
