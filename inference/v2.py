"""Open Inference Protocol (KServe V2) over HTTP, so Triton, KServe and MLServer clients work unchanged.

`{name}` is a deployment's endpoint and `{version}` the model version number it serves. Inference goes
through the same path as /api/v1/predict (PredictScope, experiments, cache, batching, metrics): the
tensors become rows, `serving.predict` answers, the answer becomes output tensors.

Errors on these routes, authentication and throttling included, are the protocol's
`{"error": "<message>"}` with the status our API would give (400, 401, 403, 404, 413, 415, 429, 503,
504...): an intentional exception to the platform's one error shape, for the /v2 routes only, because
protocol clients parse exactly that.
"""

import logging
from contextlib import contextmanager
from functools import cache
from importlib import metadata

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from core import health
from core.errors import ApplicationError, NotFound, to_application_error
from core.parsers import loads_strict
from core.permissions import PredictScope, Public
from inference import selectors, serving
from inference.runtime import v2codec, v2outputs
from registry.models import ModelVersion

logger = logging.getLogger(__name__)
SERVER_NAME = "servingplatform"
# Content types a V2 body may come with: tritonclient sends none, curl -d sends a form type.
_BODY_TYPES = ("", "application/json", "application/octet-stream", "application/x-www-form-urlencoded")


class ProtocolError(ApplicationError):
    code = "invalid_input"

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.status_code = status


class ModelVersionNotServed(NotFound):
    code = "version_not_served"


@contextmanager
def _protocol_errors():
    try:
        yield
    except v2codec.CodecError as exc:
        raise ProtocolError(exc.message, status=exc.status) from None


def protocol_exception_handler(exc: Exception, context: dict) -> HttpResponse:
    error = to_application_error(exc)
    if error is None:
        logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
        error = ApplicationError("Internal server error.")
        error.status_code = 500
    response = JsonResponse({"error": error.message}, status=error.status_code)
    for header, value in error.headers.items():
        response[header] = value
    return response


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


# --- OpenAPI documentation (the protocol's shapes) -----------------------------------------------

V2Error = inline_serializer(name="V2Error", fields={"error": serializers.CharField()})
_ERROR_TEXT = {
    400: "Invalid request (the message names the input and the problem)", 401: "Missing or invalid credentials",
    403: "The credentials lack the predict scope", 404: "Unknown model, or a version it does not serve",
    413: "Body or row count too large", 415: "Unsupported content type or encoding",
    429: "Rate limited (see Retry-After)", 503: "Not ready (see Retry-After)", 504: "Deadline exceeded",
}


def protocol_errors(*codes: int, public: bool = False) -> dict:
    wanted = sorted(set(codes) | (set() if public else {401, 403, 429}))
    return {code: OpenApiResponse(V2Error, description=_ERROR_TEXT[code]) for code in wanted}


class V2MetadataTensor(serializers.Serializer):
    name = serializers.CharField()
    datatype = serializers.ChoiceField(v2codec.DATATYPES)
    shape = serializers.ListField(child=serializers.IntegerField(), help_text="-1: any size (the batch)")


class V2InputTensor(serializers.Serializer):
    name = serializers.CharField()
    shape = serializers.ListField(child=serializers.IntegerField(min_value=0))
    datatype = serializers.ChoiceField(v2codec.DATATYPES)
    parameters = serializers.DictField(required=False, help_text='{"binary_data_size": N}: the data follows the '
                                                                 "JSON header as raw little-endian bytes")
    data = serializers.JSONField(required=False, help_text="row-major, flat or nested")


class V2RequestedOutput(serializers.Serializer):
    name = serializers.ChoiceField(["predict", "probabilities"])
    parameters = serializers.DictField(required=False, help_text='{"binary_data": bool, "classification": k}')


class V2InferRequest(serializers.Serializer):
    id = serializers.CharField(required=False, max_length=128, help_text="echoed in the response")
    parameters = serializers.DictField(required=False, help_text='{"binary_data_output": bool, "cache": bool}')
    inputs = V2InputTensor(many=True)
    outputs = V2RequestedOutput(many=True, required=False, help_text="default: every output")


class V2OutputTensor(serializers.Serializer):
    name = serializers.CharField()
    datatype = serializers.ChoiceField(v2codec.DATATYPES)
    shape = serializers.ListField(child=serializers.IntegerField())
    parameters = serializers.DictField(required=False, help_text='{"binary_data_size": N} for a binary output')
    data = serializers.JSONField(required=False, help_text="row-major, flat; absent for a binary output")


