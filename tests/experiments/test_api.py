"""The experiments API: validation with named problems, lifecycle, vetoes, feedback."""

import time
from datetime import timedelta

from django.utils import timezone

from experiments.hooks import TABLE_TTL_S, router
from experiments.models import Experiment
from inference.models import DeploymentStatus
from inference.predict.contract import PredictRequest
from tests.core.test_invalidation import announced_elsewhere, listening
from tests.experiments.helpers import BASE, ExperimentApiTestCase, arms, deployment, tabular_signature
from tests.inference.live import wait_for


class CreateTests(ExperimentApiTestCase):
    def test_create_answers_201_with_the_experiment_and_its_id(self):
        body = self.create(description="does v2 keep more customers", outcome="conversion", duration_hours=48)
        self.assertIsInstance(body["id"], int)
        self.assertEqual((body["name"], body["endpoint"], body["status"], body["outcome"]),
                         ("Churn v2", "churn", "draft", "conversion"))
        self.assertEqual(body["variants"], [{"name": "control", "deployment": "churn-a", "weight": 50.0},
                                            {"name": "treatment", "deployment": "churn-b", "weight": 50.0}])
        self.assertEqual(body["control"], "control")
        self.assertEqual(body["duration_hours"], 48)
        self.assertEqual(self.manage.get(f"{BASE}{body['id']}/").json()["id"], body["id"])

    def test_shadows_are_listed_apart_and_named_after_their_deployment_by_default(self):
        deployment("churn-c")
        body = self.create(shadows=[{"deployment": "churn-c"}])
        self.assertEqual(body["shadows"], [{"name": "churn-c", "deployment": "churn-c"}])
        self.assertEqual(len(body["variants"]), 2)

    def weights_refused(self, weights) -> str:
        variants = [{"name": f"v{i}", "deployment": "churn-a" if i % 2 == 0 else "churn-b", "weight": w}
                    for i, w in enumerate(weights)]
        response = self.manage.post(BASE, {"name": "x", "endpoint": "churn", "variants": variants}, format="json")
        return self.refused(response)

    def test_invalid_weight_sets_are_refused_naming_the_problem(self):
        self.assertIn("variants: weights must sum to 100 (percent); [60, 50] sums to 110",
                      self.weights_refused([60, 50]))
        self.assertIn("sums to 90", self.weights_refused([50, 40]))
        self.assertIn("variants[0].weight: must not be negative (got -10)", self.weights_refused([-10, 110]))
        # DRF refuses non-finite numbers before the service (which refuses them too, for the admin).
        self.assertIn("variants.1.weight: Must be a JSON number, not str.", self.weights_refused([50, "NaN"]))
        self.assertIn("variants.0.weight: Must be a JSON number, not str.", self.weights_refused(["Infinity", 100]))
        self.assertIn("variants: at least one variant is required", self.weights_refused([]))
        self.assertIn("variants.0.weight: Must be a JSON number, not str.", self.weights_refused(["lots", 50]))
        self.assertEqual(Experiment.objects.count(), 0)

    def test_a_nan_literal_is_refused_by_the_parser(self):
        body = '{"name": "x", "endpoint": "churn", "variants": [{"name": "a", "deployment": "churn-a", "weight": NaN}]}'
        response = self.manage.post(BASE, body, content_type="application/json")
        self.assertIn("NaN is not valid JSON", self.refused(response))

    def test_deployments_must_exist_be_ready_and_take_the_same_inputs(self):
        missing = self.create(expect=400, variants=arms(("a", "churn-a", 50), ("b", "nope", 50)))
        self.assertEqual(missing["error"]["message"], "variants[1].deployment: no live deployment named 'nope'")
        self.assertEqual(missing["error"]["details"]["field"], "variants[1].deployment")
        deployment("loading", status=DeploymentStatus.LOADING)
        loading = self.create(expect=400, variants=arms(("a", "churn-a", 50), ("b", "loading", 50)))
        self.assertIn("deployment 'loading' is loading; only ready deployments can take traffic",
                      loading["error"]["message"])
        deployment("wide", model="wide", signature=tabular_signature(7))
        wide = self.create(expect=400, variants=arms(("a", "churn-a", 50), ("b", "wide", 50)))
        self.assertIn("'wide' takes 7 features but the control 'churn-a' takes 4 features", wide["error"]["message"])
        deployment("text", model="text", signature={"input_kind": "text", "n_features": None})
        shadow = self.create(expect=400, shadows=[{"deployment": "text"}])
        self.assertIn("shadows[0].deployment: deployment 'text' takes text", shadow["error"]["message"])

    def test_variant_names_are_unique_and_shadows_need_their_own_deployment(self):
        twice = self.create(expect=400, variants=arms(("a", "churn-a", 50), ("a", "churn-b", 50)))
        self.assertIn("variants[1].name: 'a' is already the name of variants[0]", twice["error"]["message"])
        echo = self.create(expect=400, shadows=[{"deployment": "churn-b"}])
        self.assertIn("shadows[0].deployment: 'churn-b' already gets this traffic", echo["error"]["message"])

    def test_fields_are_checked_by_the_serializer(self):
        bad = self.create(expect=400, endpoint="Not A Slug")
        self.assertTrue(bad["error"]["message"].startswith("endpoint:"))
        bad = self.create(expect=400, outcome="happiness")
        self.assertTrue(bad["error"]["message"].startswith("outcome:"))
        bad = self.create(expect=400, duration_hours=0)
        self.assertTrue(bad["error"]["message"].startswith("duration_hours:"))


