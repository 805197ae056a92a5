# Checks a prediction request's inputs against the model's signature in the web process, so bad data is
# refused with a precise 400/413 before anything is queued for a model worker. Runs on every request:
# pure Python on purpose (no numpy, no ML imports). Measured in tests/inference/runtime/web/test_inputs.py: numpy's
# conversion costs more than this whole check for a 1-row request, and it silently turns booleans and
# numeric strings into numbers, which this must refuse anyway, so it would need the Python pass too.
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from inference.runtime.contract.columns import ColumnError, key_problems, kind_of, plain_numeric, typed_rows
from inference.runtime.contract.errors import ModelRuntimeError

FLOAT32_MAX = 3.4028234663852886e38
# Only dtypes narrower than a Python float can overflow; float64 overflow is already inf/NaN.
_DTYPE_LIMITS = {"float32": FLOAT32_MAX, "float16": 65504.0}
_LIMIT_DTYPES = {limit: dtype for dtype, limit in _DTYPE_LIMITS.items()}
_NUMBER_TYPES = frozenset({int, float})  # exact types: bool is an int subclass and must not pass
_STR_TYPES = frozenset({str})
_FLOAT_TYPES = frozenset({float})
_NON_FINITE_WORDS = frozenset(sign + word for sign in ("", "+", "-") for word in ("nan", "inf", "infinity"))
_KEY_FORMAT = 1  # bump when the canonical form changes, so old cache entries can never match new keys
# Built once: json.dumps with options constructs a new encoder on every call.
_KEY_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=True)