class V2InferResponse(serializers.Serializer):
    model_name = serializers.CharField()
    model_version = serializers.CharField()
    id = serializers.CharField()
    parameters = serializers.DictField(required=False)
    outputs = V2OutputTensor(many=True)


class V2ModelMetadata(serializers.Serializer):
    name = serializers.CharField()
    versions = serializers.ListField(child=serializers.CharField())
    platform = serializers.CharField(help_text='flavor and format, e.g. "sklearn_skops", "torch_torchscript"')
    inputs = V2MetadataTensor(many=True)
    outputs = V2MetadataTensor(many=True)


V2ServerMetadata = inline_serializer(name="V2ServerMetadata", fields={
    "name": serializers.CharField(), "version": serializers.CharField(),
    "extensions": serializers.ListField(child=serializers.CharField()),
})
V2Ready = inline_serializer(name="V2Ready", fields={"ready": serializers.BooleanField()})
V2ModelReady = inline_serializer(name="V2ModelReady", fields={
    "name": serializers.CharField(), "ready": serializers.BooleanField(),
})
_TAGS = ["v2 (Open Inference Protocol)"]
_HEADER_PARAM = OpenApiParameter(
    v2codec.HEADER_LENGTH, int, OpenApiParameter.HEADER, required=False,
    description="binary tensor data extension: the JSON header's length; binary inputs follow it",
)


# --- health and server metadata -------------------------------------------------------------------


class V2HealthLiveApi(_HealthApi):
    @extend_schema(tags=_TAGS, operation_id="v2_health_live", auth=[],
                   responses={200: inline_serializer("V2Live", {"live": serializers.BooleanField()})})
    def get(self, request):
        return _json({"live": True})


def _server_ready() -> bool:
    # The same checks as /health/ready: database, Redis, and a model server serving every deployment.
    for check in health.READINESS_CHECKS.values():
        try:
            if not check().get("ok"):
                return False
        except Exception:  # any failing dependency means not ready; /health/ready says which
            return False
    return True