class LifecycleTests(ExperimentApiTestCase):
    def test_start_pause_resume_stop(self):
        pk = self.create()["id"]
        running = self.act(pk, "start")
        self.assertEqual(running["status"], "running")
        self.assertIsNotNone(running["started_at"])
        self.assertEqual(self.act(pk, "pause")["status"], "paused")
        self.act(pk, "pause", expect=409)
        self.assertEqual(self.act(pk, "start")["status"], "running")
        self.assertEqual(self.act(pk, "start", expect=409)["error"]["code"], "invalid_transition")
        refused = self.act(pk, "stop", expect=409)
        self.assertIn("No deployment is named 'churn'", refused["error"]["message"])
        stopped = self.act(pk, "stop", body={"force": True})
        self.assertEqual(stopped["status"], "stopped")
        self.assertIsNotNone(stopped["stopped_at"])
        self.act(pk, "start", expect=409)
        self.assertEqual(self.manage.patch(f"{BASE}{pk}/", {"name": "x"}, format="json").status_code, 409)

    def test_stop_needs_no_force_when_the_endpoint_has_a_deployment(self):
        deployment("churn")
        pk = self.create()["id"]
        self.act(pk, "start")
        self.assertEqual(self.act(pk, "stop")["status"], "stopped")

    def test_a_duration_sets_the_planned_end_at_start(self):
        pk = self.create(duration_hours=2)["id"]
        ends_at = timezone.datetime.fromisoformat(self.act(pk, "start")["ends_at"].replace("Z", "+00:00"))
        self.assertAlmostEqual((ends_at - timezone.now()).total_seconds(), 7200, delta=60)

    def test_one_running_experiment_per_endpoint(self):
        first = self.create()["id"]
        second = self.create(name="Another")["id"]
        self.act(first, "start")
        refused = self.act(second, "start", expect=400)
        self.assertEqual(refused["error"]["code"], "endpoint_in_experiment")
        self.assertIn(f"'churn' already has a running experiment ('Churn v2', id {first})",
                      refused["error"]["message"])
        self.act(first, "pause")
        self.act(second, "start", expect=400)  # a paused experiment still owns its endpoint
        self.act(first, "stop", body={"force": True})
        self.assertEqual(self.act(second, "start")["status"], "running")

    def test_start_checks_the_deployments_again(self):
        pk = self.create()["id"]
        from inference.models import Deployment

        Deployment.objects.filter(endpoint="churn-b").update(status=DeploymentStatus.FAILED)
        refused = self.act(pk, "start", expect=400)
        self.assertIn("deployment 'churn-b' is failed", refused["error"]["message"])

    def test_changes_while_running(self):
        pk = self.create()["id"]
        self.act(pk, "start")
        ramp = self.manage.patch(f"{BASE}{pk}/", {"variants": arms(("control", "churn-a", 90),
                                                                   ("treatment", "churn-b", 10))}, format="json")
        self.assertEqual(ramp.status_code, 200, ramp.content)
        self.assertEqual([v["weight"] for v in ramp.json()["variants"]], [90.0, 10.0])
        bad = self.manage.patch(f"{BASE}{pk}/", {"variants": arms(("a", "churn-a", 60), ("b", "churn-b", 50))},
                                format="json")
        self.assertIn("sums to 110", self.refused(bad))
        moved = self.manage.patch(f"{BASE}{pk}/", {"endpoint": "elsewhere"}, format="json")
        self.assertIn("endpoint can only change while the experiment is a draft", self.refused(moved, 409))
        renamed = self.manage.patch(f"{BASE}{pk}/", {"name": "Renamed", "description": "d"}, format="json")
        self.assertEqual(renamed.json()["name"], "Renamed")

    def test_delete_only_when_not_active(self):
        pk = self.create()["id"]
        self.act(pk, "start")
        self.assertEqual(self.manage.delete(f"{BASE}{pk}/").status_code, 409)
        self.act(pk, "stop", body={"force": True})
        self.assertEqual(self.manage.delete(f"{BASE}{pk}/").status_code, 204)
        self.assertEqual(self.manage.get(f"{BASE}{pk}/").status_code, 404)

    def test_list_filters_by_status_and_endpoint(self):
        first = self.create()["id"]
        self.create(name="Other", endpoint="other")
        self.act(first, "start")
        running = self.manage.get(BASE, {"status": "running"}).json()
        self.assertEqual([e["id"] for e in running["results"]], [first])
        self.assertEqual(self.manage.get(BASE, {"endpoint": "other"}).json()["count"], 1)
        self.assertEqual(self.manage.get(BASE, {"status": "bogus"}).status_code, 400)

    def test_a_planned_end_stops_the_experiment_or_pauses_it_when_the_endpoint_has_no_deployment(self):
        orphan = self.create()["id"]
        self.act(orphan, "start")
        deployment("kept")
        owned = self.create(name="Owned", endpoint="kept")["id"]
        self.act(owned, "start")
        Experiment.objects.update(ends_at=timezone.now() - timedelta(seconds=1))
        listed = {e["id"]: e for e in self.manage.get(BASE).json()["results"]}
        self.assertEqual(listed[owned]["status"], "stopped")
        self.assertEqual(listed[owned]["stop_reason"], "planned end reached")
        self.assertEqual(listed[orphan]["status"], "paused")
        self.assertIn("no deployment is named 'churn'", listed[orphan]["stop_reason"])

    def test_an_unknown_experiment_is_404(self):
        response = self.manage.get(f"{BASE}999/results/")
        self.assertEqual(response.json()["error"]["code"], "experiment_not_found")
        self.assertEqual(self.manage.post(f"{BASE}999/start/").status_code, 404)


