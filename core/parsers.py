from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import DataAndFiles, FormParser, JSONParser, MultiPartParser

from core.errors import InvalidInput, PayloadTooLarge
from core.text import RISKY_JSON_ESCAPE, PathPart, Unsafe, unsafe_text


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Bracket depth outside strings, checked before json.loads so a hostile body such as
    [[[[...]]]] ten thousand deep costs a linear scan instead of a RecursionError."""
    # No body can nest deeper than it has opening brackets, and counting them runs in C: a prediction body
    # holds a handful, so the character loop below (~0.1 us a character, most of a small body's parse) runs
    # only for bodies that might be too deep.
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _reject_constant(name: str) -> None:
    raise ParseError(f"JSON parse error - {name} is not valid JSON; send null or a number.")


class UnsafeText(ValidationError):
    """A string holding NUL or a lone surrogate (core/text.py), a 400 naming its field path (`tags.a`,
    `requests.0.request_id`)."""

    def __init__(self, found: Unsafe) -> None:
        self.field, self.problem = found.field, found.problem
        detail: Any = [found.problem]
        for part in reversed(found.path or ("body",)):
            detail = {part: detail}
        super().__init__(detail)


def check_text(value: object, path: tuple[PathPart, ...] = ()) -> None:
    """Raises UnsafeText if any string or key in `value` holds NUL or a lone surrogate."""
    found = unsafe_text(value, path)
    if found is not None:
        raise UnsafeText(found)


def check_form(data: Iterable[tuple[str, list[Any]]]) -> None:
    """check_text for a form's (name, values) pairs: values are strings, or uploaded files (their names)."""
    for name, values in data:
        texts = [value if isinstance(value, str) else str(getattr(value, "name", "") or "") for value in values]
        check_text({name: texts[0] if len(texts) == 1 else texts})


def loads_strict(raw: bytes) -> object:
    """Parses a JSON body: UTF-8, bounded depth, no NaN/Infinity literals, no NUL or lone surrogate in a string."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("JSON parse error - the body is not valid UTF-8.") from None
    if json_depth_exceeds(text, settings.MAX_JSON_DEPTH):
        raise ParseError(f"JSON parse error - nesting deeper than {settings.MAX_JSON_DEPTH} levels.")
    try:
        parsed = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ParseError(f"JSON parse error - {exc}") from None
    if RISKY_JSON_ESCAPE.search(text):
        check_text(parsed)
    return parsed


def json_object(data: Any) -> dict[str, Any]:
    """A parsed body that must be a JSON object (every JSON route but V2's takes one)."""
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.", details={"field": "body"})
    return data


class SafeJSONParser(JSONParser):
    def parse(self, stream: IO[bytes] | None, media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:  # any JSON value, or None for no body
        if stream is None:
            return None
        # Reads at most one byte past the limit: chunked bodies have no Content-Length to check.
        raw = stream.read(settings.MAX_REQUEST_BYTES + 1)
        if len(raw) > settings.MAX_REQUEST_BYTES:
            raise PayloadTooLarge(settings.MAX_REQUEST_BYTES)
        return loads_strict(raw)


class SafeMultiPartParser(MultiPartParser):
    """Multipart forms with check_text on every field: Django decodes them leniently (NUL passes)."""

    def parse(self, stream: IO[Any], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> DataAndFiles[Any, Any]:
        parsed = super().parse(stream, media_type, parser_context)
        check_form(parsed.data.lists())
        check_form(parsed.files.lists())
        return parsed


class SafeFormParser(FormParser):
    def parse(self, stream: IO[Any], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:  # a QueryDict
        parsed = super().parse(stream, media_type, parser_context)
        check_form(parsed.lists())
        return parsed