class V2HealthReadyApi(_HealthApi):
    @extend_schema(tags=_TAGS, operation_id="v2_health_ready", auth=[],
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

    @extend_schema(tags=_TAGS, operation_id="v2_server_metadata", auth=[],
                   responses={200: V2ServerMetadata, **protocol_errors(429, public=True)})
    def get(self, request):
        return _json({"name": SERVER_NAME, "version": _server_version(), "extensions": list(v2codec.EXTENSIONS)})


# --- models ---------------------------------------------------------------------------------------


def _served_version_number(name: str, route: dict | None) -> int:
    """The version the endpoint serves: the routing table's, else the live deployment's (404 if none)."""
    if route is not None:
        return route["version"]
    return selectors.deployment_get_live(name).model_version.version


def _check_version(name: str, version: str | None, served: int) -> None:
    if version is not None and version != str(served):
        raise ModelVersionNotServed(f"Model '{name}' serves version {served}, not '{version[:32]}'.")


def _served_model_version(name: str, version: str | None) -> ModelVersion:
    route = serving.routes().endpoint(name)
    if route is not None:
        served = ModelVersion.objects.filter(pk=route["model_version_id"]).first()
    else:
        served = selectors.deployment_get_live(name).model_version
    if served is None:  # the routing table is a moment behind a deleted version
        raise ModelVersionNotServed(f"Model '{name}' is not being served.")
    _check_version(name, version, served.version)
    return served


class V2ModelMetadataApi(_ProtocolApi):
    permission_classes = [PredictScope]

    @extend_schema(tags=_TAGS, responses={200: V2ModelMetadata, **protocol_errors(404)},
                   description="Inputs and outputs with datatype and shape (-1: the batch dimension).")
    def get(self, request, name: str, version: str | None = None):
        served = _served_model_version(name, version)
        signature = served.signature or {}
        return _json({
            "name": name, "versions": [str(served.version)], "platform": f"{served.flavor}_{served.format}",
            "inputs": v2outputs.input_metadata(signature), "outputs": v2outputs.output_metadata(signature),
        })


def _route_ready(route: dict | None) -> bool:
    # A scaled-to-zero deployment is ready: the request that finds it idle loads it.
    return route is not None and (bool(route["sockets"]) or route["status"] == "scaled_to_zero")


class V2ModelReadyApi(_ProtocolApi):
    permission_classes = [PredictScope]

    @extend_schema(tags=_TAGS, responses={200: V2ModelReady, **protocol_errors(404),
                              503: OpenApiResponse(V2ModelReady, description='{"ready": false}')},
                   description='200 {"ready": true} when a worker serves the model; 503 {"ready": false} while '
                               "it loads, failed, or the model server is down.")
    def get(self, request, name: str, version: str | None = None):
        route = serving.routes().endpoint(name)
        _check_version(name, version, _served_version_number(name, route))
        ready = _route_ready(route) and serving.routes().supervisor_alive()
        return _json({"name": name, "ready": ready}, status=200 if ready else 503)


def _read_infer_request(request, route: dict | None) -> tuple[v2codec.InferRequest, list]:
    raw = request.body  # Django refuses a declared Content-Length past the limit (413)
    return read_infer_body(request.content_type or "", raw, encoding=request.headers.get("Content-Encoding"),
                           header_length=request.headers.get(v2codec.HEADER_LENGTH), route=route)


def read_infer_body(content_type: str, raw: bytes, *, encoding: str | None, header_length: str | None,
                    route: dict | None) -> tuple[v2codec.InferRequest, list]:
    """An infer request body (JSON, maybe followed by binary tensors) as the request and its rows.

    Shared with the prediction fast lane (inference/fastlane.py), which has no Django request.
    """
    content_type = content_type.split(";")[0].strip().lower()
    if content_type not in _BODY_TYPES and not content_type.endswith("+json"):
        raise ProtocolError(f"Unsupported content type '{content_type[:64]}'; send JSON, optionally followed "
                            "by binary tensor data.", status=415)
    max_bytes = settings.MAX_REQUEST_BYTES
    if len(raw) > max_bytes:
        raise ProtocolError(f"Request body is larger than the limit of {max_bytes} bytes.", status=413)
    with _protocol_errors():
        body = v2codec.decompress(raw, encoding, max_bytes=max_bytes)
        header, binary = v2codec.split_body(body, header_length)
        infer = v2codec.parse_infer_request(loads_strict(header), binary)
        return infer, v2codec.rows_from_inputs(infer.inputs, (route or {}).get("signature"))


def predict_request(name: str, infer: v2codec.InferRequest, rows: list, *, default_id: str | None,
                    subject: str | None) -> serving.PredictRequest:
    params = {"cache": False} if infer.parameters.get("cache") is False else {}
    return serving.PredictRequest(endpoint=name, inputs=rows, params=params, request_id=infer.id or default_id,
                                  subject_id=subject)


def infer_reply(name: str, infer: v2codec.InferRequest, prediction: dict) -> tuple[bytes, str, int | None]:
    """(content, content type, JSON header length when binary outputs follow it)."""
    body = {"model_name": name, "model_version": str(prediction["version"]),
            "id": infer.id or prediction["request_id"],
            "parameters": {"cached": prediction["cached"],
                           **({"variant": prediction["variant"]} if "variant" in prediction else {})}}
    with _protocol_errors():
        content, header_length = v2outputs.encode_response(body, v2outputs.output_tensors(prediction, infer))
    return content, "application/json" if header_length is None else "application/octet-stream", header_length


def served_version(name: str, version: str | None, route: dict | None) -> None:
    """404 unless `version` (when given) is the one the endpoint serves. Reads the database without a route."""
    if version is not None:
        _check_version(name, version, _served_version_number(name, route))


def _infer_response(name: str, infer: v2codec.InferRequest, prediction: dict) -> HttpResponse:
    content, content_type, header_length = infer_reply(name, infer, prediction)
    response = HttpResponse(content, content_type=content_type)
    if header_length is not None:
        response[v2codec.HEADER_LENGTH] = str(header_length)
    return response


class V2ModelInferApi(_ProtocolApi):
    permission_classes = [PredictScope]

    @extend_schema(
        tags=_TAGS, parameters=[_HEADER_PARAM],
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
        route = serving.routes().endpoint(name)
        served_version(name, version, route)
        infer, rows = _read_infer_request(request, route)
        prediction = serving.predict(predict_request(name, infer, rows, default_id=getattr(request, "request_id", None),
                                                     subject=request.headers.get("X-Subject-Id")))
        return _infer_response(name, infer, prediction)


def unknown_route(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any other /v2 path (repository, config, statistics...) answers 404 in the protocol's shape."""
    return JsonResponse({"error": "This server does not implement that V2 route."}, status=404)
