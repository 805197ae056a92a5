"""One error shape for the whole API: {"error": {"code", "message", "details"}}.

Domain code raises ApplicationError subclasses; DRF and Django errors are translated here, so views
never build error responses by hand and nothing (paths, tracebacks) leaks to a client. Every path that turns
an exception into a response (the DRF handler, the Open Inference Protocol's, the fast lane, each item of the
batch route) goes through client_error and render_error: an unexpected exception is logged once and shown
as a 500 `internal_error`, never as the client's fault.
"""

import logging
from dataclasses import dataclass
from typing import Any, Literal

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf
from rest_framework import status

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    status_code: int = status.HTTP_400_BAD_REQUEST
    code: str = "bad_request"
    headers: dict[str, str] = {}

    def __init__(self, message: str, *, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInput(ApplicationError):
    code = "invalid_input"


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class PayloadTooLarge(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"

    def __init__(self, limit_bytes: int):
        super().__init__(
            f"Request body is larger than the limit of {limit_bytes} bytes.",
            details={"limit_bytes": limit_bytes},
        )


class InternalError(ApplicationError):
    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    code = "internal_error"

    def __init__(self) -> None:
        super().__init__("Internal server error.")


class ServiceUnavailable(ApplicationError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 1, details: dict[str, Any] | None = None):
        super().__init__(message, details=details)
        self.headers = {"Retry-After": str(retry_after_s)}


_DRF_CODES: dict[type[drf.APIException], str] = {
    drf.ValidationError: "validation_error",
    drf.ParseError: "parse_error",
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "authentication_failed",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "throttled",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(exc: ApplicationError) -> JsonResponse:
    response = JsonResponse(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    for name, value in exc.headers.items():
        response[name] = value
    return response


def _first_message(errors: Any, path: str = "") -> tuple[str, str]:
    """Walks nested DRF validation errors down to the first (field path, message)."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            if value:
                return _first_message(value, f"{path}.{key}" if path else str(key))
    if isinstance(errors, list):
        for index, value in enumerate(errors):
            if isinstance(value, (dict, list)) and value:
                return _first_message(value, f"{path}[{index}]" if path else f"[{index}]")
            if not isinstance(value, (dict, list)):
                return path, str(value)
    return path, str(errors)


def _validation_error(exc: drf.ValidationError) -> ApplicationError:
    detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    field, message = _first_message(detail)
    text = message if field in ("", "non_field_errors") else f"{field}: {message}"
    error = InvalidInput(text, details={"fields": drf.ValidationError(detail).detail})
    error.code = "validation_error"
    return error


def _detail_message(detail: Any) -> str:
    # simplejwt raises with {"detail": ..., "code": ..., "messages": [...]}: str() of that is a Python repr.
    if isinstance(detail, dict):
        return _detail_message(detail.get("detail") or next(iter(detail.values()), ""))
    if isinstance(detail, list):
        return " ".join(_detail_message(item) for item in detail)
    return str(detail)


def _from_drf(exc: drf.APIException) -> ApplicationError:
    if isinstance(exc, drf.ValidationError):
        return _validation_error(exc)
    error = ApplicationError(_detail_message(exc.detail))
    error.status_code = exc.status_code
    error.code = next((code for cls, code in _DRF_CODES.items() if isinstance(exc, cls)), exc.default_code)
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        error.headers = {"WWW-Authenticate": auth_header}
    wait = getattr(exc, "wait", None)
    if wait is not None:
        error.headers = {"Retry-After": str(max(1, int(wait + 0.999)))}
        error.details = {"retry_after_s": int(wait + 0.999)}
    return error


def _translate(exc: BaseException) -> ApplicationError | None:
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, drf.APIException):
        return _from_drf(exc)
    if isinstance(exc, Http404):
        return NotFound("Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        return _from_drf(drf.PermissionDenied())
    if isinstance(exc, RequestDataTooBig):
        from django.conf import settings

        return PayloadTooLarge(settings.MAX_REQUEST_BYTES)
    if isinstance(exc, SuspiciousOperation):
        return ApplicationError("The request was malformed.")
    return None


def client_error(exc: BaseException, *, where: str) -> ApplicationError:
    """The error a client is shown for `exc`: ours, DRF's and Django's translated; anything else is a bug or
    an outage inside the platform, logged here with its traceback and shown as a bare 500."""
    error = _translate(exc)
    if error is None:
        logger.error("unhandled error in %s", where, exc_info=exc)
        return InternalError()
    return error


Protocol = Literal["platform", "v2"]


@dataclass(frozen=True)
class RenderedError:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def render_error(exc: BaseException, *, where: str, protocol: Protocol = "platform") -> RenderedError:
    """The response for `exc`: the platform's shape, or the Open Inference Protocol's `{"error": message}`
    (its clients parse exactly that) with the same status and headers."""
    error = client_error(exc, where=where)
    if protocol == "v2":
        body: dict[str, Any] = {"error": error.message}
    else:
        body = error_body(error.code, error.message, error.details)
    return RenderedError(error.status_code, body, dict(error.headers))


def exception_handler(exc: Exception, context: dict[str, Any]) -> Any:
    from rest_framework.response import Response

    rendered = render_error(exc, where=context.get("view").__class__.__name__)
    return Response(rendered.body, status=rendered.status, headers=rendered.headers)


def _django_error(code: str, message: str, status_code: int) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status_code)


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _django_error("bad_request", "The request was malformed.", 400)


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _django_error("permission_denied", "You do not have permission to perform this action.", 403)


def handler404(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return _django_error("not_found", "No route matches this URL.", 404)


def handler500(request: HttpRequest) -> JsonResponse:
    return _django_error("internal_error", "Internal server error.", 500)
