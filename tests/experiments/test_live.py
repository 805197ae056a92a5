"""Experiments in front of a real model server: routed answers, shadows, feedback, promote under load."""

import threading
import time
import uuid

from django.db import connections

from experiments.models import Experiment
from inference.models import Deployment
from tests.factories import key_client, make_model
from tests.inference.live import LiveServerTestCase, toy_version, wait_for


class LiveExperimentTestCase(LiveServerTestCase):
    def setUp(self):
        super().setUp()
        self.manage, self.client = key_client("manage"), key_client("predict")

    def deploy(self, endpoint: str, model: str, version: int):
        response = self.manage.post("/api/v1/deployments/", {"endpoint": endpoint, "model": model,
                                                              "version": version}, format="json")
        self.assertEqual(response.status_code, 201, response.content)

    def experiment(self, endpoint: str, variants, **fields) -> int:
        body = {"name": f"{endpoint} test", "endpoint": endpoint,
                "variants": [{"name": n, "deployment": d, "weight": w} for n, d, w in variants], **fields}
        created = self.manage.post("/api/v1/experiments/", body, format="json")
        self.assertEqual(created.status_code, 201, created.content)
        pk = created.json()["id"]
        self.assertEqual(self.manage.post(f"/api/v1/experiments/{pk}/start/").status_code, 200)
        return pk

    def ask(self, endpoint: str, subject: str, row=(1.0, 0.0, 0.0), **body):
        return self.client.post(f"/api/v1/predict/{endpoint}", {"inputs": [list(row)], **body}, format="json",
                                HTTP_X_SUBJECT_ID=subject)

    def results(self, pk: int) -> dict:
        return self.manage.get(f"/api/v1/experiments/{pk}/results/").json()


class RoutedTrafficTests(LiveExperimentTestCase):
    def test_variants_answer_stickily_shadows_never_answer_and_feedback_counts(self):
        model = make_model("scorer", task="classification")
        toy_version(model, weights=(1.0, 0.0, 0.0), task_classes=[0, 1])     # a: class 1 for x0 > 0
        toy_version(model, weights=(-1.0, 0.0, 0.0), task_classes=[0, 1])    # b: class 0 for x0 > 0
        toy_version(model, weights=(0.5, 0.0, 0.0), task_classes=[0, 1])     # shadow: class 1 for x0 > 0
        for endpoint, version in (("ab-a", 1), ("ab-b", 2), ("ab-shadow", 3)):
            self.deploy(endpoint, "scorer", version)
        for endpoint in ("ab-a", "ab-b", "ab-shadow"):
            self.wait_ready(endpoint)
        pk = self.experiment("ab", [("a", "ab-a", 50), ("b", "ab-b", 50)],
                             shadows=[{"name": "challenger", "deployment": "ab-shadow"}])

        answers = {}
        for n in range(40):
            response = self.ask("ab", f"user-{n}", request_id=f"req-{n}")
            self.assertEqual(response.status_code, 200, response.content)
            body = response.json()
            self.assertEqual(body["endpoint"], "ab")
            self.assertEqual({"a": 1, "b": 2}[body["variant"]], body["version"])  # the shadow (3) never answers
            self.assertEqual(body["predictions"], [1 if body["variant"] == "a" else 0])
            answers[f"user-{n}"] = body["variant"]
        self.assertEqual(set(answers.values()), {"a", "b"})
        for subject, variant in list(answers.items())[:10]:
            self.assertEqual(self.ask("ab", subject).json()["variant"], variant)
        by_field = self.client.post("/api/v1/predict/ab", {"inputs": [[1, 0, 0]], "subject_id": "user-3"},
                                    format="json").json()
        self.assertEqual(by_field["variant"], answers["user-3"])
        for subject in ("user-1", "user-2", "user-3", "user-4"):  # explained by the subject's own variant, unrecorded
            explained = self.client.post("/api/v1/predict/ab/explain", {"inputs": [[1, 0, 0]]}, format="json",
                                         HTTP_X_SUBJECT_ID=subject)
            self.assertEqual(explained.status_code, 200, explained.content)
            body = explained.json()
            self.assertEqual((body["endpoint"], body["variant"]), ("ab", answers[subject]))
            self.assertEqual(body["version"], {"a": 1, "b": 2}[answers[subject]])
            self.assertEqual(body["predictions"], [1 if answers[subject] == "a" else 0])

        for n in range(40):  # the truth is class 1: variant a and the shadow are right, b is wrong
            feedback = self.client.post("/api/v1/feedback", {"request_id": f"req-{n}", "label": 1}, format="json")
            self.assertEqual(feedback.status_code, 201, feedback.content)
        wait_for(lambda: self.results(pk)["variants"][2]["requests"] >= 51, message="the shadow copies")
        results = self.results(pk)
        a, b, shadow = results["variants"]
        self.assertEqual(a["requests"] + b["requests"], 51)
        self.assertEqual((a["outcome"]["value"], b["outcome"]["value"]), (1.0, 0.0))
        self.assertEqual(shadow["shadow"], True)
        self.assertEqual(shadow["outcome"]["n"], 40)
        self.assertEqual(shadow["outcome"]["value"], 1.0)
        self.assertIsNotNone(a["latency_ms"]["p50"])
        self.assertEqual(a["errors"] + b["errors"] + shadow["errors"], 0)


