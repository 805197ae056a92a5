"""Python client for the Serving Platform API (`pip install ./client`; the `sp` command comes with it)."""

__version__ = "0.1.0"

from servingplatform_client.client import Client  # noqa: E402 - _http reads __version__ above
from servingplatform_client.errors import (  # noqa: E402
    APIError,
    AuthenticationError,
    BadRequestError,
    ClientError,
    ConflictError,
    ConnectionFailedError,
    DeadlineExceededError,
    NotFoundError,
    OperationFailedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    ServingPlatformError,
    WaitTimeoutError,
)

__all__ = [
    "APIError", "AuthenticationError", "BadRequestError", "Client", "ClientError", "ConflictError",
    "ConnectionFailedError", "DeadlineExceededError", "NotFoundError", "OperationFailedError", "PayloadTooLargeError",
    "PermissionDeniedError", "RateLimitError", "ServerError", "ServiceUnavailableError", "ServingPlatformError",
    "WaitTimeoutError", "__version__",
]
