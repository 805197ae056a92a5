import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

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


def loads_strict(raw: bytes) -> object:
    """Parses a JSON body: UTF-8, bounded depth, no NaN/Infinity literals."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("JSON parse error - the body is not valid UTF-8.") from None
    if json_depth_exceeds(text, settings.MAX_JSON_DEPTH):
        raise ParseError(f"JSON parse error - nesting deeper than {settings.MAX_JSON_DEPTH} levels.")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise ParseError(f"JSON parse error - {exc}") from None


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
