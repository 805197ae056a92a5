"""Charts of traffic, errors and latency over the last hour and day, on the admin's overview and each deployment's
page: the points come from the recorded history (closed minutes in the database, open ones in Redis), every
deployment's from one read."""

import json
import re
import time
from datetime import UTC, datetime
from unittest import mock

import redis
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from monitoring import minutes
from monitoring.figures import Figures
from monitoring.models import MetricMinute
from monitoring.selectors.charts import history_charts
from tests.experiments.helpers import deployment
from tests.monitoring.test_history import counted

# A fixed "now", 30 s into a minute: the hour's last point is the minute before, the last whole one.
NOW = 1_780_000_050.0
END = minutes.minute_of(NOW) - 60


def closed(endpoint: str, minute: int, figures: Figures, *, version: int = 1) -> MetricMinute:
    """A minute the scheduler already moved into the database."""
    return MetricMinute.objects.create(endpoint=endpoint, version=version, minute=datetime.fromtimestamp(minute, UTC),
                                       **{name: value for name, value in vars(figures).items()})


def record(endpoint: str) -> None:
    """12 requests (2 failed, all in the 2-4 ms bucket) a minute before the last, split over two versions; 50 two
    hours ago; 6 in the last minute, still in Redis (not rolled up yet); 5 in the open minute, and 99 a day and a
    minute ago: neither in the charts."""
    closed(endpoint, END - 60, counted(ok=6, errors=2))
    closed(endpoint, END - 60, counted(ok=4), version=2)
    closed(endpoint, END - 7200, counted(ok=50, seconds=0.05))
    closed(endpoint, END - 86_400, counted(ok=99))
    minutes.add({(endpoint, 1, END): counted(ok=6)})
    minutes.add({(endpoint, 1, END + 60): counted(ok=5)})


def by_time(window: dict, series: dict, key: str) -> dict[int, object]:
    return dict(zip(window["t"], series[key]))


class HistoryChartsTests(TestCase):
    def test_the_hour_has_a_point_a_minute_from_both_stores_and_every_version(self):
        record("churn")
        hour = history_charts(["churn"], now=NOW)["windows"]["1h"]
        self.assertEqual((hour["label"], hour["step_s"], len(hour["t"])), ("Last hour", 60, 60))
        self.assertEqual((hour["t"][0], hour["t"][-1]), (END - 3540, END))
        [series] = hour["series"]
        self.assertEqual(series["endpoint"], "churn")
        requests = by_time(hour, series, "requests_per_min")
        self.assertEqual((requests[END - 60], requests[END], requests[END - 120]), (12, 6, 0))
        self.assertEqual(sum(series["requests_per_min"]), 18)  # two hours ago is outside the hour
        self.assertEqual(by_time(hour, series, "errors_per_min")[END - 60], 2)
        self.assertEqual(by_time(hour, series, "error_rate_pct")[END - 60], 16.67)
        # 12 requests in the (2, 4] ms bucket: the median is halfway, p99 at 11.88 of 12.
        self.assertEqual(by_time(hour, series, "p50_ms")[END - 60], 3.0)
        self.assertEqual(by_time(hour, series, "p99_ms")[END - 60], 3.98)
        # A minute without requests has no rate and no latency: the line breaks there.
        self.assertEqual((by_time(hour, series, "error_rate_pct")[END - 120],
                          by_time(hour, series, "p50_ms")[END - 120]), (None, None))
        self.assertEqual(series["total"], {"requests": 18, "errors": 2, "error_rate": 0.1111,
                                           "requests_per_min": 0.3, "p50_ms": 3.0, "p99_ms": 3.98})

    def test_the_day_has_a_point_every_five_minutes_in_requests_per_minute(self):
        record("churn")
        day = history_charts(["churn"], now=NOW)["windows"]["24h"]
        self.assertEqual((day["label"], day["step_s"], len(day["t"])), ("Last day", 300, 288))
        self.assertEqual((day["t"][0], day["t"][-1]), (END - 86_340, END - 240))
        [series] = day["series"]
        bucket = END - 86_340 + (86_340 - 7200) // 300 * 300  # the 5 minutes two hours ago fall in
        self.assertEqual(by_time(day, series, "requests_per_min")[bucket], 10)  # 50 requests in 5 minutes
        self.assertEqual(by_time(day, series, "p50_ms")[bucket], 48.0)  # the (32, 64] ms bucket's middle
        self.assertEqual(series["requests_per_min"][-1], 3.6)  # the last 5 whole minutes: 12 + 6 requests
        self.assertEqual(series["total"]["requests"], 68)  # neither the open minute nor a day and a minute ago
        self.assertEqual(series["total"]["requests_per_min"], round(68 / 1440, 2))

    def test_every_deployments_history_comes_from_one_query(self):
        endpoints = [f"model-{n}" for n in range(6)]
        for n, endpoint in enumerate(endpoints[:5]):
            closed(endpoint, END - 300, counted(ok=n + 1))
        with CaptureQueriesContext(connection) as queries:
            charts = history_charts(endpoints, now=NOW)
        self.assertEqual(len(queries), 1)
        hour = charts["windows"]["1h"]
        self.assertEqual([s["endpoint"] for s in hour["series"]], endpoints)
        self.assertEqual([s["total"]["requests"] for s in hour["series"]], [1, 2, 3, 4, 5, 0])
        quiet = hour["series"][-1]
        self.assertEqual((set(quiet["requests_per_min"]), set(quiet["p99_ms"]), quiet["total"]["p50_ms"]),
                         ({0}, {None}, None))

    def test_it_sees_this_processes_requests_before_they_are_flushed(self):
        from tests.monitoring.support import route_of, serve

        route = route_of("own")
        for n in range(3):
            serve(route, [[n, 0, 0, 0]], [0], request_id=f"own-{n}")
        # A minute later, when the minute they were served in is the last whole one.
        series = history_charts(["own"], now=time.time() + 60)["windows"]["1h"]["series"][0]
        self.assertEqual(series["requests_per_min"][-1] + series["requests_per_min"][-2], 3)


