from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.auth.models import AnonymousUser
from django.db.models import Model, QuerySet
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.settings import api_settings

from core.pagination import PAGE_QUERY
from core.parsers import check_form

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django_filters import FilterSet
    from rest_framework.request import Request

_M = TypeVar("_M", bound=Model)


def check_query(request: Request, known: Iterable[str]) -> None:
    """A 400 naming each query parameter the route does not take, as `parse` does for body fields: a misspelt
    filter (`?statu=failed`) would otherwise answer 200 with everything."""
    check_form(request.query_params.lists())  # NUL in a filter's value: PostgreSQL refuses it (a 500)
    known = list(known)
    allowed = {*known, api_settings.URL_FORMAT_OVERRIDE}  # ?format=json: DRF's own, on every route
    unknown = {key: [unknown_message(key, known, what="query parameter")]
               for key in request.query_params if key not in allowed}
    if unknown:
        raise ValidationError(unknown)


def parse_query(serializer_class: type[serializers.Serializer[Any]], request: Request, *,
                also: Iterable[str] = ()) -> dict[str, Any]:
    """A route's query parameters read through a serializer: unknown ones refused as check_query refuses them
    (the page's and DRF's `format` aside, which are not the serializer's), then the serializer's checks."""
    fields = list(serializer_class().fields)
    check_query(request, [*fields, *also])
    return parse(serializer_class, {key: value for key, value in request.query_params.dict().items()
                                    if key in fields})


def filter_queryset(filterset_class: type[FilterSet], request: Request, queryset: QuerySet[_M], *,
                    also: Iterable[str] = PAGE_QUERY) -> QuerySet[_M]:
    """Applies an explicit FilterSet; unknown parameters (other than its filters and `also`, by default the
    page's) and unknown values are a 400, never passed through to the ORM."""
    check_query(request, [*filterset_class.base_filters, *also])
    filterset = filterset_class(request.query_params, queryset=queryset, request=request)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    filtered: QuerySet[_M] = filterset.qs
    return filtered


def parse(serializer_class: type[serializers.Serializer[Any]], data: object, **kwargs: Any) -> dict[str, Any]:
    """The validated data, or a 400 naming every bad field.

    A field the serializer does not know is an error, not ignored: a misspelt knob (`max_batchsize`)
    would otherwise answer 200 and change nothing. A serializer's `unknown_hints` ({field: message}) says
    more about fields a client may expect to be writable (a deployment's endpoint).
    """
    serializer = serializer_class(data=data, **kwargs)
    valid = serializer.is_valid()
    unknown = unknown_fields(serializer, data)
    if not valid or unknown:
        raise ValidationError({**unknown, **(serializer.errors if not valid else {})})
    validated: dict[str, Any] = serializer.validated_data
    return validated


def unknown_fields(serializer: serializers.Serializer[Any], data: object) -> dict[str, Any]:
    """{name: [message]} for each key of `data` (and of nested objects) that `serializer` does not define."""
    if not isinstance(data, Mapping):
        return {}
    fields, hints = serializer.fields, getattr(serializer, "unknown_hints", {})
    errors: dict[str, Any] = {}
    for key in data.keys():
        field = fields.get(key)
        if field is None:
            errors[key] = [hints.get(key) or unknown_message(key, [n for n, f in fields.items() if not f.read_only])]
        elif nested := _nested_unknown(field, data[key]):
            errors[key] = nested
    return errors


def unknown_message(key: str, known: Iterable[str], *, what: str = "field") -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"Unknown {what}; did you mean '{close[0]}'?" if close else \
        f"Unknown {what}; expected one of: {', '.join(sorted(known))}."


def _nested_unknown(field: serializers.Field[Any, Any, Any, Any], value: object) -> dict[Any, Any]:
    if isinstance(field, serializers.ListSerializer) and isinstance(field.child, serializers.Serializer):
        if not isinstance(value, list):
            return {}
        per_item = {index: unknown_fields(field.child, item) for index, item in enumerate(value)}
        return {index: errors for index, errors in per_item.items() if errors}
    if isinstance(field, serializers.Serializer):
        return unknown_fields(field, value)
    return {}


def request_user(request: Request) -> AbstractBaseUser | None:
    """The Django user behind a request, or None (API keys authenticate as a user without a pk)."""
    user = request.user
    return user if not isinstance(user, AnonymousUser) and getattr(user, "pk", None) else None
