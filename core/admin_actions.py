"""An admin action on exactly one object that asks for a few fields on an intermediate page."""

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from core.errors import ApplicationError


def one_object_form_action(modeladmin, request, queryset, *, action: str, form_class: type[forms.Form],
                           template: str, title: str, apply: Callable[[object, dict], str], initial=None):
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
               "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME}
    return TemplateResponse(request, template, context)
