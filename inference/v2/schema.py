"""The Open Inference Protocol's shapes for the OpenAPI document (the codec, inference.runtime.v2, reads and
writes the bodies themselves)."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

from core.choices import ChoiceField
from inference.runtime.v2 import codec as v2codec

V2Error = inline_serializer(name="V2Error", fields={"error": serializers.CharField()})
ERROR_TEXT = {
    400: "Invalid request (the message names the input and the problem)", 401: "Missing or invalid credentials",
    403: "The credentials lack the predict scope", 404: "Unknown model, or a version it does not serve",
    413: "Body or row count too large", 415: "Unsupported content type or encoding",
    429: "Rate limited (see Retry-After)", 503: "Not ready (see Retry-After)", 504: "Deadline exceeded",
}


def protocol_errors(*codes: int, public: bool = False) -> dict:
    wanted = sorted(set(codes) | (set() if public else {401, 403, 429}))
    return {code: OpenApiResponse(V2Error, description=ERROR_TEXT[code]) for code in wanted}


class V2MetadataTensor(serializers.Serializer):
    name = serializers.CharField()
    datatype = ChoiceField(v2codec.DATATYPES)
    shape = serializers.ListField(child=serializers.IntegerField(), help_text="-1: any size (the batch)")


class V2InputTensor(serializers.Serializer):
    name = serializers.CharField()
    shape = serializers.ListField(child=serializers.IntegerField(min_value=0))
    datatype = ChoiceField(v2codec.DATATYPES)
    parameters = serializers.DictField(required=False, help_text='{"binary_data_size": N}: the data follows the '
                                                                 "JSON header as raw little-endian bytes")
    # A field named `data`: DRF's metaclass moves declared fields off the class, so Serializer.data stays a property.
    data = serializers.JSONField(required=False, help_text="row-major, flat or nested")  # type: ignore[assignment]


class V2RequestedOutput(serializers.Serializer):
    name = ChoiceField(["predict", "probabilities"])
    parameters = serializers.DictField(required=False, help_text='{"binary_data": bool, "classification": k}')


class V2InferRequest(serializers.Serializer):
    id = serializers.CharField(required=False, max_length=128, help_text="echoed in the response")
    parameters = serializers.DictField(
        required=False,
        help_text='{"binary_data_output": bool, "cache": bool, "timeout_ms": N (a deadline shorter than the '
                  "deployment's)}")
    inputs = V2InputTensor(many=True)
    outputs = V2RequestedOutput(many=True, required=False, help_text="default: every output")


class V2OutputTensor(serializers.Serializer):
    name = serializers.CharField()
    datatype = ChoiceField(v2codec.DATATYPES)
    shape = serializers.ListField(child=serializers.IntegerField())
    parameters = serializers.DictField(required=False, help_text='{"binary_data_size": N} for a binary output')
    # As in V2InputTensor: a field, not Serializer.data.
    data = serializers.JSONField(required=False, help_text="row-major, flat; absent for a binary output")  # type: ignore[assignment]


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
TAGS = ["v2 (Open Inference Protocol)"]
HEADER_PARAM = OpenApiParameter(
    v2codec.HEADER_LENGTH, int, OpenApiParameter.HEADER, required=False,
    description="binary tensor data extension: the JSON header's length; binary inputs follow it",
)