class PromoteTests(LiveExperimentTestCase):
    def hammer(self, endpoint: str):
        failures, seen, stop = [], [], threading.Event()

        def run():
            try:
                send_until_stopped()
            finally:
                connections.close_all()  # this thread's own connections, or the test database cannot be dropped

        def send_until_stopped():
            while not stop.is_set():
                response = self.ask(endpoint, uuid.uuid4().hex, parameters={"cache": False})
                if response.status_code != 200:
                    failures.append((response.status_code, response.content))
                else:
                    body = response.json()
                    seen.append((body.get("variant"), body["version"], body["predictions"][0]))

        thread = threading.Thread(target=run)
        thread.start()

        def finish():
            stop.set()
            thread.join()
            return failures, seen

        return finish, seen

    def promote_under_load(self, endpoint: str, pk: int, variant: str, **body):
        finish, seen = self.hammer(endpoint)
        try:
            wait_for(lambda: len(seen) > 20, message="traffic before the promotion")
            promoted = self.manage.post(f"/api/v1/experiments/{pk}/promote/", {"variant": variant, **body},
                                        format="json")
            count = len(seen)
            wait_for(lambda: len(seen) > count + 20, message="traffic after the promotion")
        finally:
            failures, seen = finish()
        self.assertEqual(promoted.status_code, 200, promoted.content)
        self.assertEqual(failures, [])
        return promoted.json(), seen

    def test_promote_hands_an_endpoint_without_a_deployment_to_the_winner_with_no_failed_request(self):
        model = make_model("scorer", task="regression")
        toy_version(model, weights=(1.0, 0.0, 0.0))
        toy_version(model, weights=(10.0, 0.0, 0.0))
        self.deploy("p-a", "scorer", 1)
        self.deploy("p-b", "scorer", 2)
        self.wait_ready("p-a")
        self.wait_ready("p-b")
        pk = self.experiment("promo", [("a", "p-a", 50), ("b", "p-b", 50)])
        experiment, seen = self.promote_under_load("promo", pk, "b")
        self.assertEqual((experiment["status"], experiment["winner"]), ("stopped", "b"))
        self.assertIn(("a", 1, 1.0), seen)
        self.assertEqual(seen[-1], (None, 2, 10.0))  # answered by the endpoint's own deployment now
        public = Deployment.objects.get(endpoint="promo", stopped_at__isnull=True)
        self.assertEqual(public.model_version.version, 2)
        self.assertEqual(Experiment.objects.get(pk=pk).final_results["variants"][0]["name"], "a")

    def test_promote_rolls_the_endpoints_own_deployment_when_it_is_the_control(self):
        model = make_model("scorer", task="regression")
        toy_version(model, weights=(1.0, 0.0, 0.0))
        toy_version(model, weights=(10.0, 0.0, 0.0))
        self.deploy("roll", "scorer", 1)
        self.deploy("roll-b", "scorer", 2)
        self.wait_ready("roll")
        self.wait_ready("roll-b")
        pk = self.experiment("roll", [("control", "roll", 50), ("treatment", "roll-b", 50)])
        generation = Deployment.objects.get(endpoint="roll").generation
        experiment, seen = self.promote_under_load("roll", pk, "treatment", target="alias")
        self.assertEqual(experiment["winner"], "treatment")
        self.assertEqual(seen[-1], (None, 2, 10.0))
        rolled = Deployment.objects.get(endpoint="roll", stopped_at__isnull=True)
        self.assertEqual((rolled.model_version.version, rolled.alias, rolled.follow_alias), (2, "production", True))
        self.assertEqual(rolled.generation, generation + 1)
        self.assertEqual(model.aliases.get(name="production").version.version, 2)

    def test_promote_replaces_a_deployment_of_another_model(self):
        old, new = make_model("old-model", task="regression"), make_model("new-model", task="regression")
        toy_version(old, weights=(1.0, 0.0, 0.0))
        toy_version(new, weights=(10.0, 0.0, 0.0))
        self.deploy("swap", "old-model", 1)
        self.deploy("swap-new", "new-model", 1)
        self.wait_ready("swap")
        self.wait_ready("swap-new")
        pk = self.experiment("swap", [("old", "swap", 50), ("new", "swap-new", 50)])
        started = time.monotonic()
        experiment, seen = self.promote_under_load("swap", pk, "new")
        self.assertEqual(experiment["winner"], "new")
        self.assertEqual(seen[-1], (None, 1, 10.0))
        public = Deployment.objects.get(endpoint="swap", stopped_at__isnull=True)
        self.assertEqual(public.model.name, "new-model")
        self.assertLess(time.monotonic() - started, 120)


