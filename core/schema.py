from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension

if TYPE_CHECKING:  # drf_spectacular.openapi imports DRF's views, which this module is loaded before
    from drf_spectacular.openapi import AutoSchema


# drf-spectacular's __init_subclass__ (which registers the extension) is unannotated.
class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "core.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, Any]:
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}


class JwtAuthenticationScheme(SimpleJWTScheme):  # type: ignore[no-untyped-call]  # as above
    target_class = "core.auth.JwtAuthentication"
