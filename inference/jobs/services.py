"""Writes for async inference jobs and what every job shares (batch jobs: batch.py; the sweeper: sweep.py).

The database row is the record of truth; RQ only carries the row's id. Every transition is a conditional
UPDATE whose row count says who won, so the web process (submit, cancel), any number of RQ executions
(claim, progress, finish) and the sweeper can race without locks:
- a claim moves queued/running -> running and increments `attempts`; the new value is the execution's
  fencing token, and every later write of that execution is conditional on it;
- the result is written by `status=running, attempts=<token>` -> succeeded/failed, so a retried (or
  duplicated) job writes its result exactly once and an execution that was presumed dead cannot
  overwrite its successor.
"""

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.errors import ApplicationError, InvalidInput, ServiceUnavailable
from inference.errors import EndpointNotFound, TooManyRows
from inference.jobs import files
from inference.jobs import queue as jobs
from inference.jobs.errors import (
    IdempotencyKeyReused,
    JobNotCancellable,
    QueueUnavailable,
)
from inference.models import (
    ACTIVE_JOB_STATUSES,
    LIVE,
    BatchJob,
    Deployment,
    InferenceJob,
    JobPriority,
    JobStatus,
)
from inference.predict.contract import PredictRequest, hooks
from inference.predict.engine import predict
from inference.runtime.web.inputs import InputError, normalize_inputs
from registry.models import ModelVersion

logger = logging.getLogger(__name__)
TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED)


@dataclass(frozen=True)
class Submitter:
    """Who submits: `owner` scopes reads and idempotency keys ("key:<prefix>", "user:<id>", "anonymous")."""

    owner: str
    api_key: Any = None
    user: Any = None


# --- shared -----------------------------------------------------------------------------------------------

def serving_deployment(endpoint: str, inputs: Any = None, subject_id: str = "") -> Deployment:
    """The live deployment behind `endpoint` (or, for an experiment's public endpoint, one of its variants)."""
    live = Deployment.objects.filter(LIVE).select_related("model_version__model")
    deployment = live.filter(endpoint=endpoint).first()
    if deployment is None:
        probe = PredictRequest(endpoint=endpoint, inputs=inputs, params={}, subject_id=subject_id or None)
        routing = hooks.active.route(probe)
        deployment = live.filter(endpoint=routing.endpoint).first() if routing else None
    if deployment is None:
        raise EndpointNotFound(f"No live deployment at endpoint '{endpoint}'.")
    return deployment


def save_and_register(job: InferenceJob | BatchJob) -> None:
    # The RQ job is stored inside the transaction that inserts the row (jobs.register): a Redis error
    # rolls the row back, so a 503 leaves nothing behind; the push to the queue waits for the commit.
    try:
        with transaction.atomic():
            job.save(force_insert=True)
            jobs.register(job)
    except redis.RedisError:
        logger.warning("job queue unavailable; %s not submitted", job._meta.model_name, exc_info=True)
        raise QueueUnavailable("The job queue is unavailable; nothing was submitted. Retry shortly.",
                               retry_after_s=5) from None


_Job = TypeVar("_Job", bound=InferenceJob | BatchJob)


def claim(model: type[_Job], pk: uuid.UUID) -> _Job | None:
    """Starts an execution: the claimed row (its `attempts` is this execution's token), or None to skip."""
    now = timezone.now()
    rows = model.objects.filter(pk=pk)
    # Never started within its TTL: whoever asked has stopped waiting.
    if rows.filter(status=JobStatus.QUEUED, started_at__isnull=True,
                   created_at__lt=now - timedelta(seconds=settings.JOB_TTL_SECONDS)).update(
            status=JobStatus.EXPIRED, error_code="expired", error=ttl_message(), finished_at=now, updated_at=now):
        return None
    # `running` is claimable too: RQ retries a job whose worker died mid-run, and that run had claimed it.
    if rows.filter(status__in=ACTIVE_JOB_STATUSES, attempts__lt=settings.JOB_MAX_ATTEMPTS).update(
            status=JobStatus.RUNNING, attempts=F("attempts") + 1, started_at=now, updated_at=now):
        # mypy reads model.objects through _Job's bound (either model's manager), not as _Job's own.
        return cast(_Job, rows.select_related("model_version__model").get())
    rows.filter(status__in=ACTIVE_JOB_STATUSES).update(
        status=JobStatus.FAILED, error_code="too_many_attempts", finished_at=now, updated_at=now,
        error=f"Gave up after {settings.JOB_MAX_ATTEMPTS} attempts: the worker running it kept dying.")
    return None


def ttl_message() -> str:
    return f"Not started within JOB_TTL_SECONDS ({settings.JOB_TTL_SECONDS} s)."


def job_finish(job, status: str, **fields: Any) -> bool:
    now = timezone.now()
    written = type(job).objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts).update(
        status=status, finished_at=now, updated_at=now, **fields)
    if not written:
        logger.info("%s %s changed while it ran (cancelled or taken over); this outcome is dropped",
                    job._meta.model_name, job.pk)
    job.refresh_from_db()
    return bool(written)


def job_fail(*, job: _Job, code: str, message: str) -> _Job:
    written = job_finish(job, JobStatus.FAILED, error_code=code[:64], error=message[:2000])
    if written and isinstance(job, BatchJob):
        truncate_result(job)
    return job


