"""The prediction routes Django answers (the fast lane, inference/fastlane.py, answers the common case of the
first three with the same checks): by endpoint, universal (a model version through any deployment serving it),
batch, explain and pairwise scoring."""

import time

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApplicationError, InvalidInput, client_error, render_error
from core.openapi import errors
from core.parsers import SafeJSONParser, json_object
from core.permissions import PredictScope
from inference.predict import engine
from inference.predict.bodies import (
    BATCH_ITEM_FIELDS,
    EXPLAIN_PARAMETERS,
    UNIVERSAL_FIELDS,
    only_known,
    predict_request,
    universal_ref,
)
from inference.predict.contract import PredictRequest
from inference.predict.dispatch import endpoint_for_version
from inference.predict.many import predict_many
from inference.predict.scoring import MAX_BATCH_SIZE, MAX_CANDIDATE_CHARS, PAIR_SEPARATOR, score_pairs
from inference.predict.serializers import (
    BatchPredictIn,
    BatchPredictOut,
    ExplainIn,
    ExplainOut,
    PredictIn,
    PredictOut,
    ScoreIn,
    ScoreOut,
    UniversalPredictIn,
)
from registry import selectors as registry_selectors

PREDICT_ERRORS = errors(400, 404, 413, 415, 503, 504)


class _PredictApi(APIView):
    permission_classes = [PredictScope]
    parser_classes = [SafeJSONParser]


def _body(request) -> dict:
    return json_object(request.data)


def _predict_request(endpoint: str, data: dict, request, *, suffix: str = "", **accepts) -> PredictRequest:
    default_id = f"{getattr(request, 'request_id', '')}{suffix}" or None
    return predict_request(endpoint, data, subject=request.headers.get("X-Subject-Id"), default_id=default_id,
                           **accepts)


# A typed model's inputs (a version's signature.columns): records or columns, strings for string columns and
# null for a missing value in a nullable one.
PREDICT_EXAMPLES = [
    OpenApiExample("Records (a DataFrame's rows)", request_only=True,
                   value={"inputs": [{"country": "fr", "age": 31, "income": 42000.0},
                                     {"country": "de", "age": 55, "income": None}]}),
    OpenApiExample("Columns (a DataFrame's columns)", request_only=True,
                   value={"inputs": {"country": ["fr", "de"], "age": [31, 55], "income": [42000.0, None]}}),
    OpenApiExample("Rows of numbers", request_only=True, value={"inputs": [[0.1, 0.2, 0.3, 0.4]]}),
]


class PredictApi(_PredictApi):
    @extend_schema(tags=["predict"], operation_id="predict", request=PredictIn, examples=PREDICT_EXAMPLES,
                   responses={200: PredictOut, **PREDICT_ERRORS})
    def post(self, request, endpoint: str):
        return Response(engine.predict(_predict_request(endpoint, _body(request), request)))


class ExplainApi(_PredictApi):
    @extend_schema(tags=["predict"], operation_id="predict_explain", request=ExplainIn,
                   responses={200: ExplainOut, **PREDICT_ERRORS},
                   description="Per-feature importance by ablation: each feature replaced by the baseline row's "
                               "value (zeros unless `parameters.baseline` is given); tree and linear models also "
                               "report their built-in importances.")
    def post(self, request, endpoint: str):
        data = _body(request)
        return Response(engine.explain(_predict_request(endpoint, data, request, parameters=EXPLAIN_PARAMETERS)))


def universal_endpoint(data: dict) -> str:
    """The live endpoint serving the body's model version."""
    model_name, ref = universal_ref(data)
    return endpoint_for_version(registry_selectors.model_version_id_cached(model_name, ref), model_name, ref)


class UniversalPredictApi(_PredictApi):
    @extend_schema(tags=["predict"], operation_id="predict_universal", request=UniversalPredictIn,
                   responses={200: PredictOut, **PREDICT_ERRORS},
                   description="Predicts with a model version (default: the `production` alias) through any live "
                               "deployment that serves it.")
    def post(self, request):
        data = _body(request)
        only_known(data, UNIVERSAL_FIELDS)
        endpoint = universal_endpoint(data)
        return Response(engine.predict(_predict_request(endpoint, data, request, fields=None)))


def _batch_request(index: int, item, request) -> PredictRequest | ApplicationError:
    try:
        if not isinstance(item, dict):
            raise InvalidInput("Each request must be a JSON object.", details={"field": f"requests[{index}]"})
        only_known(item, BATCH_ITEM_FIELDS)
        return _predict_request(_batch_item_endpoint(item), item, request, suffix=f"-{index}", fields=None)
    except Exception as exc:  # one bad item never fails the rest; each carries its own error
        return client_error(exc, where="a batch item")