class DeploymentVetoTests(ExperimentApiTestCase):
    def test_a_variants_deployment_cannot_be_undeployed_while_the_experiment_is_active(self):
        deployment("churn-c")
        pk = self.create(shadows=[{"name": "challenger", "deployment": "churn-c"}])["id"]
        self.assertEqual(self.manage.delete("/api/v1/deployments/churn-b/").status_code, 200)  # a draft routes nothing
        deployment("churn-b")
        self.act(pk, "start")
        for endpoint, role in (("churn-b", "variant 'treatment'"), ("churn-c", "a shadow")):
            refused = self.manage.delete(f"/api/v1/deployments/{endpoint}/")
            self.assertEqual(refused.status_code, 409, refused.content)
            self.assertEqual(refused.json()["error"]["code"], "deployment_in_experiment")
            self.assertIn(f"serves {role} of the running experiment 'Churn v2' (id {pk})",
                          refused.json()["error"]["message"])
        self.act(pk, "pause")
        self.assertEqual(self.manage.delete("/api/v1/deployments/churn-b/").status_code, 409)
        self.act(pk, "stop", body={"force": True})
        self.assertEqual(self.manage.delete("/api/v1/deployments/churn-b/").status_code, 200)


class RoutingTableTests(ExperimentApiTestCase):
    def request(self, subject=None, endpoint="churn", **fields):
        return PredictRequest(endpoint=endpoint, inputs=[[1, 2, 3, 4]], params=fields.pop("params", {}),
                                      request_id=fields.pop("request_id", "rid"), subject_id=subject)

    def test_routing_asks_no_database_once_the_table_is_loaded(self):
        pk = self.create()["id"]
        self.act(pk, "start")
        router.route(self.request("warm-up"))
        with self.assertNumQueries(0):
            for n in range(200):
                routing = router.route(self.request(f"user-{n}"))
                self.assertIn(routing.endpoint, ("churn-a", "churn-b"))
            self.assertIsNone(router.route(self.request("x", endpoint="not-in-an-experiment")))

    def test_a_client_cannot_choose_its_variant(self):
        pk = self.create()["id"]
        self.act(pk, "start")
        chosen = {router.route(self.request("alice", params={"variant": "treatment"})).variant for _ in range(20)}
        self.assertEqual(chosen, {router.route(self.request("alice")).variant})
        by_subject = {router.route(self.request(f"s{n}")).variant for n in range(200)}
        self.assertEqual(by_subject, {"control", "treatment"})

    def test_without_a_subject_the_request_id_decides(self):
        pk = self.create()["id"]
        self.act(pk, "start")
        variants = {router.route(self.request(None, request_id=f"r{n}")).variant for n in range(200)}
        self.assertEqual(variants, {"control", "treatment"})

    def test_the_table_is_kept_until_an_experiment_changes_anywhere(self):
        listening()
        pk = self.create()["id"]
        self.act(pk, "start")
        router.route(self.request("warm-up"))
        time.sleep(TABLE_TTL_S + 0.2)  # what a process that cannot hear announcements would keep it for
        with self.assertNumQueries(0):
            self.assertIsNotNone(router.route(self.request("a")))
        # Paused by another process: this one learns it only from the announcement.
        Experiment.objects.filter(pk=pk).update(status="paused")
        variants = lambda: {router.route(self.request(f"s{n}")).variant for n in range(100)}  # noqa: E731
        self.assertEqual(variants(), {"control", "treatment"})
        announced_elsewhere("experiments")
        wait_for(lambda: variants() == {"control"}, timeout=5, message="the table was loaded again")

    def test_the_table_is_loaded_again_when_the_next_experiment_ends(self):
        listening()
        deployment("churn")  # a planned end then stops it (without a deployment of its own it pauses)
        pk = self.create()["id"]
        self.act(pk, "start")
        Experiment.objects.filter(pk=pk).update(ends_at=timezone.now() + timedelta(seconds=1.5))
        self.assertIsNotNone(router.route(self.request("a")))
        time.sleep(1.7)
        self.assertIsNone(router.route(self.request("b")))
        self.assertEqual(Experiment.objects.get(pk=pk).stop_reason, "planned end reached")

    def test_pausing_sends_everyone_to_the_control_and_stopping_routes_nothing(self):
        deployment("churn")
        pk = self.create()["id"]
        self.act(pk, "start")
        self.act(pk, "pause")
        self.assertEqual({router.route(self.request(f"s{n}")).variant for n in range(100)}, {"control"})
        self.act(pk, "stop")
        self.assertIsNone(router.route(self.request("s1")))


