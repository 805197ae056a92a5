"""Writes for batch jobs: a whole file checked and stored, then run chunk by chunk from where the last
execution left off, its results appended to a file as they come."""

import itertools
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.utils import timezone

from core.errors import ApplicationError, InvalidInput
from inference.errors import DeadlineExceeded, ModelFailed, TooManyRows
from inference.jobs import batchfiles, files
from inference.jobs import queue as jobs
from inference.jobs.errors import (
    InvalidBatchFile,
    JobNotCancellable,
    TooManyBatchJobs,
)
from inference.jobs.services import (
    Submitter,
    claim,
    job_fail,
    job_finish,
    predict_patiently,
    save_and_register,
    serving_deployment,
)
from inference.models import (
    ACTIVE_JOB_STATUSES,
    BatchJob,
    JobPriority,
    JobStatus,
)
from inference.predict.contract import PredictRequest

logger = logging.getLogger(__name__)
MAX_ROW_ERRORS = 100

# --- batch jobs ----------------------------------------------------------------------------------------------

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
    deployment = serving_deployment(endpoint)
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
    files.input_save(job, upload)
    try:
        if enqueue:
            save_and_register(job)
        else:
            job.save(force_insert=True)
    except BaseException:
        files.files_delete(job_id)
        raise
    return job


def batch_job_claim(*, batch_id: uuid.UUID) -> BatchJob | None:
    return claim(BatchJob, batch_id)


def batch_job_run(*, job: BatchJob, on_progress: Callable[[BatchJob], None] | None = None) -> BatchJob:
    """Runs a claimed batch job from where the last execution left off, chunk by chunk."""
    spec = batchfiles.InputSpec.from_signature(job.signature)
    with files.input_opened(job) as source, files.result_sink(job) as sink:
        writer = batchfiles.ResultWriter(sink, fmt=job.input_format, columns=job.columns,
                                         classes=(job.signature or {}).get("classes"))
        if job.result_bytes == 0:
            writer.header()
        rows = itertools.islice(batchfiles.read_rows(source, fmt=job.input_format, spec=spec), job.rows_done, None)
        try:
            for chunk in _chunks(rows, job.chunk_size):
                outcomes = _predict_chunk(job, chunk)
                writer.write(chunk, outcomes)
                if not _record_progress(job, chunk, outcomes, sink.commit()):
                    return job  # cancelled (its rows so far are kept) or taken over
                if on_progress:
                    on_progress(job)
        except ApplicationError as exc:
            return job_fail(job=job, code=exc.code, message=f"{exc.message} The {job.rows_done} rows done are kept.")
    if job.total_rows and job.rows_failed >= job.total_rows:
        first = (job.row_errors or [{}])[0].get("error", "")
        return job_fail(job=job, code="all_rows_failed",
                        message=f"All {job.total_rows} rows failed; the first: {first}")
    job_finish(job, JobStatus.SUCCEEDED, error_code="", error="")
    return job


def _chunks(rows: Iterator[batchfiles.Row], size: int) -> Iterator[list[batchfiles.Row]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _predict_chunk(job: BatchJob, rows: list[batchfiles.Row]) -> list[batchfiles.Outcome]:
    """One call for the chunk; when the model refuses it, halves until the offending rows stand alone."""
    request = PredictRequest(endpoint=job.endpoint, inputs=[row.model_input for row in rows],
                                     params={"cache": False}, request_id=f"{job.pk.hex}-{rows[0].line}")
    try:
        response = predict_patiently(request)
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
