"""Choice fields whose error names the valid choices:
`flavor: "scikit-learn" is not a valid choice; expected one of sklearn, torch.`

One mechanism for every place a choice is validated: serializers declare `ChoiceField`, model serializers
derive from `ModelSerializer` (its generated choice fields are ours too), filter sets declare `ChoiceFilter`.
tests/core/test_choices.py checks that no serializer or filter set of the project uses the plain ones.
"""

from collections.abc import Iterable
from typing import Any, NoReturn, cast

import django_filters
from django import forms
from django_filters import fields as filter_fields
from rest_framework import serializers

# What a refused value is echoed as, at most: the message must stay readable whatever was sent.
ECHO_CHARS = 64


def invalid_choice_message(value: object, choices: Iterable[object]) -> str:
    shown = str(value)
    if len(shown) > ECHO_CHARS:
        shown = shown[:ECHO_CHARS] + "..."
    return f'"{shown}" is not a valid choice; expected one of {", ".join(str(choice) for choice in choices)}.'


class ChoiceField(serializers.ChoiceField):
    default_error_messages = {"invalid_choice": "{message}"}

    def fail(self, key: str, **kwargs: Any) -> NoReturn:
        if key == "invalid_choice":
            kwargs = {"message": invalid_choice_message(kwargs["input"], self.choice_strings_to_values)}
        super().fail(key, **kwargs)


class ModelSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]  # generic in the stubs only
    """DRF's ModelSerializer, with the choice fields it generates from model choices listing the valid ones."""

    serializer_choice_field = ChoiceField


class ChoiceFormField(filter_fields.ChoiceField):
    def validate(self, value: Any) -> None:
        if value not in self.empty_values and not self.valid_value(value):
            valid = [key for key, _ in cast("list[tuple[Any, Any]]", self.choices) if key not in self.empty_values]
            raise forms.ValidationError(invalid_choice_message(value, valid), code="invalid_choice")
        super().validate(value)


class ChoiceFilter(django_filters.ChoiceFilter):
    field_class = ChoiceFormField
