"""The experiments API: feedback on routed predictions, and promotion of a winner."""

import json

from experiments.hooks import router
from experiments.models import Experiment
from inference.predict.contract import PredictRequest
from tests.experiments.helpers import BASE, ExperimentApiTestCase, deployment


class FeedbackApiTests(ExperimentApiTestCase):
    def routed(self, subject: str, request_id: str, predictions=(1,)):
        request = PredictRequest(endpoint="churn", inputs=[[1, 2, 3, 4]] * len(predictions), params={},
                                         request_id=request_id, subject_id=subject)
        routing = router.route(request)
        router.record(routing, request, {"request_id": request_id, "predictions": list(predictions),
                                         "cached": False}, 0.002)
        return routing

    def feedback(self, body, expect: int = 201):
        response = self.predict.post("/api/v1/feedback", body, format="json")
        self.assertEqual(response.status_code, expect, response.content)
        return response.json()

    def test_feedback_updates_the_statistics(self):
        pk = self.create()["id"]
        self.act(pk, "start")
        routing = self.routed("alice", "req-1", predictions=(1,))
        answer = self.feedback({"request_id": "req-1", "label": 1})
        self.assertEqual(answer, {"request_id": "req-1", "experiment": pk, "variant": routing.variant,
                                  "outcome": "accuracy", "rows": 1, "correct": 1})
        self.routed("alice", "req-2", predictions=(1, 0))
        self.feedback({"request_id": "req-2", "label": [1, 1]})
        results = self.manage.get(f"{BASE}{pk}/results/").json()
        row = next(v for v in results["variants"] if v["name"] == routing.variant)
        self.assertEqual(row["requests"], 2)
        self.assertEqual(row["outcome"]["n"], 3)
        self.assertAlmostEqual(row["outcome"]["value"], 2 / 3)
        low, high = row["outcome"]["ci"]
        self.assertTrue(0 <= low < 2 / 3 < high <= 1)

    def test_feedback_is_refused_when_it_cannot_apply(self):
        pk = self.create()["id"]
        self.act(pk, "start")
        self.routed("bob", "req-1", predictions=(1, 0))
        unknown = self.feedback({"request_id": "never-routed", "label": 1}, expect=404)
        self.assertEqual(unknown["error"]["code"], "request_not_recorded")
        self.assertEqual(self.feedback({"request_id": "req-1"}, expect=400)["error"]["code"], "invalid_feedback")
        both = self.feedback({"request_id": "req-1", "label": 1, "value": 1}, expect=400)
        self.assertIn("exactly one of 'label'", both["error"]["message"])
        wrong_kind = self.feedback({"request_id": "req-1", "value": 1}, expect=400)
        self.assertIn("measures accuracy: send 'label'", wrong_kind["error"]["message"])
        rows = self.feedback({"request_id": "req-1", "label": 1}, expect=400)
        self.assertIn("the request had 2 row(s)", rows["error"]["message"])
        self.feedback({"request_id": "req-1", "label": [1, 1]})
        again = self.feedback({"request_id": "req-1", "label": [1, 1]}, expect=409)
        self.assertEqual(again["error"]["code"], "feedback_exists")
        results = self.manage.get(f"{BASE}{pk}/results/").json()
        self.assertEqual(sum(v["outcome"]["n"] for v in results["variants"]), 2)

    def test_conversion_and_mean_take_values(self):
        conversion = self.create(outcome="conversion")["id"]
        self.act(conversion, "start")
        self.routed("carol", "c-1")
        self.assertIn("a conversion is 0 or 1", self.feedback({"request_id": "c-1", "value": 0.5}, 400)
                      ["error"]["message"])
        self.assertEqual(self.feedback({"request_id": "c-1", "value": True})["value"], 1.0)
        deployment("churn")
        self.act(conversion, "stop")
        mean = self.create(name="Reward", outcome="mean")["id"]
        self.act(mean, "start")
        self.routed("dan", "m-1")
        self.assertIn("must be a finite number", self.feedback({"request_id": "m-1", "value": "NaN"}, 400)
                      ["error"]["message"])
        self.assertIn("measures mean: send 'value'", self.feedback({"request_id": "m-1", "label": 1}, 400)
                      ["error"]["message"])
        self.assertEqual(self.feedback({"request_id": "m-1", "value": 12.5})["value"], 12.5)

    def test_requests_during_a_pause_are_not_recorded(self):
        pk = self.create()["id"]
        self.act(pk, "start")
        self.act(pk, "pause")
        self.routed("erin", "p-1")
        self.feedback({"request_id": "p-1", "label": 1}, expect=404)
        results = self.manage.get(f"{BASE}{pk}/results/").json()
        self.assertEqual(sum(v["requests"] for v in results["variants"]), 0)
        self.assertEqual(results["verdict"], "not enough data yet")

    def test_the_results_are_frozen_when_the_experiment_stops(self):
        deployment("churn")
        pk = self.create()["id"]
        self.act(pk, "start")
        self.routed("fay", "f-1")
        self.act(pk, "stop")
        frozen = Experiment.objects.get(pk=pk).final_results
        self.assertEqual(sum(v["requests"] for v in frozen["variants"]), 1)
        from experiments import recording

        recording.forget(pk)
        results = self.manage.get(f"{BASE}{pk}/results/").json()
        self.assertEqual(results["source"], "snapshot")
        self.assertEqual(sum(v["requests"] for v in results["variants"]), 1)
        json.dumps(results)  # plain JSON all the way down


class PromoteApiTests(ExperimentApiTestCase):
    def test_promote_needs_a_winner_or_a_named_variant(self):
        pk = self.create()["id"]
        self.act(pk, "promote", expect=409)  # a draft
        self.act(pk, "start")
        refused = self.act(pk, "promote", expect=409)
        self.assertEqual(refused["error"]["code"], "no_winner")
        unknown = self.act(pk, "promote", expect=400, body={"variant": "nope"})
        self.assertIn("has no variant named 'nope'", unknown["error"]["message"])
        bad_target = self.act(pk, "promote", expect=400, body={"variant": "treatment", "target": "moon"})
        self.assertTrue(bad_target["error"]["message"].startswith("target:"))

    def test_while_the_winner_loads_all_traffic_goes_to_it_unrecorded_and_promote_can_be_called_again(self):
        pk = self.create()["id"]
        self.act(pk, "start")
        with self.settings(EXPERIMENT_PROMOTE_WAIT_S=0.1):  # no model server here: the new deployment never loads
            pending = self.act(pk, "promote", expect=503, body={"variant": "treatment"})
            self.assertEqual(pending["error"]["code"], "promotion_pending")
            self.assertEqual(self.act(pk, "promote", expect=503)["error"]["code"], "promotion_pending")
        experiment = self.manage.get(f"{BASE}{pk}/").json()
        self.assertEqual((experiment["status"], experiment["promoting_to"]), ("running", "treatment"))
        from inference.models import Deployment

        public = Deployment.objects.get(endpoint="churn")
        self.assertEqual(public.model_version, Deployment.objects.get(endpoint="churn-b").model_version)
        request = PredictRequest(endpoint="churn", inputs=[[1, 2, 3, 4]], params={}, request_id="x",
                                         subject_id=None)
        self.assertEqual({router.route(request).variant for _ in range(50)}, {"treatment"})
        self.assertEqual(self.act(pk, "pause", expect=409)["error"]["code"], "invalid_transition")
        self.assertEqual(self.act(pk, "promote", expect=409, body={"variant": "control"})["error"]["code"],
                         "invalid_transition")
