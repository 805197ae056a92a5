"""The API's documents: the OpenAPI schema and its two pages. drf-spectacular's page views render with
TemplateHTMLRenderer, which has no template for DRF's OPTIONS metadata (a 500): OPTIONS answers JSON."""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.views import APIView


def _renderers(view: APIView, default: list[BaseRenderer]) -> list[BaseRenderer]:
    return [JSONRenderer()] if view.request.method == "OPTIONS" else default


class SchemaView(SpectacularAPIView):
    def get_renderers(self) -> list[BaseRenderer]:
        return _renderers(self, super().get_renderers())


class SwaggerView(SpectacularSwaggerView):
    def get_renderers(self) -> list[BaseRenderer]:
        return _renderers(self, super().get_renderers())


class RedocView(SpectacularRedocView):
    def get_renderers(self) -> list[BaseRenderer]:
        return _renderers(self, super().get_renderers())
