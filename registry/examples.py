"""Input examples uploaded with a version: read (CSV with a header, or JSON), size-limited, and checked against
the signature given with them, so a contradiction is a 400 naming the column before anything is stored. The
model's own word comes later, in the validation sandbox (inference.runtime.sandbox), with the same rules."""

from typing import Any

from django.conf import settings

from core.errors import InvalidInput
from inference.runtime.contract.errors import SignatureMismatch
from inference.runtime.contract.examples import ExampleError, merge_columns, parse_example
from registry.errors import InputExampleTooLarge

_CHUNK = 64 * 1024


def input_example_read(upload: Any, *, signature: dict | None) -> list[Any]:
    """The example as a JSON list (records, rows or strings); 400/413 naming `input_example` otherwise."""
    data = _read_limited(upload, settings.MAX_INPUT_EXAMPLE_BYTES)
    try:
        example = parse_example(data, max_rows=settings.INPUT_EXAMPLE_MAX_ROWS)
    except ExampleError as exc:
        raise InvalidInput(f"input_example: {exc}", details={"field": "input_example"}) from None
    input_example_check(example, signature=signature)
    return example


def input_example_check(example: list[Any] | None, *, signature: dict | None) -> None:
    """The example and the signature's columns agree (types, nulls, names); 400 naming the column if not."""
    try:
        merge_columns(None, (signature or {}).get("columns"), example)
    except SignatureMismatch as exc:
        raise InvalidInput(f"input_example: {exc}", details={"field": "input_example"}) from None


def _read_limited(upload: Any, limit: int) -> bytes:
    chunks, size = [], 0
    for chunk in upload.chunks(_CHUNK) if hasattr(upload, "chunks") else iter(lambda: upload.read(_CHUNK), b""):
        size += len(chunk)
        if size > limit:
            raise InputExampleTooLarge(f"input_example: larger than the limit of {limit} bytes (a few rows are "
                                       "enough; MAX_INPUT_EXAMPLE_KB sets it).",
                                       details={"field": "input_example", "limit_bytes": limit})
        chunks.append(chunk)
    return b"".join(chunks)
