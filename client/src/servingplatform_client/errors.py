"""Every failure the client reports is a ServingPlatformError carrying status, code, message and details.

API errors mirror the server's one error shape, `{"error": {"code", "message", "details"}}`: one class per
status class (ClientError for 4xx, ServerError for 5xx) with a subclass for each status a caller may want
to catch on its own. Failures that are not an HTTP answer (the server unreachable, a validation that
failed, a wait that ran out of time) have `status` None and a code of their own.
"""

from __future__ import annotations

from typing import Any

import httpx


class ServingPlatformError(Exception):
    """Base of every error the client raises."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "error",
                 details: dict[str, Any] | None = None, request_id: str | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or {}
        self.request_id = request_id
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, message={self.message!r})"


class APIError(ServingPlatformError):
    """The server answered with an error status."""


class ClientError(APIError):
    """4xx: the request was refused; repeating it unchanged will not help."""


class BadRequestError(ClientError):
    """400: invalid input; `message` names the field, `details` has the per-field errors."""


class AuthenticationError(ClientError):
    """401: missing or invalid credentials."""


class PermissionDeniedError(ClientError):
    """403: the key's scope does not allow this."""


class NotFoundError(ClientError):
    """404."""


class ConflictError(ClientError):
    """409: conflicts with the current state (an endpoint taken, a deployed version deleted...)."""


class PayloadTooLargeError(ClientError):
    """413."""


class RateLimitError(ClientError):
    """429: throttled (raised once the client's retries are spent)."""


class ServerError(APIError):
    """5xx."""


class ServiceUnavailableError(ServerError):
    """503: a dependency is unavailable or a deployment is loading (raised once retries are spent)."""


class DeadlineExceededError(ServerError):
    """504: the model did not answer within the deployment's timeout."""


class ConnectionFailedError(ServingPlatformError):
    """The server could not be reached, or did not answer in time."""


class OperationFailedError(ServingPlatformError):
    """Something the client waited for ended badly: a version failed validation, a deployment failed to
    load, a job failed. `details` carries the object as the API returned it."""


class WaitTimeoutError(ServingPlatformError):
    """A wait (validation, deployment, job) did not finish within its timeout."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
    409: ConflictError, 413: PayloadTooLargeError, 429: RateLimitError, 503: ServiceUnavailableError,
    504: DeadlineExceededError,
}


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header given in seconds (the form this API sends); None otherwise."""
    value = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0)


def from_response(response: httpx.Response) -> APIError:
    """The error a non-2xx answer stands for, read from the API's error shape when it has one."""
    code, message = f"http_{response.status_code}", ""
    details: dict[str, Any] = {}
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or code)
        message = str(error.get("message") or "")
        details = error["details"] if isinstance(error.get("details"), dict) else {}
    elif isinstance(error, str):  # the Open Inference Protocol's {"error": "..."}
        message = error
    if not message:
        message = response.reason_phrase or f"HTTP {response.status_code}"
    cls = _BY_STATUS.get(response.status_code) or (ServerError if response.status_code >= 500 else ClientError)
    return cls(message, status=response.status_code, code=code, details=details,
               request_id=response.headers.get("X-Request-ID"), retry_after_s=retry_after(response))
