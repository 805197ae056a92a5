"""`/` and `/api/v1/`: a small JSON index of where things are, instead of a 404."""

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.openapi import public_errors

# Route names; the links are only addresses (what they lead to keeps its own authentication).
_SITE = {"api": "api-index", "docs": "swagger-ui", "redoc": "redoc", "schema": "schema", "health": "health",
         "ready": "health-ready", "metrics": "metrics", "admin": "admin:index", "login": "rest_framework:login"}
_API = {"models": "model-list", "deployments": "deployment-list", "predict": "predict-universal",
        "jobs": "inference-job-list", "batch_jobs": "batch-job-list", "experiments": "experiment-list",
        "feedback": "feedback", "alert_rules": "alert-rule-list", "alerts": "alert-list", "token": "token-obtain"}

IndexOut = inline_serializer(name="ApiIndex", fields={
    "name": serializers.CharField(), "version": serializers.CharField(),
    "links": serializers.DictField(child=serializers.URLField()),
})


def _index(request: Request, names: dict[str, str]) -> dict[str, Any]:
    from django.conf import settings

    links = {label: request.build_absolute_uri(reverse(name)) for label, name in names.items()}
    return {"name": settings.SPECTACULAR_SETTINGS["TITLE"], "version": settings.SPECTACULAR_SETTINGS["VERSION"],
            "links": links}


class _IndexApi(APIView):
    authentication_classes: list[type] = []
    permission_classes: list[type[BasePermission]] = [AllowAny]


class RootIndexApi(_IndexApi):
    name = "Serving Platform"  # the browsable API's title and breadcrumb

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        return Response(_index(request, _SITE))


class ApiIndexApi(_IndexApi):
    name = "API v1"

    @extend_schema(tags=["index"], operation_id="api_index", auth=[], responses={200: IndexOut, **public_errors(429)},
                   description="Links to the API's resources, its documentation and the platform's health.")
    def get(self, request: Request) -> Response:
        return Response(_index(request, {**_SITE, **_API}))
