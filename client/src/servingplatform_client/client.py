"""The Serving Platform from Python: register models, deploy them, predict, run jobs, read experiments.

Every method returns the API's JSON answer as a JSON (or a list of them) and raises a
ServingPlatformError subclass for every failure. The methods live by concern in registry.py, serving.py
and jobs.py; Client puts them together.
"""

from __future__ import annotations

from typing import Any

from servingplatform_client.jobs import JobMethods
from servingplatform_client.registry import RegistryMethods
from servingplatform_client.serving import ServingMethods
from servingplatform_client.session import API, DEFAULT_URL, JSON, FilePart, present, quoted

__all__ = ["API", "DEFAULT_URL", "JSON", "Client", "FilePart"]


class Client(RegistryMethods, ServingMethods, JobMethods):
    """A connection pool to one Serving Platform.

    url and api_key default to SERVINGPLATFORM_URL (else http://127.0.0.1:8000) and SERVINGPLATFORM_API_KEY.
    `timeout` bounds each request; 429 and 503 answers are retried up to `max_retries` times, waiting what
    their Retry-After says, as long as the waits add up to at most `max_retry_wait_s`. `progress` shows bars
    on stderr for uploads, downloads and waits (default: in a terminal or a notebook).
    """

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    # --- experiments ---------------------------------------------------------------------------------

    def list_experiments(self, *, status: str | None = None, endpoint: str | None = None) -> list[JSON]:
        return self._pages(f"{API}/experiments/", {"status": status, "endpoint": endpoint})

    def get_experiment(self, experiment_id: int) -> JSON:
        return self._obj("GET", f"{API}/experiments/{quoted(experiment_id)}/")

    def experiment_results(self, experiment_id: int) -> JSON:
        return self._obj("GET", f"{API}/experiments/{quoted(experiment_id)}/results/")

    def feedback(self, request_id: str, *, label: Any = None, value: Any = None) -> JSON:
        """Records an outcome for a prediction an experiment answered (label: accuracy; value: the others)."""
        return self._obj("POST", f"{API}/feedback", json=present({"request_id": request_id, "label": label,
                                                                    "value": value}))

    # --- the platform ----------------------------------------------------------------------------------

    def health(self) -> JSON:
        """`/health/ready`: the database, Redis and the model server (raises ServiceUnavailableError when not)."""
        return self._obj("GET", "/health/ready")
