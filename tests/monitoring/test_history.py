"""History for charts: every process's requests add up per minute in Redis, closed minutes move into the
database, and readers see the sum of both."""

import time

from django.test import TestCase

from monitoring import minutes
from monitoring.figures import Figures
from monitoring.models import MetricMinute
from monitoring.services.history import metric_minutes_roll_up
from tests.factories import key_client
from tests.monitoring.support import fail, route_of, serve


def counted(ok: int = 0, errors: int = 0, seconds: float = 0.004) -> Figures:
    figures = Figures()
    for _ in range(ok):
        figures.count(seconds, status=0, cached=False, cache_used=True, batch_size=1)
    for _ in range(errors):
        figures.count(seconds, status=503, cached=False, cache_used=False, batch_size=None)
    return figures


class TimeseriesTests(TestCase):
    def setUp(self):
        self.manage = key_client("manage")
        route_of("churn")
        self.minute = minutes.minute_of(time.time())

    def series(self, **query) -> dict[int, dict]:
        response = self.manage.get("/api/v1/deployments/churn/timeseries", query)
        self.assertEqual(response.status_code, 200, response.content)
        body = response.json()
        return {point["t"]: point for point in body["points"]}

    def test_two_processes_minutes_add_up_before_and_after_the_roll_up(self):
        early, late = self.minute - 180, self.minute - 60
        minutes.add({("churn", 1, early): counted(ok=3)})            # one web process
        minutes.add({("churn", 1, early): counted(ok=4, errors=2)})  # another, on another host
        minutes.add({("churn", 2, late): counted(ok=5)})
        points = self.series(window="1h")
        self.assertEqual(len(points), 60)
        self.assertEqual((points[early]["requests"], points[early]["errors"]), (9, 2))
        self.assertEqual((points[late]["requests"], points[self.minute]["requests"]), (5, 0))
        self.assertEqual(sum(p["requests"] for p in points.values()), 14)
        self.assertEqual(self.series(window="1h", version=2)[early]["requests"], 0)

        self.assertEqual(metric_minutes_roll_up(now=time.time() + 120), 2)
        self.assertEqual(minutes.read("churn", 0, self.minute + 60), {})
        row = MetricMinute.objects.get(version=1)
        self.assertEqual((row.requests, row.errors, row.server_errors), (9, 2, 2))
        self.assertEqual(self.series(window="1h")[early], points[early])
        # A process that flushed late adds to the rolled-up minute: readers sum both, the next roll-up merges.
        minutes.add({("churn", 1, early): counted(ok=1)})
        self.assertEqual(self.series(window="1h")[early]["requests"], 10)
        metric_minutes_roll_up(now=time.time() + 120)
        self.assertEqual(MetricMinute.objects.get(version=1).requests, 10)

    def test_this_processes_own_buffer_is_counted_with_latency_quantiles(self):
        route = route_of("churn-own")
        for n in range(19):
            serve(route, [[n, 0, 0, 0]], [0], request_id=f"t-{n}", seconds=0.003)
        fail(route, seconds=0.9)
        response = self.manage.get("/api/v1/deployments/churn-own/timeseries")
        point = {p["t"]: p for p in response.json()["points"]}[self.minute]
        self.assertEqual((point["requests"], point["errors"], point["error_rate"]), (20, 1, 0.05))
        self.assertTrue(2 < point["p50_ms"] <= 4, point)
        self.assertTrue(512 < point["p99_ms"] <= 1024, point)

    def test_windows_have_their_steps_and_bad_ones_are_refused(self):
        minutes.add({("churn", 1, self.minute - 3600 * 5): counted(ok=7)})
        body = self.manage.get("/api/v1/deployments/churn/timeseries", {"window": "24h"}).json()
        self.assertEqual((body["step_s"], len(body["points"])), (300, 288))
        self.assertEqual(sum(p["requests"] for p in body["points"]), 7)
        body = self.manage.get("/api/v1/deployments/churn/timeseries", {"window": "7d"}).json()
        self.assertEqual((body["step_s"], sum(p["requests"] for p in body["points"])), (3600, 7))
        refused = self.manage.get("/api/v1/deployments/churn/timeseries", {"window": "2d"})
        self.assertEqual(refused.status_code, 400)
        self.assertIn("window", refused.json()["error"]["details"]["fields"])
