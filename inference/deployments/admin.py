from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from core.admin_actions import one_object_form_action
from core.errors import ApplicationError
from inference import metrics
from inference.deployments import services
from inference.models import Deployment, DeploymentStatus, PlatformConfig
from registry.admin import ModelVersionAdmin

STATUS_COLOURS = {"ready": "#2e7d32", "loading": "#f9a825", "pending": "#757575", "failed": "#c62828",
                  "stopped": "#9e9e9e"}
# Pages other apps keep about a deployment, as (label, url) pairs: the monitoring app adds its log, quality,
# drift and alerts pages (monitoring/admin.py). Serving's admin links to them without knowing them.
PAGE_LINKS: list[Callable[[Deployment], list[tuple[str, str]]]] = []


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("endpoint", "model", "version", "status_badge", "replicas", "loaded", "memory_mb", "load_ms",
                    "requests", "p50_ms", "p99_ms", "error_rate", "pages", "updated_at")
    list_filter = ("status", "device", "model")
    search_fields = ("endpoint", "model__name")
    readonly_fields = ("status", "status_reason", "generation", "runtime", "created_by", "created_at", "updated_at",
                       "stopped_at", "live_figures", "pages")
    fieldsets = (
        (None, {"fields": ("endpoint", "model", "model_version", "alias", "follow_alias", "ensemble", "weight")}),
        ("Serving", {"fields": ("replicas", "max_batch_size", "batch_timeout_ms", "max_queue", "timeout_ms",
                                "max_rows", "cache_enabled", "scale_to_zero", "idle_ttl_s")}),
        ("Monitoring", {"fields": ("log_predictions", "guardrails", "pages")}),
        ("Torch", {"fields": ("device", "torch_threads", "torch_compile", "quantize", "warmup_requests")}),
        ("State", {"fields": ("status", "status_reason", "generation", "live_figures", "runtime", "created_by",
                              "created_at", "updated_at", "stopped_at")}),
    )
    actions = ["undeploy", "restart"]

    def get_queryset(self, request):
        self._figures = metrics.collect()
        return super().get_queryset(request).select_related("model", "model_version")

    def _summary(self, obj) -> dict:
        return metrics.summary(obj.endpoint, getattr(self, "_figures", None) or metrics.collect())

    @admin.display(description="version")
    def version(self, obj):
        return obj.model_version.version

    @admin.display(description="status")
    def status_badge(self, obj):
        colour = STATUS_COLOURS.get(obj.status, "#757575")
        return format_html('<b style="color:{}" title="{}">{}</b>', colour, obj.status_reason, obj.status)

    @admin.display(boolean=True)
    def loaded(self, obj):
        return bool((obj.runtime or {}).get("loaded"))

    @admin.display(description="memory MB")
    def memory_mb(self, obj):
        return (obj.runtime or {}).get("memory_mb")

    @admin.display(description="load ms")
    def load_ms(self, obj):
        return (obj.runtime or {}).get("load_ms")

    def requests(self, obj):
        return self._summary(obj)["requests"]

    @admin.display(description="p50 ms")
    def p50_ms(self, obj):
        return self._summary(obj)["latency_ms"]["p50"]

    @admin.display(description="p99 ms")
    def p99_ms(self, obj):
        return self._summary(obj)["latency_ms"]["p99"]

    def error_rate(self, obj):
        return self._summary(obj)["error_rate"]

    @admin.display(description="live figures")
    def live_figures(self, obj):
        figures = self._summary(obj)
        runtime = obj.runtime or {}
        return format_html(
            "requests {} · errors {} · p50 {} ms · p95 {} ms · p99 {} ms · mean batch {} · cache hit rate {} · "
            "throughput {} req/s · queue {}",
            figures["requests"], figures["errors"], figures["latency_ms"]["p50"], figures["latency_ms"]["p95"],
            figures["latency_ms"]["p99"], figures["mean_batch_size"], figures["cache_hit_rate"],
            runtime.get("throughput_rps"), runtime.get("queue_depth"),
        )

    @admin.display(description="pages")
    def pages(self, obj):
        links = [link for make in PAGE_LINKS for link in make(obj)] if obj.pk else []
        return format_html_join(" · ", '<a href="{}">{}</a>', ((url, label) for label, url in links)) or "-"

    def save_model(self, request, obj, form, change):
        try:
            if change:
                data = {field: form.cleaned_data[field] for field in form.changed_data if field != "model_version"}
                if "model_version" in form.changed_data:
                    data["version"] = obj.model_version.version
                services.deployment_update(deployment=Deployment.objects.get(pk=obj.pk), data=data)
            else:
                services.deployment_create(endpoint=obj.endpoint, model=obj.model.name,
                                           version=obj.model_version.version, created_by=request.user,
                                           **{f: form.cleaned_data[f] for f in form.changed_data
                                              if f not in ("endpoint", "model", "model_version", "alias",
                                                           "ensemble", "weight")})
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    @admin.action(description="Undeploy")
    def undeploy(self, request, queryset):
        for deployment in queryset.exclude(status=DeploymentStatus.STOPPED):
            try:
                services.deployment_stop(deployment=deployment)
            except ApplicationError as exc:
                self.message_user(request, f"{deployment.endpoint}: {exc.message}", messages.ERROR)

    @admin.action(description="Restart (roll fresh workers)")
    def restart(self, request, queryset):
        for deployment in queryset.exclude(status=DeploymentStatus.STOPPED):
            services.deployment_restart(deployment=deployment)
        self.message_user(request, "Restart requested; a new generation takes over once loaded.")


@admin.register(PlatformConfig)
class PlatformConfigAdmin(admin.ModelAdmin):
    list_display = ("cache_enabled", "cache_ttl_s", "cache_capacity", "max_loaded_models", "updated_at")

    def has_add_permission(self, request):
        return not PlatformConfig.objects.exists()

    def save_model(self, request, obj, form, change):
        # Through the service: it validates, saves the one row and announces the change to every process.
        services.platform_config_update(data=form.cleaned_data)


class DeployForm(forms.Form):
    endpoint = forms.SlugField(max_length=64)
    replicas = forms.IntegerField(min_value=1, max_value=16, initial=1)
    max_batch_size = forms.IntegerField(min_value=1, max_value=4096, initial=32)
    batch_timeout_ms = forms.FloatField(min_value=0, max_value=10_000, initial=5.0)


@admin.action(description="Deploy to an endpoint")
def deploy_version(modeladmin, request, queryset):
    def apply(version, data):
        deployment = services.deployment_create(model=version.model.name, version=version.version,
                                                created_by=request.user, **data)
        return f"Deployed {deployment}; the model server loads it within seconds."

    return one_object_form_action(
        modeladmin, request, queryset.select_related("model"), action="deploy_version", form_class=DeployForm,
        template="admin/inference/deploy_version.html", title="Deploy {obj}", apply=apply,
        initial=lambda version: {"endpoint": f"{version.model.name}-v{version.version}"},
    )


# Deploying is an action on a model version; the registry's admin does not know about serving.
ModelVersionAdmin.actions = [*ModelVersionAdmin.actions, deploy_version]
