"""The history charts in a real headless browser (Playwright driving Debian's chromium) at a laptop's width: the
overview draws traffic, error rate, p50 and p99 with a line per deployment, a deployment's page its own three
charts, both for the last hour and (toggled) the last day, from a recorded day of history; a deployment without
traffic says so instead of drawing empty axes. Screenshots go to BROWSER_SCREENSHOT_DIR, else a temporary folder.

Skipped where the browser is missing, unless REQUIRE_BROWSER_TESTS=1 (CI) makes that a failure.
"""

import math
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles.testing import StaticLiveServerTestCase

from inference.deployments.services import deployment_create
from inference.models import Deployment, DeploymentStatus
from monitoring import minutes
from monitoring.figures import BUCKETS, Figures
from monitoring.models import MetricMinute
from tests.experiments.test_browser import CHROMIUM, CHROMIUM_ARGS, sync_playwright
from tests.experiments.test_browser import pytestmark as browser_mark
from tests.factories import make_model
from tests.inference.test_admin_browser import LAPTOP, OVERFLOWS, ready_version, runtime
from tests.monitoring.test_browser import png_size

pytestmark = [browser_mark, pytest.mark.slow]

CHARTS = """() => Object.entries(window.historyCharts || {}).map(([name, chart]) => {
  const canvas = chart.canvas;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) painted++; }
  return {name, painted, total: canvas.width * canvas.height, labels: chart.data.labels.length,
          datasets: chart.data.datasets.map((d) => ({label: d.label, points: d.data.length,
                                                     sum: d.data.reduce((a, b) => a + (b || 0), 0)}))};
})"""
TIMES = "(w) => JSON.parse(document.getElementById('sp-history-data').textContent).windows[w].t"


def minute_figures(requests: int, errors: int, spread: list[float]) -> Figures:
    """`requests` with latencies shared over the histogram's buckets as `spread` says (shares by bucket)."""
    figures = Figures(requests=requests, errors=errors, server_errors=errors)
    counts = [int(requests * share) for share in spread] + [0] * (BUCKETS - len(spread))
    counts[spread.index(max(spread))] += requests - sum(counts)
    figures.latency_buckets = counts
    return figures


def deployments() -> dict[str, Deployment]:
    """Four deployments as the model server reports them (fraud-forest crash-looping, churn-fresh still loading),
    without traffic counted in this process's Prometheus figures (other tests count those)."""
    churn, fraud = make_model("churn-logreg"), make_model("fraud-forest")
    for model in (churn, churn, fraud):
        ready_version(model, metrics_={"accuracy": 0.93})
    made = {"churn-logreg": deployment_create(endpoint="churn-logreg", model="churn-logreg", version=1),
            "churn-v2": deployment_create(endpoint="churn-v2", model="churn-logreg", version=2, replicas=2),
            "fraud-forest": deployment_create(endpoint="fraud-forest", model="fraud-forest", version=1),
            "churn-fresh": deployment_create(endpoint="churn-fresh", model="churn-logreg", version=2)}
    for endpoint, figures in (("churn-logreg", runtime(182.4)), ("churn-v2", runtime(176.9, replicas=2)),
                              ("fraud-forest", runtime(0.0, restarts=3, error="worker exited: killed by signal 9"))):
        Deployment.objects.filter(endpoint=endpoint).update(status=DeploymentStatus.READY, runtime=figures)
    Deployment.objects.filter(endpoint="churn-fresh").update(status=DeploymentStatus.LOADING)
    return made


