# Typed tabular columns: a signature's `columns` ([{"name", "dtype", "nullable"}]) and the checks that turn a
# request's records, columns or rows into typed rows (one list per row, values in column order: str for string
# columns, float for float ones, int for int64, bool for bool, None for a missing value).
#
# Pure Python on purpose: web processes run this on every request to a typed model (like web/inputs.py), and
# the validation sandbox checks an input example with the very same code before its smoke prediction.
from __future__ import annotations

import json
from typing import Any

DTYPES = ("float64", "float32", "int64", "bool", "string")
NUMERIC_DTYPES = frozenset({"float64", "float32", "int64"})
FLOAT32_MAX = 3.4028234663852886e38
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NON_FINITE_WORDS = frozenset(sign + word for sign in ("", "+", "-") for word in ("nan", "inf", "infinity"))
_MAX_NAMES_SHOWN = 5

Column = dict[str, Any]


class ColumnError(ValueError):
    """A value or a shape that does not fit the columns; `message` starts with where (e.g. inputs[2].age)."""

    def __init__(self, message: str, *, row: int | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.row = row
        self.status = status


def column_spec(name: str, dtype: str, nullable: bool) -> Column:
    return {"name": name, "dtype": dtype, "nullable": nullable}


def plain_numeric(columns: list[Column]) -> bool:
    """Whether every column is a non-nullable float64: rows of plain numbers, the numeric fast path's input."""
    return all(c["dtype"] == "float64" and not c["nullable"] for c in columns)


# --- one cell ---------------------------------------------------------------------------------------------


def cell_problem(value: Any, dtype: str, nullable: bool) -> str | None:
    """What is wrong with `value` in a column of `dtype`, or None when it fits."""
    if value is None:
        return None if nullable else "null is not allowed: the column is not nullable"
    kind = type(value)
    if dtype == "string":
        return None if kind is str else f"expected a string, got {kind_of(value)}"
    if dtype == "bool":
        return None if kind is bool else f"expected true or false, got {kind_of(value)}"
    if kind is str and value.strip().lower() in _NON_FINITE_WORDS:
        return "NaN and Infinity are not allowed"
    if kind is bool or (kind is not int and kind is not float):
        return f"expected a number, got {kind_of(value)}"
    return _number_problem(value, dtype)


def _number_problem(value: int | float, dtype: str) -> str | None:
    try:
        number = float(value)
    except OverflowError:
        return "the number is too large" if dtype != "int64" or not _INT64_MIN <= value <= _INT64_MAX else None
    if number - number != 0.0:
        return "NaN and Infinity are not allowed"
    if dtype == "float32" and abs(number) > FLOAT32_MAX:
        return f"{number:g} overflows the column's float32 (largest magnitude {FLOAT32_MAX:g})"
    if dtype == "int64":
        if type(value) is float and not number.is_integer():
            return f"expected an integer, got {number:g}"
        if not _INT64_MIN <= int(value) <= _INT64_MAX:
            return "the integer does not fit in int64"
    return None


def cell_value(value: Any, dtype: str) -> Any:
    """A checked value as the model takes it: floats for float columns, ints for int64 columns."""
    if value is None or dtype in ("string", "bool"):
        return value
    return int(value) if dtype == "int64" else float(value)


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# --- records, columns and rows -> typed rows ---------------------------------------------------------------


def typed_rows(raw: Any, columns: list[Column], *, max_rows: int, field: str = "inputs") -> list[list[Any]]:
    """Records (a list of objects, or one object), columns (an object of equal-length lists) or positional rows,
    as typed rows in column order. Raises ColumnError naming the row and the column."""
    if isinstance(raw, dict):
        if raw and all(type(value) is list for value in raw.values()):
            return _from_columns(raw, columns, max_rows, field)
        return [_record(raw, columns, field, None)]
    if not isinstance(raw, list):
        raise ColumnError(f"{field}: expected records (a list of objects), columns (an object of lists) or rows, "
                          f"got {kind_of(raw)}")
    check_count(len(raw), max_rows, field)
    if not isinstance(raw[0], (list, dict)):
        return [_positional(raw, columns, field, None)]
    rows = []
    for index, item in enumerate(raw):
        if isinstance(item, dict):
            rows.append(_record(item, columns, field, index))
        elif isinstance(item, list):
            rows.append(_positional(item, columns, field, index))
        else:
            raise ColumnError(f"{field}[{index}]: expected an object or a list, got {kind_of(item)}", row=index)
    return rows


def check_count(count: int, max_rows: int, field: str) -> None:
    if count == 0:
        raise ColumnError(f"{field}: must not be empty")
    if count > max_rows:
        raise ColumnError(f"{field}: {count} rows exceed the limit of {max_rows}", status=413)


def _record(record: dict[str, Any], columns: list[Column], field: str, index: int | None) -> list[Any]:
    where = field if index is None else f"{field}[{index}]"
    if len(record) != len(columns) or any(c["name"] not in record for c in columns):
        raise ColumnError(f"{where}: {key_problems(record, [c['name'] for c in columns])}", row=index)
    return [_cell(record[c["name"]], c, where, index) for c in columns]


def _positional(row: list[Any], columns: list[Column], field: str, index: int | None) -> list[Any]:
    where = field if index is None else f"{field}[{index}]"
    if len(row) != len(columns):
        raise ColumnError(f"{where}: expected {len(columns)} values ({name_list([c['name'] for c in columns])}), "
                          f"got {len(row)}", row=index)
    return [_cell(value, column, where, index) for value, column in zip(row, columns)]


def _from_columns(raw: dict[str, list[Any]], columns: list[Column], max_rows: int, field: str) -> list[list[Any]]:
    names = [c["name"] for c in columns]
    if len(raw) != len(names) or any(name not in raw for name in names):
        raise ColumnError(f"{field}: {key_problems(raw, names)}")
    count = len(raw[names[0]])
    check_count(count, max_rows, field)
    for name in names:
        if len(raw[name]) != count:
            raise ColumnError(f"{_at(field, name)}: expected {count} values like '{names[0][:40]}', "
                              f"got {len(raw[name])}")
    values = [[_cell(value, column, f"{_at(field, column['name'])}", row, in_column=True)
               for row, value in enumerate(raw[column["name"]])] for column in columns]
    return [list(row) for row in zip(*values)]


def _cell(value: Any, column: Column, where: str, row: int | None, *, in_column: bool = False) -> Any:
    dtype = column["dtype"]
    problem = cell_problem(value, dtype, column["nullable"])
    if problem:
        place = f"{where}[{row}]" if in_column else _at(where, column["name"])
        raise ColumnError(f"{place}: {problem}", row=row)
    return cell_value(value, dtype)


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if name.isidentifier() else f"{where}[{json.dumps(name)}]"


def key_problems(given: dict[str, Any], names: list[str], noun: str = "columns") -> str:
    expected = set(names)
    missing = [name for name in names if name not in given]
    unknown = [str(key) for key in given if key not in expected]
    parts = [f"missing {noun}: {name_list(missing)}"] if missing else []
    parts += [f"unknown {noun}: {name_list(unknown)}"] if unknown else []
    return "; ".join(parts)


def name_list(names: list[str]) -> str:
    # Echo a few short names only: they are the client's own data, but a hostile payload can be huge.
    shown = ", ".join(name[:40] for name in names[:_MAX_NAMES_SHOWN])
    more = len(names) - _MAX_NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


# --- generated rows (validation smoke test, warm-up) --------------------------------------------------------


def generated_rows(columns: list[Column], rows: int, categories: dict[str, list[Any]] | None = None) -> list[list[Any]]:
    """Small deterministic valid rows; string columns take a known category where the model has some."""
    known = categories or {}
    return [[_generated(column, row, col, known.get(column["name"])) for col, column in enumerate(columns)]
            for row in range(rows)]


def _generated(column: Column, row: int, col: int, categories: list[Any] | None) -> Any:
    step = (row + col * 3) % 7
    if categories:
        return categories[row % len(categories)]
    dtype = column["dtype"]
    if dtype == "string":
        return f"value-{step}"
    if dtype == "bool":
        return bool(step % 2)
    return step % 2 if dtype == "int64" else step / 7.0