def _batch_outcomes(items: list, request) -> list[dict | ApplicationError]:
    parsed = [_batch_request(index, item, request) for index, item in enumerate(items)]
    predicted = iter(predict_many([entry for entry in parsed if isinstance(entry, PredictRequest)]))
    return [next(predicted) if isinstance(entry, PredictRequest) else entry for entry in parsed]


def _batch_result(index: int, outcome: dict | ApplicationError) -> dict:
    if isinstance(outcome, ApplicationError):
        rendered = render_error(outcome, where="a batch item")
        return {"index": index, "ok": False, "status": rendered.status, **rendered.body}
    return {"index": index, "ok": True, "result": outcome}


def _batch_item_endpoint(item: dict) -> str:
    endpoint = item.get("endpoint")
    if endpoint is None:
        return universal_endpoint(item)
    if not isinstance(endpoint, str) or not endpoint:
        raise ValidationError({"endpoint": ["Must be an endpoint's name (a non-empty string)."]})
    if item.keys() & {"model", "version", "alias"}:
        raise ValidationError({"endpoint": ["Give either 'endpoint' or 'model' (with 'version' or 'alias'), "
                                            "not both."]})
    return endpoint


class BatchPredictApi(_PredictApi):
    @extend_schema(tags=["predict"], operation_id="predict_batch", request=BatchPredictIn,
                   responses={200: BatchPredictOut, **errors(400, 413, 415)})
    def post(self, request):
        started = time.perf_counter()
        body = _body(request)
        only_known(body, frozenset({"requests"}))
        items = body.get("requests")
        if not isinstance(items, list) or not items or len(items) > 256:
            raise ValidationError({"requests": ["Must be a list of 1 to 256 requests."]})
        results = [_batch_result(index, outcome) for index, outcome in enumerate(_batch_outcomes(items, request))]
        succeeded = sum(1 for result in results if result["ok"])
        return Response({"results": results, "count": len(results), "succeeded": succeeded,
                         "success_rate": round(succeeded / len(results), 4),
                         "total_ms": round((time.perf_counter() - started) * 1000, 3)})




def _strings(data: dict, field: str) -> list[str]:
    # By hand: DRF's CharField would turn 1 into "1", and a score for the wrong name is worse than a 400.
    value = data.get(field)
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{field}: must be a non-empty list of strings.", details={"field": field})
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidInput(f"{field}[{index}]: must be a string.", details={"field": field, "index": index})
    return value


def _candidates(data: dict) -> list[str]:
    candidates = _strings(data, "candidates")
    seen: set[str] = set()
    for index, name in enumerate(candidates):
        if not name.strip() or len(name) > MAX_CANDIDATE_CHARS or PAIR_SEPARATOR.strip() in name or name in seen:
            raise InvalidInput(f"candidates[{index}]: must be a distinct, non-blank name of at most "
                               f"{MAX_CANDIDATE_CHARS} characters without '{PAIR_SEPARATOR.strip()}'.",
                               details={"field": "candidates", "index": index})
        seen.add(name)
    return candidates


def _requested_batch_size(data: dict) -> int | None:
    value = data.get("batch_size")
    if value is not None and (type(value) is not int or not 1 <= value <= MAX_BATCH_SIZE):
        raise InvalidInput(f"batch_size: must be an integer from 1 to {MAX_BATCH_SIZE}.",
                           details={"field": "batch_size"})
    return value


def _cache(data: dict) -> bool:
    parameters = data.get("parameters")
    if parameters is None:
        return True
    if not isinstance(parameters, dict):
        raise InvalidInput("parameters: must be a JSON object.", details={"field": "parameters"})
    return parameters.get("cache") is not False


class PredictScoreApi(APIView):
    permission_classes = [PredictScope]
    parser_classes = [SafeJSONParser]

    @extend_schema(tags=["predict"], operation_id="predict_score", request=ScoreIn,
                   responses={200: ScoreOut, **errors(400, 404, 413, 415, 503, 504)},
                   description="Scores every candidate against every prompt with a text scoring model whose rows "
                               f"are \"<candidate>{PAIR_SEPARATOR}<prompt>\" (the demo `router-scorer`). The pairs "
                               "go through the deployment's batching in chunks of `batch_size`.")
    def post(self, request, endpoint: str):
        data = json_object(request.data)
        return Response(score_pairs(
            endpoint=endpoint, candidates=_candidates(data), prompts=_strings(data, "prompts"),
            batch_size=_requested_batch_size(data), cache=_cache(data), request_id=getattr(request, "request_id", None),
        ))
