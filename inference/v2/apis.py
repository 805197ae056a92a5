"""Open Inference Protocol (KServe V2) over HTTP, so Triton, KServe and MLServer clients work unchanged.

`{name}` is a deployment's endpoint and `{version}` the model version number it serves. Inference goes
through the same path as /api/v1/predict (PredictScope, experiments, cache, batching, metrics): the
tensors become rows, `engine.predict` answers, the answer becomes output tensors.

Errors on these routes, authentication and throttling included, are the protocol's
`{"error": "<message>"}` with the status our API would give (400, 401, 403, 404, 413, 415, 429, 503,
504...): an intentional exception to the platform's one error shape, for the /v2 routes only, because
protocol clients parse exactly that.
"""

import logging
from functools import cache
from importlib import metadata
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from core import health
from core.errors import render_error
from core.middleware import catch_all
from core.permissions import PredictScope, Public
from inference.deployments import selectors
from inference.predict import engine
from inference.predict.contract import Route
from inference.predict.dispatch import routes
from inference.runtime.v2 import codec as v2codec
from inference.runtime.v2 import outputs as v2outputs
from inference.v2.infer import (
    ModelVersionNotServed,
    check_version,
    infer_reply,
    predict_request,
    read_infer_body,
    served_version,
    served_version_number,
)
from inference.v2.schema import (
    HEADER_PARAM,
    TAGS,
    V2InferRequest,
    V2InferResponse,
    V2ModelMetadata,
    V2ModelReady,
    V2Ready,
    V2ServerMetadata,
    protocol_errors,
)
from registry.models import ModelVersion

logger = logging.getLogger(__name__)
SERVER_NAME = "servingplatform"


def protocol_exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse:
    rendered = render_error(exc, where=context.get("view").__class__.__name__, protocol="v2")
    return JsonResponse(rendered.body, status=rendered.status, headers=rendered.headers)


def _json(body: dict, status: int = 200) -> JsonResponse:
    return JsonResponse(body, status=status)


class _ProtocolApi(APIView):
    renderer_classes = [JSONRenderer]
    # Bodies are read raw: JSON, or JSON followed by binary tensors.
    parser_classes: list = []

    def get_exception_handler(self):
        return protocol_exception_handler


class _HealthApi(_ProtocolApi):
    # Like /health: probes poll these, so no credentials and no rate limit.
    permission_classes = [Public]
    authentication_classes: list = []
    throttle_classes: list = []


# --- health and server metadata -------------------------------------------------------------------


class V2HealthLiveApi(_HealthApi):
    @extend_schema(tags=TAGS, operation_id="v2_health_live", auth=[],
                   responses={200: inline_serializer("V2Live", {"live": serializers.BooleanField()})})
    def get(self, request):
        return _json({"live": True})


def _server_ready() -> bool:
    # The same answer as /health/ready: database, Redis, the model server, not shutting down.
    return health.readiness()[0]


class V2HealthReadyApi(_HealthApi):
    @extend_schema(tags=TAGS, operation_id="v2_health_ready", auth=[],
                   responses={200: V2Ready, 503: OpenApiResponse(V2Ready, description='{"ready": false}')})
    def get(self, request):
        ready = _server_ready()
        return _json({"ready": ready}, status=200 if ready else 503)


@cache
def _server_version() -> str:
    try:
        return metadata.version(SERVER_NAME)
    except metadata.PackageNotFoundError:
        return "0"


class V2ServerMetadataApi(_ProtocolApi):
    permission_classes = [Public]
    authentication_classes: list = []

    @extend_schema(tags=TAGS, operation_id="v2_server_metadata", auth=[],
                   responses={200: V2ServerMetadata, **protocol_errors(429, public=True)})
    def get(self, request):
        return _json({"name": SERVER_NAME, "version": _server_version(), "extensions": list(v2codec.EXTENSIONS)})


# --- models ---------------------------------------------------------------------------------------