class RepointTests(ExperimentApiTestCase):
    """A started variant keeps the model it was measured on: no PATCH of the experiment or of its deployment
    moves it to another one (409); weights still change."""

    def test_a_running_variant_cannot_move_to_another_deployment(self):
        deployment("churn-c")
        pk = self.create()["id"]
        self.act(pk, "start")
        moved = self.manage.patch(f"{BASE}{pk}/", {"variants": arms(("control", "churn-a", 50),
                                                                    ("treatment", "churn-c", 50))}, format="json")
        self.assertIn("Variant 'treatment' runs on deployment 'churn-b' and cannot move to 'churn-c'",
                      self.refused(moved, 409))
        self.assertEqual([v["deployment"] for v in self.manage.get(f"{BASE}{pk}/").json()["variants"]],
                         ["churn-a", "churn-b"])
        self.act(pk, "pause")
        self.assertEqual(self.manage.patch(f"{BASE}{pk}/", {"variants": arms(("control", "churn-a", 50),
                                                                             ("treatment", "churn-c", 50))},
                                           format="json").status_code, 409)

    def test_a_draft_variant_may_move(self):
        deployment("churn-c")
        pk = self.create()["id"]
        moved = self.manage.patch(f"{BASE}{pk}/", {"variants": arms(("control", "churn-a", 50),
                                                                    ("treatment", "churn-c", 50))}, format="json")
        self.assertEqual(moved.status_code, 200, moved.content)

    def test_a_running_variants_deployment_cannot_be_repointed_to_another_version(self):
        from inference.models import Deployment
        from tests.experiments.helpers import version_of

        target = Deployment.objects.get(endpoint="churn-b")
        newer = version_of(target.model)
        pk = self.create()["id"]
        self.act(pk, "start")
        refused = self.manage.patch("/api/v1/deployments/churn-b/", {"version": newer.version}, format="json")
        self.assertIn("Deployment 'churn-b' keeps its version while it serves variant 'treatment' of the running "
                      f"experiment 'Churn v2' (id {pk})", self.refused(refused, 409))
        self.assertEqual(Deployment.objects.get(endpoint="churn-b").model_version_id, target.model_version_id)
        knobs = self.manage.patch("/api/v1/deployments/churn-b/", {"max_batch_size": 8}, format="json")
        self.assertEqual(knobs.status_code, 200, knobs.content)  # what keeps the model may still change
        self.act(pk, "stop", body={"force": True})
        moved = self.manage.patch("/api/v1/deployments/churn-b/", {"version": newer.version}, format="json")
        self.assertEqual(moved.status_code, 200, moved.content)


class WeightTypeTests(ExperimentApiTestCase):
    def test_weights_must_be_json_numbers(self):
        for weights, bad in ((["50", "50"], "variants.0.weight: Must be a JSON number, not str."),
                             ([True, 99], "variants.0.weight: Must be a JSON number, not a boolean."),
                             ([50, None], "variants.1.weight")):
            with self.subTest(weights=weights):
                response = self.manage.post(BASE, {"name": "x", "endpoint": "churn", "variants": arms(
                    ("a", "churn-a", weights[0]), ("b", "churn-b", weights[1]))}, format="json")
                self.assertIn(bad, self.refused(response))
        self.assertEqual(Experiment.objects.count(), 0)
        pk = self.create()["id"]
        patched = self.manage.patch(f"{BASE}{pk}/", {"variants": arms(("control", "churn-a", "90"),
                                                                      ("treatment", "churn-b", "10"))}, format="json")
        self.assertIn("Must be a JSON number", self.refused(patched))
