# Typed rows (columns.py) as what a model takes, built once per forward pass from the whole batch: one NumPy
# array per column, then a pandas DataFrame for models fitted on one, a numeric matrix for boosters and
# array-fitted models, or one tensor per column for ONNX graphs. Worker side only (numpy; pandas lazily).
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.runtime.contract.columns import Column
from inference.runtime.contract.errors import PredictionError

_NUMPY = {"float64": np.float64, "float32": np.float32, "int64": np.int64, "bool": np.bool_}


@dataclass(frozen=True)
class ColumnBatch:
    columns: tuple[Column, ...]
    arrays: dict[str, np.ndarray]
    rows: int

    @classmethod
    def from_rows(cls, rows: list[list[Any]], columns: list[Column]) -> ColumnBatch:
        if not rows:
            raise PredictionError("inputs must not be empty")
        width = len(columns)
        if any(len(row) != width for row in rows):
            raise PredictionError(f"each row must have {width} values, one per column")
        values = list(zip(*rows))
        arrays = {column["name"]: column_array(list(values[index]), column["dtype"])
                  for index, column in enumerate(columns)}
        return cls(tuple(columns), arrays, len(rows))

    def __len__(self) -> int:
        return self.rows

    @property
    def names(self) -> list[str]:
        return [column["name"] for column in self.columns]

    def frame(self) -> Any:
        """A pandas DataFrame: floats with NaN for missing values, pandas' own string dtype for strings."""
        import pandas as pd

        return pd.DataFrame(self.arrays, columns=self.names, copy=False)

    def matrix(self, dtype: type[np.floating[Any]] = np.float64) -> np.ndarray:
        """The columns side by side as numbers (missing: NaN); string columns cannot be."""
        strings = [column["name"] for column in self.columns if column["dtype"] == "string"]
        if strings:
            raise PredictionError(f"column '{strings[0][:64]}' holds strings; this model takes numbers only")
        return np.column_stack([self.arrays[name].astype(dtype, copy=False) for name in self.names])

    def take(self, index: np.ndarray) -> ColumnBatch:
        return ColumnBatch(self.columns, {name: array[index] for name, array in self.arrays.items()}, len(index))


def column_array(values: list[Any], dtype: str) -> np.ndarray:
    if dtype == "string":
        return np.array(values, dtype=object)
    if None in values:
        # Missing numbers are NaN (what pandas gives a model fitted on a frame with gaps); a bool or int64 column
        # with gaps is read as float64, as pandas reads one.
        return np.array(values, dtype=np.float64 if dtype != "float32" else np.float32)
    return np.array(values, dtype=_NUMPY[dtype])


def as_batch(rows: Any, columns: list[Column] | None) -> Any:
    """Rows as a ColumnBatch when the signature has columns; anything else unchanged (the numeric fast path)."""
    if not columns or isinstance(rows, ColumnBatch) or isinstance(rows, np.ndarray):
        return rows
    return ColumnBatch.from_rows(rows, columns)
