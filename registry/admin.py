from collections.abc import Callable

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from core import figures
from core.admin_actions import one_object_form_action
from core.errors import ApplicationError
from registry import services, storage
from registry.admin_display import (
    badge,
    input_example_table,
    key_metrics,
    pairs_table,
    signature_table,
    validation_table,
)
from registry.forms import AliasForm, ModelVersionUploadForm
from registry.models import ModelAlias, ModelVersion, RegisteredModel, VersionStatus

# What a downloaded artifact is named after (the format was detected from its bytes at upload).
ARTIFACT_SUFFIXES = {"skops": ".skops", "pickle": ".pkl", "torchscript": ".pt", "torch_export": ".pt2",
                     "xgboost_json": ".json", "xgboost_ubj": ".ubj", "lightgbm_text": ".txt", "onnx": ".onnx"}


class AliasInline(admin.TabularInline):
    model = ModelAlias
    extra = 0
    fields = ("name", "version", "updated_at")
    readonly_fields = ("name", "version", "updated_at")
    can_delete = True

    def has_add_permission(self, request, obj=None):
        return False  # aliases are moved with the "Set alias" action, one atomic write


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ("name", "task", "last_version", "owner", "updated_at")
    list_filter = ("task",)
    search_fields = ("name", "description")
    readonly_fields = ("last_version", "created_at", "updated_at")
    inlines = [AliasInline]


class UploadForm(ModelVersionUploadForm):
    model = forms.ModelChoiceField(queryset=RegisteredModel.objects.all())
    field_order = ["model", "artifact", "flavor", "input_example", "description", "signature", "metrics", "tags"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    # Fits a laptop's width beside the filters: sizes in KB/MB, the status as a badge, the key metrics.
    list_display = ("name_and_version", "status_badge", "alias_names", "size", "key_metrics", "created")
    list_display_links = ("name_and_version",)
    list_filter = ("status", "flavor", "format", "model")
    search_fields = ("model__name", "sha256")
    readonly_fields = ("model", "version", "status_badge", "status_reason", "flavor", "format", "size",
                       "sha256", "alias_names", "signature_table", "input_example_table", "metrics_table",
                       "validation_table", "created_by", "created_by_key", "created_at", "updated_at",
                       "validated_at", "signature", "validation", "artifact_path")
    fieldsets = (
        (None, {"fields": ("model", "version", "status_badge", "status_reason", "alias_names", "flavor", "format",
                           "size", "sha256", "description")}),
        ("Signature", {"fields": ("signature_table",)}),
        ("Input example", {"fields": ("input_example_table",)}),
        ("Metrics", {"fields": ("metrics_table", "validation_table")}),
        ("Edit metrics, parameters and tags (JSON)", {"fields": ("metrics", "params", "tags"),
                                                       "classes": ("collapse",)}),
        ("Record", {"fields": ("created_by", "created_by_key", "created_at", "updated_at", "validated_at",
                               "signature", "validation", "artifact_path"), "classes": ("collapse",)}),
    )
    actions = ["validate_again", "set_alias"]
    # Set by the serving admin (inference.deployments.admin): the "Deploy" button's page for a version.
    deploy_url: Callable[[ModelVersion], str] | None = None

    class Media:
        css = {"all": ("core/admin.css",)}

    @admin.display(description="version", ordering="model__name")
    def name_and_version(self, obj):
        return str(obj)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return badge(obj.status, obj.status_reason)

    @admin.display(description="aliases")
    def alias_names(self, obj):
        return ", ".join(alias.name for alias in obj.aliases.all()) or "-"

    @admin.display(description="size", ordering="size_bytes")
    def size(self, obj):
        return figures.size(obj.size_bytes)

    @admin.display(description="key metrics")
    def key_metrics(self, obj):
        return key_metrics(obj.metrics or {})

    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return obj.created_at.strftime("%Y-%m-%d")

    @admin.display(description="signature")
    def signature_table(self, obj):
        return signature_table(obj.signature or {})

    @admin.display(description="input example")
    def input_example_table(self, obj):
        return input_example_table(obj.input_example)

    @admin.display(description="metrics")
    def metrics_table(self, obj):
        return pairs_table(obj.metrics or {}, "None recorded.")

    @admin.display(description="validation")
    def validation_table(self, obj):
        return validation_table(obj.validation or {})

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("model").prefetch_related("aliases")

    def get_urls(self):
        download = path("<int:pk>/artifact/", self.admin_site.admin_view(self.download_artifact),
                        name="registry_modelversion_artifact")
        return [download, *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = self.get_object(request, object_id)
        buttons = {}
        if version is not None:
            if self.deploy_url is not None and version.status == VersionStatus.READY:
                buttons["deploy_url"] = self.deploy_url(version)
            if request.user.has_perm("registry.download_artifact"):
                buttons["download_url"] = reverse("admin:registry_modelversion_artifact", args=[version.pk])
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **buttons})

    def download_artifact(self, request, pk: int):
        """The artifact's bytes as stored (sha256 as recorded), for staff holding registry.download_artifact."""
        if not request.user.has_perm("registry.download_artifact"):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion.objects.select_related("model"), pk=pk)
        name = f"{version.model.name}-v{version.version}{ARTIFACT_SUFFIXES.get(version.format, '.artifact')}"
        # Streamed from the store (a local file, or the S3 object's body), never read whole.
        response = FileResponse(storage.open_artifact(version.artifact_path), as_attachment=True, filename=name,
                                content_type="application/octet-stream")
        response["Content-Length"] = str(version.size_bytes)
        response["X-Content-SHA256"] = version.sha256
        return response

    def add_view(self, request, form_url="", extra_context=None):
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                version = self._create(request, form.cleaned_data)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, f"Uploaded {version}; validation runs in the background.")
                return redirect(reverse("admin:registry_modelversion_change", args=[version.pk]))
        context = {**self.admin_site.each_context(request), "form": form, "title": "Upload a model version",
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/registry/modelversion/upload.html", context)

    def _create(self, request, data):
        return services.model_version_create(
            model=data["model"], artifact=data["artifact"], flavor=data["flavor"], signature=data["signature"],
            metrics=data["metrics"], tags=data["tags"], description=data["description"],
            input_example=data.get("input_example"), created_by=request.user,
        )

    def delete_model(self, request, obj):
        services.model_version_delete(version=obj)

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.aliases.exists()

    @admin.action(description="Validate again")
    def validate_again(self, request, queryset):
        with transaction.atomic():
            for version in queryset:
                services.model_version_request_validation(version=version)
        self.message_user(request, f"Queued validation of {queryset.count()} version(s).")

    @admin.action(description="Set alias (production, staging, ...)")
    def set_alias(self, request, queryset):
        def apply(version, data):
            services.model_alias_set(model=version.model, alias=data["alias"], version_number=version.version)
            return f"{version.model.name}@{data['alias']} -> v{version.version}"

        return one_object_form_action(self, request, queryset, action="set_alias", form_class=AliasForm,
                                      template="admin/registry/modelversion/set_alias.html",
                                      title="Set an alias on {obj}", apply=apply)
