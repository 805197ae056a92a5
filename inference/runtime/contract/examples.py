# Input examples and how a signature's columns are settled: what the model tells (its feature names, the kind
# of each column its fitted encoders imply, whether it takes missing values), completed by an input example
# (a few real rows) and by what the uploader declared. A contradiction between them raises SignatureMismatch
# naming the column. Pure Python: the registry checks an upload with it, the sandbox the model.
from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from inference.runtime.contract.columns import (
    DTYPES,
    NUMERIC_DTYPES,
    Column,
    cell_problem,
    column_spec,
    key_problems,
    kind_of,
)
from inference.runtime.contract.errors import SignatureMismatch

# What a model may say of a column's type: an exact dtype, or only its kind ("number": any numeric dtype).
NUMBER = "number"
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
# Decimal numbers only: float() would also take '1_000', 'nan' or 'infinity'.
_DECIMAL = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_BOOLS = {"true": True, "false": False}


class ExampleError(ValueError):
    """An input example that cannot be read; the message is safe to show."""


# --- reading an example -------------------------------------------------------------------------------------


def parse_example(data: bytes, *, max_rows: int) -> list[Any]:
    """A JSON list (records, rows or strings) or a CSV file with a header row, as a JSON list."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ExampleError("the input example is not UTF-8 text (a CSV file with a header or a JSON list)") from None
    if "\x00" in text:
        raise ExampleError("the input example contains NUL bytes: not a CSV or JSON file")
    stripped = text.lstrip()
    rows = _json_example(stripped) if stripped[:1] in ("[", "{") else _csv_example(text)
    if not rows:
        raise ExampleError("the input example has no rows")
    if len(rows) > max_rows:
        raise ExampleError(f"the input example has {len(rows)} rows; at most {max_rows} are kept")
    return rows


def _json_example(text: str) -> list[Any]:
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ExampleError(f"the input example is not valid JSON ({str(exc).split(':')[0][:80]})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ExampleError("a JSON input example must be a list of records (objects), rows or strings")
    kinds = {type(item) for item in data}
    if len(kinds) > 1 or not kinds <= {dict, list, str}:
        raise ExampleError("a JSON input example must be a list of records (objects), rows or strings, not a mix")
    return data


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _csv_example(text: str) -> list[dict[str, Any]]:
    try:
        lines = [line for line in csv.reader(io.StringIO(text), strict=True) if line and line != [""]]
    except csv.Error as exc:
        raise ExampleError(f"the input example is not valid CSV: {exc}") from None
    if not lines:
        raise ExampleError("the input example is empty")
    header, body = [name.strip() for name in lines[0]], lines[1:]
    if len(set(header)) != len(header) or not all(header):
        raise ExampleError("the input example's header must name each column once")
    for number, cells in enumerate(body, start=2):
        if len(cells) != len(header):
            raise ExampleError(f"line {number} of the input example has {len(cells)} cells; the header has "
                               f"{len(header)}")
    columns = [_csv_column([cells[index] for cells in body]) for index in range(len(header))]
    return [dict(zip(header, values)) for values in zip(*columns)] if body else []


def _csv_column(cells: list[str]) -> list[Any]:
    """A CSV column's cells, typed as a whole: empty cells are missing; booleans, integers or numbers when every
    other cell is one, else the text as written (so '75001' stays a string in a column of postcodes and names)."""
    present = [cell for cell in cells if cell != ""]
    if present and all(cell.strip().lower() in _BOOLS for cell in present):
        return [_BOOLS[cell.strip().lower()] if cell else None for cell in cells]
    if present and all(_INTEGER.match(cell) for cell in present):
        return [int(cell) if cell else None for cell in cells]
    if present and all(_DECIMAL.match(cell) for cell in present):
        return [float(cell) if cell else None for cell in cells]
    return [cell if cell != "" else None for cell in cells]


# --- what an example tells -----------------------------------------------------------------------------------


def example_columns(example: list[Any] | None) -> list[Column] | None:
    """Columns (dtype None where every value is missing) from an example of records; None for other examples."""
    if not example or not isinstance(example[0], dict):
        return None
    names = list(example[0])
    for index, record in enumerate(example):
        if not isinstance(record, dict) or set(record) != set(names):
            raise SignatureMismatch(f"input_example[{index}]: {key_problems(record, names)}"
                                    if isinstance(record, dict) else f"input_example[{index}]: expected an object")
    return [_example_column(name, [record[name] for record in example]) for name in names]


def _example_column(name: str, values: list[Any]) -> Column:
    present = [value for value in values if value is not None]
    kinds = {kind_of(value) for value in present}
    dtype: str | None = None
    if kinds == {"string"}:
        dtype = "string"
    elif kinds == {"boolean"}:
        dtype = "bool"
    elif kinds == {"number"}:
        dtype = "int64" if all(type(value) is int for value in present) else "float64"
    elif kinds:
        raise SignatureMismatch(f"input_example: column '{name[:64]}' mixes {' and '.join(sorted(kinds))} values")
    return {"name": name, "dtype": dtype, "nullable": len(present) < len(values)}


# --- settling the columns ------------------------------------------------------------------------------------


def merge_columns(model: list[Column] | None, given: list[Column] | None,
                  example: list[Any] | None) -> list[Column] | None:
    """The columns the version serves. `model` entries may leave dtype/nullable None (unknown) or give a kind
    (NUMBER); `given` is what the uploader declared; the example completes both and must fit the result."""
    seen = example_columns(example)
    names = _names(model, given, seen)
    if names is None:
        return None
    by_source = {label: {c["name"]: c for c in cols or []} for label, cols in
                 (("model", model), ("signature", given), ("input example", seen))}
    merged = [_merge_one(name, by_source) for name in names]
    if example and isinstance(example[0], dict):
        check_example(example, merged)
    return merged


def _names(model: list[Column] | None, given: list[Column] | None, seen: list[Column] | None) -> list[str] | None:
    sources = [(label, [c["name"] for c in cols]) for label, cols in
               (("the model", model), ("the signature", given), ("the input example", seen)) if cols]
    if not sources:
        return None
    first_label, names = sources[0]
    for label, other in sources[1:]:
        if set(other) != set(names):
            problems = key_problems(dict.fromkeys(other), names)
            raise SignatureMismatch(f"{label} does not name the columns {first_label} takes ({problems})")
    return names


def _merge_one(name: str, by_source: dict[str, dict[str, Column]]) -> Column:
    model, given, seen = (by_source[label].get(name, {}) for label in ("model", "signature", "input example"))
    dtype = _merge_dtype(name, model.get("dtype"), given.get("dtype"), seen.get("dtype"))
    # What the model tells of missing values is a hint (scikit-learn's tags are conservative): an example with
    # gaps makes a column nullable, and the smoke prediction on that example shows whether the model copes.
    nullable = given.get("nullable")
    if nullable is None:
        nullable = bool(seen.get("nullable")) or bool(model.get("nullable"))
    return column_spec(name, dtype, bool(nullable))


def _merge_dtype(name: str, model: str | None, given: str | None, seen: str | None) -> str:
    if given is not None and given not in DTYPES:
        raise SignatureMismatch(f"column '{name[:64]}': dtype must be one of {', '.join(DTYPES)}")
    if model and given and not _compatible(model, given):
        raise SignatureMismatch(f"column '{name[:64]}': the signature says {given} but the model takes "
                                f"{_describe(model)}")
    if model and seen and not given and not _compatible(model, seen):
        raise SignatureMismatch(f"column '{name[:64]}': the input example has {_describe(seen)} but the "
                                f"model takes {_describe(model)}")
    for candidate in (given, model if model != NUMBER else None, seen):
        if candidate:
            return candidate
    return "float64"


def _compatible(model: str, other: str) -> bool:
    if model == NUMBER:
        return other in NUMERIC_DTYPES or other == "bool"
    if model in NUMERIC_DTYPES and other in NUMERIC_DTYPES:
        return True  # JSON and CSV numbers carry no width: the model's own dtype is what it gets
    return model == other


def _describe(dtype: str) -> str:
    return {"string": "strings", NUMBER: "numbers", "bool": "booleans"}.get(dtype, f"{dtype} numbers")


def check_example(example: list[Any], columns: list[Column]) -> None:
    """Every value of an example of records fits its column (SignatureMismatch naming the row and column)."""
    for index, record in enumerate(example):
        for column in columns:
            value = record.get(column["name"]) if isinstance(record, dict) else None
            problem = cell_problem(value, column["dtype"], column["nullable"])
            if problem:
                raise SignatureMismatch(f"input_example[{index}].{column['name'][:64]}: {problem}")
