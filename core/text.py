"""Strings that are not text: NUL and lone surrogates. Plain Python (the batch-file reader uses it too).

A lone surrogate (\\ud800-\\udfff outside a pair) cannot be encoded as UTF-8, so every response that echoes
it (a list, a request id) fails, and PostgreSQL refuses it; NUL is refused by PostgreSQL's text and jsonb
and cut short by C code. Neither is ever meaningful in the platform's strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNSAFE_CHAR = re.compile("[\x00\ud800-\udfff]")
# In a JSON text both can only come from a \u escape: strict UTF-8 decoding refuses encoded surrogates and
# json.loads refuses raw control characters. A body without such an escape (nearly all) skips the walk.
RISKY_JSON_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
PathPart = str | int


@dataclass(frozen=True)
class Unsafe:
    """Where the first bad string is (`("tags", "a")`, printable) and what is wrong with it."""

    path: tuple[PathPart, ...]
    problem: str

    @property
    def field(self) -> str:
        return ".".join(str(part) for part in self.path) or "body"


def printable(text: str) -> str:
    """`text` with NUL and surrogates written as \\uXXXX escapes, safe to echo in an error."""
    return _UNSAFE_CHAR.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def unsafe_text(value: object, path: tuple[PathPart, ...] = ()) -> Unsafe | None:
    """The first string or key in `value` (JSON-like: dicts, lists, strings) that holds NUL or a lone surrogate."""
    if isinstance(value, str):
        problem = _problem(value)
        return None if problem is None else Unsafe(path, problem)
    if isinstance(value, dict):
        for key, item in value.items():
            part = printable(key) if isinstance(key, str) else key
            problem = _problem(key, "A key must") if isinstance(key, str) else None
            if problem is not None:
                return Unsafe((*path, part), problem)
            found = unsafe_text(item, (*path, part))
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = unsafe_text(item, (*path, index))
            if found is not None:
                return found
    return None


def _problem(text: str, subject: str = "Must") -> str | None:
    found = _UNSAFE_CHAR.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return f"{subject} not contain the NUL character (\\u0000)."
    return f"{subject} not contain a lone UTF-16 surrogate (\\ud800-\\udfff); send valid Unicode text."
