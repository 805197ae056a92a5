"""Shared OpenAPI pieces so every endpoint documents the one error shape."""

from typing import Any

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


# Example bodies for the prediction routes, named after the demo models `make serve` deploys, so "Try it
# out" in the docs answers 200 as it stands. Keyed by operationId, stable wherever the views live.
_ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
_RECORD = {f"f{index}": value for index, value in enumerate(_ROW)}
_Examples = dict[str, tuple[str, dict[str, Any]]]
_REQUEST_EXAMPLES: dict[str, _Examples] = {
    "predict": {
        "rows": ("Rows of numbers (churn-logreg: 10 features)", {"inputs": [_ROW]}),
        "records": ("Objects keyed by feature name", {"inputs": [_RECORD]}),
        "text": ("Strings, for text models (sentiment-text)", {"inputs": ["what a wonderful product"]}),
        "uncertainty": ("Monte Carlo dropout (torch: demand-mlp, 8 features)",
                        {"inputs": [[1, 2, 3, 4, 5, 6, 7, 8]], "parameters": {"uncertainty": {"samples": 30}}}),
        "no_cache": ("Bypass the prediction cache", {"inputs": [_ROW], "parameters": {"cache": False}}),
    },
    "predict_explain": {"rows": ("Per-feature importance of a row", {"inputs": [_ROW]})},
    "predict_universal": {
        "production": ("By model name: its production alias", {"model": "churn-logreg", "inputs": [_ROW]}),
        "version": ("A given version", {"model": "churn-logreg", "version": 1, "inputs": [_ROW]}),
    },
    "predict_batch": {"items": ("One result (or error) per item", {"requests": [
        {"endpoint": "churn-logreg", "inputs": [_ROW]},
        {"model": "churn-logreg", "inputs": [_RECORD]},
    ]})},
    "predict_async": {"rows": ("Queued, polled at status_url", {"inputs": [_ROW], "priority": "high"})},
    "predict_score": {"pairs": ("Scores per prompt per candidate (router-scorer)", {
        "candidates": ["gpt-small", "gpt-large"], "prompts": ["prove the theorem", "write a poem about a dragon"]})},
}
_V2_INFER_EXAMPLE: _Examples = {"tensor": ("One [rows, features] tensor (churn-logreg)", {
    "id": "r1", "inputs": [{"name": "inputs", "shape": [1, 10], "datatype": "FP64", "data": _ROW}]})}


def add_request_examples(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: puts the examples above on the JSON request bodies."""
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            examples = _REQUEST_EXAMPLES.get(operation.get("operationId", "")) if isinstance(operation, dict) else None
            if examples is None and method == "post" and path.endswith("/infer"):
                examples = _V2_INFER_EXAMPLE
            content = (operation.get("requestBody") or {}).get("content", {}) if examples else {}
            if examples is not None and "application/json" in content:
                content["application/json"]["examples"] = {
                    name: {"summary": summary, "value": value} for name, (summary, value) in examples.items()}
    return result


# --- postprocessing: what the views' decorators cannot say on their own ---------------------

def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """The project's drf-spectacular postprocessing hook (POSTPROCESSING_HOOKS), after its enum names."""
    for hook in (add_request_examples, paginate_lists, closed_request_bodies):
        result = hook(result, generator, request, public)
    return result


_PAGE_SIZE_PARAMS = {"page_size"}
_OPEN_REQUESTS = ("V2", "Token", "Signature", "ColumnSpec", "TensorSpec")


def paginate_lists(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook. A list read through core.pagination answers
    `{count, next, previous, results}`, never the bare array its `Serializer(many=True)` documents, and a
    page past the last (or `page=0`) is a 404: both are written into every operation taking `page`."""
    from core.pagination import Pagination

    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for _path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            params = {p["name"]: p for p in operation.get("parameters", []) if p.get("in") == "query"}
            content = operation.get("responses", {}).get("200", {}).get("content", {}).get("application/json")
            if "page" not in params or not content or content["schema"].get("type") != "array":
                continue
            content["schema"] = _envelope(content["schema"], schemas)
            params["page"]["schema"] = {"type": "integer", "minimum": 1}
            params["page"]["description"] = "page number, from 1 (a page past the last is a 404)"
            for name in _PAGE_SIZE_PARAMS & params.keys():
                params[name]["schema"] = {"type": "integer", "minimum": 1, "maximum": Pagination.max_page_size}
                params[name]["description"] = f"items per page, 1 to {Pagination.max_page_size} (default " \
                                              f"{Pagination.page_size})"
            operation["responses"].setdefault("400", _error_response(400))  # a page size out of range
            operation["responses"].setdefault("404", _error_response(404))
    return result


def _error_response(code: int) -> dict[str, Any]:
    return {"description": _DESCRIPTIONS[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _envelope(array: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    envelope = {
        "type": "object",
        "required": ["count", "next", "previous", "results"],
        "properties": {
            "count": {"type": "integer", "minimum": 0},
            "next": {"type": "string", "format": "uri", "nullable": True},
            "previous": {"type": "string", "format": "uri", "nullable": True},
            "results": array,
        },
    }
    ref = array.get("items", {}).get("$ref", "")
    if not ref:
        return envelope
    name = f"Paginated{ref.rsplit('/', 1)[-1]}List"
    schemas[name] = envelope
    return {"$ref": f"#/components/schemas/{name}"}


# Rules between fields that a serializer's validate() enforces and its fields alone cannot describe.
_REQUEST_RULES: dict[str, dict[str, Any]] = {
    # A deployment serves a fixed version or follows an alias: exactly one of them at creation (400 otherwise),
    # at most one in a change.
    "DeploymentCreateInRequest": {"oneOf": [{"required": ["version"]}, {"required": ["alias"]}]},
    "PatchedDeploymentUpdateInRequest": {"not": {"required": ["version", "alias"]}},
}


def closed_request_bodies(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: request bodies name every field they take. core.apis.parse (and
    the prediction bodies' own check) refuse a field they do not know with a 400, so the schema says
    `additionalProperties: false` for them; the V2 protocol's and the token routes' bodies stay open."""
    for name, schema in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and not name.startswith(_OPEN_REQUESTS) and schema.get("type") == "object" \
                and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        schema.update(_REQUEST_RULES.get(name, {}))
    return result
