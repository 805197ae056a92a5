"""Retention: logged predictions by age and by a row cap per endpoint, history by age."""

from datetime import timedelta

from django.test import TestCase, override_settings
from django.utils import timezone

from monitoring.models import Alert, MetricMinute, PredictionLog
from monitoring.services.history import history_trim
from monitoring.services.logs import prediction_log_trim
from monitoring.sink import caught_up
from tests.monitoring.support import route_of, serve


@override_settings(PREDICTION_LOG_DAYS=7, PREDICTION_LOG_MAX_ROWS=5, METRICS_HISTORY_DAYS=3)
class RetentionTests(TestCase):
    def test_old_rows_go_then_each_endpoint_keeps_its_newest_rows(self):
        for endpoint, count in (("churn", 8), ("fraud", 3)):
            route = route_of(endpoint, log_predictions=1.0)
            for n in range(count):
                serve(route, [[n, 0, 0, 0]], [0], request_id=f"{endpoint}-{n}")
        caught_up()
        PredictionLog.objects.filter(request_id__in=["churn-0", "fraud-0"]).update(
            created_at=timezone.now() - timedelta(days=8))
        self.assertEqual(prediction_log_trim(), {"expired": 2, "capped": 2})
        kept = sorted(PredictionLog.objects.filter(endpoint="churn").values_list("request_id", flat=True))
        self.assertEqual(kept, [f"churn-{n}" for n in range(3, 8)])
        self.assertEqual(PredictionLog.objects.filter(endpoint="fraud").count(), 2)
        self.assertEqual(prediction_log_trim(), {"expired": 0, "capped": 0})

    def test_history_older_than_metrics_history_days_goes(self):
        now = timezone.now()
        for days in (1, 4):
            MetricMinute.objects.create(endpoint="churn", version=1, minute=now - timedelta(days=days), requests=1)
            Alert.objects.create(name="x", endpoint="churn", metric="error_rate", state="resolved",
                                 started_at=now - timedelta(days=days), resolved_at=now - timedelta(days=days),
                                 updated_at=now)
        Alert.objects.create(name="open", endpoint="churn", metric="error_rate", state="firing",
                             started_at=now - timedelta(days=9), updated_at=now)
        self.assertEqual(history_trim(), {"minutes": 1, "drift_reports": 0, "alerts": 1})
        self.assertEqual(MetricMinute.objects.count(), 1)
        self.assertEqual(sorted(Alert.objects.values_list("name", flat=True)), ["open", "x"])
