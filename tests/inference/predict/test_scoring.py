"""Pairwise scoring: POST /api/v1/predict/{endpoint}/score through the real prediction path."""

import functools
import json
import pathlib
import tempfile
from pathlib import Path

import pytest
from django.test import TestCase

from inference.deployments.services import deployment_create
from inference.predict.scoring import PAIR_SEPARATOR, pair_rows
from registry import services as registry_services
from tests.factories import key_client, make_model
from tests.inference.live import LiveServerTestCase, toy_version

TEXT_SIGNATURE = {"input_kind": "text", "n_features": None, "feature_names": None, "classes": None,
                  "inputs": [{"name": "inputs", "dtype": "string", "shape": [-1]}],
                  "outputs": [{"name": "predictions", "dtype": "float64", "shape": [-1]}]}
CANDIDATES = ["gpt-small", "gpt-large", "llama-8b"]
PROMPTS = ["hi", "prove the theorem", "a", "translate this idiom to french", "poem", "x" * 40, "sql bug"]
SLOPE, BIAS = 0.5, 1.0


def text_version(model, **config):
    """A toy text scorer: the score of a row is BIAS + SLOPE * len(row) (tests/inference/runtime/toy_runtime.py)."""
    version = toy_version(model, weights=(SLOPE,), bias=BIAS, text=True, **config)
    version.signature = TEXT_SIGNATURE
    version.save(update_fields=["signature"])
    return version


def toy_score(candidate: str, prompt: str) -> float:
    return BIAS + SLOPE * len(f"{candidate}{PAIR_SEPARATOR}{prompt}")


def score(client, endpoint: str, body):
    return client.post(f"/api/v1/predict/{endpoint}/score", json.dumps(body), content_type="application/json")


def test_rows_are_built_exactly_as_the_demo_router_scorer_was_trained():
    from demo.training import ROUTER_SEPARATOR, router_row

    assert PAIR_SEPARATOR == ROUTER_SEPARATOR
    assert pair_rows(["a", "b"], ["p1", "p2", "p3"]) == [router_row(c, p) for c in "ab" for p in ("p1", "p2", "p3")]


class ScoreRequestTests(TestCase):
    """Refusals that need no model server."""

    @classmethod
    def setUpTestData(cls):
        toy_version(make_model("scorer", task="regression"), weights=(SLOPE,))
        deployment_create(endpoint="idle", model="scorer", version=1)

    def setUp(self):
        self.client = key_client("predict")

    def refused(self, body, field: str, status: int = 400):
        response = score(self.client, "idle", body)
        self.assertEqual(response.status_code, status, response.content)
        error = response.json()["error"]
        self.assertTrue(error["message"].startswith(field), error["message"])
        self.assertEqual(error["details"]["field"], field)

    def test_bad_candidates_prompts_and_batch_sizes_are_400_naming_the_field(self):
        ok = {"candidates": ["a"], "prompts": ["p"]}
        for candidates in (None, [], "a", ["a", 1], ["a", "a"], [" "], ["a || b"], ["x" * 257]):
            self.refused({**ok, "candidates": candidates}, "candidates")
        for prompts in (None, [], "p", ["p", None], [["p"]]):
            self.refused({**ok, "prompts": prompts}, "prompts")
        for batch_size in (0, 1025, -1, "5", True, 1.5):
            self.refused({**ok, "batch_size": batch_size}, "batch_size")
        self.refused({**ok, "parameters": []}, "parameters")
        response = score(self.client, "idle", ["a"])
        self.assertEqual((response.status_code, response.json()["error"]["details"]), (400, {"field": "body"}))

    def test_unknown_endpoints_are_404_and_unloaded_ones_503(self):
        body = {"candidates": ["a"], "prompts": ["p"]}
        missing = score(self.client, "nope", body)
        self.assertEqual((missing.status_code, missing.json()["error"]["code"]), (404, "endpoint_not_found"))
        idle = score(self.client, "idle", body)
        self.assertEqual(idle.status_code, 503)
        self.assertIn("Retry-After", idle)

    def test_a_predict_key_is_required(self):
        from rest_framework.test import APIClient

        self.assertEqual(score(APIClient(), "idle", {"candidates": ["a"], "prompts": ["p"]}).status_code, 401)