def record(endpoint: str, *, since_s: int, base: int, spread: list[float], now: float,
           until_s: int = 0) -> dict[int, int]:
    """A minute-by-minute history from `since_s` to `until_s` ago, rising and falling over the day, a burst of
    errors an hour ago; the closed minutes in the database, the open one in Redis. Returns {minute: requests}."""
    end = minutes.minute_of(now)
    recorded, rows = {}, []
    for minute in range(end - since_s + 60, end - until_s + 1, 60):
        ago = (end - minute) / 60
        requests = int(base * (1.3 + math.sin(ago / 180) + 0.2 * math.sin(ago / 7)))
        errors = requests // 5 if 55 <= ago <= 62 else requests // 200
        figures = minute_figures(requests, errors, spread)
        recorded[minute] = requests
        if minute == end:
            minutes.add({(endpoint, 1, minute): figures})
        else:
            rows.append(MetricMinute(endpoint=endpoint, version=1, minute=datetime.fromtimestamp(minute, UTC),
                                     **vars(figures)))
    MetricMinute.objects.bulk_create(rows)
    return recorded


class HistoryChartsBrowserTests(StaticLiveServerTestCase):
    def setUp(self):
        self.shots = Path(os.environ.get("BROWSER_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="sp-history-"))
        self.shots.mkdir(parents=True, exist_ok=True)

    def charts(self, page, count: int) -> dict[str, dict]:
        page.wait_for_function(f"window.historyCharts && Object.keys(window.historyCharts).length === {count}")
        return {chart["name"]: chart for chart in page.evaluate(CHARTS)}

    def shot(self, page, name: str) -> None:
        page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)
        page.locator("#sp-history").screenshot(path=str(self.shots / f"{name}-section.png"))  # to read it closely
        self.assertFalse(page.evaluate(OVERFLOWS), f"{name} is wider than a laptop's window")

    def empty(self, page) -> dict:
        note = page.locator("#sp-history .sp-history-empty")
        return {"visible": note.is_visible(), "text": note.inner_text(),
                "charts": page.evaluate("Object.keys(window.historyCharts).length"),
                "canvases": page.locator("#sp-history canvas").evaluate_all(
                    "nodes => nodes.filter((n) => n.offsetParent !== null).length")}

    def assert_drawn(self, charts: dict[str, dict], *, points: int) -> None:
        for chart in charts.values():
            self.assertEqual(chart["labels"], points, chart["name"])
            self.assertEqual({d["points"] for d in chart["datasets"]}, {points}, chart["name"])
            # A blank canvas has no painted pixel; axes alone cover well under 1 %, lines and bars far more.
            self.assertGreater(chart["painted"], chart["total"] * 0.02, chart["name"])

    def test_the_overview_and_a_deployment_chart_the_last_hour_and_day(self):
        get_user_model().objects.create_superuser("ana", "ana@example.com", "s3cret-pass!")
        made = deployments()
        now = time.time()
        churn = record("churn-logreg", since_s=86_400, base=40, spread=[0, 0.05, 0.6, 0.3, 0.03, 0.01, 0.01],
                       now=now)
        record("churn-v2", since_s=3 * 3600, base=9, spread=[0, 0, 0.1, 0.5, 0.3, 0.06, 0.02, 0.02], now=now)
        # Served until its workers started crashing, two hours ago.
        record("fraud-forest", since_s=8 * 3600, until_s=2 * 3600, base=5, spread=[0, 0, 0, 0.2, 0.6, 0.2], now=now)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=LAPTOP)
                page.goto(f"{self.live_server_url}/admin/login/?next=/admin/overview/")
                page.fill("#id_username", "ana")
                page.fill("#id_password", "s3cret-pass!")
                page.click("input[type=submit]")
                page.wait_for_url("**/admin/overview/")
                overview_hour = self.charts(page, 4)
                hour_times = page.evaluate(TIMES, "1h")
                self.shot(page, "overview-hour")
                page.click("#sp-history button[data-window='24h']")
                page.wait_for_selector("#sp-history[data-window='24h']")
                overview_day = self.charts(page, 4)
                day_times = page.evaluate(TIMES, "24h")
                self.shot(page, "overview-day")

                page.click("#sp-history tr[data-history-endpoint='churn-logreg'] a")
                page.wait_for_url(f"**/admin/inference/deployment/{made['churn-logreg'].pk}/change/")
                deployment_hour = self.charts(page, 3)
                deployment_times = page.evaluate(TIMES, "1h")
                self.shot(page, "deployment-hour")
                page.click("#sp-history button[data-window='24h']")
                page.wait_for_selector("#sp-history[data-window='24h']")
                deployment_day = self.charts(page, 3)
                self.shot(page, "deployment-day")

                page.goto(f"{self.live_server_url}/admin/inference/deployment/{made['churn-fresh'].pk}/change/")
                page.wait_for_selector("#sp-history[data-window='1h']")
                fresh = self.empty(page)
                self.shot(page, "deployment-no-traffic")
                page.goto(f"{self.live_server_url}/admin/inference/deployment/{made['fraud-forest'].pk}/change/")
                page.wait_for_selector("#sp-history[data-window='1h']")
                quiet_hour = self.empty(page)
                self.shot(page, "deployment-quiet-hour")
                page.click("#sp-history button[data-window='24h']")
                quiet_day = self.charts(page, 3)
                self.shot(page, "deployment-quiet-day")
            finally:
                browser.close()

        self.assertEqual(sorted(overview_hour), ["error_rate", "p50", "p99", "traffic"])
        self.assert_drawn(overview_hour, points=60)
        self.assert_drawn(overview_day, points=288)
        for chart in (*overview_hour.values(), *overview_day.values()):  # a line per deployment
            self.assertEqual([d["label"] for d in chart["datasets"]],
                             ["churn-fresh", "churn-logreg", "churn-v2", "fraud-forest"])  # by endpoint
        hour_traffic, day_traffic = ({d["label"]: d["sum"] for d in charts["traffic"]["datasets"]}
                                     for charts in (overview_hour, overview_day))
        self.assertAlmostEqual(hour_traffic["churn-logreg"], sum(churn.get(t, 0) for t in hour_times), places=1)
        # The day in 5-minute steps, in requests per minute: a fifth of each step's requests.
        self.assertAlmostEqual(day_traffic["churn-logreg"],
                               sum(churn.get(t + offset, 0) for t in day_times for offset in range(0, 300, 60)) / 5,
                               delta=0.01 * 288)
        self.assertEqual(hour_traffic["fraud-forest"], 0)  # it crashed 2 hours ago
        self.assertGreater(day_traffic["fraud-forest"], 0)
        self.assertEqual(day_traffic["churn-fresh"], 0)  # it has not served yet

        self.assertEqual(sorted(deployment_hour), ["error_rate", "latency", "traffic"])
        self.assert_drawn(deployment_hour, points=60)
        self.assert_drawn(deployment_day, points=288)
        answered, failed = deployment_hour["traffic"]["datasets"]
        self.assertEqual((answered["label"], failed["label"]), ("answered", "failed"))
        self.assertAlmostEqual(answered["sum"] + failed["sum"], sum(churn.get(t, 0) for t in deployment_times),
                               places=1)
        self.assertGreater(failed["sum"], 0)  # the burst of errors an hour ago
        self.assertEqual([d["label"] for d in deployment_hour["latency"]["datasets"]], ["p50", "p99"])

        self.assertEqual(fresh, {"visible": True, "charts": 0, "canvases": 0,
                                 "text": "No traffic yet: the charts fill in once this deployment answers requests."})
        self.assertEqual(quiet_hour, {"visible": True, "charts": 0, "canvases": 0,
                                      "text": "No traffic in the last hour: \u201cLast day\u201d has some."})
        self.assert_drawn(quiet_day, points=288)
        for name in ("overview-hour", "overview-day", "deployment-hour", "deployment-day", "deployment-no-traffic",
                     "deployment-quiet-hour", "deployment-quiet-day"):
            width, _ = png_size(self.shots / f"{name}.png")
            self.assertEqual(width, LAPTOP["width"])
