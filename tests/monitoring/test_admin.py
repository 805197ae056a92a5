"""The admin's monitoring pages, linked from each deployment: the log with filters, quality, drift, alerts."""

import numpy as np
from django.contrib.auth import get_user_model
from django.test import TestCase, override_settings
from django.utils import timezone

from inference.models import Deployment
from monitoring.models import Alert, AlertRule, DriftReport, Feedback
from monitoring.services.drift import drift_compute
from monitoring.sink import caught_up
from tests.experiments.helpers import deployment
from tests.monitoring.support import route_of, serve


def seed(endpoint: str = "churn") -> Deployment:
    """A deployment with logged traffic (half of it shifted), feedback, a drift report and an alert."""
    row = deployment(endpoint)
    route = route_of(row, log_predictions=1.0)
    rng = np.random.default_rng(4)
    for n in range(200):
        inputs = rng.normal(0, 1, (2, 4))
        if n >= 100:
            inputs[:, 2] += 2.5
        serve(route, inputs.round(3).tolist(), [int(x[0] > 0) for x in inputs], request_id=f"{endpoint}-{n}",
              seconds=float(rng.lognormal(-5, 0.4)), probabilities=[[0.5, 0.5], [0.5, 0.5]])
    caught_up()
    Feedback.objects.bulk_create([Feedback(request_id=f"{endpoint}-{n}", label=[1, 0]) for n in range(0, 200, 3)])
    with override_settings(DRIFT_REFERENCE_ROWS=200, DRIFT_MIN_ROWS=100, DRIFT_WINDOW_ROWS=200):
        drift_compute(endpoint=endpoint)
    rule = AlertRule.objects.create(name="errors", metric="error_rate", op=">", threshold=0.05)
    Alert.objects.create(rule=rule, name="errors", endpoint=endpoint, metric="error_rate", state="firing",
                         value=0.3, threshold=0.05, started_at=timezone.now(), updated_at=timezone.now())
    return row


class AdminPageTests(TestCase):
    def setUp(self):
        staff = get_user_model().objects.create_user("ops", is_staff=True, is_superuser=True)
        self.client.force_login(staff)
        self.row = seed()

    def test_each_deployment_links_to_its_monitoring_pages(self):
        page = self.client.get(f"/admin/inference/deployment/{self.row.pk}/change/").content.decode()
        for path in ("/admin/monitoring/predictionlog/?endpoint=churn", "/admin/monitoring/driftreport/endpoint/churn/"
                     "quality/", "/admin/monitoring/driftreport/endpoint/churn/drift/",
                     "/admin/monitoring/alert/?endpoint=churn"):
            self.assertIn(path, page)

    def test_the_log_filters_by_endpoint_and_the_alerts_by_state(self):
        log = self.client.get("/admin/monitoring/predictionlog/", {"endpoint": "churn", "q": "churn-17"})
        self.assertEqual(log.status_code, 200)
        self.assertContains(log, "churn-17")
        self.assertNotContains(log, "churn-18<")
        alerts = self.client.get("/admin/monitoring/alert/", {"state__exact": "firing"})
        self.assertContains(alerts, "errors")

    def test_the_quality_and_drift_pages_show_the_figures_and_embed_the_charts_data(self):
        quality = self.client.get("/admin/monitoring/driftreport/endpoint/churn/quality/")
        self.assertEqual(quality.status_code, 200)
        self.assertContains(quality, 'id="monitoring-quality"')
        self.assertContains(quality, "<td>v1</td>", html=False)
        drift = self.client.get("/admin/monitoring/driftreport/endpoint/churn/drift/")
        self.assertContains(drift, 'class="drifted"', count=1)
        self.assertContains(drift, "x2")
        self.assertContains(drift, "first logged rows")
        recomputed = self.client.post("/admin/monitoring/driftreport/endpoint/churn/drift/", follow=True)
        self.assertContains(recomputed, "Drift computed")
        self.assertEqual(DriftReport.objects.count(), 2)

    def test_pages_are_staff_only(self):
        self.client.logout()
        response = self.client.get("/admin/monitoring/driftreport/endpoint/churn/drift/")
        self.assertEqual(response.status_code, 302)
        self.assertIn("/admin/login/", response["Location"])
