"""Async inference jobs and offline batch jobs over HTTP.

Scopes: submitting a job and reading it back is inference, so the predict scope reaches every route here,
and a caller sees only its own jobs; the manage scope (manage keys, staff, users with core.use_manage)
sees all jobs, as its description says. Batch jobs follow the same rule rather than needing manage: an
offline scoring run is inference over a file, exactly what a predict-key client such as a nightly
pipeline needs, and what it adds over a sync request (disk, a worker held for long) is bounded per
caller by BATCH_MAX_FILE_MB and BATCH_MAX_ACTIVE_PER_OWNER and by the predict throttle.
"""

import re

from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core.apis import filter_queryset, parse, request_user
from core.errors import InvalidInput
from core.models import ApiKey, Scope
from core.openapi import errors
from core.parsers import SafeFormParser, SafeJSONParser, SafeMultiPartParser, json_object
from core.permissions import PredictScope, principal_allows
from inference.jobs import batch as batch_services
from inference.jobs import selectors as job_selectors
from inference.jobs import services as job_services
from inference.jobs.serializers import (
    AsyncPredictIn,
    AsyncPredictOut,
    BatchJobCreateIn,
    BatchJobListOut,
    BatchJobOut,
    JobDetailOut,
    JobListOut,
    JobOut,
)
from inference.models import BatchFormat

# Printable ASCII without spaces: the key is echoed in logs and compared byte for byte.
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
LIST_PARAMS = [
    OpenApiParameter("status", str, enum=["queued", "running", "succeeded", "failed", "cancelled", "expired"]),
    OpenApiParameter("endpoint", str),
    OpenApiParameter("priority", str, enum=["high", "normal", "low"]),
    OpenApiParameter("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                     description=f"default {DEFAULT_LIMIT}, at most {MAX_LIMIT}; newest first"),
]
IDEMPOTENCY_PARAM = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER,
    description="Repeating a submission with the same key returns the first job (per API key or user).",
)


def _submitter(request) -> job_services.Submitter:
    key = request.auth if isinstance(request.auth, ApiKey) else None
    user = request_user(request)
    owner = f"key:{key.prefix}" if key else f"user:{user.pk}" if user else "anonymous"
    return job_services.Submitter(owner=owner, api_key=key, user=user or (key.owner if key else None))


def _owner_filter(request) -> str | None:
    return None if principal_allows(request, Scope.MANAGE) else _submitter(request).owner


def _limit(request) -> int:
    raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ValidationError({"limit": [f"Must be an integer from 1 to {MAX_LIMIT}."]})
    return int(raw)


def _idempotency_key(request) -> str:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return ""
    if not _IDEMPOTENCY_KEY.match(key):
        raise InvalidInput("Idempotency-Key must be 1-255 printable ASCII characters without spaces.",
                           details={"field": "Idempotency-Key"})
    return key


class AsyncPredictApi(APIView):
    permission_classes = [PredictScope]
    parser_classes = [SafeJSONParser]

    @extend_schema(tags=["jobs"], operation_id="predict_async", request=AsyncPredictIn, parameters=[IDEMPOTENCY_PARAM],
                   responses={202: AsyncPredictOut, **errors(400, 404, 409, 413, 415, 503)},
                   description="Queues a prediction; poll `status_url`. Inputs are checked now (400/413), the "
                               "prediction runs later through the same deployment as the sync route. "
                               "503 when the job queue is down (nothing is stored then).")
    def post(self, request, endpoint: str):
        data = parse(AsyncPredictIn, json_object(request.data))
        data["subject_id"] = data["subject_id"] or request.headers.get("X-Subject-Id", "")[:128]
        job, created = job_services.inference_job_submit(endpoint=endpoint, submitter=_submitter(request),
                                                         idempotency_key=_idempotency_key(request), **data)
        url = request.build_absolute_uri(reverse("inference-job-detail", args=[job.pk]))
        body = {"job_id": str(job.pk), "status": job.status, "eta_seconds": job_selectors.inference_job_eta(job),
                "status_url": url}
        headers = {"Location": url, **({} if created else {"Idempotent-Replayed": "true"})}
        return Response(body, status=status.HTTP_202_ACCEPTED, headers=headers)


def _limited_list(request, filterset, select, serializer) -> Response:
    """The caller's jobs (all of them for manage/staff), filtered, at most `limit`."""
    limit = _limit(request)
    found = filter_queryset(filterset, request, select(owner=_owner_filter(request)), also=["limit"])
    results = serializer(found[:limit], many=True, context={"request": request}).data
    return Response({"count": found.count(), "limit": limit, "results": results})


