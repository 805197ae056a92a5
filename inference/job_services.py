"""Writes for async inference jobs and batch jobs.

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
import itertools
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.errors import ApplicationError, Conflict, InvalidInput, NotFound, ServiceUnavailable
from inference import batchfiles, jobs, serving
from inference.errors import DeadlineExceeded, EndpointNotFound, ModelFailed, TooManyRows
from inference.models import (
    ACTIVE_JOB_STATUSES,
    LIVE,
    BatchJob,
    Deployment,
    InferenceJob,
    JobPriority,
    JobStatus,
)
from inference.runtime.inputs import InputError, normalize_inputs
from registry.models import ModelVersion

logger = logging.getLogger(__name__)
MAX_ROW_ERRORS = 100
TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED)


class JobNotFound(NotFound):
    code = "job_not_found"


class JobNotCancellable(Conflict):
    code = "job_not_cancellable"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class ResultNotReady(Conflict):
    code = "result_not_ready"


class QueueUnavailable(ServiceUnavailable):
    code = "queue_unavailable"


class InvalidBatchFile(InvalidInput):
    code = "invalid_batch_file"


class TooManyBatchJobs(ApplicationError):
    status_code = 429
    code = "too_many_batch_jobs"
    headers = {"Retry-After": "30"}


@dataclass(frozen=True)
class Submitter:
    """Who submits: `owner` scopes reads and idempotency keys ("key:<prefix>", "user:<id>", "anonymous")."""

    owner: str
    api_key: Any = None
    user: Any = None


# --- shared -----------------------------------------------------------------------------------------------

def _serving_deployment(endpoint: str, inputs: Any = None, subject_id: str = "") -> Deployment:
    """The live deployment behind `endpoint` (or, for an experiment's public endpoint, one of its variants)."""
    live = Deployment.objects.filter(LIVE).select_related("model_version__model")
    deployment = live.filter(endpoint=endpoint).first()
    if deployment is None:
        probe = serving.PredictRequest(endpoint=endpoint, inputs=inputs, params={}, subject_id=subject_id or None)
        routing = serving.experiment_hooks.route(probe)
        deployment = live.filter(endpoint=routing.endpoint).first() if routing else None
    if deployment is None:
        raise EndpointNotFound(f"No live deployment at endpoint '{endpoint}'.")
    return deployment


def _save_and_register(job: InferenceJob | BatchJob) -> None:
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


def claim(model: type[InferenceJob] | type[BatchJob], pk: uuid.UUID) -> Any:
    """Starts an execution: the claimed row (its `attempts` is this execution's token), or None to skip."""
    now = timezone.now()
    rows = model.objects.filter(pk=pk)
    # Never started within its TTL: whoever asked has stopped waiting.
    if rows.filter(status=JobStatus.QUEUED, started_at__isnull=True,
                   created_at__lt=now - timedelta(seconds=settings.JOB_TTL_SECONDS)).update(
            status=JobStatus.EXPIRED, error_code="expired", error=_ttl_message(), finished_at=now, updated_at=now):
        return None
    # `running` is claimable too: RQ retries a job whose worker died mid-run, and that run had claimed it.
    if rows.filter(status__in=ACTIVE_JOB_STATUSES, attempts__lt=settings.JOB_MAX_ATTEMPTS).update(
            status=JobStatus.RUNNING, attempts=F("attempts") + 1, started_at=now, updated_at=now):
        return rows.select_related("model_version__model").get()
    rows.filter(status__in=ACTIVE_JOB_STATUSES).update(
        status=JobStatus.FAILED, error_code="too_many_attempts", finished_at=now, updated_at=now,
        error=f"Gave up after {settings.JOB_MAX_ATTEMPTS} attempts: the worker running it kept dying.")
    return None


def _ttl_message() -> str:
    return f"Not started within JOB_TTL_SECONDS ({settings.JOB_TTL_SECONDS} s)."


def _finish(job, status: str, **fields: Any) -> bool:
    now = timezone.now()
    written = type(job).objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts).update(
        status=status, finished_at=now, updated_at=now, **fields)
    if not written:
        logger.info("%s %s changed while it ran (cancelled or taken over); this outcome is dropped",
                    job._meta.model_name, job.pk)
    job.refresh_from_db()
    return bool(written)


def job_fail(*, job: InferenceJob | BatchJob, code: str, message: str) -> InferenceJob | BatchJob:
    written = _finish(job, JobStatus.FAILED, error_code=code[:64], error=message[:2000])
    if written and isinstance(job, BatchJob):
        _truncate_result(job)
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


