# Tensors -> rows: an infer request's inputs as the rows the platform's prediction path takes (one tensor
# with the whole batch, or one [n] tensor per feature named after it).
from __future__ import annotations

from typing import Any

from inference.runtime.v2.codec import CodecError, Tensor


def rows_from_inputs(inputs: list[Tensor], signature: dict[str, Any] | None) -> list[Any]:
    """The rows /api/v1/predict takes: strings for text models, lists of numbers for tabular ones.

    One tensor carries the whole batch ([n] or [n, 1] BYTES; [n, k] numbers). Tabular models with
    feature names also take one [n] (or [n, 1]) tensor per feature, named after it, as pandas-style
    V2 clients send them; typed columns keep their values (BYTES strings for string columns).
    """
    signature = signature or {}
    text = signature.get("input_kind") == "text" or (not signature and inputs[0].datatype == "BYTES")
    if text:
        return _text_rows(_single(inputs, signature))
    one_column = bool(signature.get("columns")) and inputs[0].name in (signature.get("feature_names") or [])
    if len(inputs) > 1 or one_column:
        return _column_rows(inputs, signature)
    return _tabular_rows(inputs[0], signature)


def _single(inputs: list[Tensor], signature: dict[str, Any]) -> Tensor:
    if len(inputs) != 1:
        raise CodecError(f"This model takes one input tensor ('{input_name(signature)}'), got {len(inputs)}.")
    return inputs[0]


def _text_rows(tensor: Tensor) -> list[str]:
    where = f"input '{tensor.name[:64]}'"
    if tensor.datatype != "BYTES":
        raise CodecError(f"{where}: this model takes text, so the datatype must be BYTES, not {tensor.datatype}.")
    if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
        raise CodecError(f"{where}: expected shape [n] or [n, 1] for text, got {tensor.shape}.")
    return tensor.data


def _numeric(tensor: Tensor) -> list[float]:
    if tensor.datatype == "BYTES":
        raise CodecError(f"input '{tensor.name[:64]}': this model takes numbers; BYTES is for text models.")
    # bool -> 0.0/1.0 on purpose: the tensor's datatype says the client means 0/1.
    return [float(value) for value in tensor.data]


def _tabular_rows(tensor: Tensor, signature: dict[str, Any]) -> list[list[float]]:
    width = signature.get("n_features")
    if len(tensor.shape) != 2 or (width and tensor.shape[1] != width):
        expected = f"[n, {width}]" if width else "[n, k]"
        raise CodecError(f"input '{tensor.name[:64]}': expected shape {expected}, got {tensor.shape}.")
    values, columns = _numeric(tensor), tensor.shape[1]
    if not columns:
        raise CodecError(f"input '{tensor.name[:64]}': rows need at least one feature.")
    return [values[start:start + columns] for start in range(0, len(values), columns)]


def _column_rows(inputs: list[Tensor], signature: dict[str, Any]) -> list[list[Any]]:
    names = signature.get("feature_names") or []
    dtypes = {column["name"]: column["dtype"] for column in signature.get("columns") or []}
    by_name = {tensor.name: tensor for tensor in inputs}
    if not names or set(by_name) != set(names):
        raise CodecError("Several input tensors must be one per feature, named after the model's features"
                         + (f" ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''})." if names else
                            "; this model has no feature names, so send one [n, k] tensor."))
    columns = []
    for name in names:
        tensor = by_name[name]
        if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise CodecError(f"input '{name[:64]}': a feature column has shape [n] or [n, 1], got {tensor.shape}.")
        columns.append(_column_values(tensor, dtypes.get(name)))
    lengths = {len(column) for column in columns}
    if len(lengths) != 1:
        raise CodecError("The feature columns have different lengths.")
    return [list(row) for row in zip(*columns)]


def _column_values(tensor: Tensor, dtype: str | None) -> list[Any]:
    """A typed column's values as sent (the prediction path checks them against the column's dtype and names
    the column): BYTES for string columns, BOOL for bool ones, numbers for the others."""
    if dtype == "string":
        if tensor.datatype != "BYTES":
            raise CodecError(f"input '{tensor.name[:64]}': a string column takes BYTES, not {tensor.datatype}.")
        return tensor.data
    if dtype == "bool" and tensor.datatype == "BOOL":
        return tensor.data
    if dtype == "int64" and tensor.datatype.startswith(("INT", "UINT")):
        return tensor.data
    if tensor.datatype == "BYTES" and dtype is not None:
        raise CodecError(f"input '{tensor.name[:64]}': the column takes numbers ({dtype}); BYTES is for string "
                         "columns.")
    return _numeric(tensor)


def input_name(signature: dict[str, Any]) -> str:
    return ((signature.get("inputs") or [{}])[0].get("name")) or "inputs"