class ScoringTests(LiveServerTestCase):
    def setUp(self):
        super().setUp()
        self.record = Path(tempfile.mkdtemp(prefix="scoring-")) / "batches.log"
        text_version(make_model("router", task="regression"), record=str(self.record))
        toy_version(make_model("tabular", task="regression"), weights=(1.0, 2.0))
        manage = key_client("manage")
        for endpoint, model, knobs in (("router", "router", {"max_rows": 16, "max_batch_size": 64,
                                                             "batch_timeout_ms": 0, "warmup_requests": 0}),
                                       ("tabular", "tabular", {})):
            created = manage.post("/api/v1/deployments/", {"endpoint": endpoint, "model": model, "version": 1,
                                                            **knobs}, format="json")
            self.assertEqual(created.status_code, 201, created.content)
        self.wait_ready("router")
        self.wait_ready("tabular")
        self.client = key_client("predict")

    def batch_sizes(self) -> list[int]:
        return [int(line.split()[0]) for line in self.record.read_text().splitlines()] if self.record.exists() else []

    def test_scores_keep_order_use_chunks_of_batch_size_and_equal_one_by_one_predictions(self):
        response = score(self.client, "router", {"candidates": CANDIDATES, "prompts": PROMPTS, "batch_size": 5,
                                                 "parameters": {"cache": False}})
        self.assertEqual(response.status_code, 200, response.content)
        body = response.json()
        self.assertEqual(self.batch_sizes(), [5, 5, 5, 5, 1])  # 21 pairs, each chunk one call to the model
        self.assertEqual((body["pairs"], body["chunks"], body["batch_size"]), (21, 5, 5))
        self.assertEqual((body["endpoint"], body["model"], body["version"]), ("router", "router", 1))
        self.assertEqual(list(body["scores"]), CANDIDATES)
        for candidate in CANDIDATES:
            self.assertEqual(body["scores"][candidate], [toy_score(candidate, prompt) for prompt in PROMPTS])

        one_by_one = {
            candidate: [self.client.post("/api/v1/predict/router", {"inputs": [f"{candidate}{PAIR_SEPARATOR}{p}"],
                                                                    "parameters": {"cache": False}},
                                         format="json").json()["predictions"][0] for p in PROMPTS]
            for candidate in CANDIDATES
        }
        self.assertEqual(body["scores"], one_by_one)

    def test_the_default_batch_size_is_capped_by_the_deployments_max_rows(self):
        body = score(self.client, "router", {"candidates": CANDIDATES, "prompts": PROMPTS}).json()
        self.assertEqual(body["batch_size"], 16)
        self.assertEqual(self.batch_sizes(), [16, 5])
        cached = score(self.client, "router", {"candidates": CANDIDATES, "prompts": PROMPTS}).json()
        self.assertEqual(cached["scores"], body["scores"])
        self.assertEqual(self.batch_sizes(), [16, 5], "the second request was answered from the cache")

    def test_limits_and_unsuitable_models_are_refused(self):
        too_big = score(self.client, "router", {"candidates": ["a"], "prompts": ["p"], "batch_size": 17})
        self.assertEqual(too_big.status_code, 400)
        self.assertIn("max_rows of 16", too_big.json()["error"]["message"])
        # 16 rows x 64 chunks = 1024 pairs at most; 33 x 32 = 1056.
        many = score(self.client, "router", {"candidates": [f"c{i}" for i in range(33)], "prompts": ["p"] * 32})
        self.assertEqual(many.status_code, 413)
        self.assertEqual(many.json()["error"]["details"], {"field": "candidates"})
        tabular = score(self.client, "tabular", {"candidates": ["a"], "prompts": ["p"]})
        self.assertEqual(tabular.status_code, 400)
        self.assertEqual(tabular.json()["error"]["details"], {"field": "endpoint"})
        self.assertEqual(self.batch_sizes(), [], "nothing reached the model")


@functools.cache
def router_scorer_artifact() -> tuple[bytes, dict]:
    from demo.training.text import build_router_scorer

    with tempfile.TemporaryDirectory() as folder:
        demo = build_router_scorer(pathlib.Path(folder), 7)
        return demo.path.read_bytes(), demo.signature


@pytest.mark.slow
class DemoRouterScorerTests(LiveServerTestCase):
    def test_the_demo_router_scorer_ranks_candidates_by_their_skills(self):
        from demo.training import ROUTER_SKILLS
        from tests.conftest import upload

        artifact, signature = router_scorer_artifact()
        model = make_model("router-scorer", task="scoring")
        version = registry_services.model_version_create(model=model, artifact=upload("r", artifact),
                                                         flavor="sklearn", signature=signature)
        registry_services.model_version_validate(version_id=version.pk)
        deployment_create(endpoint="router-scorer", model="router-scorer", version=1)
        self.wait_ready("router-scorer")
        prompts = {"math": "please prove the theorem about this integral", "creative": "write a poem about a dragon"}
        client = key_client("predict")
        response = score(client, "router-scorer", {"candidates": ["gpt-large", "llama-8b", "mistral-7b"],
                                                   "prompts": list(prompts.values()), "batch_size": 2})
        self.assertEqual(response.status_code, 200, response.content)
        scores = response.json()["scores"]
        for index, topic in enumerate(prompts):
            ranked = sorted(scores, key=lambda name: -scores[name][index])
            truth = sorted(scores, key=lambda name: -ROUTER_SKILLS[name][topic])
            self.assertEqual(ranked[0], truth[0], topic)
            self.assertEqual(ranked[-1], truth[-1], topic)
        single = client.post("/api/v1/predict/router-scorer",
                             {"inputs": [f"llama-8b{PAIR_SEPARATOR}{prompts['creative']}"]}, format="json").json()
        self.assertEqual(single["predictions"], [scores["llama-8b"][1]])