class BatchRouteTests(LiveExperimentTestCase):
    """POST /api/v1/predict/batch asks the registered hooks per item, as the single route does."""

    def test_batch_items_for_an_experiments_endpoint_are_routed_per_subject(self):
        model = make_model("scorer", task="classification")
        toy_version(model, weights=(1.0, 0.0, 0.0), task_classes=[0, 1])     # a: class 1 for x0 > 0
        toy_version(model, weights=(-1.0, 0.0, 0.0), task_classes=[0, 1])    # b: class 0 for x0 > 0
        for endpoint, version in (("ab-a", 1), ("ab-b", 2)):
            self.deploy(endpoint, "scorer", version)
        for endpoint in ("ab-a", "ab-b"):
            self.wait_ready(endpoint)
        self.experiment("ab", [("a", "ab-a", 50), ("b", "ab-b", 50)])
        alone = {f"user-{n}": self.ask("ab", f"user-{n}").json()["variant"] for n in range(16)}
        self.assertEqual(set(alone.values()), {"a", "b"})

        items = [{"endpoint": "ab", "inputs": [[1.0, 0.0, 0.0]], "subject_id": subject} for subject in alone]
        items.append({"endpoint": "ab-a", "inputs": [[1.0, 0.0, 0.0]]})  # a variant's own endpoint: not routed
        response = self.client.post("/api/v1/predict/batch", {"requests": items}, format="json")
        self.assertEqual(response.status_code, 200, response.content)
        results = response.json()["results"]
        self.assertTrue(all(result["ok"] for result in results), results)
        for subject, result in zip(alone, results):
            answer = result["result"]
            self.assertEqual((answer["endpoint"], answer["variant"]), ("ab", alone[subject]))
            self.assertEqual(answer["version"], {"a": 1, "b": 2}[alone[subject]])
            self.assertEqual(answer["predictions"], [1 if alone[subject] == "a" else 0])
        self.assertNotIn("variant", results[-1]["result"])
        self.assertEqual((results[-1]["result"]["endpoint"], results[-1]["result"]["version"]), ("ab-a", 1))
