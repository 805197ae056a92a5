"""Turning what a notebook holds (DataFrames, NumPy arrays, records, rows) into the API's JSON.

Nothing here imports pandas or NumPy: their objects are recognised by the methods they have, so the
client installs and runs without them.
"""

from __future__ import annotations

import json
import math
from typing import Any


def is_dataframe(value: Any) -> bool:
    return all(hasattr(value, name) for name in ("to_dict", "columns", "dtypes", "iloc"))


def is_array(value: Any) -> bool:
    """A NumPy array (or anything like one: a pandas Series, a torch tensor on the CPU)."""
    return hasattr(value, "tolist") and hasattr(value, "shape") and not isinstance(value, (list, tuple, dict))


def dataframe_records(frame: Any) -> list[dict[str, Any]]:
    """One object per row, keyed by column name, with Python scalars and None for missing values."""
    columns = [str(column) for column in frame.columns]
    rows = frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None)
    return [dict(zip(columns, row)) for row in rows]


def to_inputs(value: Any) -> Any:
    """`inputs` for a prediction: a DataFrame as records, an array as nested lists, anything else as is."""
    if is_dataframe(value):
        return dataframe_records(value)
    if is_array(value):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


def example_records(example: Any, feature_names: list[str] | None = None) -> list[Any]:
    """An input example as a JSON list: records when the column names are known (a DataFrame, or
    `feature_names` for an array or rows), else the rows as they are."""
    if is_dataframe(example):
        return dataframe_records(example)
    rows = to_inputs(example)
    if isinstance(rows, dict):
        rows = [rows]
    if not isinstance(rows, list) or not rows:
        raise ValueError("input_example must be a DataFrame, an array, a list of records or a list of rows")
    if not isinstance(rows[0], (list, dict)):
        rows = [rows]  # one row
    if feature_names and isinstance(rows[0], list):
        if any(len(row) != len(feature_names) for row in rows):
            raise ValueError(f"input_example rows must have {len(feature_names)} values ({', '.join(feature_names)})")
        return [dict(zip(feature_names, row)) for row in rows]
    return rows


def _plain(value: Any) -> Any:
    """json's fallback for scalars of NumPy and pandas (np.float32, np.int64, pd.Timestamp...)."""
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _missing_as_null(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_missing_as_null(item) for item in value]
    if isinstance(value, dict):
        return {key: _missing_as_null(item) for key, item in value.items()}
    return value


def dumps(body: Any) -> bytes:
    """Strict JSON (the API refuses NaN and Infinity literals): NaN becomes null, a missing value;
    an infinity is refused here with a clear message rather than by the server."""
    try:
        return json.dumps(body, default=_plain, allow_nan=False, separators=(",", ":")).encode()
    except ValueError:
        pass  # NaN or an infinity somewhere: walk the body only in this rare case
    try:
        return json.dumps(_missing_as_null(json.loads(json.dumps(body, default=_plain))), allow_nan=False,
                          separators=(",", ":")).encode()
    except ValueError:
        raise ValueError("the body contains an infinite number, which JSON cannot carry") from None
