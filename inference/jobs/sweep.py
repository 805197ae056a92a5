"""The periodic sweep of the jobs tables: expiry, reconciliation with what RQ still runs, and retention."""

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference.jobs import files
from inference.jobs import queue as jobs
from inference.jobs.services import TERMINAL, ttl_message
from inference.models import (
    ACTIVE_JOB_STATUSES,
    BatchJob,
    InferenceJob,
    JobStatus,
)

logger = logging.getLogger(__name__)

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
        ).update(status=JobStatus.EXPIRED, error_code="expired", error=ttl_message(), finished_at=moment,
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
            files.files_delete(pk)
    model.objects.filter(pk__in=ids).delete()
    return len(ids)
