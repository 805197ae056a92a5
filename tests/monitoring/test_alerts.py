"""Alert rules: CRUD, the pending -> firing -> resolved life of an alert, one notification per change, and
webhooks signed, retried and kept inside the rules on addresses."""

import json
from datetime import timedelta

import django_rq
from django.core import mail
from django.test import TestCase, override_settings
from django.utils import timezone

from inference.models import Deployment, DeploymentStatus
from monitoring.models import Alert, AlertRule, Notification
from monitoring.services.alerts import alerts_evaluate
from monitoring.services.notify import notification_deliver, webhook_target
from monitoring.sink import caught_up
from tests.factories import key_client
from tests.monitoring.support import WebhookReceiver, fail, route_of, serve, valid_signature

RULES = "/api/v1/alert-rules/"


def deliver_queued() -> None:
    """Runs the queued deliveries in this process, as a worker would (tests.conftest.run_jobs's burst worker may
    wait up to a minute for its pub/sub thread when it stops)."""
    for name in ("high", "default", "low"):
        queue = django_rq.get_queue(name)
        for job in queue.jobs:
            queue.remove(job)
            job.perform()


class AlertRuleApiTests(TestCase):
    def setUp(self):
        self.manage = key_client("manage")

    def create(self, expect: int = 201, **fields) -> dict:
        body = {"name": "errors", "metric": "error_rate", "op": ">", "threshold": 0.05, **fields}
        response = self.manage.post(RULES, body, format="json")
        self.assertEqual(response.status_code, expect, response.content)
        return response.json()

    def test_a_rule_is_created_read_changed_and_deleted_and_its_secret_is_shown_once(self):
        created = self.create(deployment="churn", for_s=60, email="ops@example.com")
        self.assertEqual(len(created["webhook_secret"]), 43)
        detail = self.manage.get(f"{RULES}{created['id']}/").json()
        self.assertNotIn("webhook_secret", detail)
        self.assertEqual((detail["deployment"], detail["for_s"], detail["window_s"]), ("churn", 60, 300))
        changed = self.manage.patch(f"{RULES}{created['id']}/", {"threshold": 0.1, "deployment": None},
                                    format="json").json()
        self.assertEqual((changed["threshold"], changed["deployment"]), (0.1, None))
        self.assertEqual(self.manage.get(RULES).json()["count"], 1)
        self.assertEqual(self.manage.delete(f"{RULES}{created['id']}/").status_code, 204)
        self.assertEqual(self.manage.get(f"{RULES}{created['id']}/").status_code, 404)

    def test_bad_rules_are_refused_naming_the_field(self):
        cases = [({"metric": "latency"}, "metric"), ({"op": "=="}, "op"), ({"threshold": "high"}, "threshold"),
                 ({"webhook_url": "ftp://example.com/x"}, "webhook_url"), ({"for_s": -1}, "for_s"),
                 ({"email": "nobody"}, "email"), ({"webhook_secret": "short"}, "webhook_secret")]
        for fields, field in cases:
            with self.subTest(field=field):
                error = self.create(400, **fields)["error"]
                self.assertIn(field, json.dumps(error))
        self.create()
        self.assertIn("already the name", self.create(400)["error"]["message"])

    def test_webhooks_into_the_network_are_refused_unless_allowed(self):
        for url in ("http://127.0.0.1:9000/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data",
                    "http://[::1]/hook", "http://[::ffff:192.168.1.1]/hook", "http://0.0.0.0/hook",
                    "http://user:pw@93.184.216.34/hook"):
            with self.subTest(url=url):
                error = self.create(400, name=url, webhook_url=url)["error"]
                self.assertEqual(error["details"]["field"], "webhook_url")
        self.create(name="public", webhook_url="https://93.184.216.34/hook")
        with override_settings(ALERT_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
            self.create(name="allowed", webhook_url="http://127.0.0.1:9000/hook")
            self.assertEqual(webhook_target("http://127.0.0.1:9000/x?y=1").path, "/x?y=1")

    def test_an_alert_list_filtered_by_a_rule_id_past_64_bits_is_a_400_naming_it(self):
        # schemathesis found it: SQLite cannot bind the number (OverflowError, a 500).
        response = self.manage.get("/api/v1/alerts/", {"rule": "577502225961557627502592"})
        self.assertEqual(response.status_code, 400, response.content)
        self.assertIn("rule", str(response.json()["error"]), response.json())
        self.assertEqual(self.manage.get("/api/v1/alerts/", {"rule": str(2**63 - 1)}).json()["count"], 0)


@override_settings(ALERT_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"], ALERT_WEBHOOK_RETRIES=2)
class AlertLifeTests(TestCase):
    def setUp(self):
        self.receiver = WebhookReceiver()
        self.addCleanup(self.receiver.close)
        self.route = route_of("churn")
        response = key_client("manage").post(RULES, {
            "name": "churn errors", "deployment": "churn", "metric": "error_rate", "op": ">", "threshold": 0.2,
            "for_s": 60, "webhook_url": self.receiver.url, "email": "ops@example.com"}, format="json")
        self.secret = response.json()["webhook_secret"]
        self.t0 = timezone.now()

    def traffic(self, ok: int, errors: int) -> None:
        for n in range(ok):
            serve(self.route, [[n, 0, 0, 0]], [1], request_id=f"ok-{n}")
        for _ in range(errors):
            fail(self.route)
        caught_up()

    def evaluate(self, after_s: float) -> dict:
        with self.captureOnCommitCallbacks(execute=True):
            counts = alerts_evaluate(now=self.t0 + timedelta(seconds=after_s))
        deliver_queued()
        return counts

    def test_it_fires_after_for_s_notifies_once_then_resolves_and_notifies_again(self):
        self.traffic(ok=6, errors=4)
        self.assertEqual(self.evaluate(0)["fired"], 0)
        alert = Alert.objects.get()
        self.assertEqual((alert.state, alert.value), ("pending", 0.4))
        manage = key_client("manage")
        self.assertEqual(manage.get("/api/v1/alerts/").json()["count"], 0)  # not an alert until it fires
        self.assertEqual(manage.get("/api/v1/alerts/", {"state": "pending"}).json()["count"], 1)
        self.assertEqual(self.evaluate(30)["fired"], 0)
        self.assertEqual(self.evaluate(61)["fired"], 1)
        self.assertEqual(self.evaluate(90)["fired"], 0)
        calls = self.receiver.wait(1)
        self.assertEqual(len(calls), 1)
        body = json.loads(calls[0]["body"])
        self.assertEqual((body["rule"], body["deployment"], body["state"], body["value"], body["threshold"]),
                         ("churn errors", "churn", "firing", 0.4, 0.2))
        self.assertTrue(calls[0]["headers"]["X-Signature"].startswith("sha256="))
        self.assertTrue(valid_signature(self.secret, calls[0]["body"], calls[0]["headers"]["X-Signature"]))
        self.assertFalse(valid_signature("another-secret", calls[0]["body"], calls[0]["headers"]["X-Signature"]))
        self.assertEqual(len(mail.outbox), 1)
        self.assertIn("[firing] churn errors on churn", mail.outbox[0].subject)

        self.traffic(ok=40, errors=0)
        self.assertEqual(self.evaluate(120)["resolved"], 1)
        self.evaluate(150)
        calls = self.receiver.wait(2)
        self.assertEqual([json.loads(call["body"])["state"] for call in calls], ["firing", "resolved"])
        alert.refresh_from_db()
        self.assertEqual([step["state"] for step in alert.history], ["pending", "firing", "resolved"])
        self.assertEqual(Notification.objects.filter(status="sent").count(), 4)  # webhook + e-mail, twice
        listed = key_client("manage").get("/api/v1/alerts/", {"state": "resolved"}).json()["results"]
        self.assertEqual([(a["name"], a["deployment"], len(a["notifications"])) for a in listed],
                         [("churn errors", "churn", 4)])

    def test_a_condition_that_stops_holding_before_for_s_never_fires(self):
        self.traffic(ok=1, errors=1)
        self.evaluate(0)
        self.traffic(ok=20, errors=0)
        self.evaluate(30)
        self.assertEqual(Alert.objects.count(), 0)
        self.assertEqual(self.receiver.received, [])

    def test_health_fires_for_a_failed_deployment(self):
        rule = AlertRule.objects.create(name="health", metric="health", op="<", threshold=1, notify=False)
        Deployment.objects.filter(endpoint="churn").update(status=DeploymentStatus.FAILED)
        self.evaluate(0)
        self.assertEqual(rule.alerts.get().state, "firing")
        Deployment.objects.filter(endpoint="churn").update(status=DeploymentStatus.READY)
        self.evaluate(10)
        self.assertEqual(rule.alerts.get().state, "resolved")
        self.assertEqual(Notification.objects.count(), 0)

    def test_a_failing_webhook_is_retried_and_gives_up_after_its_retries(self):
        self.receiver.statuses = [500, 502, 500]
        self.traffic(ok=0, errors=5)
        with self.captureOnCommitCallbacks(execute=True):
            alerts_evaluate(now=self.t0)
            alerts_evaluate(now=self.t0 + timedelta(seconds=61))
        webhook = Notification.objects.get(channel="webhook")
        for attempt in range(2):
            with self.assertRaisesRegex(RuntimeError, "HTTP 50"):
                notification_deliver(notification_id=webhook.pk)
        self.assertEqual(notification_deliver(notification_id=webhook.pk), "failed")
        webhook.refresh_from_db()
        self.assertEqual((webhook.status, webhook.attempts), ("failed", 3))
        self.assertIn("HTTP 500", webhook.last_error)
        self.assertEqual(notification_deliver(notification_id=webhook.pk), "skipped")
        self.assertEqual([call["answered"] for call in self.receiver.received], [500, 502, 500])
