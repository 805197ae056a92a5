"""Reads for async inference jobs and batch jobs. `owner=None` means every job (manage scope)."""

import math
from collections.abc import Iterator

import django_filters
import redis
from django.db.models import QuerySet

from core.choices import ChoiceFilter
from inference.jobs import files
from inference.jobs import queue as jobs
from inference.jobs.errors import JobNotFound, ResultNotReady
from inference.models import BatchJob, InferenceJob, JobPriority, JobStatus

RECENT_RUNS = 50


class JobFilter(django_filters.FilterSet):
    status = ChoiceFilter(choices=JobStatus.choices)
    endpoint = django_filters.CharFilter()
    priority = ChoiceFilter(choices=JobPriority.choices)

    class Meta:
        model = InferenceJob
        fields = ["status", "endpoint", "priority"]


class BatchJobFilter(JobFilter):
    class Meta:
        model = BatchJob
        fields = ["status", "endpoint", "priority"]


def _visible(queryset: QuerySet, owner: str | None) -> QuerySet:
    return queryset if owner is None else queryset.filter(owner=owner)


# What a list row shows, and nothing more. A job's inputs and result can be tens of MB of JSON each (20,000
# rows): selecting them for a page of 20 made one list request cost 60-240 ms and a few at once pin the web
# process's memory above 1 GB. The version's JSON columns (signature, input example, validation) are as big.
_JOB_LIST_FIELDS = ("id", "status", "endpoint", "priority", "attempts", "error_code", "error", "created_at",
                    "started_at", "finished_at", "model_version__version", "model_version__model__name")
INFERENCE_JOB_LIST_FIELDS = (*_JOB_LIST_FIELDS, "request_id", "rows")
BATCH_JOB_LIST_FIELDS = (*_JOB_LIST_FIELDS, "input_format", "filename", "columns", "total_rows", "rows_done",
                         "rows_failed", "row_errors", "result_path", "result_bytes")


def _inference_jobs(owner: str | None) -> QuerySet[InferenceJob]:
    return _visible(InferenceJob.objects.select_related("model_version__model"), owner).order_by("-created_at")


def inference_job_list(*, owner: str | None) -> QuerySet[InferenceJob]:
    return _inference_jobs(owner).only(*INFERENCE_JOB_LIST_FIELDS)


def inference_job_get(*, pk, owner: str | None) -> InferenceJob:
    # Someone else's job is "not found", never "forbidden": ids must not be probeable.
    job = _inference_jobs(owner).filter(pk=pk).first()
    if job is None:
        raise JobNotFound("No such job.")
    return job


def _batch_jobs(owner: str | None) -> QuerySet[BatchJob]:
    return _visible(BatchJob.objects.select_related("model_version__model"), owner).order_by("-created_at")


def batch_job_list(*, owner: str | None) -> QuerySet[BatchJob]:
    # Batch inputs and results are files, never columns; the signature is the one JSON column left out.
    return _batch_jobs(owner).only(*BATCH_JOB_LIST_FIELDS)


def batch_job_get(*, pk, owner: str | None) -> BatchJob:
    job = _batch_jobs(owner).filter(pk=pk).first()
    if job is None:
        raise JobNotFound("No such batch job.")
    return job


def batch_job_result_available(job: BatchJob) -> bool:
    return job.is_finished and job.result_bytes > 0 and files.result_exists(job)


def batch_job_result(job: BatchJob) -> tuple[Iterator[bytes], int]:
    """The result file's recorded bytes (a running job may have written past them) and their count."""
    if not job.is_finished:
        raise ResultNotReady(f"The batch job is {job.status}; its result is ready once it finishes.",
                             details={"status": job.status})
    if not batch_job_result_available(job):
        raise ResultNotReady(f"The batch job ended {job.status} without result rows.", details={"status": job.status})
    return files.result_chunks(job), job.result_bytes


def mean_run_seconds(endpoint: str) -> float:
    recent = InferenceJob.objects.filter(endpoint=endpoint, status=JobStatus.SUCCEEDED).order_by("-finished_at")
    spans = [(end - start).total_seconds()
             for start, end in recent.values_list("started_at", "finished_at")[:RECENT_RUNS] if start and end]
    return max(0.01, sum(spans) / len(spans)) if spans else 1.0


def inference_job_eta(job: InferenceJob) -> int | None:
    """Jobs ahead (at this priority and above) x recent run time / workers; None when no worker listens."""
    if job.status != JobStatus.QUEUED:
        return 0 if job.status == JobStatus.RUNNING else None
    try:
        ahead, workers = jobs.backlog(job.priority)
    except redis.RedisError:
        return None
    if not workers:
        return None
    return math.ceil(max(ahead, 1) * mean_run_seconds(job.endpoint) / workers)
