"""Rollout guardrails: a failing treatment pauses its experiment, a failing new version rolls its deployment back."""

from experiments.models import Experiment
from inference.models import Deployment
from monitoring.models import Alert, Rollout
from monitoring.services.guardrails import guardrails_evaluate
from monitoring.sink import caught_up
from registry.services import model_alias_set
from tests.experiments.helpers import ExperimentApiTestCase, deployment, version_of
from tests.monitoring.support import fail, route_of, serve


class ExperimentGuardrailTests(ExperimentApiTestCase):
    def traffic(self, endpoint: str, ok: int, errors: int) -> None:
        route = route_of(Deployment.objects.get(endpoint=endpoint))
        for n in range(ok):
            serve(route, [[n, 0, 0, 0]], [1], request_id=f"{endpoint}-{n}")
        for _ in range(errors):
            fail(route)
        caught_up()

    def test_guardrails_are_checked_when_declared(self):
        for guardrails, field in (({"min_requests": 5}, "max_error_rate"), ({"max_error_rate": 2}, "max_error_rate"),
                                  ({"max_p99_ms": 0}, "max_p99_ms"), ({"max_error_rate": 0.1, "x": 1}, "x")):
            with self.subTest(guardrails=guardrails):
                error = self.create(400, guardrails=guardrails)["error"]
                self.assertIn(field, error["details"]["fields"]["guardrails"])
        created = self.create(guardrails={"max_p99_ms": 250})
        self.assertEqual(created["guardrails"], {"max_p99_ms": 250.0, "min_requests": 20})

    def test_a_failing_treatment_pauses_the_experiment_with_the_reason_and_an_alert(self):
        pk = self.create(guardrails={"max_error_rate": 0.2, "min_requests": 10})["id"]
        self.act(pk, "start")
        self.traffic("churn-a", ok=30, errors=0)
        self.traffic("churn-b", ok=4, errors=3)
        self.assertEqual(guardrails_evaluate()["paused"], 0)  # 7 requests: too few to judge
        self.traffic("churn-b", ok=0, errors=3)
        self.assertEqual(guardrails_evaluate()["paused"], 1)
        experiment = Experiment.objects.get(pk=pk)
        self.assertEqual(experiment.status, "paused")
        self.assertEqual(experiment.stop_reason, "guardrail: variant 'treatment' error rate 0.6 > 0.2 over 10 requests")
        alerts = self.manage.get("/api/v1/alerts/", {"kind": "guardrail"}).json()["results"]
        self.assertEqual([(a["state"], a["deployment"], a["message"]) for a in alerts],
                         [("firing", "churn", experiment.stop_reason)])
        self.act(pk, "start")  # resumed: judged again on what happens from now on
        self.assertEqual(guardrails_evaluate()["paused"], 0)
        self.assertEqual(Experiment.objects.get(pk=pk).status, "running")
        self.assertEqual(Alert.objects.get().state, "resolved")


class RolloutGuardrailTests(ExperimentApiTestCase):
    def test_a_follow_alias_roll_to_a_failing_version_is_rolled_back(self):
        row = deployment("churn-live")
        first = row.model_version
        model_alias_set(model=row.model, alias="production", version_number=first.version)
        Deployment.objects.filter(pk=row.pk).update(alias="production", follow_alias=True,
                                                    guardrails={"max_error_rate": 0.1, "min_requests": 5})
        self.assertEqual(guardrails_evaluate()["rolled_back"], 0)
        self.assertEqual(Rollout.objects.get().state, "passed")  # where it stood when first seen

        for _ in range(9):  # the old version's failures are not the new one's
            fail(route_of(Deployment.objects.get(pk=row.pk)))
        second = version_of(row.model)
        Deployment.objects.filter(pk=row.pk).update(model_version=second)  # the model server followed the alias
        guardrails_evaluate()
        self.assertEqual(Rollout.objects.first().state, "watching")
        route = route_of(Deployment.objects.get(pk=row.pk))
        for n in range(4):
            serve(route, [[n, 0, 0, 0]], [1], request_id=f"v2-{n}")
        caught_up()
        self.assertEqual(guardrails_evaluate()["rolled_back"], 0)
        fail(route)
        caught_up()
        self.assertEqual(guardrails_evaluate()["rolled_back"], 1)
        rolled = Deployment.objects.get(pk=row.pk)
        self.assertEqual((rolled.model_version_id, rolled.follow_alias, rolled.alias), (first.pk, False, "production"))
        self.assertIn(f"guardrail: version {second.version} error rate 0.2 > 0.1 over 5 requests", rolled.status_reason)
        self.assertEqual(Rollout.objects.first().state, "rolled_back")
        self.assertEqual(Alert.objects.get(kind="guardrail").state, "firing")
