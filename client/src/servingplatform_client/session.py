"""What every part of the Client shares: the pooled transport, the progress reporter, and the plumbing that
reads the API's answers (objects, paginated lists, waits)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from servingplatform_client._http import Transport
from servingplatform_client.errors import WaitTimeoutError
from servingplatform_client.progress import Reporter

DEFAULT_URL = "http://127.0.0.1:8000"
API = "/api/v1"

JSON = dict[str, Any]  # an object of the API's JSON
FilePart = tuple[str, bytes, str]  # a multipart file: name, content, content type


def quoted(part: str | int) -> str:
    """One path segment, escaped (names come from users)."""
    return quote(str(part), safe="")


def present(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def json_field(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def base_url(url: str | None) -> str:
    url = (url or os.environ.get("SERVINGPLATFORM_URL") or DEFAULT_URL).rstrip("/")
    # The API's own address is a common thing to paste; the client adds /api/v1 itself.
    return url.removesuffix(API)


class Session:
    """A connection pool to one Serving Platform; the Client's parts (registry, serving, jobs) build on it."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout: float = 60.0,
                 max_retries: int = 5, max_retry_wait_s: float = 60.0, progress: bool | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = base_url(url)
        key = api_key if api_key is not None else os.environ.get("SERVINGPLATFORM_API_KEY")
        self._http = Transport(self.url, key, timeout=timeout, max_retries=max_retries,
                               max_retry_wait_s=max_retry_wait_s, transport=transport)
        self.progress = Reporter(progress)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **options: Any) -> Any:
        response = self._http.request(method, path, **options)
        return response.json() if response.content else None

    def _obj(self, method: str, path: str, **options: Any) -> JSON:
        answer: JSON = self._call(method, path, **options)
        return answer

    def _results(self, path: str, params: dict[str, Any]) -> list[JSON]:
        """The `results` of a list that answers at most `limit` items (the job lists)."""
        items: list[JSON] = self._obj("GET", path, params=params)["results"]
        return items

    def _pages(self, path: str, params: dict[str, Any]) -> list[JSON]:
        """Every item of a paginated list (the API's `?page=` pages, 100 at a time)."""
        items: list[JSON] = []
        page = 1
        while True:
            body = self._call("GET", path, params={**present(params), "page": page, "page_size": 100})
            items.extend(body["results"])
            if not body.get("next"):
                return items
            page += 1

    def _poll(self, read: Callable[[], JSON], done: Callable[[JSON], bool], *, timeout: float, what: str,
              describe: Callable[[JSON], str], interval: float = 0.25) -> JSON:
        deadline = time.monotonic() + timeout
        with self.progress.task(what) as task:
            while True:
                current = read()
                task.update(description=f"{what}: {describe(current)}")
                if done(current):
                    return current
                if time.monotonic() >= deadline:
                    raise WaitTimeoutError(f"{what} did not finish within {timeout:.0f}s (last: {describe(current)})",
                                           code="wait_timeout", details=current)
                time.sleep(min(interval, max(deadline - time.monotonic(), 0.0)))
                interval = min(interval * 1.5, 2.0)