def job_worker_died(*, rq_job_id: str, detail: str) -> InferenceJob | BatchJob | None:
    """A work horse died mid-job (OOM killer, a segfault in a library) and RQ will not run the job again.

    The row fails now rather than at the next sweep. Only on its last attempt: otherwise RQ retries it, or
    the sweeper queues it again, neither of which may happen here while RQ still files this RQ job away.
    """
    for model in (InferenceJob, BatchJob):
        job = model.objects.filter(rq_job_id=rq_job_id, status=JobStatus.RUNNING).first()
        if job is not None and job.attempts >= settings.JOB_MAX_ATTEMPTS:
            return job_fail(job=job, code="lost", message=f"The process running it died ({detail}) on the last "
                                                          f"of {job.attempts} attempts.")
    return None


def predict_patiently(request: PredictRequest) -> dict:
    """engine.predict, waiting out a deployment that is loading or full: an async caller can wait."""
    deadline = time.monotonic() + settings.JOB_UNAVAILABLE_RETRY_S
    delay = 0.25
    while True:
        try:
            return predict(request)
        except ServiceUnavailable:
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def truncate_result(job: BatchJob) -> None:
    files.result_truncate(job)


# --- async inference -----------------------------------------------------------------------------------------

def checked_rows(deployment: Deployment, inputs: Any) -> int:
    # The same checks as the sync path, now, so a bad request is a 400 instead of a failed job later.
    try:
        return len(normalize_inputs(inputs, deployment.model_version.signature, max_rows=deployment.max_rows))
    except InputError as exc:
        if exc.status == 413:
            raise TooManyRows(exc.message, details={"field": exc.field}) from None
        raise InvalidInput(exc.message, details={"field": exc.field, "row": exc.row}) from None


def _fingerprint(**request: Any) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _replay(owner: str, key: str, fingerprint: str) -> InferenceJob | None:
    job = InferenceJob.objects.filter(owner=owner, idempotency_key=key).select_related("model_version__model").first()
    if job is not None and job.request_hash != fingerprint:
        raise IdempotencyKeyReused("This Idempotency-Key was already used for a different request.",
                                   details={"job_id": str(job.pk)})
    return job


def inference_job_submit(*, endpoint: str, inputs: Any, submitter: Submitter, parameters: dict | None = None,
                         priority: str = JobPriority.NORMAL, timeout_s: int | None = None, request_id: str = "",
                         subject_id: str = "", idempotency_key: str = "") -> tuple[InferenceJob, bool]:
    """(job, created). A repeated Idempotency-Key returns the first job with created=False."""
    parameters = parameters or {}
    timeout_s = timeout_s or settings.JOB_DEFAULT_TIMEOUT_S
    fingerprint = _fingerprint(endpoint=endpoint, inputs=inputs, parameters=parameters, priority=priority,
                               timeout_s=timeout_s, request_id=request_id, subject_id=subject_id)
    if idempotency_key and (first := _replay(submitter.owner, idempotency_key, fingerprint)):
        return first, False
    deployment = serving_deployment(endpoint, inputs, subject_id)
    job_id = uuid.uuid4()
    job = InferenceJob(
        id=job_id, endpoint=endpoint, model_version=deployment.model_version, inputs=inputs, parameters=parameters,
        rows=checked_rows(deployment, inputs), priority=priority, timeout_s=timeout_s, request_id=request_id,
        subject_id=subject_id, idempotency_key=idempotency_key, request_hash=fingerprint, owner=submitter.owner,
        api_key=submitter.api_key, submitted_by=submitter.user, rq_job_id=jobs.rq_job_id("predict", job_id),
    )
    try:
        save_and_register(job)
    except IntegrityError:
        # A concurrent repeat with the same key committed first (the unique constraint decided).
        first = _replay(submitter.owner, idempotency_key, fingerprint) if idempotency_key else None
        if first is None:
            raise
        return first, False
    return job, True


def inference_job_claim(*, job_id: uuid.UUID) -> InferenceJob | None:
    return claim(InferenceJob, job_id)


def inference_job_execute(*, job: InferenceJob) -> InferenceJob:
    """Runs a claimed job through the endpoint exactly as a synchronous request would go."""
    request = PredictRequest(endpoint=job.endpoint, inputs=job.inputs, params=job.parameters or {},
                                     request_id=job.request_id or job.pk.hex, subject_id=job.subject_id or None)
    try:
        response = predict_patiently(request)
    except ApplicationError as exc:
        return job_fail(job=job, code=exc.code, message=exc.message)
    version = response.get("version")
    answered = None if version is None else ModelVersion.objects.filter(
        model__name=response.get("model"), version=version).first()
    job_finish(job, JobStatus.SUCCEEDED, result=response, error_code="", error="",
            model_version=answered or job.model_version)
    return job


def inference_job_cancel(*, job: InferenceJob) -> InferenceJob:
    now = timezone.now()
    if not InferenceJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            status=JobStatus.CANCELLED, finished_at=now, updated_at=now):
        job.refresh_from_db()
        raise JobNotCancellable(f"Only queued jobs can be cancelled; this one is {job.status}.",
                                details={"status": job.status})
    jobs.discard(job.rq_job_id, job.priority)
    job.refresh_from_db()
    return job
