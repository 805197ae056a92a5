from __future__ import annotations

from typing import cast

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import AbstractAPIKey, APIKey

from core import admin_fields
from core.login import AdminLoginForm
from core.models import ApiKey
from core.services import api_keys_changed

# The library registers its own scope-less key model; ours (with scopes) is the only one used.
admin.site.unregister(APIKey)
# Before the apps after `core` register their admins: their JSON fields refuse NUL and lone surrogates.
admin_fields.install()
# Wrong passwords count per address and per username; too many lock the login out (core/lockout.py).
admin.site.login_form = AdminLoginForm


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    # The library leaves these unannotated, so its tuples' exact lengths became their types.
    list_display = ("prefix", "name", "scope", "owner", "created", "expiry_date",  # type: ignore[assignment]
                    "_has_expired", "revoked")
    list_filter = ("scope", "revoked", "created")  # type: ignore[assignment]
    fields = ("name", "scope", "owner", "expiry_date", "revoked", "prefix")
    autocomplete_fields = ("owner",)

    def save_model(self, request: HttpRequest, obj: AbstractAPIKey, form: ModelForm[ApiKey] | None = None,
                   change: bool = False) -> None:
        # The parent shows the new key once in a message; it is never stored or shown again.
        super().save_model(request, obj, form, change)
        if change:
            api_keys_changed()
        else:
            messages.info(request, f"Send it as the header X-API-Key. Scope: {cast(ApiKey, obj).scope}.")

    def delete_model(self, request: HttpRequest, obj: ApiKey) -> None:
        super().delete_model(request, obj)
        api_keys_changed()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        super().delete_queryset(request, queryset)
        api_keys_changed()
