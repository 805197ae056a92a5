import re

import django_filters
from rest_framework.exceptions import ValidationError

from core.choices import ChoiceFilter
from registry.models import Flavor, ModelVersion, RegisteredModel, Task, VersionStatus

_TAG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _filter_tag(queryset, name, value):
    # "key" matches any value, "key:value" an exact one; JSON key lookups work on SQLite and Postgres.
    key, sep, expected = value.partition(":")
    # The key becomes part of an ORM lookup, so '__' (which would reach transforms) is refused.
    if not _TAG_KEY.match(key) or "__" in key:
        raise ValidationError({"tag": "Must be 'key' or 'key:value' with a key of letters, digits, '.', '-', '_'."})
    if sep:
        return queryset.filter(**{f"tags__{key}": expected})
    return queryset.filter(tags__has_key=key)


class RegisteredModelFilter(django_filters.FilterSet):
    task = ChoiceFilter(choices=Task.choices)
    tag = django_filters.CharFilter(method=lambda qs, name, value: _filter_tag(qs, name, value))
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = RegisteredModel
        fields = ["task", "tag", "name"]


class ModelVersionFilter(django_filters.FilterSet):
    status = ChoiceFilter(choices=VersionStatus.choices)
    flavor = ChoiceFilter(choices=Flavor.choices)
    tag = django_filters.CharFilter(method=lambda qs, name, value: _filter_tag(qs, name, value))

    class Meta:
        model = ModelVersion
        fields = ["status", "flavor", "tag"]
