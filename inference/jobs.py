"""RQ interface for async inference and batch jobs: job bodies (they take IDs and call services), enqueueing,
and what the sweeper needs to know about RQ's side. Everything else lives in job_services.

Jobs are JSON-serialized (settings.RQ_QUEUES) and carry one string: the row's id.
"""

import logging
import os
import time
import uuid
from functools import partial

import django_rq
from django.conf import settings
from django.db import transaction
from prometheus_client import values as prometheus_values
from rq import Retry, Worker, cron_job_registry
from rq.cron import CronJob, CronScheduler
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.job import JobStatus as RqStatus
from rq.registry import StartedJobRegistry
from rq.timeouts import JobTimeoutException

from core import invalidation
from inference import job_services

logger = logging.getLogger(__name__)

QUEUE_FOR_PRIORITY = {"high": "high", "normal": "default", "low": "low"}
QUEUE_NAMES = ("high", "default", "low")
SWEEP_QUEUE = "high"  # housekeeping must not wait behind a backlog of low-priority work
# RQ states from which a job still progresses on its own; anything else means RQ will never run it again.
_PROGRESSING = {RqStatus.QUEUED, RqStatus.STARTED, RqStatus.SCHEDULED, RqStatus.DEFERRED}


# --- job bodies -------------------------------------------------------------------------------------------

def _metrics_per_worker() -> None:
    """Prediction metrics from a job land in files named after its RQ worker, not the work horse's pid.

    RQ forks a work horse per job, and prometheus_client's multiprocess mode names its files by pid: every
    job would leave files behind for good, and /metrics reads them all. The library only asks identifiers
    to differ between processes running at the same time, and one worker's horses never overlap.
    """
    worker = os.environ.get("RQ_WORKER_ID")
    if not worker or not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    if getattr(prometheus_values.ValueClass, "_serving_worker", None) != worker:
        prometheus_values.ValueClass = prometheus_values.MultiProcessValue(lambda: f"rqworker-{worker}")
        prometheus_values.ValueClass._serving_worker = worker


def run_inference_job(job_id: str) -> str:
    return _run(lambda: job_services.inference_job_claim(job_id=uuid.UUID(job_id)), job_services.inference_job_execute,
                lambda job: f"The job did not finish within its timeout of {job.timeout_s} s.")


def run_batch_job(batch_id: str) -> str:
    return _run(lambda: job_services.batch_job_claim(batch_id=uuid.UUID(batch_id)), job_services.batch_job_run,
                lambda job: f"The batch job did not finish within its timeout of {job.timeout_s} s; "
                            f"the {job.rows_done} rows done are kept.")


def _run(claim, execute, timeout_message) -> str:
    """The RQ side of both kinds of job: claim the row, run it, record a timeout, let RQ retry anything else."""
    _metrics_per_worker()
    job = claim()
    if job is None:
        return "skipped"
    try:
        job = execute(job=job)
    except JobTimeoutException:
        job = job_services.job_fail(job=job, code="job_timeout", message=timeout_message(job))
    except Exception:
        _fail_if_last_attempt(job)
        raise  # RQ's Retry runs it again
    return job.status


def _fail_if_last_attempt(job) -> None:
    # An unexpected error (a bug, the database gone) on the last attempt: RQ gives up, so the row must too.
    if job.attempts >= settings.JOB_MAX_ATTEMPTS:
        logger.exception("job %s failed on its last attempt", job.pk)
        job_services.job_fail(job=job, code="internal_error", message="The job failed with an internal error.")


class ServingWorker(Worker):
    """RQ's worker (`manage.py rqworker --worker-class inference.jobs.ServingWorker`, as `make serve` runs it).
    It tells the job's row at once when a work horse dies on the job's last attempt, and its horses never
    listen for cache invalidations."""

    def main_work_horse(self, job: Job, queue) -> None:
        invalidation.generations.stay_deaf()  # the horse lives for this one job
        super().main_work_horse(job, queue)

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        if job.should_retry:
            return
        detail = f"signal {os.WTERMSIG(ret_val)}" if ret_val and os.WIFSIGNALED(ret_val) else f"exit {ret_val}"
        try:
            job_services.job_worker_died(rq_job_id=job.id, detail=detail)
        except Exception:  # the database away: the sweeper settles the row later, and RQ must go on
            logger.exception("could not record the death of job %s's work horse", job.id)


