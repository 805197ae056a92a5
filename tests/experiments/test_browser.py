"""The admin results page in a real headless browser: Playwright (PyPI) driving Debian's chromium.

Skipped where the browser is missing, unless REQUIRE_BROWSER_TESTS=1 (CI) makes that a failure.
"""

import os
import shutil

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles.testing import StaticLiveServerTestCase

from experiments import services
from experiments.hooks import router
from inference.predict.contract import PredictRequest
from tests.experiments.helpers import arms, deployment

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REQUIRED = os.environ.get("REQUIRE_BROWSER_TESTS") == "1"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

missing = "playwright is not installed" if sync_playwright is None else \
    f"no chromium at {CHROMIUM}" if not shutil.which(CHROMIUM) else None
if missing and REQUIRED:
    raise RuntimeError(f"REQUIRE_BROWSER_TESTS=1 but {missing}")
pytestmark = pytest.mark.skipif(missing is not None, reason=missing or "")

DRAWN = """(id) => {
  const canvas = document.getElementById(id);
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] > 0) painted++; }
  const chart = Chart.getChart(canvas);
  return {painted, total: canvas.width * canvas.height, datasets: chart ? chart.data.datasets.length : 0,
          points: chart ? chart.data.labels.length : 0};
}"""


def seed_results(experiment) -> None:
    """Traffic, latencies and feedback through the real routing, recording and feedback services."""
    rng = np.random.default_rng(0)
    for n in range(400):
        request = PredictRequest(endpoint=experiment.endpoint, inputs=[[1, 2, 3, 4]], params={},
                                         request_id=f"b-{n}", subject_id=f"user-{n}")
        routing = router.route(request)
        truth = int(rng.integers(0, 2))
        right = rng.random() < (0.7 if routing.variant == "control" else 0.85)
        answer = {"request_id": request.request_id, "predictions": [truth if right else 1 - truth], "cached": False}
        router.record(routing, request, answer, float(rng.lognormal(-5, 0.5)))
        if n % 2 == 0:
            services.feedback_record(request_id=request.request_id, label=truth)


class ResultsPageBrowserTests(StaticLiveServerTestCase):
    def test_a_staff_user_logs_in_and_sees_the_three_charts_drawn(self):
        get_user_model().objects.create_user("ana", password="s3cret-pass!", is_staff=True, is_superuser=True)
        deployment("churn-a")
        deployment("churn-b")
        experiment = services.experiment_create(
            name="Churn v2", endpoint="churn", variants=arms(("control", "churn-a", 50), ("treatment", "churn-b", 50)))
        experiment = services.experiment_start(experiment=experiment)
        seed_results(experiment)
        results_path = f"/admin/experiments/experiment/{experiment.pk}/results/"

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{self.live_server_url}/admin/login/?next={results_path}")
                page.fill("#id_username", "ana")
                page.fill("#id_password", "s3cret-pass!")
                page.click("input[type=submit]")
                page.wait_for_url(f"**{results_path}")
                page.wait_for_function("window.experimentCharts && Object.keys(window.experimentCharts).length === 3")
                drawn = {name: page.evaluate(DRAWN, f"chart-{name}") for name in ("traffic", "latency", "outcome")}
                verdict = page.inner_text(".verdict")
                if os.environ.get("BROWSER_SCREENSHOT"):
                    page.screenshot(path=os.environ["BROWSER_SCREENSHOT"], full_page=True)
            finally:
                browser.close()

        for name, figures in drawn.items():
            # A blank canvas has no painted pixel; axes alone cover well under 1%, bars and areas far more.
            self.assertGreater(figures["painted"], figures["total"] * 0.02, (name, figures))
        self.assertEqual(drawn["traffic"]["datasets"], 2)
        self.assertGreaterEqual(drawn["traffic"]["points"], 1)
        self.assertEqual(drawn["latency"]["datasets"], 2)
        self.assertGreater(drawn["latency"]["points"], 3)
        self.assertEqual((drawn["outcome"]["datasets"], drawn["outcome"]["points"]), (2, 2))
        self.assertIn("Verdict:", verdict)
