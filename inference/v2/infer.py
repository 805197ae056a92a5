"""Infer requests as rows and answers as tensors: the Open Inference Protocol's side of a prediction, shared
by the Django view (apis.py) and the fast lane (inference/fastlane.py), which has no Django request."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings

from core.errors import ApplicationError, NotFound
from core.parsers import loads_strict
from inference.deployments import selectors
from inference.predict.bodies import TIMEOUT_MS_MESSAGE, timeout_ms_valid
from inference.predict.contract import PredictRequest, Route
from inference.runtime.v2 import codec as v2codec
from inference.runtime.v2 import outputs as v2outputs
from inference.runtime.v2.rows import rows_from_inputs

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
def protocol_errors() -> Iterator[None]:
    try:
        yield
    except v2codec.CodecError as exc:
        raise ProtocolError(exc.message, status=exc.status) from None


def served_version_number(name: str, route: Route | None) -> int:
    """The version the endpoint serves: the routing table's, else the live deployment's (404 if none)."""
    if route is not None:
        return route.version
    return selectors.deployment_get_live(name).model_version.version


def check_version(name: str, version: str | None, served: int) -> None:
    if version is not None and version != str(served):
        raise ModelVersionNotServed(f"Model '{name}' serves version {served}, not '{version[:32]}'.")


def read_infer_body(content_type: str, raw: bytes, *, encoding: str | None, header_length: str | None,
                    route: Route | None) -> tuple[v2codec.InferRequest, list[Any]]:
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
    with protocol_errors():
        body = v2codec.decompress(raw, encoding, max_bytes=max_bytes)
        header, binary = v2codec.split_body(body, header_length)
        infer = v2codec.parse_infer_request(loads_strict(header), binary)
        return infer, rows_from_inputs(infer.inputs, dict(route.signature) if route else None)


def predict_request(name: str, infer: v2codec.InferRequest, rows: list, *, default_id: str | None,
                    subject: str | None) -> PredictRequest:
    params: dict[str, Any] = {"cache": False} if infer.parameters.get("cache") is False else {}
    if "timeout_ms" in infer.parameters:
        timeout_ms = infer.parameters["timeout_ms"]
        if not timeout_ms_valid(timeout_ms):
            raise ProtocolError(f"parameters.timeout_ms: {TIMEOUT_MS_MESSAGE}", status=400)
        params["timeout_ms"] = timeout_ms
    return PredictRequest(endpoint=name, inputs=rows, params=params, request_id=infer.id or default_id,
                                  subject_id=subject)


def infer_reply(name: str, infer: v2codec.InferRequest, prediction: dict) -> tuple[bytes, str, int | None]:
    """(content, content type, JSON header length when binary outputs follow it)."""
    body = {"model_name": name, "model_version": str(prediction["version"]),
            "id": infer.id or prediction["request_id"],
            "parameters": {"cached": prediction["cached"],
                           **({"variant": prediction["variant"]} if "variant" in prediction else {})}}
    with protocol_errors():
        content, header_length = v2outputs.encode_response(body, v2outputs.output_tensors(prediction, infer))
    return content, "application/json" if header_length is None else "application/octet-stream", header_length


def served_version(name: str, version: str | None, route: Route | None) -> None:
    """404 unless `version` (when given) is the one the endpoint serves. Reads the database without a route."""
    if version is not None:
        check_version(name, version, served_version_number(name, route))
