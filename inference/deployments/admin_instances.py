"""The model server instances in the admin: which are alive, their pool, heartbeat, memory and what they hold.

Read-only: each instance writes its own row; a person has nothing to change there.
"""

from django.contrib import admin
from django.utils import timezone

from core import figures
from inference.deployments.admin_display import badge
from inference.deployments.instances import instance_is_live
from inference.models import ModelServerInstance

ADMIN_CSS = {"all": ("core/admin.css",)}


@admin.register(ModelServerInstance)
class ModelServerInstanceAdmin(admin.ModelAdmin):
    list_display = ("name", "health", "pool", "address", "heartbeat_age", "memory", "loaded_deployments")
    list_filter = ("pool",)
    search_fields = ("name", "host", "address")
    readonly_fields = ("name", "health", "pool", "address", "host", "pid", "started_at", "heartbeat_at",
                       "heartbeat_age", "memory", "loaded_deployments", "stopped_at")
    fields = readonly_fields

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("served__deployment")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="health")
    def health(self, obj: ModelServerInstance):
        if obj.stopped_at is not None:
            return badge("stopped", "stopped cleanly")
        if instance_is_live(obj):
            return badge("ready", "heartbeat within MODEL_SERVER_HEARTBEAT_TTL_S")
        return badge("failed", "no heartbeat: the process or its host is gone")

    @admin.display(description="heartbeat", ordering="-heartbeat_at")
    def heartbeat_age(self, obj: ModelServerInstance) -> str:
        return f"{(timezone.now() - obj.heartbeat_at).total_seconds():.0f} s ago"

    @admin.display(description="memory")
    def memory(self, obj: ModelServerInstance) -> str:
        return figures.megabytes(obj.memory_mb)

    @admin.display(description="loaded deployments")
    def loaded_deployments(self, obj: ModelServerInstance) -> str:
        loaded = sorted(row.deployment.endpoint for row in obj.served.all() if row.loaded)
        return ", ".join(loaded) or "-"
