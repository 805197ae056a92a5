"""Request bodies sent with `Transfer-Encoding: chunked` (no Content-Length), for Django.

Django reads exactly CONTENT_LENGTH bytes of wsgi.input, so a chunked body (already de-chunked by the server:
wsgi.input simply ends with it) looked empty: a valid JSON body was answered `inputs: This field is required`.
This reads such a body, at most one byte past its route's limit (core.middleware.body_limit_for), into a
spooled file (memory, then disk, as Django's uploads) and sets CONTENT_LENGTH, so Django and
BodySizeLimitMiddleware see a body with a length: past the limit that length is the limit plus one, and
the middleware answers the 413 in the route's own shape.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

from core.middleware import body_limit_for

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
READ_BYTES = 64 * 1024


class ChunkedBodies:
    """WSGI middleware in front of Django's handler (servingplatform/asgi.py and wsgi.py)."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if is_chunked(environ.get("HTTP_TRANSFER_ENCODING", ""), environ.get("CONTENT_LENGTH")):
            spool_body(environ)
        return self.app(environ, start_response)


def is_chunked(transfer_encoding: str, content_length: str | None) -> bool:
    # Both headers at once is a smuggling attempt that the HTTP server refuses before we see it.
    return "chunked" in transfer_encoding.lower() and not content_length


def spool_body(environ: dict[str, Any]) -> None:
    limit = body_limit_for(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
    source = environ["wsgi.input"]
    spool = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE,
                                          dir=settings.FILE_UPLOAD_TEMP_DIR)
    size = 0
    while size <= limit:
        chunk = source.read(min(READ_BYTES, limit + 1 - size))
        if not chunk:
            break
        spool.write(chunk)
        size += len(chunk)
    spool.seek(0)
    environ["wsgi.input"] = spool
    environ["CONTENT_LENGTH"] = str(size)
