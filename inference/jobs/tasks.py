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
from rq.job import Job
from rq.timeouts import JobTimeoutException

from core import invalidation
from inference.jobs import batch as batch_services
from inference.jobs import services as job_services
from inference.jobs import sweep
from inference.jobs.queue import SWEEP_QUEUE, get_queue
from inference.predict.contract import sinks

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


class ServingWorker(Worker):
    """RQ's worker (`manage.py rqworker --worker-class inference.jobs.tasks.ServingWorker`, as `make serve` runs it).
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
