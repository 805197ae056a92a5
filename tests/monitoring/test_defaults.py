"""The seed documents' four alert rules: seeded by `make serve`, and the same in the PrometheusRule manifest."""

import io
import re

import yaml
from django.core.management import call_command
from django.test import TestCase

from monitoring.defaults import DEFAULT_RULES
from monitoring.models import AlertRule
from tests.paths import REPO_ROOT

MANIFEST = REPO_ROOT / "deploy" / "kubernetes" / "components" / "prometheus-rules" / "prometheus-rules.yaml"
# The Prometheus expression's unit per platform metric: seconds for latency, ratios as they are.
SCALE = {"error_rate": 1.0, "p95_ms": 1000.0, "cache_miss_rate": 1.0, "health": 1.0}


class DefaultRuleTests(TestCase):
    def test_seeding_creates_the_four_rules_once_with_notifications_off(self):
        out = io.StringIO()
        call_command("seed_alert_rules", stdout=out)
        call_command("seed_alert_rules", stdout=out)
        self.assertIn("0 default alert rule(s) created, 4 already there", out.getvalue())
        rules = {rule.metric: rule for rule in AlertRule.objects.all()}
        self.assertEqual(set(rules), {"error_rate", "p95_ms", "cache_miss_rate", "health"})
        self.assertTrue(all(rule.enabled and not rule.notify and not rule.deployment for rule in rules.values()))
        self.assertEqual((rules["error_rate"].op, rules["error_rate"].threshold), (">", 0.05))
        self.assertEqual((rules["p95_ms"].op, rules["p95_ms"].threshold), (">", 1000.0))

    def test_the_prometheus_rules_say_the_same(self):
        document = yaml.safe_load(MANIFEST.read_text())
        self.assertEqual((document["apiVersion"], document["kind"]), ("monitoring.coreos.com/v1", "PrometheusRule"))
        alerts = {rule["labels"]["metric"]: rule for group in document["spec"]["groups"] for rule in group["rules"]}
        self.assertEqual(set(alerts), {rule["metric"] for rule in DEFAULT_RULES})
        for rule in DEFAULT_RULES:
            with self.subTest(metric=rule["metric"]):
                alert = alerts[rule["metric"]]
                self.assertEqual(alert["for"], f"{rule['for_s']}s")
                op, threshold = re.search(r"(>|<|>=|<=)\s*([0-9.]+)\s*$", alert["expr"].strip()).groups()
                self.assertEqual(op, rule["op"])
                self.assertAlmostEqual(float(threshold) * SCALE[rule["metric"]], rule["threshold"])


class ScheduleTests(TestCase):
    def test_the_scheduler_queues_monitorings_jobs_as_json_at_their_intervals(self):
        import django_rq

        from inference.jobs import tasks

        scheduler = tasks.sweep_scheduler()
        by_name = {cron.name: cron for cron in scheduler._cron_jobs}
        self.assertEqual({name: cron.interval for name, cron in by_name.items() if name.startswith("monitoring_")},
                         {"monitoring_write_log": 5, "monitoring_evaluate_alerts": 30, "monitoring_compute_drift": 300,
                          "monitoring_enforce_retention": 3600})
        scheduler.enqueue_jobs()
        high = django_rq.get_queue("high")
        queued = {high.fetch_job(job_id).func_name for job_id in high.job_ids}
        jobs = {f"monitoring.tasks.{name}" for name in ("write_log", "evaluate_alerts", "compute_drift",
                                                        "enforce_retention")}
        self.assertTrue(jobs <= queued, queued)
        for job_id in high.job_ids:  # JSON-serialized: what the workers read
            job = high.fetch_job(job_id)
            if job.func_name.startswith("monitoring."):
                self.assertEqual(job.args, [])
                high.remove(job)
                self.assertIsInstance(job.perform(), (dict, int))
