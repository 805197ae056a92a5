"""Batch files: CSV with a header row of feature names, or JSON Lines. No Django here.

Models with typed columns (a signature's `columns`) take their strings as written, numbers in numeric columns,
and an empty CSV cell (or a JSON null) as a missing value where the column is nullable.

A file is checked whole when it is uploaded (`check_file`), so a structural problem (not text, wrong
columns, a non-numeric cell, too many rows) is a 400 before any job exists; the job then reads it again
chunk by chunk (`read_rows`) with the same code and cannot meet a problem the check let through. What only
the model can refuse is recorded per row while the job runs.

Results follow the input's format: a CSV gets its own columns back plus `prediction`, one
`probability_<class>` column per class and `error`; JSON Lines get one object per input line.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from core.text import unsafe_text
from inference.runtime.contract.columns import cell_problem, cell_value, plain_numeric

CSV = "csv"
JSONL = "jsonl"
FORMATS = (CSV, JSONL)
_EXTENSIONS = {".csv": CSV, ".jsonl": JSONL, ".ndjson": JSONL, ".json": JSONL}
MAX_PROBLEMS = 10
# Decimal numbers only: float() would also take '1_000', 'nan' or 'infinity'.
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


class BatchFileError(Exception):
    """A file-level problem; `problems` lists the first few offending lines."""

    def __init__(self, message: str, *, code: str = "invalid_batch_file", problems: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.problems = problems or []


@dataclass(frozen=True)
class InputSpec:
    """What the endpoint's model takes, from its signature."""

    kind: str = "tabular"
    feature_names: tuple[str, ...] | None = None
    n_features: int | None = None
    # (dtype, nullable) per feature when the model has typed columns that are not all plain floats.
    types: tuple[tuple[str, bool], ...] | None = None

    @classmethod
    def from_signature(cls, signature: dict | None) -> InputSpec:
        signature = signature or {}
        columns = signature.get("columns") or None
        names = [c["name"] for c in columns] if columns else signature.get("feature_names") or None
        width = signature.get("n_features") or (len(names) if names else None)
        types = tuple((c["dtype"], bool(c["nullable"])) for c in columns) \
            if columns and not plain_numeric(columns) else None
        return cls(kind=signature.get("input_kind") or "tabular",
                   feature_names=tuple(str(name) for name in names) if names else None,
                   n_features=int(width) if width else None, types=types)


@dataclass
class Row:
    line: int
    record: Any  # what the client sent: the CSV cells, or the parsed JSON value
    model_input: Any  # list[float] for tabular models, str for text models


@dataclass
class Outcome:
    prediction: Any = None
    probabilities: list[float] | None = None
    error: str | None = None


@dataclass
class Summary:
    format: str
    columns: list[str] = field(default_factory=list)
    total_rows: int = 0


def detect_format(filename: str, head: bytes, declared: str | None = None) -> str:
    """The declared format, else the file name's extension, else a look at the first byte."""
    if declared:
        if declared not in FORMATS:
            raise BatchFileError(f"format must be one of: {', '.join(FORMATS)}.")
        return declared
    for extension, fmt in _EXTENSIONS.items():
        if filename.lower().endswith(extension):
            return fmt
    return JSONL if head.lstrip()[:1] in (b"{", b"[", b'"') else CSV


def check_file(stream: IO[bytes], *, fmt: str, spec: InputSpec, max_rows: int) -> Summary:
    """Reads the whole file once; raises BatchFileError with the first problems found."""
    summary = Summary(format=fmt)
    problems: list[str] = []
    for row in _rows(stream, fmt, spec, summary, problems):
        summary.total_rows += 1
        if summary.total_rows > max_rows:
            raise BatchFileError(f"The file has more than {max_rows} rows.", code="too_many_rows")
        del row
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        more = " (and possibly more)" if len(problems) >= MAX_PROBLEMS else ""
        raise BatchFileError(f"{problems[0]}{more}", problems=problems)
    if summary.total_rows == 0:
        raise BatchFileError("The file has no data rows.", code="empty_file")
    return summary


def read_rows(stream: IO[bytes], *, fmt: str, spec: InputSpec) -> Iterator[Row]:
    """The rows of a file that passed check_file."""
    problems: list[str] = []
    for row in _rows(stream, fmt, spec, Summary(format=fmt), problems):
        if problems:
            raise BatchFileError(problems[0], problems=problems)
        yield row


