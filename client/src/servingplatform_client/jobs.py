"""Async prediction jobs and offline batch jobs from Python."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from servingplatform_client.errors import OperationFailedError, WaitTimeoutError
from servingplatform_client.payloads import to_inputs
from servingplatform_client.progress import ReadProgress
from servingplatform_client.session import API, JSON, Session, present, quoted

JOB_DONE = ("succeeded", "failed", "cancelled", "expired")


class JobMethods(Session):
    def predict_async(self, endpoint: str, inputs: Any, *, parameters: JSON | None = None,
                      priority: str | None = None, timeout_ms: int | None = None,
                      idempotency_key: str | None = None) -> JSON:
        """Queues a prediction; returns `{"job_id", "status", "eta_seconds", "status_url"}`."""
        body = present({"inputs": to_inputs(inputs), "parameters": parameters, "priority": priority,
                        "timeout_ms": timeout_ms})
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._obj("POST", f"{API}/predict/{quoted(endpoint)}/async", json=body, headers=headers)

    def get_job(self, job_id: str) -> JSON:
        return self._obj("GET", f"{API}/jobs/{quoted(job_id)}")

    def list_jobs(self, *, status: str | None = None, endpoint: str | None = None, priority: str | None = None,
                  limit: int | None = None) -> list[JSON]:
        params = present({"status": status, "endpoint": endpoint, "priority": priority, "limit": limit})
        return self._results(f"{API}/jobs", params)

    def cancel_job(self, job_id: str) -> JSON:
        return self._obj("DELETE", f"{API}/jobs/{quoted(job_id)}")

    def wait_job(self, job_id: str | JSON, *, timeout: float = 300.0) -> JSON:
        """Waits for an async job; returns it (its `result` is the sync route's answer) once it succeeded,
        raises OperationFailedError when it failed, was cancelled or expired."""
        job_id = job_id["job_id"] if isinstance(job_id, dict) else job_id
        job = self._poll(lambda: self.get_job(job_id), lambda j: j["status"] in JOB_DONE, timeout=timeout,
                         what=f"job {job_id}", describe=lambda j: j["status"])
        return succeeded(job, f"job {job_id}")

    def batch_job(self, path: str | os.PathLike[str], endpoint: str, *, output: str | os.PathLike[str] | None = None,
                  wait: bool = True, timeout: float = 3600.0, priority: str | None = None,
                  format: str | None = None) -> JSON:
        """Scores a CSV (header of feature names) or JSON Lines file offline. With `wait`, follows its rows
        and, given `output`, downloads the predictions there; raises OperationFailedError if the job failed.
        Returns the batch job as the API does."""
        source = Path(path)
        fields = present({"endpoint": endpoint, "priority": priority, "format": format})
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
        return self._obj("GET", f"{API}/batch-jobs/{quoted(job_id)}/")

    def list_batch_jobs(self, *, status: str | None = None, endpoint: str | None = None,
                        limit: int | None = None) -> list[JSON]:
        params = present({"status": status, "endpoint": endpoint, "limit": limit})
        return self._results(f"{API}/batch-jobs/", params)

    def cancel_batch_job(self, job_id: str) -> JSON:
        return self._obj("DELETE", f"{API}/batch-jobs/{quoted(job_id)}/")

    def wait_batch_job(self, job_id: str, *, timeout: float = 3600.0) -> JSON:
        deadline = time.monotonic() + timeout
        with self.progress.task(f"batch {job_id}", kind="rows") as task:
            interval = 0.25
            while True:
                job = self.get_batch_job(job_id)
                task.update(completed=job["rows_done"], total=job["total_rows"] or None,
                            description=f"batch {job['endpoint']}: {job['status']}")
                if job["status"] in JOB_DONE:
                    return succeeded(job, f"batch job {job_id}")
                if time.monotonic() >= deadline:
                    raise WaitTimeoutError(f"batch job {job_id} did not finish within {timeout:.0f}s "
                                           f"({job['rows_done']}/{job['total_rows']} rows)", code="wait_timeout",
                                           details=job)
                time.sleep(interval)
                interval = min(interval * 1.5, 2.0)

    def download_batch_result(self, job_id: str, output: str | os.PathLike[str]) -> Path:
        """Streams a batch job's predictions (CSV or JSON Lines, as its input) to `output`."""
        target = Path(output)
        response = self._http.stream("GET", f"{API}/batch-jobs/{quoted(job_id)}/result")
        try:
            with target.open("wb") as sink, self.progress.task(f"downloading {target.name}", kind="bytes") as task:
                for chunk in response.iter_bytes():
                    sink.write(chunk)
                    task.advance(len(chunk))
        finally:
            response.close()
        return target


def succeeded(job: JSON, what: str) -> JSON:
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        raise OperationFailedError(f"{what} {job['status']}: {error.get('message') or job['status']}",
                                   code=f"job_{job['status']}", details=job)
    return job
