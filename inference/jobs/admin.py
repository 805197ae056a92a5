"""Admin for async inference jobs and batch jobs: read-only records with filters, a progress bar, cancel
actions (through the services) and links into the django-rq dashboard (staff only, at /admin/rq/)."""

from typing import ClassVar

from django.conf import settings
from django.contrib import admin, messages
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from core.errors import ApplicationError
from inference.jobs import batch as batch_services
from inference.jobs import services as job_services
from inference.jobs.queue import QUEUE_FOR_PRIORITY
from inference.jobs.selectors import batch_job_result_available
from inference.models import ACTIVE_JOB_STATUSES, BatchJob, InferenceJob

STATUS_COLOURS = {"queued": "#757575", "running": "#f9a825", "succeeded": "#2e7d32", "failed": "#c62828",
                  "cancelled": "#9e9e9e", "expired": "#9e9e9e"}


def _dashboard_link() -> str:
    return format_html('Queues, workers, failed RQ jobs and the sweeper\'s schedule: <a href="{}">RQ dashboard</a>',
                       reverse("django_rq:home"))


def _rq_job_url(job) -> str | None:
    # The dashboard addresses queues by their index in the sorted RQ_QUEUES.
    names = sorted(settings.RQ_QUEUES)
    queue = QUEUE_FOR_PRIORITY.get(job.priority)
    if not job.rq_job_id or queue not in names:
        return None
    try:
        return reverse("django_rq:job_detail", args=[names.index(queue), job.rq_job_id])
    except NoReverseMatch:
        return None


class _JobAdmin(admin.ModelAdmin):
    list_filter: ClassVar[tuple[str, ...]] = ("status", "priority", "endpoint", "created_at")
    search_fields: ClassVar[tuple[str, ...]] = ("id", "endpoint", "owner", "rq_job_id")
    date_hierarchy = "created_at"
    actions = ["cancel"]
    list_per_page = 50

    def has_add_permission(self, request):
        return False  # jobs are submitted through the API or `manage.py batch_predict`

    def has_change_permission(self, request, obj=None):
        return False  # the record of what ran; state changes go through the cancel action

    # Columns the change list never shows and that can be tens of MB a row (a job's inputs and result, the
    # version's input example); a detail page loads the ones it shows when it shows them.
    payload_fields: tuple[str, ...] = ()
    _VERSION_PAYLOAD = tuple(f"model_version__{name}" for name in ("signature", "input_example", "validation",
                                                                   "metrics", "params", "tags"))

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("model_version__model", "api_key", "submitted_by") \
            .defer(*self.payload_fields, *self._VERSION_PAYLOAD)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "subtitle": _dashboard_link()})

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html('<b style="color:{}" title="{}">{}</b>', STATUS_COLOURS.get(obj.status, "#757575"),
                           obj.error, obj.status)

    @admin.display(description="version")
    def version(self, obj):
        return obj.model_version.version if obj.model_version else None

    @admin.display(description="run time")
    def run_time(self, obj):
        if obj.started_at and obj.finished_at:
            return f"{(obj.finished_at - obj.started_at).total_seconds():.2f} s"
        return None

    @admin.display(description="RQ job")
    def rq_job(self, obj):
        url = _rq_job_url(obj)
        return format_html('<a href="{}">{}</a>', url, obj.rq_job_id) if url else obj.rq_job_id or "-"

    def _cancel(self, request, queryset, service):
        cancelled = 0
        for job in queryset.filter(status__in=ACTIVE_JOB_STATUSES):
            try:
                service(job=job)
                cancelled += 1
            except ApplicationError as exc:
                self.message_user(request, f"{job.pk}: {exc.message}", messages.WARNING)
        self.message_user(request, f"Cancelled {cancelled} job(s).")


@admin.register(InferenceJob)
class InferenceJobAdmin(_JobAdmin):
    list_display = ("id", "endpoint", "version", "priority", "status_badge", "rows", "attempts", "owner",
                    "created_at", "run_time")
    search_fields = (*_JobAdmin.search_fields, "request_id", "idempotency_key")
    readonly_fields = ("id", "endpoint", "model_version", "priority", "status", "error_code", "error", "attempts",
                       "timeout_s", "owner", "api_key", "submitted_by", "rq_job", "request_id", "idempotency_key",
                       "rows", "inputs", "parameters", "result", "created_at", "started_at", "finished_at",
                       "updated_at")
    exclude = ("rq_job_id", "request_hash")
    payload_fields = ("inputs", "parameters", "result")

    @admin.action(description="Cancel (queued jobs only)")
    def cancel(self, request, queryset):
        self._cancel(request, queryset, job_services.inference_job_cancel)


@admin.register(BatchJob)
class BatchJobAdmin(_JobAdmin):
    list_display = ("id", "endpoint", "version", "input_format", "status_badge", "progress_bar", "rows_failed",
                    "attempts", "owner", "created_at", "run_time")
    list_filter = (*_JobAdmin.list_filter, "input_format")
    search_fields = (*_JobAdmin.search_fields, "filename")
    readonly_fields = ("id", "endpoint", "model_version", "priority", "status", "progress_bar", "total_rows",
                       "rows_done", "rows_failed", "row_errors", "error_code", "error", "attempts", "timeout_s",
                       "chunk_size", "input_format", "filename", "columns", "result_link", "owner", "api_key",
                       "submitted_by", "rq_job", "created_at", "started_at", "finished_at", "updated_at")
    exclude = ("rq_job_id", "input_path", "result_path", "result_bytes", "signature")

    @admin.display(description="progress")
    def progress_bar(self, obj):
        percent = round(obj.progress * 100, 1)
        failed = round(obj.rows_failed / obj.total_rows * 100, 1) if obj.total_rows else 0
        return format_html(
            '<div style="width:160px;background:#eee;border-radius:3px;display:flex;height:12px" '
            'title="{} of {} rows, {} failed">'
            '<div style="width:{}%;background:#2e7d32"></div><div style="width:{}%;background:#c62828"></div></div>'
            "<small>{}/{} ({}%)</small>",
            obj.rows_done, obj.total_rows, obj.rows_failed, max(percent - failed, 0), failed,
            obj.rows_done, obj.total_rows, percent,
        )

    @admin.display(description="result")
    def result_link(self, obj):
        if not batch_job_result_available(obj):
            return "-"
        return format_html('<a href="{}">download ({} bytes)</a>', reverse("batch-job-result", args=[obj.pk]),
                           obj.result_bytes)

    @admin.action(description="Cancel (keeps the rows done)")
    def cancel(self, request, queryset):
        self._cancel(request, queryset, batch_services.batch_job_cancel)
