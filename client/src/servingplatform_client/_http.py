"""One pooled httpx connection set per Client: authentication, timeouts, error mapping, and retries of
429/503 answers honouring Retry-After within a budget."""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

from servingplatform_client import __version__
from servingplatform_client.errors import ConnectionFailedError, from_response, retry_after
from servingplatform_client.payloads import dumps

logger = logging.getLogger("servingplatform_client")

RETRIED_STATUSES = frozenset({429, 503})


class Transport:
    def __init__(self, url: str, api_key: str | None, *, timeout: float, max_retries: int, max_retry_wait_s: float,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"User-Agent": f"servingplatform-client/{__version__}", "Accept": "application/json"}
        if api_key:
            headers["X-API-Key"] = api_key
        self.url = url
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s
        # Connection errors (nothing sent yet) are retried by the transport itself; answers by us below.
        self._http = httpx.Client(
            base_url=url, headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=30.0),
            transport=transport or httpx.HTTPTransport(retries=2),
        )

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, *, json: Any = None, timeout: float | None = None,
                **options: Any) -> httpx.Response:
        """The answer to a request, once it is 2xx; an error otherwise (after retrying 429 and 503)."""
        if json is not None:
            options["content"] = dumps(json)
            options["headers"] = {"Content-Type": "application/json", **options.get("headers", {})}
        if timeout is not None:
            options["timeout"] = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        waited = 0.0
        for attempt in range(self.max_retries + 1):
            response = self._send(method, path, options)
            if response.is_success:
                return response
            pause = self._pause(response, attempt, waited)
            if pause is None:
                raise from_response(response)
            logger.info("%s %s answered %s (%s); retrying in %.1fs", method, path, response.status_code,
                        _code(response), pause)
            time.sleep(pause)
            waited += pause
        raise AssertionError("unreachable: the last attempt returns or raises")

    def stream(self, method: str, path: str, **options: Any) -> httpx.Response:
        """An open streamed response (the caller closes it); errors raised as for `request`."""
        try:
            response = self._http.send(self._http.build_request(method, path, **options), stream=True)
        except httpx.TimeoutException as exc:
            raise ConnectionFailedError(f"{self.url} did not answer in time ({exc})", code="timeout") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailedError(f"cannot reach {self.url}: {exc}", code="connection_failed") from exc
        if not response.is_success:
            response.read()
            response.close()
            raise from_response(response)
        return response

    def _send(self, method: str, path: str, options: dict[str, Any]) -> httpx.Response:
        try:
            return self._http.request(method, path, **options)
        except httpx.TimeoutException as exc:
            raise ConnectionFailedError(f"{self.url} did not answer in time ({type(exc).__name__})",
                                        code="timeout") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailedError(f"cannot reach {self.url}: {exc}", code="connection_failed") from exc

    def _pause(self, response: httpx.Response, attempt: int, waited: float) -> float | None:
        """How long to wait before the next attempt, or None when this answer is final."""
        if response.status_code not in RETRIED_STATUSES or attempt >= self.max_retries:
            return None
        # The server says when to come back; without a Retry-After, back off exponentially.
        pause = retry_after(response)
        if pause is None:
            pause = min(0.5 * 2**attempt, 8.0)
        if waited + pause > self.max_retry_wait_s:
            return None
        return pause


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase
