"""Seeded simulations through the service layer: routing, recording, feedback, results.

Each simulated request is routed by the registered hooks exactly as engine.predict does, answered
with a planted chance of being right, recorded, and given feedback through the feedback service.
"""

import numpy as np
from django.test import TestCase

from experiments import selectors, services
from experiments.hooks import router
from experiments.models import Experiment
from experiments.results import experiment_results
from inference.predict.contract import PredictRequest
from tests.experiments.helpers import arms, deployment


def simulate(endpoint: str, *, accuracy: dict, subjects: int, seed: int, outcome: str = "accuracy",
             reward: dict | None = None, feedback: bool = True) -> None:
    rng = np.random.default_rng(seed)
    for n in range(subjects):
        request = PredictRequest(endpoint=endpoint, inputs=[[0, 0, 0, 0]], params={},
                                         request_id=f"{seed}-{n}", subject_id=f"user-{n}")
        routing = router.route(request)
        truth = int(rng.integers(0, 2))
        if outcome == "accuracy":
            predicted = truth if rng.random() < accuracy[routing.variant] else 1 - truth
        else:
            predicted = 1
        response = {"request_id": request.request_id, "predictions": [predicted], "cached": bool(n % 5 == 0)}
        router.record(routing, request, response, 0.001 + rng.random() * 0.004)
        if not feedback:
            continue
        if outcome == "accuracy":
            services.feedback_record(request_id=request.request_id, label=truth)
        else:
            services.feedback_record(request_id=request.request_id, value=float(rng.normal(reward[routing.variant], 3)))


class SimulationTests(TestCase):
    def start(self, endpoint: str, outcome: str = "accuracy", **weights):
        for name in weights:
            deployment(f"{endpoint}-{name}")
        experiment = services.experiment_create(
            name=endpoint, endpoint=endpoint, outcome=outcome,
            variants=arms(*((name, f"{endpoint}-{name}", weight) for name, weight in weights.items())))
        # A fixed salt makes the split, and with the seeded outcomes the whole simulation, reproducible.
        Experiment.objects.filter(pk=experiment.pk).update(salt=f"seed-{endpoint}")
        return services.experiment_start(experiment=selectors.experiment_get(experiment.pk))

    def test_a_planted_accuracy_difference_becomes_significant(self):
        experiment = self.start("planted", control=50, treatment=50)
        simulate("planted", accuracy={"control": 0.70, "treatment": 0.80}, subjects=1500, seed=7)
        results = experiment_results(experiment)
        control, treatment = results["variants"]
        self.assertEqual(control["requests"] + treatment["requests"], 1500)
        self.assertEqual(control["outcome"]["n"] + treatment["outcome"]["n"], 1500)
        self.assertAlmostEqual(control["outcome"]["value"], 0.70, delta=0.04)
        self.assertAlmostEqual(treatment["outcome"]["value"], 0.80, delta=0.04)
        low, high = treatment["outcome"]["ci"]
        self.assertTrue(low < treatment["outcome"]["value"] < high)
        comparison = treatment["vs_control"]
        self.assertEqual(comparison["test"], "two-proportion z-test")
        self.assertLess(comparison["p_value"], 0.005)
        self.assertTrue(comparison["significant"])
        self.assertEqual(comparison["verdict"], "treatment better, significant")
        self.assertGreater(comparison["difference_ci"][0], 0)
        self.assertEqual(results["recommended_variant"], "treatment")
        self.assertIn("'treatment' better than control 'control', significant", results["verdict"])

    def test_equal_variants_are_not_significant(self):
        # At alpha 0.05 one A/A test in twenty is "significant" by design: the seed fixes which draw this is.
        experiment = self.start("equal", a=50, b=50)
        simulate("equal", accuracy={"a": 0.75, "b": 0.75}, subjects=1200, seed=12)
        results = experiment_results(experiment)
        comparison = results["variants"][1]["vs_control"]
        self.assertGreater(comparison["p_value"], 0.05)
        self.assertFalse(comparison["significant"])
        self.assertEqual(results["verdict"], "no significant difference")
        self.assertIsNone(results["recommended_variant"])
        self.assertLess(comparison["difference_ci"][0], 0)
        self.assertGreater(comparison["difference_ci"][1], 0)

    def test_a_planted_difference_in_a_mean_reward_is_found_by_welch(self):
        experiment = self.start("reward", outcome="mean", control=50, treatment=50)
        simulate("reward", accuracy={}, subjects=600, seed=3, outcome="mean",
                 reward={"control": 10.0, "treatment": 11.0})
        results = experiment_results(experiment)
        treatment = results["variants"][1]
        self.assertEqual(results["outcome_kind"], "mean")
        self.assertEqual(treatment["vs_control"]["test"], "Welch's t-test")
        self.assertTrue(treatment["vs_control"]["significant"])
        self.assertAlmostEqual(treatment["vs_control"]["difference"], 1.0, delta=0.5)
        self.assertIsNotNone(treatment["outcome"]["std"])

    def test_few_outcomes_say_not_enough_data_yet(self):
        experiment = self.start("young", a=50, b=50)
        simulate("young", accuracy={"a": 0.5, "b": 0.9}, subjects=20, seed=5)
        results = experiment_results(experiment)
        self.assertEqual(results["verdict"], "not enough data yet")
        self.assertEqual(results["variants"][1]["vs_control"]["verdict"], "not enough data yet")

    def test_results_carry_traffic_latency_and_cache_figures(self):
        experiment = self.start("figures", a=20, b=80)
        simulate("figures", accuracy={"a": 0.5, "b": 0.5}, subjects=1000, seed=9, feedback=False)
        results = experiment_results(experiment)
        a, b = results["variants"]
        self.assertAlmostEqual(a["requests"] / 1000, 0.2, delta=0.04)
        for row in (a, b):
            self.assertGreater(row["cache_hits"], 0)
            self.assertTrue(1.0 <= row["latency_ms"]["p50"] <= 5.5, row["latency_ms"])
            self.assertLessEqual(row["latency_ms"]["p50"], row["latency_ms"]["p95"])
            self.assertLessEqual(row["latency_ms"]["p95"], row["latency_ms"]["p99"])
        point = results["traffic"]["points"][-1]
        self.assertEqual(sum(point["counts"].values()), 1000)
        histogram = results["latency_histogram"]
        self.assertEqual(sum(histogram["counts"]["a"]) + sum(histogram["counts"]["b"]), 1000)
        self.assertEqual(len(histogram["bounds_ms"]), len(histogram["counts"]["a"]))
