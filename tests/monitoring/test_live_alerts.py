"""Alerts, drift, guardrails and retention with the real scheduler (`manage.py sweep_jobs --schedule`), a real
RQ worker, the real web tier and the model server's worker processes; webhooks go to a server on 127.0.0.1."""

import json
import threading
import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.test import TransactionTestCase
from django.utils import timezone

from experiments.models import Experiment
from monitoring.models import MetricMinute, PredictionLog
from tests.factories import make_model
from tests.inference.jobs.support import deploy_toy
from tests.inference.live import toy_version, wait_for
from tests.monitoring.support import WebhookReceiver, stack, valid_signature
from tests.monitoring.test_live_log import LiveMonitoringTestCase

pytestmark = pytest.mark.slow

FAST = {"ALERT_EVAL_S": "1", "DRIFT_EVAL_S": "2", "MONITORING_RETENTION_S": "3600",
        "ALERT_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "ALERT_WEBHOOK_BACKOFF_S": "1"}


class LiveAlertTestCase(LiveMonitoringTestCase):
    def web(self, **env: str):
        return super().web(ALERT_WEBHOOK_ALLOWED_HOSTS="127.0.0.1", **env)

    def receiver(self, statuses: list[int] | None = None) -> WebhookReceiver:
        receiver = WebhookReceiver(statuses)
        self.addCleanup(receiver.close)
        return receiver

    def rule(self, web, **fields) -> dict:
        return web.ok("POST", "/api/v1/alert-rules/", {"name": f"rule-{uuid.uuid4().hex[:6]}", **fields})


class DriftAlertTests(LiveAlertTestCase):
    def send(self, web, rows: np.ndarray) -> None:
        for start in range(0, len(rows), 10):
            web.ok("POST", "/api/v1/predict/scorer", {"inputs": rows[start:start + 10].round(4).tolist()})

    def test_shifting_one_input_drifts_exactly_that_feature_and_fires_a_signed_webhook(self):
        env = {**FAST, "DRIFT_REFERENCE_ROWS": "200", "DRIFT_MIN_ROWS": "100", "DRIFT_WINDOW_ROWS": "200"}
        deploy_toy(self, "scorer", log_predictions=1.0)
        web, receiver = self.web(), self.receiver(statuses=[500])  # the first delivery fails: RQ retries it
        rule = self.rule(web, deployment="scorer", metric="drift_features", op=">", threshold=0,
                         webhook_url=receiver.url)
        rng = np.random.default_rng(9)
        self.send(web, rng.normal(0, 1, (200, 3)))  # the reference: the first 200 logged rows
        shifted = rng.normal(0, 1, (200, 3))
        shifted[:, 1] += 3.0
        self.send(web, shifted)
        stack(self, **env)
        failed, call = receiver.wait(2, timeout=120)[:2]
        self.assertEqual((failed["answered"], call["answered"], failed["body"]), (500, 200, call["body"]))
        body = json.loads(call["body"])
        self.assertEqual((body["rule"], body["deployment"], body["metric"], body["state"], body["value"]),
                         (rule["name"], "scorer", "drift_features", "firing", 1.0))
        self.assertTrue(valid_signature(rule["webhook_secret"], call["body"], call["headers"]["X-Signature"]))
        report = web.ok("GET", "/api/v1/deployments/scorer/drift")
        self.assertEqual({f["name"] for f in report["features"] if f["drifted"]}, {"x1"})
        self.assertEqual({f["name"] for f in report["features"]}, {"x0", "x1", "x2"})
        self.assertEqual(report["reference"], {"source": "logged", "size": 200})
        self.assertEqual(report["window"]["rows"], 200)
        alerts = web.ok("GET", "/api/v1/alerts/", state="firing")["results"]
        self.assertEqual([(a["name"], a["notifications"][0]["status"], a["notifications"][0]["attempts"])
                          for a in alerts], [(rule["name"], "sent", 2)])


class ErrorRateAlertTests(LiveAlertTestCase):
    def flood(self, web, count: int) -> list[int]:
        statuses, lock = [], threading.Lock()

        def one():
            body = {"inputs": [[1, 2, 3]], "parameters": {"cache": False}}
            status, _ = web.call("POST", "/api/v1/predict/scorer", body)
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=one) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return statuses

    def test_an_error_rate_rule_fires_for_a_failing_deployment_and_resolves_when_it_recovers(self):
        deploy_toy(self, "scorer", toy={"sleep_ms": 100}, timeout_ms=5000)
        web, receiver = self.web(), self.receiver()
        stack(self, **FAST)
        rule = self.rule(web, deployment="scorer", metric="error_rate", op=">", threshold=0.2, window_s=60,
                         webhook_url=receiver.url)
        self.assertEqual(set(self.flood(web, 8)), {200})
        web.ok("PATCH", "/api/v1/deployments/scorer/", {"timeout_ms": 20})  # every answer now comes too late
        wait_for(lambda: 504 in self.flood(web, 1), message="the deployment to fail")
        self.assertEqual(set(self.flood(web, 12)), {504})
        fired = json.loads(receiver.wait(1, timeout=60)[0]["body"])
        self.assertEqual((fired["rule"], fired["state"]), (rule["name"], "firing"))
        self.assertGreater(fired["value"], 0.2)
        web.ok("PATCH", "/api/v1/deployments/scorer/", {"timeout_ms": 5000})
        wait_for(lambda: 200 in self.flood(web, 1), message="the deployment to recover")
        self.assertEqual(set(self.flood(web, 80)), {200})
        resolved = json.loads(receiver.wait(2, timeout=60)[1]["body"])
        self.assertEqual((resolved["state"], resolved["alert"]), ("resolved", fired["alert"]))
        self.assertLess(resolved["value"], 0.2)
        alert = web.ok("GET", "/api/v1/alerts/", rule=rule["id"])["results"][0]
        self.assertEqual([step["state"] for step in alert["history"]], ["pending", "firing", "resolved"])
        self.assertEqual(len(receiver.received), 2)


