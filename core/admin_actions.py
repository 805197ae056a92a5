"""An admin action on exactly one object that asks for a few fields on an intermediate page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from core.errors import ApplicationError

_M = TypeVar("_M", bound=Model)


def one_object_form_action(modeladmin: admin.ModelAdmin[_M], request: HttpRequest, queryset: QuerySet[_M], *,
                           action: str, form_class: type[forms.Form], template: str, title: str,
                           apply: Callable[[_M, dict[str, Any]], str],
                           initial: Callable[[_M], dict[str, Any]] | None = None) -> TemplateResponse | None:
    """Shows `form_class` for the selected object; on a valid POST calls `apply(obj, data)` (a service)
    and reports its message, or the ApplicationError it raised."""
    if queryset.count() != 1:
        name = modeladmin.model._meta.verbose_name
        modeladmin.message_user(request, f"Select exactly one {name} for this action.", messages.ERROR)
        return None
    obj = queryset.get()
    form = form_class(request.POST if "apply" in request.POST else None, initial=initial(obj) if initial else None)
    if form.is_valid():
        try:
            modeladmin.message_user(request, apply(obj, form.cleaned_data))
        except ApplicationError as exc:
            modeladmin.message_user(request, exc.message, messages.ERROR)
        return None
    context = {**modeladmin.admin_site.each_context(request), "form": form, "object": obj, "version": obj,
               "title": title.format(obj=obj), "opts": modeladmin.model._meta, "action": action,
               "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME}
    return TemplateResponse(request, template, context)
