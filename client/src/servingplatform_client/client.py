"""The Serving Platform from Python: register models, deploy them, predict, run jobs, read experiments.

Every method returns the API's JSON answer as a JSON (or a list of them) and raises a
ServingPlatformError subclass for every failure.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from servingplatform_client import artifacts
from servingplatform_client._http import Transport
from servingplatform_client.errors import (
    ConflictError,
    NotFoundError,
    OperationFailedError,
    WaitTimeoutError,
)
from servingplatform_client.payloads import dumps, example_records, to_inputs
from servingplatform_client.progress import ReadProgress, Reporter

DEFAULT_URL = "http://127.0.0.1:8000"
API = "/api/v1"
JOB_DONE = ("succeeded", "failed", "cancelled", "expired")
BATCH_ITEMS_PER_CALL = 256  # the batch route's limit


JSON = dict[str, Any]  # an object of the API's JSON
FilePart = tuple[str, bytes, str]  # a multipart file: name, content, content type


def _q(part: str | int) -> str:
    return quote(str(part), safe="")


def _base_url(url: str | None) -> str:
    url = (url or os.environ.get("SERVINGPLATFORM_URL") or DEFAULT_URL).rstrip("/")
    # The API's own address is a common thing to paste; the client adds /api/v1 itself.
    return url.removesuffix(API)


class Client:
    """A connection pool to one Serving Platform.

    url and api_key default to SERVINGPLATFORM_URL (else http://127.0.0.1:8000) and SERVINGPLATFORM_API_KEY.
    `timeout` bounds each request; 429 and 503 answers are retried up to `max_retries` times, waiting what
    their Retry-After says, as long as the waits add up to at most `max_retry_wait_s`. `progress` shows bars
    on stderr for uploads, downloads and waits (default: in a terminal or a notebook).
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout: float = 60.0,
                 max_retries: int = 5, max_retry_wait_s: float = 60.0, progress: bool | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = _base_url(url)
        key = api_key if api_key is not None else os.environ.get("SERVINGPLATFORM_API_KEY")
        self._http = Transport(self.url, key, timeout=timeout, max_retries=max_retries,
                               max_retry_wait_s=max_retry_wait_s, transport=transport)
        self.progress = Reporter(progress)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    # --- plumbing ---------------------------------------------------------------------------------

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
            body = self._call("GET", path, params={**_present(params), "page": page, "page_size": 100})
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

    # --- registry ----------------------------------------------------------------------------------

    def list_models(self, *, task: str | None = None, tag: str | None = None, name: str | None = None) -> list[JSON]:
        return self._pages(f"{API}/models/", {"task": task, "tag": tag, "name": name})

    def get_model(self, name: str) -> JSON:
        return self._obj("GET", f"{API}/models/{_q(name)}/")

    def create_model(self, name: str, *, task: str = "other", description: str = "",
                     tags: dict[str, str] | None = None) -> JSON:
        body = {"name": name, "task": task, "description": description, "tags": tags or {}}
        return self._obj("POST", f"{API}/models/", json=body)

    def list_versions(self, name: str, *, status: str | None = None, flavor: str | None = None,
                      tag: str | None = None) -> list[JSON]:
        return self._pages(f"{API}/models/{_q(name)}/versions/", {"status": status, "flavor": flavor, "tag": tag})

    def get_version(self, name: str, version: int | str) -> JSON:
        """A version by number or by alias (`"production"`)."""
        return self._obj("GET", f"{API}/models/{_q(name)}/versions/{_q(version)}/")

    def set_alias(self, name: str, alias: str, version: int) -> JSON:
        return self._obj("PUT", f"{API}/models/{_q(name)}/aliases/{_q(alias)}/", json={"version": version})

    def wait_version(self, name: str, version: int | str, *, timeout: float = 300.0) -> JSON:
        """Waits until a version's validation ends; raises OperationFailedError with the reason if it failed."""
        found = self._poll(lambda: self.get_version(name, version), lambda v: v["status"] in ("ready", "failed"),
                           timeout=timeout, what=f"validating {name} v{version}", describe=lambda v: v["status"])
        if found["status"] == "failed":
            raise OperationFailedError(f"{name} v{found['version']} failed validation: {found['status_reason']}",
                                       code="validation_failed", details=found)
        return found

    def register_model(self, model_or_path: Any, name: str, *, flavor: str | None = None,
                       input_example: Any = None, signature: JSON | None = None, metrics: JSON | None = None,
                       tags: dict[str, str] | None = None, description: str | None = None, alias: str | None = None,
                       wait: bool = True, timeout: float = 300.0, task: str | None = None) -> JSON:
        """Uploads a fitted model (or a saved artifact's path) as a new version of model `name`, creating the
        model when missing; returns the version as the API does. With `wait`, waits for its validation and
        raises OperationFailedError with the reason when it fails. `alias` is moved to the new version (after
        validation when waiting). `input_example` (a DataFrame, records, rows or an array) is sent with the
        version as a JSON list of records and, for torch modules, is the example input of torch.export.
        `task` is for a model created on the way (default: classification or regression as the estimator
        says, else other)."""
        with artifacts.saved(model_or_path, flavor=flavor, input_example=input_example) as artifact:
            self._ensure_model(name, task or artifact.task)
            fields = _present({"flavor": artifact.flavor, "description": description,
                               "signature": _json_field(signature), "metrics": _json_field(metrics),
                               "tags": _json_field(tags)})
            extra: dict[str, FilePart] = {}
            if input_example is not None:
                names = (signature or {}).get("feature_names") or artifact.feature_names
                extra["input_example"] = ("input_example.json", dumps(example_records(input_example, names)),
                                          "application/json")
            version = self._upload_version(name, artifact.path, fields, extra)
        if wait:
            version = self.wait_version(name, version["version"], timeout=timeout)
        if alias:
            self.set_alias(name, alias, version["version"])
            version = self.get_version(name, version["version"])
        return version

    def _ensure_model(self, name: str, task: str) -> None:
        try:
            self.get_model(name)
        except NotFoundError:
            try:
                self.create_model(name, task=task)
            except ConflictError:
                pass  # created meanwhile by someone else: the upload goes to it all the same

    def _upload_version(self, name: str, path: Path, fields: dict[str, str], extra: dict[str, FilePart]) -> JSON:
        size = path.stat().st_size
        with path.open("rb") as handle, self.progress.task(f"uploading {path.name}", total=size,
                                                            kind="bytes") as task:
            files = {"artifact": (path.name, ReadProgress(handle, task), "application/octet-stream"), **extra}
            # Large artifacts take a while to send: the write timeout grows with the size.
            return self._obj("POST", f"{API}/models/{_q(name)}/versions/", data=fields, files=files,
                              timeout=max(self._http.timeout, size / 1_000_000))

    # --- deployments -------------------------------------------------------------------------------

    def list_deployments(self, *, include_stopped: bool = False) -> list[JSON]:
        return self._pages(f"{API}/deployments/", {"include_stopped": "true" if include_stopped else None})

    def get_deployment(self, endpoint: str) -> JSON:
        return self._obj("GET", f"{API}/deployments/{_q(endpoint)}/")

    def deploy(self, endpoint: str, *, model: str, version: int | None = None, alias: str | None = None,
               wait: bool = True, timeout: float = 300.0, **knobs: Any) -> JSON:
        """Deploys a version (by number or alias) at `endpoint`; a live deployment of the same model there is
        moved to it instead (its old generation serves until the new one is ready). Knobs are the API's
        deployment fields (replicas, max_batch_size, device, follow_alias...). With `wait`, returns once the
        endpoint serves the new generation, raising OperationFailedError if it failed to load."""
        if (version is None) == (alias is None):
            raise ValueError("give exactly one of version= or alias=")
        target = {"version": version} if version is not None else {"alias": alias}
        try:
            deployment = self._call("POST", f"{API}/deployments/",
                                    json={"endpoint": endpoint, "model": model, **target, **knobs})
        except ConflictError as exc:
            if exc.code != "endpoint_taken":
                raise
            deployment = self._redeploy(endpoint, model, {**target, **knobs}, exc)
        return self.wait_deployment(endpoint, timeout=timeout) if wait else deployment

    def _redeploy(self, endpoint: str, model: str, changes: JSON, taken: ConflictError) -> JSON:
        current = self.get_deployment(endpoint)
        if current["model"] != model:
            raise ConflictError(f"Endpoint '{endpoint}' serves model '{current['model']}', not '{model}': undeploy "
                                "it first or pick another endpoint.", status=taken.status, code=taken.code,
                                details={"deployment": current})
        return self._obj("PATCH", f"{API}/deployments/{_q(endpoint)}/", json=changes)

    def undeploy(self, endpoint: str) -> JSON:
        return self._obj("DELETE", f"{API}/deployments/{_q(endpoint)}/")

    def wait_deployment(self, endpoint: str, *, timeout: float = 300.0) -> JSON:
        """Waits until `endpoint` serves its current generation; raises OperationFailedError if it failed."""
        found = self._poll(lambda: self.get_deployment(endpoint), _deployment_settled, timeout=timeout,
                           what=f"deploying {endpoint}",
                           describe=lambda d: " ".join(filter(None, [d["status"], d.get("status_reason")])))
        if found["status"] != "ready" or _rollout_failed(found):
            raise OperationFailedError(f"{endpoint} failed: {found.get('status_reason') or found['status']}",
                                       code="deployment_failed", details=found)
        return found

    # --- predictions ---------------------------------------------------------------------------------

    def predict(self, endpoint: str, inputs: Any, *, parameters: JSON | None = None) -> JSON:
        """A prediction; `inputs` may be a DataFrame (sent as records), a NumPy array, records or rows."""
        body = _present({"inputs": to_inputs(inputs), "parameters": parameters})
        return self._obj("POST", f"{API}/predict/{_q(endpoint)}", json=body)

    def predict_many(self, requests: Iterable[JSON | tuple[str, Any]], *,
                     parameters: JSON | None = None) -> list[JSON]:
        """Many predictions in few round trips (the batch route, 256 a call): `requests` are
        `{"endpoint" | "model", "inputs", ...}` dicts or `(endpoint, inputs)` pairs. Returns one item per
        request, in order: `{"index", "ok", "result"}` or `{"index", "ok": False, "error"}`."""
        items = [_batch_item(request, parameters) for request in requests]
        results: list[JSON] = []
        for start in range(0, len(items), BATCH_ITEMS_PER_CALL):
            chunk = items[start:start + BATCH_ITEMS_PER_CALL]
            answer = self._call("POST", f"{API}/predict/batch", json={"requests": chunk})
            results.extend({**item, "index": start + item["index"]} for item in answer["results"])
        return results

    def explain(self, endpoint: str, inputs: Any, *, parameters: JSON | None = None) -> JSON:
        body = _present({"inputs": to_inputs(inputs), "parameters": parameters})
        return self._obj("POST", f"{API}/predict/{_q(endpoint)}/explain", json=body)

    # --- async jobs and batch jobs -------------------------------------------------------------------

    def predict_async(self, endpoint: str, inputs: Any, *, parameters: JSON | None = None,
                      priority: str | None = None, timeout_ms: int | None = None,
                      idempotency_key: str | None = None) -> JSON:
        """Queues a prediction; returns `{"job_id", "status", "eta_seconds", "status_url"}`."""
        body = _present({"inputs": to_inputs(inputs), "parameters": parameters, "priority": priority,
                         "timeout_ms": timeout_ms})
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._obj("POST", f"{API}/predict/{_q(endpoint)}/async", json=body, headers=headers)

    def get_job(self, job_id: str) -> JSON:
        return self._obj("GET", f"{API}/jobs/{_q(job_id)}")

    def list_jobs(self, *, status: str | None = None, endpoint: str | None = None, priority: str | None = None,
                  limit: int | None = None) -> list[JSON]:
        params = _present({"status": status, "endpoint": endpoint, "priority": priority, "limit": limit})
        return self._results(f"{API}/jobs", params)

    def cancel_job(self, job_id: str) -> JSON:
        return self._obj("DELETE", f"{API}/jobs/{_q(job_id)}")

    def wait_job(self, job_id: str | JSON, *, timeout: float = 300.0) -> JSON:
        """Waits for an async job; returns it (its `result` is the sync route's answer) once it succeeded,
        raises OperationFailedError when it failed, was cancelled or expired."""
        job_id = job_id["job_id"] if isinstance(job_id, dict) else job_id
        job = self._poll(lambda: self.get_job(job_id), lambda j: j["status"] in JOB_DONE, timeout=timeout,
                         what=f"job {job_id}", describe=lambda j: j["status"])
        return _succeeded(job, f"job {job_id}")

    def batch_job(self, path: str | os.PathLike[str], endpoint: str, *, output: str | os.PathLike[str] | None = None,
                  wait: bool = True, timeout: float = 3600.0, priority: str | None = None,
                  format: str | None = None) -> JSON:
        """Scores a CSV (header of feature names) or JSON Lines file offline. With `wait`, follows its rows
        and, given `output`, downloads the predictions there; raises OperationFailedError if the job failed.
        Returns the batch job as the API does."""
        source = Path(path)
        fields = _present({"endpoint": endpoint, "priority": priority, "format": format})
        with source.open("rb") as handle, self.progress.task(f"uploading {source.name}",
                                                              total=source.stat().st_size, kind="bytes") as task:
            files = {"file": (source.name, ReadProgress(handle, task), "application/octet-stream")}
            job = self._obj("POST", f"{API}/batch-jobs/", data=fields, files=files)
        if not wait:
            return job
        job = self.wait_batch_job(job["id"], timeout=timeout)
        if output is not None:
            self.download_batch_result(job["id"], output)
        return job

    def get_batch_job(self, job_id: str) -> JSON:
        return self._obj("GET", f"{API}/batch-jobs/{_q(job_id)}/")

    def list_batch_jobs(self, *, status: str | None = None, endpoint: str | None = None,
                        limit: int | None = None) -> list[JSON]:
        params = _present({"status": status, "endpoint": endpoint, "limit": limit})
        return self._results(f"{API}/batch-jobs/", params)

    def cancel_batch_job(self, job_id: str) -> JSON:
        return self._obj("DELETE", f"{API}/batch-jobs/{_q(job_id)}/")

    def wait_batch_job(self, job_id: str, *, timeout: float = 3600.0) -> JSON:
        deadline = time.monotonic() + timeout
        with self.progress.task(f"batch {job_id}", kind="rows") as task:
            interval = 0.25
            while True:
                job = self.get_batch_job(job_id)
                task.update(completed=job["rows_done"], total=job["total_rows"] or None,
                            description=f"batch {job['endpoint']}: {job['status']}")
                if job["status"] in JOB_DONE:
                    return _succeeded(job, f"batch job {job_id}")
                if time.monotonic() >= deadline:
                    raise WaitTimeoutError(f"batch job {job_id} did not finish within {timeout:.0f}s "
                                           f"({job['rows_done']}/{job['total_rows']} rows)", code="wait_timeout",
                                           details=job)
                time.sleep(interval)
                interval = min(interval * 1.5, 2.0)

    def download_batch_result(self, job_id: str, output: str | os.PathLike[str]) -> Path:
        """Streams a batch job's predictions (CSV or JSON Lines, as its input) to `output`."""
        target = Path(output)
        response = self._http.stream("GET", f"{API}/batch-jobs/{_q(job_id)}/result")
        try:
            with target.open("wb") as sink, self.progress.task(f"downloading {target.name}", kind="bytes") as task:
                for chunk in response.iter_bytes():
                    sink.write(chunk)
                    task.advance(len(chunk))
        finally:
            response.close()
        return target

    # --- experiments ---------------------------------------------------------------------------------

    def list_experiments(self, *, status: str | None = None, endpoint: str | None = None) -> list[JSON]:
        return self._pages(f"{API}/experiments/", {"status": status, "endpoint": endpoint})

    def get_experiment(self, experiment_id: int) -> JSON:
        return self._obj("GET", f"{API}/experiments/{_q(experiment_id)}/")

    def experiment_results(self, experiment_id: int) -> JSON:
        return self._obj("GET", f"{API}/experiments/{_q(experiment_id)}/results/")

    def feedback(self, request_id: str, *, label: Any = None, value: Any = None) -> JSON:
        """Records an outcome for a prediction an experiment answered (label: accuracy; value: the others)."""
        return self._obj("POST", f"{API}/feedback", json=_present({"request_id": request_id, "label": label,
                                                                     "value": value}))

    # --- the platform ----------------------------------------------------------------------------------

    def health(self) -> JSON:
        """`/health/ready`: the database, Redis and the model server (raises ServiceUnavailableError when not)."""
        return self._obj("GET", "/health/ready")


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _json_field(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _batch_item(request: JSON | tuple[str, Any], parameters: JSON | None) -> JSON:
    item = {"endpoint": request[0], "inputs": request[1]} if isinstance(request, tuple) else dict(request)
    item["inputs"] = to_inputs(item["inputs"])
    if parameters is not None and "parameters" not in item:
        item["parameters"] = parameters
    return item


def _deployment_settled(deployment: JSON) -> bool:
    if deployment["status"] in ("failed", "stopped") or _rollout_failed(deployment):
        return True
    # The model server clears the reason once the current generation serves.
    return deployment["status"] == "ready" and not str(deployment.get("status_reason") or "").startswith("rolling out")


def _rollout_failed(deployment: JSON) -> bool:
    # The old generation keeps serving when a new one fails to load; the status stays "ready".
    return str(deployment.get("status_reason") or "").startswith(f"rollout of generation {deployment['generation']} "
                                                                 "failed")


def _succeeded(job: JSON, what: str) -> JSON:
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        raise OperationFailedError(f"{what} {job['status']}: {error.get('message') or job['status']}",
                                   code=f"job_{job['status']}", details=job)
    return job