class GuardrailTests(LiveAlertTestCase):
    def test_a_guardrail_pauses_an_experiment_whose_treatment_fails(self):
        deploy_toy(self, "ab-control")
        deploy_toy(self, "ab-treatment", toy={"sleep_ms": 200}, timeout_ms=20)
        web = self.web()
        stack(self, **FAST)
        created = web.ok("POST", "/api/v1/experiments/", {
            "name": "guarded", "endpoint": "ab", "guardrails": {"max_error_rate": 0.3, "min_requests": 5},
            "variants": [{"name": "control", "deployment": "ab-control", "weight": 50},
                         {"name": "treatment", "deployment": "ab-treatment", "weight": 50}]})
        web.ok("POST", f"/api/v1/experiments/{created['id']}/start/")
        answered = {}

        def paused():
            for n in range(10):
                status, body = web.call("POST", "/api/v1/predict/ab", {"inputs": [[1, 2, 3]],
                                                                      "subject_id": uuid.uuid4().hex})
                answered.setdefault(status, 0)
                answered[status] += 1
            return Experiment.objects.get(pk=created["id"]).status == "paused"

        wait_for(paused, timeout=90, interval=0.1, message="the guardrail to pause the experiment")
        self.assertIn(504, answered)
        experiment = Experiment.objects.get(pk=created["id"])
        self.assertRegex(experiment.stop_reason,
                         r"^guardrail: variant 'treatment' error rate 1 > 0\.3 over \d+ requests$")
        # Paused: the control answers everyone.
        bodies = [web.ok("POST", "/api/v1/predict/ab", {"inputs": [[1, 2, 3]], "subject_id": uuid.uuid4().hex})
                  for _ in range(10)]
        self.assertEqual({body.get("variant") for body in bodies}, {"control"})
        alert = web.ok("GET", "/api/v1/alerts/", kind="guardrail")["results"][0]
        self.assertEqual((alert["state"], alert["deployment"], alert["message"]),
                         ("firing", "ab", experiment.stop_reason))


class RetentionTests(TransactionTestCase):
    def test_the_scheduler_deletes_rows_past_their_retention(self):
        version = toy_version(make_model("scorer"))
        now = timezone.now()
        for days in (1, 2, 9, 12):
            PredictionLog.objects.create(request_id=f"d{days}", endpoint="scorer", model_version=version, version=1,
                                         created_at=now - timedelta(days=days), inputs=[[1, 2, 3]],
                                         outputs={"predictions": [1]}, latency_ms=1.0)
            MetricMinute.objects.create(endpoint="scorer", version=1, minute=now - timedelta(days=days), requests=1)
        stack(self, MONITORING_RETENTION_S="1", ALERT_EVAL_S="3600", DRIFT_EVAL_S="3600", PREDICTION_LOG_DAYS="7",
              METRICS_HISTORY_DAYS="5")
        wait_for(lambda: PredictionLog.objects.count() == 2 and MetricMinute.objects.count() == 2, timeout=90,
                 interval=0.5, message="the old rows deleted")
        self.assertEqual(sorted(PredictionLog.objects.values_list("request_id", flat=True)), ["d1", "d2"])
