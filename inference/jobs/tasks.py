"""The RQ side of async inference and batch jobs: the job bodies (they take IDs and call services), the
worker class `make serve` runs, and the periodic sweeper's schedule.

These functions are what RQ calls by dotted name; queue.py names them, services never import them.
"""

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from prometheus_client import values as prometheus_values
from rq import Worker, cron_job_registry
from rq.cron import CronJob, CronScheduler
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.job import JobStatus as RqStatus
from rq.registry import FailedJobRegistry
from rq.results import Result
from rq.timeouts import JobTimeoutException
from rq.worker import WorkerStatus

from core import invalidation
from inference.jobs import batch as batch_services
from inference.jobs import services as job_services
from inference.jobs import sweep
from inference.jobs.queue import RUN_BATCH_JOB, RUN_INFERENCE_JOB, SWEEP_QUEUE, get_queue
from inference.predict.contract import sinks
from registry.queue import VALIDATE_MODEL_VERSION

logger = logging.getLogger(__name__)


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
    return _run(lambda: batch_services.batch_job_claim(batch_id=uuid.UUID(batch_id)), batch_services.batch_job_run,
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
    finally:
        sinks.flush()  # the work horse exits with os._exit after the job: no thread of its own gets to write
    return job.status


def _fail_if_last_attempt(job) -> None:
    # An unexpected error (a bug, the database gone) on the last attempt: RQ gives up, so the row must too.
    if job.attempts >= settings.JOB_MAX_ATTEMPTS:
        logger.exception("job %s failed on its last attempt", job.pk)
        job_services.job_fail(job=job, code="internal_error", message="The job failed with an internal error.")


# What a worker agrees to run, by the dotted name RQ stores with each job. Anything that can write to Redis
# can queue a job naming any importable function (`os.system`); the worker refuses every other name. Other
# apps add their job bodies from their AppConfig.ready (monitoring/apps.py); the scheduler's PERIODIC bodies
# are allowed by their own names.
JOB_FUNCTIONS: set[str] = {
    RUN_INFERENCE_JOB, RUN_BATCH_JOB, VALIDATE_MODEL_VERSION, f"{__name__}.sweep_jobs",
    # Names queued before the bodies moved to this module (inference/jobs/__init__.py).
    "inference.jobs.run_inference_job", "inference.jobs.run_batch_job", "inference.jobs.sweep_jobs",
}


def allowed_job_functions() -> set[str]:
    return JOB_FUNCTIONS | {f"{periodic.func.__module__}.{periodic.func.__qualname__}" for periodic in PERIODIC}


def job_refusal(job: Job) -> str | None:
    """Why the worker will not run `job` (None: it will). The job's function, callbacks and webhooks are only
    names and addresses read from Redis: none of them is imported or called before this says yes."""
    try:
        func_name, instance = job.func_name, job.instance
    except Exception:  # data that does not even deserialize
        return "its data could not be read"
    if instance is not None or func_name not in allowed_job_functions():
        return f"{str(func_name)[:200]!r} is not one of the platform's job functions"
    callbacks = [getattr(job, f"_{kind}_callback_name", None) for kind in ("success", "failure", "stopped")]
    if any(callbacks) or job.webhooks:
        return "it carries callbacks or webhooks, which the platform's jobs never do"
    return None


class ServingWorker(Worker):
    """RQ's worker (`manage.py rqworker --worker-class inference.jobs.tasks.ServingWorker`, as `make serve` runs it).
    It runs only the platform's own job functions, tells the job's row at once when a work horse dies on the
    job's last attempt, and its horses never listen for cache invalidations."""

    def execute_job(self, job: Job, queue) -> None:
        refusal = job_refusal(job)
        if refusal is None:
            super().execute_job(job, queue)
            return
        logger.error("refused RQ job %s from queue %s: %s", job.id, queue.name, refusal)
        self._refuse(job, queue, f"Refused: {refusal}.")

    def _refuse(self, job: Job, queue, message: str) -> None:
        # Failed without a work horse, retries or callbacks: nothing of the job's is called.
        with self.connection.pipeline() as pipeline:
            job.set_status(RqStatus.FAILED, pipeline=pipeline)
            FailedJobRegistry(job.origin, connection=self.connection, serializer=self.serializer).add(
                job, ttl=job.failure_ttl, exc_string=message, pipeline=pipeline)
            Result.create_failure(job, job.failure_ttl, exc_string=message, worker_name=self.name, pipeline=pipeline)
            pipeline.execute()
        IntermediateQueue(queue.key, connection=self.connection).remove(job.id)
        self.set_state(WorkerStatus.IDLE)

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
    return sweep.jobs_sweep(now=now)


# --- the periodic sweeper -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Periodic:
    """A job the scheduler queues every `interval_s()` seconds (read when the scheduler starts). Other apps add
    theirs to PERIODIC from their AppConfig.ready (monitoring/apps.py); the body takes no arguments."""

    name: str
    func: Callable[[], object]
    interval_s: Callable[[], int]
    timeout_s: int = 300


PERIODIC: list[Periodic] = []


class _JsonCronJob(CronJob):
    """rq.cron in RQ 3.0 enqueues through a plain Queue, i.e. pickled; our workers only read JSON."""

    def enqueue(self, connection) -> Job:
        if self.func is None:  # sweep_scheduler builds it with func=; RQ's own enqueue refuses None too
            raise ValueError("CronJob has no function to enqueue.")
        queue = get_queue(self.queue_name)
        job = queue.enqueue(self.func, args=self.args, kwargs=self.kwargs,
                            job_id=f"{self.name.replace('_', '-')}-{int(time.time())}", **self.job_options)
        # The history the django-rq dashboard shows for cron jobs.
        with connection.pipeline() as pipeline:
            pipeline.zadd(self.job_history_key, {job.id: time.time()})
            pipeline.zremrangebyrank(self.job_history_key, 0, -101)
            cron_job_registry.add(self.name, pipeline)
            pipeline.execute()
        return job


def sweep_scheduler() -> CronScheduler:
    """RQ's cron scheduler, enqueuing the sweep every JOB_SWEEP_INTERVAL_S and every PERIODIC job at its own
    interval (`manage.py sweep_jobs --schedule`)."""
    queue = get_queue(SWEEP_QUEUE)
    scheduler = CronScheduler(connection=queue.connection, name=f"job-sweeper-{uuid.uuid4().hex[:6]}")
    scheduler._cron_jobs.append(_JsonCronJob(
        queue_name=SWEEP_QUEUE, func=sweep_jobs, interval=settings.JOB_SWEEP_INTERVAL_S,
        job_timeout=max(60, settings.JOB_SWEEP_INTERVAL_S), result_ttl=600, name="sweep_jobs",
    ))
    for periodic in PERIODIC:
        scheduler._cron_jobs.append(_JsonCronJob(
            queue_name=SWEEP_QUEUE, func=periodic.func, interval=periodic.interval_s(),
            job_timeout=periodic.timeout_s, result_ttl=600, name=periodic.name,
        ))
    return scheduler
