from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html_join

from core import figures
from core.admin_actions import one_object_form_action
from core.errors import ApplicationError
from inference import metrics
from inference.deployments import selectors, services
from inference.deployments.admin_display import badge, instances_table, live_table, runtime_table
from inference.deployments.admin_forms import DeploymentAddForm, DeploymentChangeForm, DeployVersionForm
from inference.deployments.instances import DeploymentInstances, deployment_instances
from inference.models import Deployment, DeploymentStatus, PlatformConfig
from registry.admin import ModelVersionAdmin

ADMIN_CSS = {"all": ("core/admin.css",)}
# Pages other apps keep about a deployment, as (label, url) pairs: the monitoring app adds its log, quality,
# drift and alerts pages (monitoring/admin.py). Serving's admin links to them without knowing them.
PAGE_LINKS: list[Callable[[Deployment], list[tuple[str, str]]]] = []


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    # Fits a laptop's width beside the navigation and the filters; load times and the rest are on each page.
    list_display = ("endpoint", "serves", "status_badge", "instances", "memory", "requests", "latency",
                    "error_rate")
    list_filter = ("status", "device", "model")
    search_fields = ("endpoint", "model__name")
    readonly_fields = ("status_badge", "status_reason", "instances_table", "generation", "live_figures",
                       "runtime_figures", "pages",
                       "created_by", "created_at", "updated_at", "stopped_at")
    actions = ["undeploy", "restart"]

    class Media:
        css = ADMIN_CSS
        js = ("inference/deployment_form.js",)

    def get_readonly_fields(self, request, obj=None):
        # An endpoint is not renamed and serves one model: deploy elsewhere instead (as the API says).
        return (*self.readonly_fields, "endpoint", "model") if obj is not None else self.readonly_fields

    def get_fieldsets(self, request, obj=None):
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            (None, {"fields": ("endpoint", "model", "model_version", "alias", "follow_alias", "ensemble")}),
            ("Serving", {"fields": ("pool", "replicas", "max_batch_size", "batch_timeout_ms", "max_queue", "timeout_ms",
                                    "max_rows", "cache_enabled", "scale_to_zero", "idle_ttl_s")}),
            ("Monitoring", {"fields": ("log_predictions", "guardrails", *(("pages",) if obj is not None else ()))}),
            ("Torch", {"fields": ("device", "torch_threads", "torch_compile", "quantize", "warmup_requests")}),
        ]
        if obj is not None:
            fieldsets.insert(0, ("State", {"fields": ("status_badge", "status_reason", "instances_table", "generation",
                                                      "live_figures", "runtime_figures")}))
            fieldsets.append(("History", {"fields": ("created_by", "created_at", "updated_at", "stopped_at"),
                                          "classes": ("collapse",)}))
        return fieldsets

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = DeploymentChangeForm if obj is not None else DeploymentAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_queryset(self, request):
        self._figures = metrics.collect()
        return super().get_queryset(request).select_related("model", "model_version", "created_by")

    def _summary(self, obj: Deployment) -> dict:
        return metrics.summary(obj.endpoint, getattr(self, "_figures", None) or metrics.collect())

    # --- columns and read-only fields -----------------------------------------------------------

    @admin.display(description="serves", ordering="model__name")
    def serves(self, obj: Deployment) -> str:
        return f"{obj.model.name} v{obj.model_version.version}" + (f" @{obj.alias}" if obj.alias else "")

    @admin.display(description="replicas")
    def instances(self, obj: Deployment) -> str:
        """Replicas ready / asked for (the model server's last report)."""
        replicas = selectors.serving_replicas(obj)
        ready = None if replicas is None else sum(r.get("state") == "ready" for r in replicas)
        return f"{figures.number(ready)}/{obj.replicas}"

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Deployment):
        summary = self._instances(obj)
        return badge(summary.status, summary.reason)

    @admin.display(description="model server instances")
    def instances_table(self, obj: Deployment):
        return instances_table(self._instances(obj).instances)

    def _instances(self, obj: Deployment) -> DeploymentInstances:
        # Summed up over the live instances as the API does: a dead instance's last word does not linger.
        return deployment_instances([obj])[obj.pk]

    @admin.display(description="memory")
    def memory(self, obj: Deployment) -> str:
        return figures.megabytes((obj.runtime or {}).get("memory_mb"))

    def requests(self, obj: Deployment) -> str:
        return figures.number(self._summary(obj)["requests"])

    @admin.display(description="p50 / p99")
    def latency(self, obj: Deployment) -> str:
        latency = self._summary(obj)["latency_ms"]
        if latency["p50"] is None:
            return figures.MISSING
        return f"{figures.ms(latency['p50']).removesuffix(' ms')} / {figures.ms(latency['p99'])}"

    @admin.display(description="errors")
    def error_rate(self, obj: Deployment) -> str:
        return figures.percent(self._summary(obj)["error_rate"])

    @admin.display(description="live figures")
    def live_figures(self, obj: Deployment):
        return live_table(self._summary(obj), obj.runtime or {})

    @admin.display(description="runtime")
    def runtime_figures(self, obj: Deployment):
        return runtime_table(obj.runtime or {})

    # --- saving through the services ------------------------------------------------------------

    @admin.display(description="pages")
    def pages(self, obj):
        links = [link for make in PAGE_LINKS for link in make(obj)] if obj.pk else []
        return format_html_join(" · ", '<a href="{}">{}</a>', ((url, label) for label, url in links)) or "-"

    def save_model(self, request, obj, form, change):
        try:
            if change:
                deployment = services.deployment_update(deployment=Deployment.objects.get(pk=obj.pk),
                                                        data=form.validated)
            else:
                deployment = services.deployment_create(**form.validated, created_by=request.user)
        except ApplicationError as exc:  # raced with another change since the form checked
            request.deployment_refused = exc.message
            return
        obj.pk = deployment.pk

    def log_addition(self, request, obj, message):
        return None if getattr(request, "deployment_refused", None) else super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        return None if getattr(request, "deployment_refused", None) else super().log_change(request, obj, message)

    def response_add(self, request, obj, post_url_continue=None):
        return self._refused(request) or super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        return self._refused(request) or super().response_change(request, obj)

    def _refused(self, request: HttpRequest) -> HttpResponse | None:
        """Only the error when the service refused: never Django's "added successfully" beside it."""
        refusal = getattr(request, "deployment_refused", None)
        if refusal is None:
            return None
        self.message_user(request, refusal, messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

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


def add_deployment_url(version) -> str:
    """The add-deployment page with this version chosen (the model version page's "Deploy" button)."""
    endpoint = f"{version.model.name}-v{version.version}"
    return (f"{reverse('admin:inference_deployment_add')}?model={version.model_id}&model_version={version.pk}"
            f"&endpoint={endpoint}")


@admin.action(description="Deploy to an endpoint")
def deploy_version(modeladmin, request, queryset):
    def apply(version, data):
        deployment = services.deployment_create(model=version.model.name, version=version.version,
                                                created_by=request.user, **data)
        return f"Deployed {deployment}; the model server loads it within seconds."

    return one_object_form_action(
        modeladmin, request, queryset.select_related("model"), action="deploy_version", form_class=DeployVersionForm,
        template="admin/inference/deploy_version.html", title="Deploy {obj}", apply=apply,
        initial=lambda version: {"endpoint": f"{version.model.name}-v{version.version}"},
    )


# Deploying is an action on a model version; the registry's admin does not know about serving.
ModelVersionAdmin.actions = [*ModelVersionAdmin.actions, deploy_version]
ModelVersionAdmin.deploy_url = staticmethod(add_deployment_url)
