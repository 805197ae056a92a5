import itertools
import os
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.urls import Resolver404, get_resolver

from core.errors import PayloadTooLarge, error_response
from core.logging import request_id_var

# A client-supplied request id is echoed in logs and headers, so only a short, plain token is kept.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_from(supplied: str) -> str:
    return supplied if _REQUEST_ID.match(supplied) else new_request_id()


def new_request_id() -> str:
    """32 hex digits, unique across processes: a random per-process prefix and a counter.

    Request ids must be unique, not unguessable; uuid4 reads os.urandom on every call, which was ~5% of
    the prediction fast lane's CPU.
    """
    return f"{_id_prefix}{next(_id_counter):016x}"


_id_prefix: str
_id_counter: Iterator[int]


def _new_id_prefix() -> None:
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = secrets.token_hex(8), itertools.count()


_new_id_prefix()
os.register_at_fork(after_in_child=_new_id_prefix)  # a forked web worker must not repeat its parent's ids


GetResponse = Callable[[HttpRequest], HttpResponseBase]


class RequestIdMiddleware:
    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_from(request.headers.get("X-Request-ID", ""))
        # An attribute for code behind the middleware, the way Django's own add request.user; the stub's
        # HttpRequest declares only Django's.
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


# The API's slash policy covers these; the admin and the browsable API's login keep Django's APPEND_SLASH
# redirect (a browser follows it, and its relative links need the canonical URL).
API_PREFIXES = ("/api/", "/v2/", "/health", "/metrics")


def catch_all(view: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a view that answers every path under a prefix (/v2/...'s 404 in the protocol's shape): a path it
    catches still gets the slash policy's second try at a real route."""
    view.catch_all = True  # type: ignore[attr-defined]
    return view


def _routed(path: str, urlconf: str | None) -> bool:
    try:
        match = get_resolver(urlconf).resolve(path)
    except Resolver404:
        return False
    return not getattr(match.func, "catch_all", False)


class ApiSlashMiddleware:
    """One slash policy for the API: every route answers with and without a trailing slash.

    Routes are declared once, in one form (so the OpenAPI document and reverse() name one URL); a path that
    reaches no route is tried with its trailing slash added or removed, and served by the route that form
    reaches, without a redirect (a client re-sends a redirected POST as a GET, or not at all). It is here,
    before every other middleware, so routes added later follow it; inference/fastlane.py's patterns take
    both forms too.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        path = request.path_info
        if path.startswith(API_PREFIXES) and path != "/":
            urlconf = getattr(request, "urlconf", None)
            other = path[:-1] if path.endswith("/") else f"{path}/"
            if not _routed(path, urlconf) and _routed(other, urlconf):
                request.path = request.path[: len(request.path) - len(path)] + other
                request.path_info = request.META["PATH_INFO"] = other
        return self.get_response(request)


def body_limit_for(path: str) -> int:
    # Artifact and batch-file uploads are allowed to be large; everything else is a JSON body.
    if path.startswith("/api/v1/models/") and path.rstrip("/").endswith("/versions"):
        return settings.MAX_ARTIFACT_BYTES
    if path.startswith("/admin/registry/modelversion/"):
        return settings.MAX_ARTIFACT_BYTES
    if path.startswith("/api/v1/batch-jobs/"):
        # Multipart framing around the file; the file itself is held to BATCH_MAX_FILE_MB (a 400).
        return settings.BATCH_MAX_FILE_BYTES + 1024 * 1024
    return settings.MAX_REQUEST_BYTES


class BodySizeLimitMiddleware:
    """Refuses oversize bodies from Content-Length before anything reads them (413)."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = body_limit_for(request.path)
        if length > limit:
            if request.path.startswith("/v2/"):
                # Open Inference Protocol clients parse {"error": "<message>"} (inference/v2/apis.py).
                return JsonResponse({"error": PayloadTooLarge(limit).message}, status=413)
            return error_response(PayloadTooLarge(limit))
        return self.get_response(request)