class HistorySectionTests(TestCase):
    def setUp(self):
        staff = get_user_model().objects.create_user("ops", is_staff=True, is_superuser=True)
        self.client.force_login(staff)

    def embedded(self, page: str) -> dict:
        found = re.search(r'<script id="sp-history-data" type="application/json">(.*?)</script>', page, re.S)
        self.assertIsNotNone(found, "the chart data is not embedded")
        return json.loads(found.group(1))

    def test_the_overview_charts_every_deployment_and_tables_the_hour_and_the_day(self):
        deployment("churn")
        deployment("quiet")
        now = minutes.minute_of(time.time())
        closed("churn", now - 180, counted(ok=398, errors=2))
        page = self.client.get("/admin/overview/").content.decode()
        data = self.embedded(page)
        hour, day = data["windows"]["1h"], data["windows"]["24h"]
        self.assertEqual([s["endpoint"] for s in hour["series"]], ["churn", "quiet"])
        self.assertEqual((len(hour["t"]), len(day["t"])), (60, 288))
        self.assertEqual(sum(hour["series"][0]["requests_per_min"]), 400)
        self.assertEqual(hour["series"][1]["total"]["requests"], 0)
        for canvas in ("traffic", "error_rate", "p50", "p99"):
            self.assertIn(f'data-chart="{canvas}"', page)
        row = re.search(r'<tr data-history-endpoint="churn">(.*?)</tr>', page, re.S).group(1)
        cells = re.findall(r'<td class="sp-number[^"]*">(.*?)</td>', row)
        self.assertEqual(cells, ["400", "0.50 %", "3.00 ms", "3.98 ms"] * 2)
        self.assertIn("experiments/vendor/chart.umd.js", page)  # vendored: no CDN

    def test_a_deployment_page_charts_its_history_with_a_table_in_units(self):
        row = deployment("churn")
        now = minutes.minute_of(time.time())
        closed("churn", now - 7200, counted(ok=150, seconds=0.05))
        closed("churn", now - 120, counted(ok=27, errors=3))
        page = self.client.get(f"/admin/inference/deployment/{row.pk}/change/").content.decode()
        data = self.embedded(page)
        self.assertEqual([s["endpoint"] for s in data["windows"]["1h"]["series"]], ["churn"])
        self.assertEqual(data["windows"]["24h"]["series"][0]["total"]["requests"], 180)
        for canvas in ("traffic", "error_rate", "latency"):
            self.assertIn(f'data-chart="{canvas}"', page)
        table = page[page.index('class="sp-figures sp-history-table"'):]
        for label, hour, day in (("Requests", "30", "180"), ("Traffic (mean)", "0.5 req/min", "0.12 req/min"),
                                 ("Errors", "3 (10.0 %)", "3 (1.7 %)"), ("Latency p50", "3.00 ms", "44.8 ms"),
                                 ("Latency p99", "3.98 ms", "63.6 ms")):
            self.assertIn(f'<tr><th>{label}</th><td class="sp-number">{hour}</td><td class="sp-number">{day}</td>'
                          "</tr>", table)
        # The state comes first, then the history, then the settings.
        self.assertLess(page.index("Live figures"), page.index('id="sp-history"'))
        self.assertLess(page.index('id="sp-history"'), page.index('name="replicas"'))

    def test_a_deployment_without_history_embeds_empty_windows_and_the_add_page_has_none(self):
        row = deployment("fresh")
        page = self.client.get(f"/admin/inference/deployment/{row.pk}/change/").content.decode()
        data = self.embedded(page)
        for window in data["windows"].values():
            self.assertEqual(window["series"][0]["total"]["requests"], 0)
        self.assertIn('class="sp-history-empty" hidden', page)  # history.js fills it in
        self.assertNotIn("sp-history", self.client.get("/admin/inference/deployment/add/").content.decode())

    def test_the_overview_reads_history_in_the_same_queries_however_many_deployments(self):
        deployment("first")
        self.client.get("/admin/overview/")  # sessions, the platform config and the like, once
        with CaptureQueriesContext(connection) as few:
            self.client.get("/admin/overview/")
        for n in range(5):
            deployment(f"more-{n}")
        with CaptureQueriesContext(connection) as many:
            page = self.client.get("/admin/overview/").content.decode()
        self.assertEqual(len(self.embedded(page)["windows"]["1h"]["series"]), 6)
        self.assertEqual(len(many), len(few))

    def test_nothing_deployed_has_no_history_section(self):
        page = self.client.get("/admin/overview/").content.decode()
        self.assertIn("Nothing is deployed", page)
        self.assertNotIn('id="sp-history"', page)

    def test_the_pages_open_without_redis_and_say_the_history_is_unavailable(self):
        row = deployment("churn")
        down = mock.patch("monitoring.selectors.history.minutes.read_many",
                          side_effect=redis.ConnectionError("Connection refused"))
        with down, self.assertLogs("monitoring.admin_history", "WARNING"):
            overview = self.client.get("/admin/overview/")
            page = self.client.get(f"/admin/inference/deployment/{row.pk}/change/")
        for answer in (overview, page):
            self.assertContains(answer, "The history is unavailable: Redis, which holds the latest minutes, does "
                                        "not answer.")
            self.assertNotContains(answer, "sp-history-data")
        self.assertContains(page, "Live figures")  # the rest of the page is there
