"""The admin's JSON fields refuse what the API refuses: NUL and lone surrogates (core/text.py). A JSON text can
carry both as \\u escapes, and once stored they break every list that shows the row."""

from typing import Any

from django import forms
from django.contrib.admin import options
from django.db import models

from core.text import unsafe_text


class SafeJSONFormField(forms.JSONField):
    def to_python(self, value: Any) -> Any:
        converted = super().to_python(value)
        found = unsafe_text(converted)
        if found is not None:
            where = f" at {found.field}" if found.path else ""
            raise forms.ValidationError(f"{found.problem}{where}.", code="unsafe_text")
        return converted


def install() -> None:
    """Every ModelAdmin's default form field for a JSONField: the admin's own table of defaults, which each
    ModelAdmin copies when it is registered (so core/admin.py calls this before the later apps register theirs)."""
    options.FORMFIELD_FOR_DBFIELD_DEFAULTS[models.JSONField] = {"form_class": SafeJSONFormField}
