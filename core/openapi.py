"""Shared OpenAPI pieces so every endpoint documents the one error shape."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorSerializer = inline_serializer(
    name="Error",
    fields={
        "error": inline_serializer(
            name="ErrorBody",
            fields={
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "details": serializers.DictField(),
            },
        )
    },
)

_DESCRIPTIONS = {
    400: "Invalid input (the message names the field and the problem)",
    401: "Missing or invalid credentials",
    403: "The credentials lack the needed scope",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Body too large",
    415: "Unsupported content type",
    429: "Rate limited (see Retry-After)",
    503: "A dependency is unavailable (see Retry-After)",
    504: "Deadline exceeded",
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Error responses for @extend_schema; auth and throttling apply to every protected route."""
    wanted = sorted(set(codes) | {401, 403, 429})
    return {code: OpenApiResponse(ErrorSerializer, description=_DESCRIPTIONS[code]) for code in wanted}


def public_errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ErrorSerializer, description=_DESCRIPTIONS[code]) for code in codes}
