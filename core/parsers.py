from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import DataAndFiles, FormParser, JSONParser, MultiPartParser

from core.errors import InvalidInput, PayloadTooLarge


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Bracket depth outside strings, checked before json.loads so a hostile body such as
    [[[[...]]]] ten thousand deep costs a linear scan instead of a RecursionError."""
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


# A lone surrogate (\ud800-\udfff outside a pair) is not text: a str holding one cannot be encoded as UTF-8, so
# every response that echoes it (a list, a request id) fails, and PostgreSQL refuses it; NUL is refused by
# PostgreSQL's text and jsonb and cut short by C code. Neither is ever meaningful in the API's strings.
_UNSAFE_CHAR = re.compile("[\x00\ud800-\udfff]")
# In a JSON text both can only come from a \u escape: strict UTF-8 decoding refuses encoded surrogates and
# json.loads refuses raw control characters. A body without such an escape (nearly all) skips the walk.
_RISKY_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
PathPart = str | int


class UnsafeText(ValidationError):
    """A string holding NUL or a lone surrogate, reported at its field path (`tags.a`, `items.0.request_id`)."""

    def __init__(self, path: tuple[PathPart, ...], problem: str) -> None:
        parts = [printable(part) if isinstance(part, str) else part for part in path] or ["body"]
        self.field = ".".join(str(part) for part in parts)
        self.problem = problem
        detail: Any = [problem]
        for part in reversed(parts):
            detail = {part: detail}
        super().__init__(detail)


def printable(text: str) -> str:
    """`text` with NUL and surrogates written as \\uXXXX escapes, safe to echo in an error."""
    return _UNSAFE_CHAR.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _problem(text: str, subject: str = "Must") -> str | None:
    found = _UNSAFE_CHAR.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return f"{subject} not contain the NUL character (\\u0000)."
    return f"{subject} not contain a lone UTF-16 surrogate (\\ud800-\\udfff); send valid Unicode text."


def _unsafe(value: object, path: tuple[PathPart, ...]) -> UnsafeText | None:
    if isinstance(value, str):
        problem = _problem(value)
        return None if problem is None else UnsafeText(path, problem)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _problem(key, "A key must") if isinstance(key, str) else None
            if problem is not None:
                return UnsafeText((*path, key), problem)
            found = _unsafe(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _unsafe(item, (*path, index))
            if found is not None:
                return found
    return None


def check_text(value: object, path: tuple[PathPart, ...] = ()) -> None:
    """Raises UnsafeText (a 400 naming the field) if any string or key in `value` holds NUL or a lone surrogate."""
    found = _unsafe(value, path)
    if found is not None:
        raise found


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
    if _RISKY_ESCAPE.search(text):
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
