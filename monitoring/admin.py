"""The monitoring pages of the admin: the prediction log (with filters), feedback, alert rules, alerts with their
notifications, and per deployment a quality page and a drift page (admin_pages.py), all linked from each
deployment (inference.deployments.admin.PAGE_LINKS); charts of traffic, errors and latency over time on the
overview and each deployment's page (admin_history.py)."""

from django.contrib import admin, messages
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from core.errors import ApplicationError
from inference.deployments.admin import PAGE_LINKS, PAGE_SECTIONS
from inference.models import Deployment
from inference.overview.views import OVERVIEW_SECTIONS
from monitoring import admin_history, admin_pages
from monitoring.models import Alert, AlertRule, DriftReport, Feedback, Notification, PredictionLog
from monitoring.services import alerts as alert_services


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PredictionLog)
class PredictionLogAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "endpoint", "version", "variant", "request_id", "subject_id", "latency_ms", "cached",
                    "answer")
    list_filter = ("endpoint", "version", "variant", "cached", "created_at")
    search_fields = ("request_id", "subject_id")
    date_hierarchy = "created_at"
    list_select_related = ()
    show_full_result_count = False  # a count over millions of rows on every page is the slow part

    @admin.display(description="answer")
    def answer(self, obj):
        return str((obj.outputs or {}).get("predictions"))[:80]


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "request_id", "label", "value")
    search_fields = ("request_id",)


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "deployment", "metric", "op", "threshold", "for_s", "window_s", "enabled", "notify",
                    "channels")
    list_filter = ("metric", "enabled", "notify")
    exclude = ("webhook_secret",)

    def channels(self, obj):
        return ", ".join(name for name, value in (("webhook", obj.webhook_url), ("email", obj.email)) if value) or "-"

    def save_model(self, request, obj, form, change):
        # Through the service: the webhook URL is checked the same way as over the API.
        data = {field: form.cleaned_data[field] for field in form.cleaned_data}
        try:
            if change:
                alert_services.alert_rule_update(rule=AlertRule.objects.get(pk=obj.pk), data=data)
            else:
                obj.pk = alert_services.alert_rule_create(**data).pk
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    def delete_model(self, request, obj):
        alert_services.alert_rule_delete(rule=obj)


class NotificationInline(admin.TabularInline):
    model = Notification
    extra = 0
    can_delete = False
    readonly_fields = ("event", "channel", "target", "status", "attempts", "last_error", "created_at", "sent_at")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("name", "endpoint", "kind", "state_badge", "value", "threshold", "started_at", "fired_at",
                    "resolved_at")
    list_filter = ("state", "kind", "endpoint", "metric")
    search_fields = ("name", "endpoint", "message")
    inlines = [NotificationInline]

    @admin.display(description="state")
    def state_badge(self, obj):
        colour = {"firing": "#c62828", "pending": "#f9a825", "resolved": "#2e7d32"}.get(obj.state, "#757575")
        return format_html('<b style="color:{}" title="{}">{}</b>', colour, obj.message, obj.state)


@admin.register(DriftReport)
class DriftReportAdmin(ReadOnlyAdmin):
    list_display = ("computed_at", "endpoint", "model_version", "reference_source", "reference_size", "window_size",
                    "drifted_features")
    list_filter = ("endpoint",)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("endpoint/<str:endpoint>/quality/", view(self.quality_view), name="monitoring_quality"),
            path("endpoint/<str:endpoint>/drift/", view(self.drift_view), name="monitoring_drift"),
            *super().get_urls(),
        ]

    def quality_view(self, request, endpoint: str):
        return admin_pages.quality_page(self.admin_site, request, endpoint)

    def drift_view(self, request, endpoint: str):
        return admin_pages.drift_page(self.admin_site, request, endpoint)


def deployment_pages(deployment: Deployment) -> list[tuple[str, str]]:
    by_endpoint = urlencode({"endpoint": deployment.endpoint})
    return [
        ("log", f"{reverse('admin:monitoring_predictionlog_changelist')}?{by_endpoint}"),
        ("quality", reverse("admin:monitoring_quality", args=[deployment.endpoint])),
        ("drift", reverse("admin:monitoring_drift", args=[deployment.endpoint])),
        ("alerts", f"{reverse('admin:monitoring_alert_changelist')}?{by_endpoint}"),
    ]


# Added once however often this module is imported (the admin's autodiscovery, tests reloading it).
if deployment_pages not in PAGE_LINKS:
    PAGE_LINKS.append(deployment_pages)
if admin_history.deployment_section not in PAGE_SECTIONS:
    PAGE_SECTIONS.append(admin_history.deployment_section)
if admin_history.overview_section not in OVERVIEW_SECTIONS:
    OVERVIEW_SECTIONS.append(admin_history.overview_section)