def sweep_jobs(now: float | None = None) -> dict:
    return job_services.jobs_sweep(now=now)


# --- enqueueing ----------------------------------------------------------------------------------------

def _queue(name: str):
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
    queue = _queue(QUEUE_FOR_PRIORITY[job.priority])
    rq_job = _create(queue, job)
    rq_job.save()
    transaction.on_commit(partial(_push, queue, rq_job), robust=True)


def _create(queue, job) -> Job:
    is_batch = job._meta.model_name == "batchjob"
    retries = settings.JOB_MAX_ATTEMPTS - 1
    return queue.create_job(
        run_batch_job if is_batch else run_inference_job, args=[str(job.pk)], job_id=job.rq_job_id,
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
        _queue(QUEUE_FOR_PRIORITY[priority]).remove(rq_id)
    except Exception:  # Redis unavailable: the claim refuses the cancelled row regardless
        logger.debug("could not discard RQ job %s", rq_id, exc_info=True)


# --- what RQ knows (for the sweeper and ETAs) ------------------------------------------------------------

def rq_state(rq_id: str) -> tuple[str, str]:
    """('progressing' | 'created' | 'lost', detail) for one RQ job."""
    if not rq_id:
        return "lost", "it was never queued"
    queue = _queue("default")
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
    queue = _queue("default")
    rq_job = Job.fetch(rq_id, connection=queue.connection, serializer=queue.serializer)
    _queue(rq_job.origin).enqueue_job(rq_job)


def cleanup_abandoned(now: float | None = None) -> None:
    """RQ's own recovery of jobs whose worker died: retried while retries are left, else failed."""
    for name in QUEUE_NAMES:
        queue = _queue(name)
        StartedJobRegistry(queue=queue, serializer=queue.serializer).cleanup(timestamp=now)


def backlog(priority: str) -> tuple[int, int]:
    """(jobs ahead of a new one at this priority, workers that could run it)."""
    names = QUEUE_NAMES[: QUEUE_NAMES.index(QUEUE_FOR_PRIORITY[priority]) + 1]
    queues = [_queue(name) for name in names]
    ahead = sum(queue.count for queue in queues)
    workers = Worker.all(connection=queues[0].connection)
    own = QUEUE_FOR_PRIORITY[priority]
    return ahead, sum(1 for worker in workers if own in worker.queue_names())


# --- the periodic sweeper -----------------------------------------------------------------------------------

class _JsonCronJob(CronJob):
    """rq.cron in RQ 3.0 enqueues through a plain Queue, i.e. pickled; our workers only read JSON."""

    def enqueue(self, connection) -> Job:
        queue = _queue(self.queue_name)
        job = queue.enqueue(self.func, args=self.args, kwargs=self.kwargs,
                            job_id=f"sweep-jobs-{int(time.time())}", **self.job_options)
        # The history the django-rq dashboard shows for cron jobs.
        with connection.pipeline() as pipeline:
            pipeline.zadd(self.job_history_key, {job.id: time.time()})
            pipeline.zremrangebyrank(self.job_history_key, 0, -101)
            cron_job_registry.add(self.name, pipeline)
            pipeline.execute()
        return job


def sweep_scheduler() -> CronScheduler:
    """RQ's cron scheduler, enqueuing the sweep every JOB_SWEEP_INTERVAL_S (`manage.py sweep_jobs --schedule`)."""
    queue = _queue(SWEEP_QUEUE)
    scheduler = CronScheduler(connection=queue.connection, name=f"job-sweeper-{uuid.uuid4().hex[:6]}")
    scheduler._cron_jobs.append(_JsonCronJob(
        queue_name=SWEEP_QUEUE, func=sweep_jobs, interval=settings.JOB_SWEEP_INTERVAL_S,
        job_timeout=max(60, settings.JOB_SWEEP_INTERVAL_S), result_ttl=600, name="sweep_jobs",
    ))
    return scheduler
