from django import forms
from django.contrib import admin
from django.db import transaction
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from core.admin_actions import one_object_form_action
from core.errors import ApplicationError
from registry import services
from registry.forms import AliasForm, ModelVersionUploadForm, example_table
from registry.models import ModelAlias, ModelVersion, RegisteredModel


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
    list_display = ("__str__", "flavor", "format", "status", "alias_names", "short_sha256", "size_bytes",
                    "created_at")
    list_filter = ("status", "flavor", "format", "model")
    search_fields = ("model__name", "sha256")
    readonly_fields = ("model", "version", "flavor", "format", "artifact_path", "sha256", "size_bytes", "status",
                       "status_reason", "signature", "input_example_table", "validation", "created_by",
                       "created_by_key", "created_at", "updated_at", "validated_at")
    fields = readonly_fields + ("description", "metrics", "params", "tags")
    actions = ["validate_again", "set_alias"]

    @admin.display(description="aliases")
    def alias_names(self, obj):
        return ", ".join(alias.name for alias in obj.aliases.all()) or "-"

    @admin.display(description="sha256")
    def short_sha256(self, obj):
        return obj.sha256[:12]

    @admin.display(description="input example")
    def input_example_table(self, obj):
        return example_table(obj.input_example)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("model").prefetch_related("aliases")

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
