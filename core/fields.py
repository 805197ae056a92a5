from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.parsers import UnsafeText, loads_strict


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.Field[dict[str, Any], object, dict[str, Any], Any]):
    """A JSON object given either as an object (JSON bodies) or as a JSON string (multipart forms)."""

    default_error_messages = {
        "not_object": "Must be a JSON object.",
        "invalid_json": "Is not valid JSON: {error}",
    }

    def to_internal_value(self, data: object) -> dict[str, Any]:
        if isinstance(data, (str, bytes)):
            try:
                data = loads_strict(data.encode() if isinstance(data, str) else data)
            except UnsafeText as exc:  # named where it is inside the object: `tags.a`
                raise serializers.ValidationError(exc.detail) from None
            except Exception as exc:  # ParseError carries the reason
                self.fail("invalid_json", error=getattr(exc, "detail", exc))
        if not isinstance(data, dict):
            self.fail("not_object")
        return data

    def to_representation(self, value: dict[str, Any]) -> dict[str, Any]:
        return value


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
class StringMapField(JSONObjectField):
    """Tags: a flat object of string keys to string values."""

    def to_internal_value(self, data: object) -> dict[str, Any]:
        tags = super().to_internal_value(data)
        for key, value in tags.items():
            if not isinstance(value, str) or len(key) > 64 or len(value) > 256:
                raise serializers.ValidationError(
                    f"Tag '{key[:64]}' must map to a string (keys up to 64, values up to 256 characters)."
                )
        return tags
