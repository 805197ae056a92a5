"""Enqueueing async inference and batch jobs on RQ, and what the sweeper needs to know about RQ's side.

Imports no service and no job body: jobs are created by the dotted name of their body (tasks.py), so the
services that enqueue never import what runs them. Jobs are JSON-serialized (settings.RQ_QUEUES) and carry
one string: the row's id.
"""

import logging
from functools import partial

import django_rq
from django.conf import settings
from django.db import transaction
from rq import Queue, Retry, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.job import JobStatus as RqStatus
from rq.registry import StartedJobRegistry

logger = logging.getLogger(__name__)

QUEUE_FOR_PRIORITY = {"high": "high", "normal": "default", "low": "low"}
QUEUE_NAMES = ("high", "default", "low")
SWEEP_QUEUE = "high"  # housekeeping must not wait behind a backlog of low-priority work
# RQ keeps these names in Redis with every job; a job queued under an older name runs through the aliases
# in inference/jobs/__init__.py.
RUN_INFERENCE_JOB = "inference.jobs.tasks.run_inference_job"
RUN_BATCH_JOB = "inference.jobs.tasks.run_batch_job"
# RQ states from which a job still progresses on its own; anything else means RQ will never run it again.
_PROGRESSING = {RqStatus.QUEUED, RqStatus.STARTED, RqStatus.SCHEDULED, RqStatus.DEFERRED}


# --- enqueueing ----------------------------------------------------------------------------------------

def get_queue(name: str) -> Queue:
    # "auto": we decide ourselves what waits for the commit (see register).
    return django_rq.get_queue(name, commit_mode="auto")


def register(job) -> None:
    """Stores the RQ job for `job` now and queues it once the surrounding transaction commits.

    Storing it now is what makes a submission answer 503 when Redis is down: the caller runs this inside
    the transaction that creates the row, so a Redis error rolls the row back and no row exists without
    its RQ job. Queueing only on commit means no worker ever sees a job whose row is not committed. If
    the push itself fails after the commit (Redis lost in between), the RQ job stays 'created' and the
    sweeper queues it; a rolled-back transaction leaves an unqueued RQ job that expires after its TTL.
    """
    queue = get_queue(QUEUE_FOR_PRIORITY[job.priority])
    rq_job = _create(queue, job)
    rq_job.save()
    transaction.on_commit(partial(_push, queue, rq_job), robust=True)


def _create(queue, job) -> Job:
    is_batch = job._meta.model_name == "batchjob"
    retries = settings.JOB_MAX_ATTEMPTS - 1
    return queue.create_job(
        RUN_BATCH_JOB if is_batch else RUN_INFERENCE_JOB, args=[str(job.pk)], job_id=job.rq_job_id,
        timeout=job.timeout_s, result_ttl=settings.JOB_RESULT_TTL_S, ttl=settings.JOB_TTL_SECONDS,
        failure_ttl=settings.JOB_TTL_SECONDS, status=RqStatus.CREATED,
        description=f"{'batch' if is_batch else 'predict'} {job.endpoint} {job.pk}",
        # A retry after a dead worker goes first: the job already waited its turn once.
        retry=Retry(max=retries, enqueue_at_front=True) if retries else None,
    )


def _push(queue, rq_job: Job) -> None:
    queue.enqueue_job(rq_job)


def rq_job_id(kind: str, pk) -> str:
    return f"{kind}-{pk}"


def discard(rq_id: str, priority: str) -> None:
    """Best effort: takes a cancelled job off its queue (its body would skip it anyway)."""
    try:
        get_queue(QUEUE_FOR_PRIORITY[priority]).remove(rq_id)
    except Exception:  # Redis unavailable: the claim refuses the cancelled row regardless
        logger.debug("could not discard RQ job %s", rq_id, exc_info=True)


# --- what RQ knows (for the sweeper and ETAs) ------------------------------------------------------------

def rq_state(rq_id: str) -> tuple[str, str]:
    """('progressing' | 'created' | 'lost', detail) for one RQ job."""
    if not rq_id:
        return "lost", "it was never queued"
    queue = get_queue("default")
    try:
        rq_job = Job.fetch(rq_id, connection=queue.connection, serializer=queue.serializer)
        status = rq_job.get_status(refresh=False)
    except NoSuchJobError:
        return "lost", "the job queue no longer knows it"
    if status in _PROGRESSING:
        return "progressing", status.value
    if status == RqStatus.CREATED:
        return "created", status.value
    result = rq_job.latest_result()
    detail = (result.exc_string or "").strip().splitlines()[-1:] if result else []
    return "lost", f"the job queue reports it {status.value}" + (f": {detail[0][:300]}" if detail else "")


def push_created(rq_id: str) -> None:
    queue = get_queue("default")
    rq_job = Job.fetch(rq_id, connection=queue.connection, serializer=queue.serializer)
    get_queue(rq_job.origin).enqueue_job(rq_job)


def cleanup_abandoned(now: float | None = None) -> None:
    """RQ's own recovery of jobs whose worker died: retried while retries are left, else failed."""
    for name in QUEUE_NAMES:
        queue = get_queue(name)
        StartedJobRegistry(queue=queue, serializer=queue.serializer).cleanup(timestamp=now)


def backlog(priority: str) -> tuple[int, int]:
    """(jobs ahead of a new one at this priority, workers that could run it)."""
    names = QUEUE_NAMES[: QUEUE_NAMES.index(QUEUE_FOR_PRIORITY[priority]) + 1]
    queues = [get_queue(name) for name in names]
    ahead = sum(queue.count for queue in queues)
    workers = Worker.all(connection=queues[0].connection)
    own = QUEUE_FOR_PRIORITY[priority]
    return ahead, sum(1 for worker in workers if own in worker.queue_names())
