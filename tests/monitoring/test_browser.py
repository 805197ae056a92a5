"""The monitoring pages in a real headless browser (Playwright driving Debian's chromium), reached from the
deployment's admin page: the drift page's chart per feature and the quality page's charts are drawn, and
screenshots of both are taken (BROWSER_SCREENSHOT_DIR keeps them; else a temporary folder).

Skipped where the browser is missing, unless REQUIRE_BROWSER_TESTS=1 (CI) makes that a failure.
"""

import os
import struct
import tempfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles.testing import StaticLiveServerTestCase

from tests.experiments.test_browser import CHROMIUM, CHROMIUM_ARGS, missing, sync_playwright
from tests.monitoring.test_admin import seed

pytestmark = pytest.mark.skipif(missing is not None, reason=missing or "")

DRAWN = """() => Object.entries(window.monitoringCharts || {}).map(([id, chart]) => {
  const canvas = chart.canvas;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) painted++; }
  return {id, painted, total: canvas.width * canvas.height, datasets: chart.data.datasets.length,
          labels: chart.data.labels.length,
          sums: chart.data.datasets.map((d) => d.data.reduce((a, b) => a + (b || 0), 0))};
})"""


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", header[16:24])


class MonitoringPagesBrowserTests(StaticLiveServerTestCase):
    def test_a_staff_user_goes_from_the_deployment_to_its_drift_and_quality_charts(self):
        get_user_model().objects.create_user("ana", password="s3cret-pass!", is_staff=True, is_superuser=True)
        row = seed()
        shots = Path(os.environ.get("BROWSER_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="sp-shots-"))
        shots.mkdir(parents=True, exist_ok=True)
        change = f"/admin/inference/deployment/{row.pk}/change/"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{self.live_server_url}/admin/login/?next={change}")
                page.fill("#id_username", "ana")
                page.fill("#id_password", "s3cret-pass!")
                page.click("input[type=submit]")
                page.wait_for_url(f"**{change}")
                page.click(".field-pages a[href$='/drift/']")  # the deployment's own link
                page.wait_for_function("window.monitoringCharts && Object.keys(window.monitoringCharts).length === 5")
                drift = page.evaluate(DRAWN)
                flagged = page.locator(".drift-table .drifted").count()
                page.screenshot(path=str(shots / "monitoring-drift.png"), full_page=True)
                page.click(".facts a[href$='/quality/']")
                page.click(".facts a[href='?window=1h']")
                page.wait_for_url("**?window=1h")
                page.wait_for_function("window.monitoringCharts && Object.keys(window.monitoringCharts).length === 3")
                quality = page.evaluate(DRAWN)
                page.screenshot(path=str(shots / "monitoring-quality.png"), full_page=True)
            finally:
                browser.close()

        # Four features and the predictions, each its reference and current distribution, only x2 drifted.
        self.assertEqual(sorted(chart["id"] for chart in drift), [f"drift-{i}" for i in range(5)])
        for chart in drift + quality:
            # A blank canvas has no painted pixel; axes alone cover well under 1%, bars and lines far more.
            self.assertGreater(chart["painted"], chart["total"] * 0.02, chart)
        self.assertEqual({chart["datasets"] for chart in drift}, {2})
        self.assertEqual(flagged, 1)
        self.assertEqual({chart["id"]: chart["datasets"] for chart in quality},
                         {"chart-requests": 2, "chart-latency": 3, "chart-quality": 1})
        charted = {chart["id"]: chart for chart in quality}
        self.assertEqual(charted["chart-requests"]["sums"], [200, 0])  # the 200 logged requests, none failed
        self.assertEqual(charted["chart-requests"]["labels"], 60)  # a bar a minute over the hour
        for name in ("monitoring-drift.png", "monitoring-quality.png"):
            width, height = png_size(shots / name)
            self.assertEqual(width, 1400)
            self.assertGreater(height, 900)
