"""Queueing validation jobs. Imports no service: the job is named by its body's dotted name (registry/jobs.py),
which RQ stores in Redis with the job, so a service can enqueue without importing what runs it."""

import uuid

import django_rq
from django.conf import settings

VALIDATION_QUEUE = "default"
VALIDATE_MODEL_VERSION = "registry.jobs.validate_model_version"


def enqueue_validation(version_id: int) -> str:
    # Callers already defer this to transaction.on_commit; "auto" makes django-rq enqueue now
    # instead of deferring a second time (which would hide the job and its id from us).
    queue = django_rq.get_queue(VALIDATION_QUEUE, commit_mode="auto")
    job = queue.enqueue(
        VALIDATE_MODEL_VERSION, version_id,
        job_id=f"validate-{version_id}-{uuid.uuid4().hex[:8]}",
        # The sandbox enforces its own timeout; this is the outer bound for the job as a whole.
        job_timeout=settings.VALIDATION_TIMEOUT_S + 60,
        result_ttl=3600,
    )
    return str(job.id)