def _rows(stream: IO[bytes], fmt: str, spec: InputSpec, summary: Summary, problems: list[str]) -> Iterator[Row]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        lines = _text_lines(text)
        if fmt == CSV:
            yield from _csv_rows(lines, spec, summary, problems)
        else:
            yield from _jsonl_rows(lines, spec, problems)
    except UnicodeDecodeError:
        raise BatchFileError("The file is not UTF-8 text: not a CSV or JSON Lines file.", code="not_a_batch_file") \
            from None
    except csv.Error as exc:
        raise BatchFileError(f"The file is not valid CSV: {exc}.", code="not_a_batch_file") from None
    finally:
        text.detach()  # leaves the caller's stream open


def _text_lines(text: IO[str]) -> Iterator[str]:
    # NUL bytes decode as UTF-8 (and Python's csv takes them), but no text file has them.
    for line in text:
        if "\x00" in line:
            raise BatchFileError("The file contains NUL bytes: not a CSV or JSON Lines file.", code="not_a_batch_file")
        yield line


# --- CSV ------------------------------------------------------------------------------------------------


def _csv_rows(text: Iterator[str], spec: InputSpec, summary: Summary, problems: list[str]) -> Iterator[Row]:
    reader = csv.reader(text, strict=True)
    header = next((row for row in reader if row), None)
    if header is None:
        raise BatchFileError("The file is empty.", code="empty_file")
    columns = [name.strip() for name in header]
    order = _column_order(columns, spec)
    summary.columns = columns
    for cells in reader:
        if not cells or cells == [""]:
            continue  # blank lines
        line = reader.line_num
        if len(cells) != len(columns):
            problems.append(f"line {line}: expected {len(columns)} cells, got {len(cells)}")
            continue
        if spec.kind == "text":
            yield Row(line, cells, cells[order[0]])
            continue
        if spec.types:
            values = [_csv_typed(cells[index], columns[index], spec.types[k], line, problems)
                      for k, index in enumerate(order)]
        else:
            values = [_csv_number(cells[index], columns[index], line, problems) for index in order]
        yield Row(line, cells, values)


def _column_order(columns: list[str], spec: InputSpec) -> list[int]:
    """Indexes of the model's features in the file's columns (files may order columns as they like)."""
    if len(set(columns)) != len(columns):
        duplicates = sorted({name for name in columns if columns.count(name) > 1})
        raise BatchFileError(f"Duplicate columns: {_names(duplicates)}.", code="wrong_columns")
    if spec.kind == "text":
        if len(columns) != 1:
            raise BatchFileError(f"A text model takes one column; the file has {len(columns)}.", code="wrong_columns")
        return [0]
    if spec.feature_names:
        missing = [name for name in spec.feature_names if name not in columns]
        unknown = [name for name in columns if name not in spec.feature_names]
        if missing or unknown:
            parts = ([f"missing columns: {_names(missing)}"] if missing else []) + \
                    ([f"unexpected columns: {_names(unknown)}"] if unknown else [])
            raise BatchFileError(f"The header does not match the model's features ({'; '.join(parts)}).",
                                 code="wrong_columns")
        return [columns.index(name) for name in spec.feature_names]
    if spec.n_features and len(columns) != spec.n_features:
        raise BatchFileError(f"The model takes {spec.n_features} features; the header has {len(columns)} columns.",
                             code="wrong_columns")
    return list(range(len(columns)))


def _csv_number(cell: str, column: str, line: int, problems: list[str]) -> float:
    if _NUMBER.match(cell):
        number = float(cell)
        if not math.isinf(number):
            return number
    shown = cell if len(cell) <= 40 else cell[:40] + "..."
    problems.append(f"line {line}, column '{column[:40]}': {shown!r} is not a number")
    return math.nan


def _csv_typed(cell: str, column: str, dtype_nullable: tuple[str, bool], line: int, problems: list[str]) -> Any:
    dtype, nullable = dtype_nullable
    value: Any = None if cell == "" else cell
    if value is not None and dtype == "bool":
        value = {"true": True, "false": False, "1": True, "0": False}.get(cell.strip().lower(), cell)
    elif value is not None and dtype != "string" and _NUMBER.match(cell):
        value = int(cell) if dtype == "int64" and cell.strip().lstrip("+-").isdigit() else float(cell)
    problem = cell_problem(value, dtype, nullable)
    if problem:
        problems.append(f"line {line}, column '{column[:40]}': {problem}")
        return None
    return cell_value(value, dtype)