def _served_model_version(name: str, version: str | None) -> ModelVersion:
    route = routes().endpoint(name)
    if route is not None:
        served = ModelVersion.objects.filter(pk=route.model_version_id).first()
    else:
        served = selectors.deployment_get_live(name).model_version
    if served is None:  # the routing table is a moment behind a deleted version
        raise ModelVersionNotServed(f"Model '{name}' is not being served.")
    check_version(name, version, served.version)
    return served


class V2ModelMetadataApi(_ProtocolApi):
    permission_classes = [PredictScope]

    @extend_schema(tags=TAGS, responses={200: V2ModelMetadata, **protocol_errors(404)},
                   description="Inputs and outputs with datatype and shape (-1: the batch dimension).")
    def get(self, request, name: str, version: str | None = None):
        served = _served_model_version(name, version)
        signature = served.signature or {}
        return _json({
            "name": name, "versions": [str(served.version)], "platform": f"{served.flavor}_{served.format}",
            "inputs": v2outputs.input_metadata(signature), "outputs": v2outputs.output_metadata(signature),
        })


def _route_ready(route: Route | None) -> bool:
    # A scaled-to-zero deployment is ready: the request that finds it idle loads it.
    return route is not None and (bool(route.sockets) or route.status == "scaled_to_zero")


class V2ModelReadyApi(_ProtocolApi):
    permission_classes = [PredictScope]

    @extend_schema(tags=TAGS, responses={200: V2ModelReady, **protocol_errors(404),
                              503: OpenApiResponse(V2ModelReady, description='{"ready": false}')},
                   description='200 {"ready": true} when a worker serves the model; 503 {"ready": false} while '
                               "it loads, failed, or the model server is down.")
    def get(self, request, name: str, version: str | None = None):
        route = routes().endpoint(name)
        check_version(name, version, served_version_number(name, route))
        ready = _route_ready(route) and routes().supervisor_alive()
        return _json({"name": name, "ready": ready}, status=200 if ready else 503)


def _read_infer_request(request, route: Route | None) -> tuple[v2codec.InferRequest, list[Any]]:
    raw = request.body  # Django refuses a declared Content-Length past the limit (413)
    return read_infer_body(request.content_type or "", raw, encoding=request.headers.get("Content-Encoding"),
                           header_length=request.headers.get(v2codec.HEADER_LENGTH), route=route)


def _infer_response(name: str, infer: v2codec.InferRequest, prediction: dict) -> HttpResponse:
    content, content_type, header_length = infer_reply(name, infer, prediction)
    response = HttpResponse(content, content_type=content_type)
    if header_length is not None:
        response[v2codec.HEADER_LENGTH] = str(header_length)
    return response


class V2ModelInferApi(_ProtocolApi):
    permission_classes = [PredictScope]

    @extend_schema(
        tags=TAGS, parameters=[HEADER_PARAM],
        request={"application/json": V2InferRequest, "application/octet-stream": OpenApiTypes.BINARY},
        responses={(200, "application/json"): V2InferResponse,
                   (200, "application/octet-stream"): OpenApiResponse(
                       OpenApiTypes.BINARY, description=f"binary outputs requested: the JSON header "
                                                        f"({v2codec.HEADER_LENGTH} bytes), then the outputs"),
                   **protocol_errors(400, 404, 413, 415, 503, 504)},
        description="Inputs: one tensor with the whole batch ([n, k] numbers, or [n] BYTES for text models), or "
                    "one [n] tensor per feature named after it. Outputs: `predict` (labels or values) and, for "
                    "classifiers, `probabilities` [n, classes]. Same auth, experiments, cache and batching as "
                    "/api/v1/predict.",
    )
    def post(self, request, name: str, version: str | None = None):
        route = routes().endpoint(name)
        served_version(name, version, route)
        infer, rows = _read_infer_request(request, route)
        prediction = engine.predict(predict_request(name, infer, rows, default_id=getattr(request, "request_id", None),
                                                     subject=request.headers.get("X-Subject-Id")))
        return _infer_response(name, infer, prediction)


@catch_all
def unknown_route(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any other /v2 path (repository, config, statistics...) answers 404 in the protocol's shape."""
    return JsonResponse({"error": "This server does not implement that V2 route."}, status=404)
