"""Ground truth for any logged prediction (one route with experiments' feedback), and the quality it yields."""

from experiments import services as experiments
from experiments.hooks import router
from inference.models import Deployment
from inference.predict.contract import PredictRequest
from monitoring.models import Feedback
from registry.models import Task
from tests.experiments.helpers import ExperimentApiTestCase, arms, deployment
from tests.factories import key_client, make_model
from tests.monitoring.support import route_of, serve


class FeedbackTests(ExperimentApiTestCase):
    def feedback(self, body, expect: int = 201) -> dict:
        response = self.predict.post("/api/v1/feedback", body, format="json")
        self.assertEqual(response.status_code, expect, response.content)
        return response.json()

    def test_a_logged_request_outside_any_experiment_takes_one_feedback(self):
        route = route_of("churn-logged", log_predictions=1.0)
        serve(route, [[1, 2, 3, 4], [4, 3, 2, 1]], [1, 0], request_id="plain-1")
        answer = self.feedback({"request_id": "plain-1", "label": [1, 1]})
        self.assertEqual(answer, {"request_id": "plain-1", "endpoint": "churn-logged", "version": route.version,
                                  "logged": True, "label": [1, 1]})
        self.assertEqual(self.feedback({"request_id": "plain-1", "label": [1, 1]}, 409)["error"]["code"],
                         "feedback_exists")
        self.assertIn("2 row(s)", self.feedback({"request_id": "plain-1", "label": 1}, 400)["error"]["message"])
        self.assertEqual(self.feedback({"request_id": "never-seen", "label": 1}, 404)["error"]["code"],
                         "request_not_recorded")
        refused = self.feedback({"request_id": "plain-1", "value": "NaN"}, 400)
        self.assertIn("finite number", refused["error"]["message"])
        self.assertEqual(Feedback.objects.get().label, [1, 1])

    def test_a_request_an_experiment_routed_and_the_log_holds_is_scored_in_both(self):
        experiment = experiments.experiment_start(experiment=experiments.experiment_create(
            name="ab", endpoint="churn", variants=arms(("control", "churn-a", 50), ("treatment", "churn-b", 50))))
        request = PredictRequest(endpoint="churn", inputs=[[1, 2, 3, 4]], params={}, request_id="ab-1",
                                 subject_id="zoe")
        routing = router.route(request)
        router.record(routing, request, {"request_id": "ab-1", "predictions": [1], "cached": False}, 0.01)
        route = route_of(Deployment.objects.get(endpoint=routing.endpoint), log_predictions=1.0)
        serve(route, [[1, 2, 3, 4]], [1], request_id="ab-1", variant=routing.variant)
        answer = self.feedback({"request_id": "ab-1", "label": 1})
        self.assertEqual((answer["logged"], answer["experiment"], answer["variant"], answer["correct"]),
                         (True, experiment.pk, routing.variant, 1))
        results = self.manage.get(f"/api/v1/experiments/{experiment.pk}/results/").json()
        self.assertEqual(sum(v["outcome"]["n"] for v in results["variants"]), 1)
        self.assertEqual(self.feedback({"request_id": "ab-1", "label": 1}, 409)["error"]["code"], "feedback_exists")
        # The experiment's own rule still applies: it measures accuracy, so a value is refused, and nothing is kept.
        serve(route, [[1, 2, 3, 4]], [1], request_id="ab-2", variant=routing.variant)
        router.record(routing, PredictRequest(endpoint="churn", inputs=[[1, 2, 3, 4]], params={}, request_id="ab-2",
                                              subject_id="zoe"), {"request_id": "ab-2", "predictions": [1]}, 0.01)
        self.assertIn("measures accuracy", self.feedback({"request_id": "ab-2", "value": 1.0}, 400)["error"]["message"])
        self.assertFalse(Feedback.objects.filter(request_id="ab-2").exists())


class QualityTests(ExperimentApiTestCase):
    def quality(self, endpoint: str, window: str = "24h") -> dict:
        response = self.manage.get(f"/api/v1/deployments/{endpoint}/quality", {"window": window})
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()

    def test_feedback_on_a_binary_classifier_moves_accuracy_precision_and_recall(self):
        route = route_of("churn-q", log_predictions=1.0)
        predictions = [1, 1, 0, 0, 1, 0, 1, 1]
        truths = [1, 0, 0, 1, 1, 0, 1, 0]
        for n, predicted in enumerate(predictions):
            serve(route, [[n, 0, 0, 0]], [predicted], request_id=f"q-{n}", probabilities=[[0.4, 0.6]])
        serve(route, [[9, 0, 0, 0]], [1], request_id="q-none", probabilities=[[0.4, 0.6]])
        before = self.quality("churn-q")["versions"][0]
        self.assertEqual((before["logged_requests"], before["rows_with_feedback"], before["accuracy"]), (9, 0, None))
        for n, truth in enumerate(truths):
            self.assertEqual(self.predict.post("/api/v1/feedback", {"request_id": f"q-{n}", "label": truth},
                                               format="json").status_code, 201)
        after = self.quality("churn-q")
        version = after["versions"][0]
        self.assertEqual((after["task"], after["metric"]), ("classification", "accuracy"))
        self.assertEqual((version["rows_with_feedback"], version["accuracy"]), (8, 0.625))
        # 5 predicted positive, 3 right; 4 truly positive, 3 found.
        self.assertEqual((version["precision"], version["recall"]), (0.6, 0.75))
        self.assertEqual(sum(point["n"] for point in version["points"]), 8)

    def test_a_regressor_is_scored_by_mae_and_rmse(self):
        make_model("prices", task=Task.REGRESSION)
        route = route_of(deployment("prices-q", model="prices"), log_predictions=1.0)
        for n, predicted in enumerate([10.0, 20.0, 30.0]):
            serve(route, [[n, 0, 0, 0]], [predicted], request_id=f"p-{n}")
        for n, truth in enumerate([12.0, 20.0, 26.0]):
            self.predict.post("/api/v1/feedback", {"request_id": f"p-{n}", "value": truth}, format="json")
        version = self.quality("prices-q", "1h")["versions"][0]
        self.assertEqual(version["mae"], 2.0)
        self.assertAlmostEqual(version["rmse"], (20 / 3) ** 0.5, places=5)

    def test_an_unknown_window_is_refused_by_name(self):
        route_of("churn-w")
        response = self.manage.get("/api/v1/deployments/churn-w/quality", {"window": "2h"})
        self.assertEqual(response.status_code, 400)
        self.assertIn("window", response.json()["error"]["details"]["fields"])
        self.assertEqual(key_client("predict").get("/api/v1/deployments/churn-w/quality").status_code, 403)