# --- JSON Lines -----------------------------------------------------------------------------------------


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _jsonl_rows(text: Iterator[str], spec: InputSpec, problems: list[str]) -> Iterator[Row]:
    for line, raw in enumerate(text, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            if line == 1 and not problems:
                raise BatchFileError(f"line 1 is not JSON ({_short(exc)}): not a CSV or JSON Lines file.",
                                     code="not_a_batch_file") from None
            problems.append(f"line {line}: not valid JSON ({_short(exc)})")
            continue
        unsafe = unsafe_text(record)  # a lone surrogate would fail every answer that echoes it, as in the API
        if unsafe is not None:
            problems.append(f"line {line}: {unsafe.field}: {unsafe.problem}")
            continue
        model_input = _json_input(record, spec, line, problems)
        if model_input is not None:
            yield Row(line, record, model_input)


def _json_input(record: Any, spec: InputSpec, line: int, problems: list[str]) -> Any:
    if spec.kind == "text":
        if isinstance(record, dict) and len(record) == 1:
            record = next(iter(record.values()))
        if isinstance(record, str):
            return record
        problems.append(f"line {line}: expected a string (or an object with one string)")
        return None
    if isinstance(record, dict):
        if not spec.feature_names:
            problems.append(f"line {line}: objects need feature names in the model's signature; send a list")
            return None
        missing = [name for name in spec.feature_names if name not in record]
        unknown = [str(name) for name in record if name not in spec.feature_names]
        if missing or unknown:
            parts = ([f"missing features: {_names(missing)}"] if missing else []) + \
                    ([f"unknown features: {_names(unknown)}"] if unknown else [])
            problems.append(f"line {line}: {'; '.join(parts)}")
            return None
        values = [record[name] for name in spec.feature_names]
    elif isinstance(record, list):
        values = record
        if spec.n_features and len(values) != spec.n_features:
            problems.append(f"line {line}: expected {spec.n_features} features, got {len(values)}")
            return None
    else:
        problems.append(f"line {line}: expected an object or a list of numbers")
        return None
    if spec.types:
        return _json_typed(values, spec, line, problems)
    bad = next((value for value in values if isinstance(value, bool) or not isinstance(value, (int, float))), None)
    if bad is not None or any(isinstance(value, float) and math.isinf(value) for value in values):
        problems.append(f"line {line}: {json.dumps(bad)[:40] if bad is not None else 'Infinity'} is not a number")
        return None
    return [float(value) for value in values]


def _json_typed(values: list[Any], spec: InputSpec, line: int, problems: list[str]) -> list[Any] | None:
    assert spec.types is not None and spec.feature_names is not None
    for (dtype, nullable), name, value in zip(spec.types, spec.feature_names, values):
        problem = cell_problem(value, dtype, nullable)
        if problem:
            problems.append(f"line {line}, column '{name[:40]}': {problem}")
            return None
    return [cell_value(value, dtype) for (dtype, _), value in zip(spec.types, values)]


def _names(names: list[str] | tuple[str, ...]) -> str:
    shown = ", ".join(str(name)[:40] for name in names[:5])
    return f"{shown} and {len(names) - 5} more" if len(names) > 5 else shown


def _short(exc: Exception) -> str:
    return str(exc).split(":")[0][:80] if not isinstance(exc, RecursionError) else "nested too deeply"


# --- results --------------------------------------------------------------------------------------------


class BinarySink(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


class ResultWriter:
    """Writes result rows as bytes to a binary file (or a store's sink), so the caller can record exact byte
    offsets."""

    def __init__(self, handle: BinarySink, *, fmt: str, columns: list[str], classes: list | None):
        self.handle = handle
        self.fmt = fmt
        self.columns = columns
        self.classes = classes

    def header(self) -> None:
        if self.fmt == CSV:
            names = [*self.columns, "prediction", *(f"probability_{c}" for c in self.classes or []), "error"]
            self._write_csv([names])

    def write(self, rows: list[Row], outcomes: list[Outcome]) -> None:
        if self.fmt == CSV:
            self._write_csv([self._csv_row(row, outcome) for row, outcome in zip(rows, outcomes)])
            return
        lines = []
        for row, outcome in zip(rows, outcomes):
            item: dict[str, Any] = {"line": row.line, "input": row.record}
            if outcome.error is None:
                item["prediction"] = outcome.prediction
                if outcome.probabilities is not None:
                    item["probabilities"] = outcome.probabilities
            else:
                item["error"] = outcome.error
            lines.append(json.dumps(item, separators=(",", ":")))
        self.handle.write(("\n".join(lines) + "\n").encode())

    def _csv_row(self, row: Row, outcome: Outcome) -> list[str]:
        width = len(self.classes or [])
        if outcome.error is not None:
            return [*row.record, "", *([""] * width), outcome.error]
        probabilities = outcome.probabilities if outcome.probabilities and len(outcome.probabilities) == width \
            else [None] * width
        return [*row.record, _cell(outcome.prediction), *(_cell(p) for p in probabilities), ""]

    def _write_csv(self, rows: list[list[str]]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        self.handle.write(buffer.getvalue().encode())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
