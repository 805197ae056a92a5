"""Pairwise scoring: every candidate x every prompt through a text scoring model, one score per pair.

A router asks which of several LLMs should answer each prompt; the model scores "<candidate> || <prompt>"
rows (registry.demo_models.router_row: the demo `router-scorer`). The pairs go to the deployment in
chunks of `batch_size` rows through `serving.predict_direct`, so the cache, the worker's batching,
deadlines and metrics apply to each chunk as to any prediction.

Experiments are bypassed on purpose: routing each chunk separately could mix two variants' scores
in one answer, and scores from different models are not comparable.
"""

import time
import uuid

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import InvalidInput
from core.openapi import errors
from core.parsers import SafeJSONParser
from core.permissions import PredictScope
from inference import selectors, serving
from inference.errors import DeploymentNotReady, TooManyRows

# Must match registry.demo_models.ROUTER_SEPARATOR (that module imports torch, which web processes never do).
PAIR_SEPARATOR = " || "
DEFAULT_BATCH_SIZE = 128
MAX_BATCH_SIZE = 1024
# One request may take at most this many chunks of the deployment's max_rows, and never more pairs than
# SCORE_MAX_PAIRS: candidates x prompts multiplies, so a small body could otherwise ask for millions.
MAX_CHUNKS = 64
SCORE_MAX_PAIRS = 65_536
_MAX_CANDIDATE_CHARS = 256


def pair_rows(candidates: list[str], prompts: list[str]) -> list[str]:
    """Candidate-major: the scores of one candidate are one contiguous run, in prompt order."""
    return [f"{candidate}{PAIR_SEPARATOR}{prompt}" for candidate in candidates for prompt in prompts]


def score_pairs(*, endpoint: str, candidates: list[str], prompts: list[str], batch_size: int | None = None,
                cache: bool = True, request_id: str | None = None) -> dict:
    started = time.perf_counter()
    route = _scoring_route(endpoint)
    max_rows = route.get("max_rows", 1024)
    batch_size = _batch_size(batch_size, max_rows)
    rows = pair_rows(candidates, prompts)
    limit = min(SCORE_MAX_PAIRS, max_rows * MAX_CHUNKS)
    if len(rows) > limit:
        raise TooManyRows(f"{len(candidates)} candidates x {len(prompts)} prompts = {len(rows)} pairs exceed the "
                          f"limit of {limit} per request.", details={"field": "candidates"})
    request_id = request_id or uuid.uuid4().hex
    scores, answers = [], []
    for index, start in enumerate(range(0, len(rows), batch_size)):
        answer = serving.predict_direct(serving.PredictRequest(
            endpoint=endpoint, inputs=rows[start:start + batch_size], params={} if cache else {"cache": False},
            request_id=f"{request_id}-{index}"))
        scores += _scores(endpoint, answer)
        answers.append(answer)
    _check_one_version(endpoint, answers)
    per_candidate = len(prompts)
    return {
        "request_id": request_id, "endpoint": endpoint, "model": answers[0]["model"],
        "version": answers[0]["version"],
        "scores": {name: scores[i * per_candidate:(i + 1) * per_candidate] for i, name in enumerate(candidates)},
        "pairs": len(rows), "batch_size": batch_size, "chunks": len(answers),
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def _scoring_route(endpoint: str) -> dict:
    route = serving.routes().endpoint(endpoint)
    if route is None:
        selectors.deployment_get_live(endpoint)  # 404 when there is no such deployment
        raise DeploymentNotReady(f"Endpoint '{endpoint}' is starting.", retry_after_s=2)
    if (route.get("signature") or {}).get("input_kind") != "text":
        raise InvalidInput(f"Endpoint '{endpoint}' does not take text rows; scoring needs a model that scores "
                           f"\"<candidate>{PAIR_SEPARATOR}<prompt>\" strings.", details={"field": "endpoint"})
    return route


def _batch_size(requested: int | None, max_rows: int) -> int:
    if requested is None:
        return min(DEFAULT_BATCH_SIZE, max_rows)
    if requested > max_rows:
        raise InvalidInput(f"batch_size: {requested} exceeds this deployment's max_rows of {max_rows}.",
                           details={"field": "batch_size"})
    return requested


def _scores(endpoint: str, answer: dict) -> list[float]:
    probabilities = answer.get("probabilities")
    if probabilities is not None and len(answer.get("classes") or []) == 2:
        return [row[1] for row in probabilities]  # a binary classifier scores with P(second class)
    predictions = answer["predictions"]
    if all(type(value) in (int, float) for value in predictions):
        return [float(value) for value in predictions]
    raise InvalidInput(f"Endpoint '{endpoint}' answers labels, not one number per row; scoring needs a "
                       "regression (scoring) model or a binary classifier.", details={"field": "endpoint"})


def _check_one_version(endpoint: str, answers: list[dict]) -> None:
    # A rollout between two chunks would mix two versions' scores in one answer.
    if len({answer["version"] for answer in answers}) > 1:
        raise DeploymentNotReady(f"Endpoint '{endpoint}' rolled out a new version while scoring; retry.",
                                 retry_after_s=1)


# --- API ------------------------------------------------------------------------------------------


class ScoreIn(serializers.Serializer):
    candidates = serializers.ListField(child=serializers.CharField(max_length=_MAX_CANDIDATE_CHARS), min_length=1,
                                       help_text="distinct names, e.g. the LLMs to choose between")
    prompts = serializers.ListField(child=serializers.CharField(allow_blank=True), min_length=1)
    batch_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_BATCH_SIZE,
                                          help_text=f"rows per call to the model (default {DEFAULT_BATCH_SIZE}, at "
                                                    "most the deployment's max_rows)")
    parameters = serializers.DictField(required=False, help_text='{"cache": false} bypasses the prediction cache')


class ScoreOut(serializers.Serializer):
    request_id = serializers.CharField()
    endpoint = serializers.CharField()
    model = serializers.CharField()
    version = serializers.IntegerField()
    scores = serializers.DictField(child=serializers.ListField(child=serializers.FloatField()),
                                   help_text="candidate -> one score per prompt, in the prompts' order")
    pairs = serializers.IntegerField()
    batch_size = serializers.IntegerField()
    chunks = serializers.IntegerField()
    latency_ms = serializers.FloatField()


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
        if not name.strip() or len(name) > _MAX_CANDIDATE_CHARS or PAIR_SEPARATOR.strip() in name or name in seen:
            raise InvalidInput(f"candidates[{index}]: must be a distinct, non-blank name of at most "
                               f"{_MAX_CANDIDATE_CHARS} characters without '{PAIR_SEPARATOR.strip()}'.",
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
        data = request.data
        if not isinstance(data, dict):
            raise InvalidInput("The body must be a JSON object.", details={"field": "body"})
        return Response(score_pairs(
            endpoint=endpoint, candidates=_candidates(data), prompts=_strings(data, "prompts"),
            batch_size=_requested_batch_size(data), cache=_cache(data), request_id=getattr(request, "request_id", None),
        ))
