import math

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.choices import ChoiceField, ModelSerializer
from inference.jobs.selectors import batch_job_result_available
from inference.models import BatchFormat, BatchJob, InferenceJob, JobPriority, JobStatus
from inference.predict.bodies import parameter_errors


class AsyncPredictIn(serializers.Serializer):
    inputs = serializers.JSONField(help_text="As for POST /api/v1/predict/{endpoint}.")
    parameters = serializers.DictField(required=False, default=dict,
                                       help_text='As for the sync route, e.g. {"uncertainty": {"samples": 30}}.')
    request_id = serializers.CharField(max_length=128, required=False, default="")
    subject_id = serializers.CharField(max_length=128, required=False, default="",
                                       help_text="Routes the job as a sync request from this subject (experiments); "
                                                 "the X-Subject-Id header does the same.")
    priority = ChoiceField(choices=JobPriority.choices, default=JobPriority.NORMAL)
    timeout_ms = serializers.IntegerField(min_value=1, required=False,
                                          help_text="Run time limit of the job (default JOB_DEFAULT_TIMEOUT_S).")

    def validate_timeout_ms(self, value: int) -> int:
        if value > settings.JOB_MAX_TIMEOUT_S * 1000:
            raise serializers.ValidationError(f"Must be at most {settings.JOB_MAX_TIMEOUT_S * 1000}.")
        return value

    def validate_parameters(self, value: dict) -> dict:
        if errors := parameter_errors(value):
            raise serializers.ValidationError(errors)
        return value

    def validate(self, attrs: dict) -> dict:
        timeout_ms = attrs.pop("timeout_ms", None)
        attrs["timeout_s"] = math.ceil(timeout_ms / 1000) if timeout_ms else None
        return attrs


class AsyncPredictOut(serializers.Serializer):
    job_id = serializers.UUIDField()
    status = ChoiceField(choices=JobStatus.choices)
    eta_seconds = serializers.IntegerField(allow_null=True, help_text="null when no worker is listening")
    status_url = serializers.URLField()


class JobErrorOut(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class _JobOut(ModelSerializer):
    model = serializers.CharField(source="model_version.model.name", default=None, allow_null=True)
    version = serializers.IntegerField(source="model_version.version", default=None, allow_null=True)
    error = serializers.SerializerMethodField()
    status_url = serializers.SerializerMethodField()

    @extend_schema_field(JobErrorOut(allow_null=True))
    def get_error(self, job) -> dict | None:
        if not job.error_code and not job.error:
            return None
        return {"code": job.error_code, "message": job.error}

    def _url(self, name: str, job) -> str:
        path = reverse(name, args=[job.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class JobOut(_JobOut):
    job_id = serializers.UUIDField(source="id")

    class Meta:
        model = InferenceJob
        fields = ["job_id", "status", "endpoint", "model", "version", "priority", "request_id", "rows", "attempts",
                  "error", "created_at", "started_at", "finished_at", "status_url"]

    @extend_schema_field(OpenApiTypes.URI)
    def get_status_url(self, job) -> str:
        return self._url("inference-job-detail", job)


class JobDetailOut(JobOut):
    result = serializers.JSONField(allow_null=True, help_text="The sync route's response body, once succeeded.")
    eta_seconds = serializers.SerializerMethodField()

    class Meta(JobOut.Meta):
        fields = [*JobOut.Meta.fields, "eta_seconds", "result"]

    def get_eta_seconds(self, job) -> int | None:
        return self.context.get("eta_seconds")


class JobListOut(serializers.Serializer):
    count = serializers.IntegerField()
    limit = serializers.IntegerField()
    results = JobOut(many=True)


class BatchJobCreateIn(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, use_url=False,
                                 help_text="CSV with a header row of feature names, or JSON Lines.")
    endpoint = serializers.CharField(max_length=64)
    format = ChoiceField(choices=BatchFormat.choices, required=False,
                                     help_text="Default: from the file name (.csv / .jsonl), else from its content.")
    priority = ChoiceField(choices=JobPriority.choices, default=JobPriority.LOW)


class RowErrorOut(serializers.Serializer):
    line = serializers.IntegerField()
    error = serializers.CharField()


class BatchJobOut(_JobOut):
    format = serializers.CharField(source="input_format")
    rows_succeeded = serializers.SerializerMethodField()
    progress = serializers.FloatField(help_text="rows_done / total_rows")
    row_errors = RowErrorOut(many=True, help_text="The first 100 rows that failed.")
    result_url = serializers.SerializerMethodField()

    class Meta:
        model = BatchJob
        fields = ["id", "status", "endpoint", "model", "version", "priority", "format", "filename", "columns",
                  "total_rows", "rows_done", "rows_failed", "rows_succeeded", "progress", "row_errors", "attempts",
                  "error", "created_at", "started_at", "finished_at", "status_url", "result_url"]

    def get_rows_succeeded(self, job) -> int:
        return job.rows_done - job.rows_failed

    @extend_schema_field(OpenApiTypes.URI)
    def get_status_url(self, job) -> str:
        return self._url("batch-job-detail", job)

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_result_url(self, job) -> str | None:
        return self._url("batch-job-result", job) if batch_job_result_available(job) else None


class BatchJobListOut(serializers.Serializer):
    count = serializers.IntegerField()
    limit = serializers.IntegerField()
    results = BatchJobOut(many=True)