class InputError(ModelRuntimeError):
    """A client's inputs do not fit the model; `message` is safe to show and starts with the location."""

    code = "invalid_input"
    status_code = 400

    def __init__(self, message: str, *, field: str, row: int | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.row = row
        self.status = status
        self.status_code = status


def normalize_inputs(
    raw: Any, signature: Mapping[str, Any] | None, *, max_rows: int, field: str = "inputs"
) -> list[Any]:
    """Validated rows for the model worker: `list[list[float]]` for tabular models, `list[str]` for text, typed
    rows (strings, numbers, booleans, None in column order) for models whose columns are not all plain floats."""
    signature = signature or {}
    kind = signature.get("input_kind") or _guess_kind(raw)
    if kind == "text":
        return _text_rows(raw, max_rows, field)
    columns = signature.get("columns")
    if columns and not plain_numeric(columns):
        try:
            return typed_rows(raw, columns, max_rows=max_rows, field=field)
        except ColumnError as exc:
            raise InputError(exc.message, field=field, row=exc.row, status=exc.status) from None
    return _tabular_rows(raw, signature, max_rows, field)


def canonical_key(model_key: str, rows: list[Any], params: dict[str, Any] | None) -> str:
    """sha256 of (model_key, rows, params minus "cache"); 1 and 1.0 and params' key order do not matter."""
    scoped = {name: value for name, value in (params or {}).items() if name != "cache"}
    payload = [_KEY_FORMAT, model_key, _canonical(rows), _canonical(scoped)]
    return hashlib.sha256(_KEY_ENCODER.encode(payload).encode()).hexdigest()


# --- text ---------------------------------------------------------------------------------------------


def _guess_kind(raw: Any) -> str:
    # Without a signature, strings can only be meant for a text model.
    if type(raw) is str or (type(raw) is list and raw and type(raw[0]) is str):
        return "text"
    return "tabular"


def _text_rows(raw: Any, max_rows: int, field: str) -> list[str]:
    if type(raw) is str:
        return [raw]
    if not isinstance(raw, list):
        raise InputError(f"{field}: expected a string or a list of strings, got {kind_of(raw)}", field=field)
    _check_count(len(raw), max_rows, field)
    if _STR_TYPES.issuperset(map(type, raw)):
        return list(raw)
    for index, item in enumerate(raw):
        if not isinstance(item, str):
            raise InputError(f"{field}[{index}]: expected a string, got {kind_of(item)}", field=field, row=index)
    return list(raw)


# --- tabular ------------------------------------------------------------------------------------------


def _tabular_rows(raw: Any, signature: Mapping[str, Any], max_rows: int, field: str) -> list[list[float]]:
    names = signature.get("feature_names") or None
    width = _expected_width(signature, names)
    limit = _dtype_limit(signature)
    if isinstance(raw, dict):
        if raw and names and type(next(iter(raw.values()))) is list:
            raw = _columns_as_records(raw, names, field)
        else:
            return [_object_row(raw, names, limit, field, None)]
    if not isinstance(raw, list):
        raise InputError(f"{field}: expected a list of rows, a row or an object, got {kind_of(raw)}", field=field)
    _check_count(len(raw), max_rows, field)
    if not isinstance(raw[0], (list, tuple, dict)):
        return [_positional_row(raw, width, limit, field, None)]
    rows = []
    for index, row in enumerate(raw):
        if isinstance(row, (list, tuple)):
            rows.append(_positional_row(row, width, limit, field, index))
        elif isinstance(row, dict):
            rows.append(_object_row(row, names, limit, field, index))
        else:
            message = f"{field}[{index}]: expected a list of numbers or an object, got {kind_of(row)}"
            raise InputError(message, field=field, row=index)
        # Without a declared width the first row sets it, so ragged rows are still refused.
        width = width or len(rows[0])
    return rows


def _columns_as_records(raw: dict[str, Any], names: list[str], field: str) -> list[dict[str, Any]]:
    """A columnar payload ({"f0": [..], "f1": [..]}) as records; the row checks then name row and feature."""
    lengths = {len(values) if type(values) is list else -1 for values in raw.values()}
    if len(lengths) != 1 or -1 in lengths:
        raise InputError(f"{field}: columns must all be lists of the same length", field=field)
    if set(raw) != set(names):
        raise InputError(f"{field}: {key_problems(raw, names, 'features')}", field=field)
    return [dict(zip(raw, values)) for values in zip(*raw.values())]


def _expected_width(signature: Mapping[str, Any], names: list[str] | None) -> int | None:
    if signature.get("n_features"):
        return int(signature["n_features"])
    if names:
        return len(names)
    shape = (signature.get("inputs") or [{}])[0].get("shape") or []
    if len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0:
        return shape[1]
    return None


def _dtype_limit(signature: Mapping[str, Any]) -> float | None:
    inputs = signature.get("inputs") or [{}]
    return _DTYPE_LIMITS.get(inputs[0].get("dtype"))


def _check_count(count: int, max_rows: int, field: str) -> None:
    if count == 0:
        raise InputError(f"{field}: must not be empty", field=field)
    if count > max_rows:
        raise InputError(f"{field}: {count} rows exceed the limit of {max_rows}", field=field, status=413)


def _positional_row(
    row: Sequence[Any], width: int | None, limit: float | None, field: str, index: int | None
) -> list[float]:
    if not row or (width is not None and len(row) != width):
        message = f"{_row_name(field, index)}: expected {width or 'at least 1'} features, got {len(row)}"
        raise InputError(message, field=field, row=index)
    return _fast_numbers(row, limit) or _checked_numbers(row, limit, field, index, None)


def _object_row(
    row: dict[str, Any], names: list[str] | None, limit: float | None, field: str, index: int | None
) -> list[float]:
    if names is None:
        message = f"{_row_name(field, index)}: rows given as objects need feature names in the model's signature"
        raise InputError(message, field=field, row=index)
    try:
        values = [row[name] for name in names]
    except KeyError:
        values = None
    # All names present and the same count means no unknown keys: dict keys are unique.
    if values is None or len(row) != len(names):
        raise InputError(f"{_row_name(field, index)}: {key_problems(row, names, 'features')}", field=field, row=index)
    return _fast_numbers(values, limit) or _checked_numbers(values, limit, field, index, names)


def _fast_numbers(values: Sequence[Any], limit: float | None) -> list[float] | None:
    """The values as floats when every one is plainly fine; None sends the row to the exact check.

    A plain loop: measured faster than set(map(type)) + map(float) + sum/min/max up to ~30 features.
    """
    floats = []
    try:
        for value in values:
            kind = type(value)
            if kind is not float and kind is not int:
                return None
            number = float(value)
            # x - x is 0.0 for every finite float and NaN for NaN and both infinities.
            if number - number != 0.0 or (limit is not None and (number > limit or number < -limit)):
                return None
            floats.append(number)
    except OverflowError:
        return None
    return floats


def _checked_numbers(
    values: Sequence[Any], limit: float | None, field: str, index: int | None, names: list[str] | None
) -> list[float]:
    floats = []
    for col, value in enumerate(values):
        problem = _number_problem(value, limit)
        if problem:
            raise InputError(f"{_cell_name(field, index, col, names)}: {problem}", field=field, row=index)
        floats.append(float(value))
    return floats


def _number_problem(value: Any, limit: float | None) -> str | None:
    if isinstance(value, str) and value.strip().lower() in _NON_FINITE_WORDS:
        return "NaN and Infinity are not allowed"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number, got {kind_of(value)}"
    try:
        number = float(value)
    except OverflowError:
        return "the number is too large"
    if number - number != 0.0:
        return "NaN and Infinity are not allowed"
    if limit is not None and abs(number) > limit:
        return f"{number:g} overflows the model's {_LIMIT_DTYPES[limit]} input (largest magnitude {limit:g})"
    return None


def _row_name(field: str, index: int | None) -> str:
    # A single row or object sent on its own is located as the client sent it, without a [0].
    return field if index is None else f"{field}[{index}]"


def _cell_name(field: str, index: int | None, col: int, names: list[str] | None) -> str:
    where = _row_name(field, index)
    if names is None:
        return f"{where}[{col}]"
    return f"{where}.{names[col]}" if names[col].isidentifier() else f"{where}[{json.dumps(names[col])}]"


# --- canonical form -----------------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    kind = type(value)
    if kind is float or kind is str or kind is bool or value is None:
        return value
    if kind is list or kind is tuple:
        # Validated rows are all floats already: skip the per-value walk on the hot path.
        return value if _FLOAT_TYPES.issuperset(map(type, value)) else [_canonical(item) for item in value]
    if kind is int:
        return _canonical_int(value)
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, float):
        return float(value)
    if isinstance(value, int):
        return _canonical_int(int(value))
    raise TypeError(f"cannot build a cache key from {type(value).__name__}")


def _canonical_int(value: int) -> float | int:
    # 1 and 1.0 must hash alike, but an int no float can hold exactly stays an int: two different
    # large ints must never share a key (the cache would answer one request with another's result).
    try:
        as_float = float(value)
    except OverflowError:
        return value
    return as_float if as_float == value else value
