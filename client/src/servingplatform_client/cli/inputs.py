"""Reading what `sp` is given: input files (CSV, JSON, JSON Lines), JSON options and NAME=VALUE knobs."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from servingplatform_client.session import JSON

NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
INTEGER = re.compile(r"^[+-]?\d+$")


class UsageError(Exception):
    """A bad argument or input file, reported before anything is sent."""


def cell(text: str) -> Any:
    """A CSV cell as JSON: an empty cell is a missing value, numbers are numbers, the rest strings."""
    if text == "":
        return None
    if INTEGER.match(text):
        return int(text)
    if NUMBER.match(text):
        return float(text)
    return text


def read_csv(text: str, *, rows: bool) -> list[Any]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise UsageError("the CSV file is empty (it needs a header row of column names)")
    lines = [line for line in reader if line]
    if rows:
        return [[cell(value) for value in line] for line in lines]
    for number, line in enumerate(lines, start=2):
        if len(line) != len(header):
            raise UsageError(f"CSV line {number} has {len(line)} values; the header has {len(header)}")
    return [dict(zip(header, map(cell, line))) for line in lines]


def read_input(path: str, *, rows: bool = False) -> tuple[Any, JSON | None]:
    """(inputs, parameters) from a CSV (header row), JSON Lines or JSON file; '-' reads JSON from stdin.

    A JSON object with "inputs" is a request body (its "parameters" are used too); any other JSON is the inputs.
    """
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return read_csv(text, rows=rows), None
    try:
        if suffix in (".jsonl", ".ndjson"):
            return [json.loads(line) for line in text.splitlines() if line.strip()], None
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and "inputs" in data:
        return data["inputs"], data.get("parameters")
    return data, None


def json_option(value: str | None, name: str) -> Any:
    """A JSON option's value; `@FILE` reads it from a file."""
    if value is None:
        return None
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
        return json.loads(text)
    except OSError as exc:
        raise UsageError(f"{name}: cannot read {value[1:]}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name}: not valid JSON ({exc})") from None


def knob_values(pairs: Sequence[str]) -> dict[str, Any]:
    knobs: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--set {pair}: expected NAME=VALUE, e.g. --set batch_timeout_ms=2")
        try:
            knobs[name.replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            knobs[name.replace("-", "_")] = raw
    return knobs
