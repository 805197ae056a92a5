"""drf-spectacular's settings (the OpenAPI document at /api/schema/ and the docs pages), kept out of settings.py
to leave that one readable. Plain data: importing it imports no Django."""
from typing import Any


def openapi_settings() -> dict[str, Any]:
    return {
        "TITLE": "Serving Platform API",
        "DESCRIPTION": "Register models, deploy versions to endpoints, serve predictions, run experiments.",
        "VERSION": "1.0.0",
        "SERVE_INCLUDE_SCHEMA": False,
        "COMPONENT_SPLIT_REQUEST": True,
        "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
        "SERVE_AUTHENTICATION": [],
        "SWAGGER_UI_DIST": "SIDECAR",
        "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
        "REDOC_DIST": "SIDECAR",
        # "Authorize" once (X-API-Key) and keep it across reloads of the docs page.
        "SWAGGER_UI_SETTINGS": {"persistAuthorization": True, "deepLinking": True},
        "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "core.openapi.postprocess"],
        # Choice sets used by several serializers get one component each, named here.
        "ENUM_NAME_OVERRIDES": {
            "JobStatusEnum": "inference.models.JobStatus",
            "JobPriorityEnum": "inference.models.JobPriority",
            "DeploymentStatusEnum": "inference.models.DeploymentStatus",
        },
    }