class JobListApi(APIView):
    permission_classes = [PredictScope]

    @extend_schema(tags=["jobs"], operation_id="jobs_list", parameters=LIST_PARAMS,
                   responses={200: JobListOut, **errors(400)})
    def get(self, request):
        return _limited_list(request, job_selectors.JobFilter, job_selectors.inference_job_list, JobOut)


class JobDetailApi(APIView):
    permission_classes = [PredictScope]

    @extend_schema(tags=["jobs"], operation_id="jobs_retrieve", responses={200: JobDetailOut, **errors(404)})
    def get(self, request, pk):
        job = job_selectors.inference_job_get(pk=pk, owner=_owner_filter(request))
        context = {"request": request, "eta_seconds": job_selectors.inference_job_eta(job)}
        return Response(JobDetailOut(job, context=context).data)

    @extend_schema(tags=["jobs"], operation_id="jobs_cancel", responses={200: JobDetailOut, **errors(404, 409)},
                   description="Cancels a queued job (409 once it runs or has finished).")
    def delete(self, request, pk):
        job = job_selectors.inference_job_get(pk=pk, owner=_owner_filter(request))
        job = job_services.inference_job_cancel(job=job)
        return Response(JobDetailOut(job, context={"request": request}).data)


class BatchJobListCreateApi(APIView):
    permission_classes = [PredictScope]
    parser_classes = [SafeMultiPartParser, SafeFormParser]

    @extend_schema(tags=["batch-jobs"], operation_id="batch_jobs_list", parameters=LIST_PARAMS,
                   responses={200: BatchJobListOut, **errors(400)})
    def get(self, request):
        return _limited_list(request, job_selectors.BatchJobFilter, job_selectors.batch_job_list, BatchJobOut)

    @extend_schema(tags=["batch-jobs"], operation_id="batch_jobs_create",
                   request={"multipart/form-data": BatchJobCreateIn},
                   responses={202: BatchJobOut, **errors(400, 404, 413, 415, 503)},
                   description="The whole file is checked first: not UTF-8 text, wrong columns, non-numeric "
                               "cells, no rows, too many rows or too large is a 400 naming the first problems, "
                               "and nothing runs. What only the model refuses is recorded per row as it runs.")
    def post(self, request):
        data = parse(BatchJobCreateIn, request.data)
        job = batch_services.batch_job_create(endpoint=data["endpoint"], upload=data["file"],
                                            submitter=_submitter(request), fmt=data.get("format"),
                                            priority=data["priority"])
        body = BatchJobOut(job, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["status_url"]})


class BatchJobDetailApi(APIView):
    permission_classes = [PredictScope]

    @extend_schema(tags=["batch-jobs"], operation_id="batch_jobs_retrieve",
                   responses={200: BatchJobOut, **errors(404)})
    def get(self, request, pk):
        job = job_selectors.batch_job_get(pk=pk, owner=_owner_filter(request))
        return Response(BatchJobOut(job, context={"request": request}).data)

    @extend_schema(tags=["batch-jobs"], operation_id="batch_jobs_cancel",
                   responses={200: BatchJobOut, **errors(404, 409)},
                   description="Cancels a queued or running batch job; a running one stops after its current "
                               "chunk and keeps the rows done (their results stay downloadable).")
    def delete(self, request, pk):
        job = job_selectors.batch_job_get(pk=pk, owner=_owner_filter(request))
        job = batch_services.batch_job_cancel(job=job)
        return Response(BatchJobOut(job, context={"request": request}).data)


_RESULT_ROWS = "The input rows with their predictions, in the input's format (CSV or JSON Lines)"


class BatchJobResultApi(APIView):
    permission_classes = [PredictScope]

    @extend_schema(tags=["batch-jobs"], operation_id="batch_jobs_result",
                   responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=_RESULT_ROWS),
                              (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR,
                                                                             description=_RESULT_ROWS),
                              **errors(404, 409)})
    def get(self, request, pk):
        job = job_selectors.batch_job_get(pk=pk, owner=_owner_filter(request))
        chunks, size = job_selectors.batch_job_result(job)
        is_csv = job.input_format == BatchFormat.CSV
        response = StreamingHttpResponse(
            chunks, content_type="text/csv; charset=utf-8" if is_csv else "application/x-ndjson")
        response["Content-Length"] = str(size)
        response["Content-Disposition"] = f'attachment; filename="{job.pk}-predictions.{job.input_format}"'
        return response
