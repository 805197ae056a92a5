"""RQ job bodies: take IDs, call services."""

import uuid

import django_rq
from django.conf import settings

from registry import services

VALIDATION_QUEUE = "default"


def validate_model_version(version_id: int) -> str | None:
    version = services.model_version_validate(version_id=version_id)
    return version.status if version else None


def enqueue_validation(version_id: int) -> str:
    # Callers already defer this to transaction.on_commit; "auto" makes django-rq enqueue now
    # instead of deferring a second time (which would hide the job and its id from us).
    queue = django_rq.get_queue(VALIDATION_QUEUE, commit_mode="auto")
    job = queue.enqueue(
        validate_model_version, version_id,
        job_id=f"validate-{version_id}-{uuid.uuid4().hex[:8]}",
        # The sandbox enforces its own timeout; this is the outer bound for the job as a whole.
        job_timeout=settings.VALIDATION_TIMEOUT_S + 60,
        result_ttl=3600,
    )
    return job.id
