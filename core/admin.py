from django.contrib import admin, messages
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from core.models import ApiKey
from core.services import api_keys_changed

# The library registers its own scope-less key model; ours (with scopes) is the only one used.
admin.site.unregister(APIKey)


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    list_display = ("prefix", "name", "scope", "owner", "created", "expiry_date", "_has_expired", "revoked")
    list_filter = ("scope", "revoked", "created")
    fields = ("name", "scope", "owner", "expiry_date", "revoked", "prefix")
    autocomplete_fields = ("owner",)

    def save_model(self, request, obj, form=None, change=False):
        # The parent shows the new key once in a message; it is never stored or shown again.
        super().save_model(request, obj, form, change)
        if change:
            api_keys_changed()
        else:
            messages.info(request, f"Send it as the header X-API-Key. Scope: {obj.scope}.")

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        api_keys_changed()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        api_keys_changed()