def _predict_patiently(request: serving.PredictRequest) -> dict:
    """serving.predict, waiting out a deployment that is loading or full: an async caller can wait."""
    deadline = time.monotonic() + settings.JOB_UNAVAILABLE_RETRY_S
    delay = 0.25
    while True:
        try:
            return serving.predict(request)
        except ServiceUnavailable:
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


# --- async inference -----------------------------------------------------------------------------------------

def _checked_rows(deployment: Deployment, inputs: Any) -> int:
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
    deployment = _serving_deployment(endpoint, inputs, subject_id)
    job_id = uuid.uuid4()
    job = InferenceJob(
        id=job_id, endpoint=endpoint, model_version=deployment.model_version, inputs=inputs, parameters=parameters,
        rows=_checked_rows(deployment, inputs), priority=priority, timeout_s=timeout_s, request_id=request_id,
        subject_id=subject_id, idempotency_key=idempotency_key, request_hash=fingerprint, owner=submitter.owner,
        api_key=submitter.api_key, submitted_by=submitter.user, rq_job_id=jobs.rq_job_id("predict", job_id),
    )
    try:
        _save_and_register(job)
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
    request = serving.PredictRequest(endpoint=job.endpoint, inputs=job.inputs, params=job.parameters or {},
                                     request_id=job.request_id or job.pk.hex, subject_id=job.subject_id or None)
    try:
        response = _predict_patiently(request)
    except ApplicationError as exc:
        return job_fail(job=job, code=exc.code, message=exc.message)
    answered = ModelVersion.objects.filter(model__name=response.get("model"), version=response.get("version")).first()
    _finish(job, JobStatus.SUCCEEDED, result=response, error_code="", error="",
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


# --- batch jobs ----------------------------------------------------------------------------------------------

def batch_path(relative: str) -> Path:
    return Path(settings.BATCH_DIR) / relative


def _store_upload(upload: Any, target: Path) -> None:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    upload.seek(0)
    with open(target, "xb") as out:
        os.chmod(target, 0o600)
        shutil.copyfileobj(upload, out, 1024 * 1024)


def _check_file(upload: Any, fmt: str | None, signature: dict) -> batchfiles.Summary:
    if upload.size > settings.BATCH_MAX_FILE_BYTES:
        raise InvalidBatchFile(f"The file is larger than the limit of {settings.BATCH_MAX_FILE_BYTES} bytes.",
                               details={"reason": "file_too_large", "limit_bytes": settings.BATCH_MAX_FILE_BYTES})
    try:
        if not upload.size:
            raise batchfiles.BatchFileError("The file is empty.", code="empty_file")
        upload.seek(0)
        head = upload.read(64)
        upload.seek(0)
        kind = batchfiles.detect_format(upload.name or "", head, fmt)
        return batchfiles.check_file(upload, fmt=kind, spec=batchfiles.InputSpec.from_signature(signature),
                                     max_rows=settings.BATCH_MAX_ROWS)
    except batchfiles.BatchFileError as exc:
        raise InvalidBatchFile(exc.message, details={"reason": exc.code, "problems": exc.problems}) from None


def batch_job_create(*, endpoint: str, upload: Any, submitter: Submitter, fmt: str | None = None,
                     priority: str = JobPriority.LOW, enqueue: bool = True) -> BatchJob:
    """Checks the whole file, stores it and queues the job; with enqueue=False the caller runs it itself."""
    deployment = _serving_deployment(endpoint)
    signature = deployment.model_version.signature or {}
    summary = _check_file(upload, fmt, signature)
    if enqueue and BatchJob.objects.filter(owner=submitter.owner, status__in=ACTIVE_JOB_STATUSES).count() \
            >= settings.BATCH_MAX_ACTIVE_PER_OWNER:
        raise TooManyBatchJobs(f"At most {settings.BATCH_MAX_ACTIVE_PER_OWNER} batch jobs may be queued or running "
                               "at once; wait for one to finish or cancel one.")
    job_id = uuid.uuid4()
    job = BatchJob(
        id=job_id, endpoint=endpoint, model_version=deployment.model_version, priority=priority,
        input_format=summary.format, filename=(upload.name or "")[-255:], columns=summary.columns,
        signature=signature, total_rows=summary.total_rows, timeout_s=settings.BATCH_JOB_TIMEOUT_S,
        chunk_size=max(1, min(settings.BATCH_CHUNK_SIZE, deployment.max_rows)),
        input_path=f"{job_id}/input.{summary.format}", result_path=f"{job_id}/result.{summary.format}",
        owner=submitter.owner, api_key=submitter.api_key, submitted_by=submitter.user,
        rq_job_id=jobs.rq_job_id("batch", job_id) if enqueue else "",
    )
    _store_upload(upload, batch_path(job.input_path))
    try:
        if enqueue:
            _save_and_register(job)
        else:
            job.save(force_insert=True)
    except BaseException:
        shutil.rmtree(batch_path(str(job_id)), ignore_errors=True)
        raise
    return job


def batch_job_claim(*, batch_id: uuid.UUID) -> BatchJob | None:
    return claim(BatchJob, batch_id)


def batch_job_run(*, job: BatchJob, on_progress: Callable[[BatchJob], None] | None = None) -> BatchJob:
    """Runs a claimed batch job from where the last execution left off, chunk by chunk."""
    spec = batchfiles.InputSpec.from_signature(job.signature)
    result = batch_path(job.result_path)
    with open(batch_path(job.input_path), "rb") as source, open(result, "r+b" if result.exists() else "w+b") as sink:
        # Rows past the last recorded offset belong to an execution that died before recording them.
        sink.truncate(job.result_bytes)
        sink.seek(job.result_bytes)
        writer = batchfiles.ResultWriter(sink, fmt=job.input_format, columns=job.columns,
                                         classes=(job.signature or {}).get("classes"))
        if job.result_bytes == 0:
            writer.header()
        rows = itertools.islice(batchfiles.read_rows(source, fmt=job.input_format, spec=spec), job.rows_done, None)
        try:
            for chunk in _chunks(rows, job.chunk_size):
                outcomes = _predict_chunk(job, chunk)
                writer.write(chunk, outcomes)
                sink.flush()
                os.fsync(sink.fileno())
                if not _record_progress(job, chunk, outcomes, sink.tell()):
                    return job  # cancelled (its rows so far are kept) or taken over
                if on_progress:
                    on_progress(job)
        except ApplicationError as exc:
            return job_fail(job=job, code=exc.code, message=f"{exc.message} The {job.rows_done} rows done are kept.")
    if job.total_rows and job.rows_failed >= job.total_rows:
        first = (job.row_errors or [{}])[0].get("error", "")
        return job_fail(job=job, code="all_rows_failed",
                        message=f"All {job.total_rows} rows failed; the first: {first}")
    _finish(job, JobStatus.SUCCEEDED, error_code="", error="")
    return job


def _chunks(rows: Iterator[batchfiles.Row], size: int) -> Iterator[list[batchfiles.Row]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _predict_chunk(job: BatchJob, rows: list[batchfiles.Row]) -> list[batchfiles.Outcome]:
    """One call for the chunk; when the model refuses it, halves until the offending rows stand alone."""
    request = serving.PredictRequest(endpoint=job.endpoint, inputs=[row.model_input for row in rows],
                                     params={"cache": False}, request_id=f"{job.pk.hex}-{rows[0].line}")
    try:
        response = _predict_patiently(request)
    except (InvalidInput, ModelFailed, DeadlineExceeded, TooManyRows) as exc:
        if len(rows) == 1:
            return [batchfiles.Outcome(error=exc.message)]
        middle = len(rows) // 2
        return _predict_chunk(job, rows[:middle]) + _predict_chunk(job, rows[middle:])
    probabilities = response.get("probabilities") or [None] * len(rows)
    return [batchfiles.Outcome(prediction=p, probabilities=q) for p, q in zip(response["predictions"], probabilities)]


def _record_progress(job: BatchJob, chunk: list, outcomes: list, position: int) -> bool:
    failed = [{"line": row.line, "error": outcome.error} for row, outcome in zip(chunk, outcomes) if outcome.error]
    values = {"rows_done": job.rows_done + len(chunk), "rows_failed": job.rows_failed + len(failed),
              "result_bytes": position, "row_errors": (job.row_errors + failed)[:MAX_ROW_ERRORS],
              "updated_at": timezone.now()}
    mine = BatchJob.objects.filter(pk=job.pk, attempts=job.attempts, rows_done=job.rows_done)
    if mine.filter(status=JobStatus.RUNNING).update(**values):
        for name, value in values.items():
            setattr(job, name, value)
        return True
    # Cancelled while this chunk ran: its rows are done, so they are kept with the others.
    mine.filter(status=JobStatus.CANCELLED).update(**values)
    job.refresh_from_db()
    return False


def _truncate_result(job: BatchJob) -> None:
    path = batch_path(job.result_path)
    if path.exists():
        with open(path, "r+b") as handle:
            handle.truncate(job.result_bytes)


def batch_job_cancel(*, job: BatchJob) -> BatchJob:
    """A queued job never runs; a running one stops after its current chunk and keeps the rows done."""
    now = timezone.now()
    if not BatchJob.objects.filter(pk=job.pk, status__in=ACTIVE_JOB_STATUSES).update(
            status=JobStatus.CANCELLED, finished_at=now, updated_at=now):
        job.refresh_from_db()
        raise JobNotCancellable(f"Only queued or running batch jobs can be cancelled; this one is {job.status}.",
                                details={"status": job.status})
    if job.status == JobStatus.QUEUED:
        jobs.discard(job.rq_job_id, job.priority)
    job.refresh_from_db()
    return job


# --- the sweeper ---------------------------------------------------------------------------------------------

def jobs_sweep(*, now: float | None = None) -> dict[str, int]:
    """Expires jobs past JOB_TTL_SECONDS, reconciles active rows RQ no longer runs, deletes old finished jobs.

    `now` (a Unix time) exists so tests can move the clock forward instead of sleeping.
    """
    moment = datetime.fromtimestamp(now, tz=UTC) if now is not None else timezone.now()
    jobs.cleanup_abandoned(now)
    counts = {"expired": 0, "pushed": 0, "requeued": 0, "failed": 0, "deleted": 0}
    for model in (InferenceJob, BatchJob):
        counts["expired"] += model.objects.filter(
            status=JobStatus.QUEUED, started_at__isnull=True,
            created_at__lt=moment - timedelta(seconds=settings.JOB_TTL_SECONDS),
        ).update(status=JobStatus.EXPIRED, error_code="expired", error=_ttl_message(), finished_at=moment,
                 updated_at=moment)
        for outcome in _reconcile(model, moment):
            counts[outcome] = counts.get(outcome, 0) + 1
        counts["deleted"] += _purge(model, moment)
    return counts


def _reconcile(model: Any, moment: datetime) -> Iterator[str]:
    # Young rows are skipped: their push to the queue may still be on its way (jobs.register).
    stale = model.objects.filter(status__in=ACTIVE_JOB_STATUSES,
                                 updated_at__lt=moment - timedelta(seconds=settings.JOB_RECONCILE_GRACE_S))
    for job in stale.order_by("updated_at")[:500]:
        state, detail = jobs.rq_state(job.rq_job_id)
        if state == "progressing":
            continue
        if state == "created":
            jobs.push_created(job.rq_job_id)
            yield "pushed"
            continue
        yield _requeue_or_fail(job, detail, moment)


def _requeue_or_fail(job: Any, detail: str, moment: datetime) -> str:
    same = type(job).objects.filter(pk=job.pk, status=job.status, attempts=job.attempts, updated_at=job.updated_at)
    if job.attempts >= settings.JOB_MAX_ATTEMPTS:
        same.update(status=JobStatus.FAILED, error_code="lost", finished_at=moment, updated_at=moment,
                    error=f"Lost by the job queue after {job.attempts} attempts: {detail}.")
        return "failed"
    job.rq_job_id = job.rq_job_id or jobs.rq_job_id("batch" if isinstance(job, BatchJob) else "predict", job.pk)
    with transaction.atomic():
        if not same.update(status=JobStatus.QUEUED, rq_job_id=job.rq_job_id, updated_at=moment):
            return "skipped"
        jobs.register(job)
    logger.warning("re-queued %s %s: %s", job._meta.model_name, job.pk, detail)
    return "requeued"


def _purge(model: Any, moment: datetime) -> int:
    if not settings.JOB_RETENTION_DAYS:
        return 0
    cutoff = moment - timedelta(days=settings.JOB_RETENTION_DAYS)
    ids = list(model.objects.filter(status__in=TERMINAL, finished_at__lt=cutoff).values_list("pk", flat=True)[:1000])
    if model is BatchJob:
        for pk in ids:
            shutil.rmtree(batch_path(str(pk)), ignore_errors=True)
    model.objects.filter(pk__in=ids).delete()
    return len(ids)

