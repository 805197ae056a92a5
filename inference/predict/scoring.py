"""Pairwise scoring: every candidate x every prompt through a text scoring model, one score per pair.

A router asks which of several LLMs should answer each prompt; the model scores "<candidate> || <prompt>"
rows (demo.training.router_row: the demo `router-scorer`). The pairs go to the deployment in
chunks of `batch_size` rows through `engine.predict_direct`, so the cache, the worker's batching,
deadlines and metrics apply to each chunk as to any prediction.

Experiments are bypassed on purpose: routing each chunk separately could mix two variants' scores
in one answer, and scores from different models are not comparable.
"""

import time
import uuid

from core.errors import InvalidInput
from inference.errors import DeploymentNotReady, TooManyRows
from inference.predict.contract import PredictRequest, Route
from inference.predict.dispatch import route_for, routes
from inference.predict.engine import predict_direct

# Must match demo.training.ROUTER_SEPARATOR (that module imports torch, which web processes never do).
PAIR_SEPARATOR = " || "
DEFAULT_BATCH_SIZE = 128
MAX_BATCH_SIZE = 1024
# One request may take at most this many chunks of the deployment's max_rows, and never more pairs than
# SCORE_MAX_PAIRS: candidates x prompts multiplies, so a small body could otherwise ask for millions.
MAX_CHUNKS = 64
SCORE_MAX_PAIRS = 65_536
MAX_CANDIDATE_CHARS = 256


def pair_rows(candidates: list[str], prompts: list[str]) -> list[str]:
    """Candidate-major: the scores of one candidate are one contiguous run, in prompt order."""
    return [f"{candidate}{PAIR_SEPARATOR}{prompt}" for candidate in candidates for prompt in prompts]


def score_pairs(*, endpoint: str, candidates: list[str], prompts: list[str], batch_size: int | None = None,
                cache: bool = True, request_id: str | None = None) -> dict:
    started = time.perf_counter()
    route = _scoring_route(endpoint)
    max_rows = route.max_rows
    batch_size = _batch_size(batch_size, max_rows)
    rows = pair_rows(candidates, prompts)
    limit = min(SCORE_MAX_PAIRS, max_rows * MAX_CHUNKS)
    if len(rows) > limit:
        raise TooManyRows(f"{len(candidates)} candidates x {len(prompts)} prompts = {len(rows)} pairs exceed the "
                          f"limit of {limit} per request.", details={"field": "candidates"})
    request_id = request_id or uuid.uuid4().hex
    scores, answers = [], []
    for index, start in enumerate(range(0, len(rows), batch_size)):
        answer = predict_direct(PredictRequest(
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


def _scoring_route(endpoint: str) -> Route:
    # Without a route, route_for says why (404 for no such deployment, else 503) or finds one just written.
    route = routes().endpoint(endpoint) or route_for(endpoint)
    if route.signature.get("input_kind") != "text":
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
