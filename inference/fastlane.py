"""The fast lane: an ASGI front for the routes that carry most traffic, POST /api/v1/predict/{endpoint}, the
universal POST /api/v1/predict and the Open Inference Protocol's POST /v2/models/{name}[/versions/{v}]/infer.

Django's middleware stack, DRF's negotiation and rendering and gunicorn's threaded request handling cost
about 3 ms of CPU per request (bench/bench_serving.py --profile), ten times the prediction itself. Under
uvicorn this app answers the common case, a JSON body with an API key this process has already verified,
with the very checks the DRF view makes (the same key cache, quota leases, body parser, request checks
and engine.predict), and renders the same error shape. Anything else (another route, a key not yet
verified here, a session or JWT, a CORS request, an empty or oversize body, an unknown host)
goes to Django unchanged, so the two paths differ in cost, not in behaviour.

The prediction itself is engine.predict_async: in the event loop over a multiplexed worker connection in
the common case, with whatever may block (Redis, the database, a wake from zero) in a thread pool.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import re
from typing import Any

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.text import compress_string
from rest_framework import exceptions as drf

from core.auth import cached_key
from core.chunked import is_chunked
from core.db import closing_connections, keeping_connections
from core.errors import PayloadTooLarge, render_error
from core.logging import request_id_var
from core.middleware import request_id_from
from core.models import Scope
from core.parsers import json_object, loads_strict
from core.pools import ProcessLocalPool
from core.throttling import bucket_key, leases, predict_quota
from inference.predict import engine
from inference.predict.bodies import UNIVERSAL_FIELDS, only_known, predict_request, universal_ref
from inference.predict.contract import PredictRequest, Route
from inference.predict.dispatch import endpoint_for_version, routes
from inference.runtime.v2 import codec as v2codec
from inference.v2 import infer as v2
from registry.selectors import model_version_id_cached, model_version_id_known

logger = logging.getLogger(__name__)

# With or without a trailing slash, as every API route (core.middleware.ApiSlashMiddleware).
PREDICT_PATH = re.compile(r"/api/v1/predict/([^/]+)/?")
UNIVERSAL_PATHS = frozenset({"/api/v1/predict", "/api/v1/predict/"})
V2_INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer/?")
# Other routes under /api/v1/predict/ that the endpoint pattern would swallow (inference/deployments/urls.py).
RESERVED_ENDPOINTS = frozenset({"batch"})
JSON_MEDIA_TYPE = re.compile(rb"\s*application/json\s*(;.*)?", re.IGNORECASE)
# V2 bodies: JSON, or JSON followed by binary tensors (the header length says where the JSON ends).
V2_MEDIA_TYPE = re.compile(rb"\s*application/(json|octet-stream)\s*(;.*)?", re.IGNORECASE)
ACCEPTS_GZIP = re.compile(rb"\bgzip\b")
# Media ranges for which DRF's negotiation picks the JSON renderer; anything else (text/html for the
# browsable API, a 406) is Django's.
JSON_RANGES = frozenset({b"*/*", b"application/*", b"application/json"})
GZIP_MIN_BYTES = 200  # as django.middleware.gzip
HEADER_LENGTH = v2codec.HEADER_LENGTH.lower().encode()
# Parsing, checking and encoding a body this big takes milliseconds: done in the event loop, it would stall
# every other request of the process, so such requests take the blocking path in a thread.
LOOP_BODY_BYTES = 64 * 1024


class FastLane:
    """ASGI app: predictions it can answer alone, everything else to `fallback` (Django through a2wsgi)."""

    def __init__(self, fallback: Any, *, threads: int, db_threads: int | None = None) -> None:
        self.fallback = fallback
        self._work = ProcessLocalPool(threads, "fastlane-work")
        self._db = ProcessLocalPool(db_threads or threads, "fastlane-db")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        admitted = _admit(scope) if scope["type"] == "http" else None
        if admitted is None:
            await self.fallback(scope, receive, send)
            return
        await self._predict(admitted, receive, send)

    async def _predict(self, request: _Admitted, receive: Any, send: Any) -> None:
        token = request_id_var.set(request.request_id)
        try:
            reply = await self._answer(request, receive)
        finally:
            request_id_var.reset(token)
        if reply is not None:
            await _respond(send, request, reply)

    async def _answer(self, request: _Admitted, receive: Any) -> _Reply | None:
        try:
            await self._throttle(request)
            raw = await _read_body(receive, settings.MAX_REQUEST_BYTES)
            if raw is None:
                return None  # the client went away
            big = len(raw) > LOOP_BODY_BYTES
            if request.kind == V2:
                return await self._infer_v2(request, raw, big)
            if request.kind == UNIVERSAL:
                prediction = await self._universal(request, raw, big)
            else:
                prediction = await self._inline_or_offload(big, _prediction, request, raw)
            return _Reply.json(200, await self._serve(big, prediction))
        except Exception as exc:  # noqa: BLE001 - rendered exactly as the DRF and V2 exception handlers do
            rendered = render_error(exc, where="the prediction fast lane",
                                    protocol="v2" if request.kind == V2 else "platform")
            return _Reply.json(rendered.status, rendered.body, rendered.headers)

    async def _infer_v2(self, request: _Admitted, raw: bytes, big: bool) -> _Reply:
        route = routes().endpoint(request.endpoint)
        if route is None:
            await self.run_db(v2.served_version, request.endpoint, request.version, None)
        else:
            v2.served_version(request.endpoint, request.version, route)
        infer, rows = await self._inline_or_offload(big, _infer_body, request, raw, route)
        prediction = v2.predict_request(request.endpoint, infer, rows, default_id=request.request_id,
                                        subject=request.subject)
        answer = await self._serve(big, prediction)
        content, content_type, header_length = await self._inline_or_offload(
            big, v2.infer_reply, request.endpoint, infer, answer)
        extra = {} if header_length is None else {v2codec.HEADER_LENGTH: str(header_length)}
        return _Reply(200, content, content_type, extra)

    async def _universal(self, request: _Admitted, raw: bytes, big: bool) -> PredictRequest:
        data = await self._inline_or_offload(big, _json_body, raw)
        only_known(data, UNIVERSAL_FIELDS)
        model_name, ref = universal_ref(data)
        version_id = model_version_id_known(model_name, ref)
        if version_id is None:  # first asked in this process, or the registry changed since: one query
            version_id = await self.run_db(model_version_id_cached, model_name, ref)
        endpoint = endpoint_for_version(version_id, model_name, ref)
        return predict_request(endpoint, data, subject=request.subject, default_id=request.request_id, fields=None)

    async def _inline_or_offload(self, big: bool, function: Any, *args: Any) -> Any:
        # Parsing, checking and encoding a big body would stall every other request on this loop.
        return await self.run(function, *args) if big else function(*args)

    async def _serve(self, big: bool, prediction: PredictRequest) -> dict:
        if big:
            return await self.run(engine.predict, prediction)
        return await engine.predict_async(prediction, self.run, self.run_db)

    async def _throttle(self, request: _Admitted) -> None:
        quota = predict_quota()
        if quota is None:
            return
        limit, window = quota
        # This process's lease answers most requests without leaving the loop; a Redis round trip otherwise.
        taken = leases.take_local(request.bucket, window)
        allowed, wait = taken if taken is not None else await self.run(leases.allow, request.bucket, limit, window)
        if not allowed:
            raise drf.Throttled(wait=max(wait, 0.0))

    async def run(self, function: Any, *args: Any) -> Any:
        """Runs blocking work that seldom needs the database (Redis, a wake from zero) in the large pool.

        A database connection opened there (an experiment table refresh) is closed again at once: only the
        threads of run_db, and Django's own, keep theirs, so their counts bound this process's connections.
        """
        return await self._offload(self._work, closing_connections, function, *args)

    async def run_db(self, function: Any, *args: Any) -> Any:
        """Runs blocking work that reads the database in a pool as small as Django's; its threads keep their
        connections for CONN_MAX_AGE (opening one costs a millisecond of CPU, more than the query)."""
        return await self._offload(self._db, keeping_connections, function, *args)

    async def _offload(self, pool: ProcessLocalPool, wrapper: Any, function: Any, *args: Any) -> Any:
        # In a copy of the caller's context: the request id reaches the logs of the thread.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(pool.get(), context.run, wrapper, function, *args)


PREDICT, UNIVERSAL, V2 = "predict", "universal", "v2"


class _Admitted:
    __slots__ = ("kind", "endpoint", "version", "bucket", "subject", "request_id", "secure", "accepts_gzip",
                 "headers")

    def __init__(self, kind: str, endpoint: str, version: str | None, bucket: str, headers: dict[bytes, bytes],
                 secure: bool) -> None:
        self.kind, self.endpoint, self.version, self.bucket, self.headers = kind, endpoint, version, bucket, headers
        subject = headers.get(b"x-subject-id")
        self.subject = subject.decode("latin-1") if subject else None
        self.request_id = request_id_from(headers.get(b"x-request-id", b"").decode("latin-1"))
        self.secure = secure
        self.accepts_gzip = bool(ACCEPTS_GZIP.search(headers.get(b"accept-encoding", b"")))

    def header(self, name: bytes) -> str:
        return self.headers.get(name, b"").decode("latin-1")


class _Reply:
    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.content_type, self.headers = status, body, content_type, headers or {}

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> _Reply:
        # The bytes DRF's JSONRenderer writes: compact, UTF-8, no NaN.
        body = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        return cls(status, body, "application/json", headers)


def _admit(scope: dict) -> _Admitted | None:
    """The request, if this lane can answer it exactly as Django would; None sends it to Django."""
    if scope["method"] != "POST":
        return None
    kind, endpoint, version, media = _route_of(scope["path"])
    if kind is None:
        return None
    headers = dict(scope["headers"])
    if not _plain_body(headers, media) or not _accepts_json(headers) or b"origin" in headers:
        return None
    if not _allowed_host(headers):
        return None
    secure = scope.get("scheme") == "https" or _forwarded_https(headers)
    if settings.SECURE_SSL_REDIRECT and not secure:
        return None
    ident = _principal(headers)
    if ident is None:
        return None
    return _Admitted(kind, endpoint, version, bucket_key("predict", ident), headers, secure)


def _route_of(path: str) -> tuple[str | None, str, str | None, re.Pattern[bytes]]:
    if path in UNIVERSAL_PATHS:
        return UNIVERSAL, "", None, JSON_MEDIA_TYPE
    match = PREDICT_PATH.fullmatch(path)
    if match is not None and match.group(1) not in RESERVED_ENDPOINTS:
        return PREDICT, match.group(1), None, JSON_MEDIA_TYPE
    match = V2_INFER_PATH.fullmatch(path)
    if match is not None:
        return V2, match.group(1), match.group(2), V2_MEDIA_TYPE
    return None, "", None, JSON_MEDIA_TYPE


def _plain_body(headers: dict[bytes, bytes], media: re.Pattern[bytes]) -> bool:
    if not media.fullmatch(headers.get(b"content-type", b"")):
        return False
    length = headers.get(b"content-length")
    if b"transfer-encoding" in headers:
        # A chunked body has no length to check here: _read_body holds it to the limit as it arrives.
        return is_chunked(headers[b"transfer-encoding"].decode("latin-1"),
                          None if length is None else length.decode("latin-1"))
    # Empty bodies, oversize bodies (413 from BodySizeLimitMiddleware) and odd lengths: Django decides.
    return length is not None and length.isdigit() and 0 < int(length) <= settings.MAX_REQUEST_BYTES


def _accepts_json(headers: dict[bytes, bytes]) -> bool:
    accept = headers.get(b"accept")
    if not accept:
        return True
    return all(part.split(b";")[0].strip().lower() in JSON_RANGES for part in accept.split(b","))


def _allowed_host(headers: dict[bytes, bytes]) -> bool:
    domain, _ = split_domain_port(headers.get(b"host", b"").decode("latin-1"))
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


def _forwarded_https(headers: dict[bytes, bytes]) -> bool:
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if not proxy_header:
        return False
    name, value = proxy_header
    header = name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin-1")
    return headers.get(header, b"").split(b",")[0].strip() == value.encode("latin-1")


def _principal(headers: dict[bytes, bytes]) -> str | None:
    """The throttle identity of a key this process has verified and that may predict, else None.

    Keys not yet in the cache, expired keys, keys without the predict scope, anonymous callers and
    every other kind of credential are Django's to answer (401, 403, or a first verification).
    """
    raw = headers.get(b"x-api-key")
    if not raw:
        return None
    key = cached_key(raw.decode("latin-1"))
    if key is None or key.has_expired or not key.allows(Scope.PREDICT):
        return None
    return f"key:{key.pk}"


def _json_body(raw: bytes) -> dict:
    # An empty (chunked) body is no data, as DRF reads it: the route then names what is missing.
    return json_object(loads_strict(raw)) if raw else {}


def _prediction(request: _Admitted, raw: bytes) -> PredictRequest:
    return predict_request(request.endpoint, _json_body(raw), subject=request.subject, default_id=request.request_id)


def _infer_body(request: _Admitted, raw: bytes, route: Route | None) -> tuple[v2codec.InferRequest, list[Any]]:
    return v2.read_infer_body(request.header(b"content-type"), raw, route=route,
                              encoding=request.header(b"content-encoding") or None,
                              header_length=request.header(HEADER_LENGTH) or None)


async def _read_body(receive: Any, limit: int) -> bytes | None:
    """The body, or None if the client went away; a 413 as soon as it passes `limit` (a chunked body)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _respond(send: Any, request: _Admitted, reply: _Reply) -> None:
    # The headers Django's middleware and DRF add to these routes' responses.
    body = reply.body
    headers = [(b"content-type", reply.content_type.encode()), (b"allow", b"POST, OPTIONS"),
               *_security_headers(request)]
    # DRF varies by Accept where a view has several renderers (the /api/v1 views; V2 renders JSON only).
    vary = [b"Accept"] if request.kind != V2 else []
    if len(body) >= GZIP_MIN_BYTES:
        vary.append(b"Accept-Encoding")
        if request.accepts_gzip:
            compressed = compress_string(body)
            if len(compressed) < len(body):
                body = compressed
                headers.append((b"content-encoding", b"gzip"))
    # corsheaders marks every response as varying by origin (CORS requests themselves never come here).
    vary.append(b"origin")
    headers += [(b"vary", b", ".join(vary)), (b"x-request-id", request.request_id.encode()),
                (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode("latin-1")) for name, value in reply.headers.items()]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _security_headers(request: _Admitted) -> list[tuple[bytes, bytes]]:
    headers = [(b"x-frame-options", settings.X_FRAME_OPTIONS.encode())]
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"x-content-type-options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        headers.append((b"referrer-policy", str(settings.SECURE_REFERRER_POLICY).encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append((b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()))
    if request.secure and settings.SECURE_HSTS_SECONDS:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        headers.append((b"strict-transport-security", value.encode()))
    return headers


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
