"""The API docs in a real headless browser (Playwright driving Debian's chromium), served as `make serve`
serves them (gunicorn, collected static files): Swagger UI renders every operation from the app's own files
with nothing fetched elsewhere, and "Try it out" with an API key performs a prediction; ReDoc renders too.

Skipped where the browser is missing, unless REQUIRE_BROWSER_TESTS=1 (CI) makes that a failure.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio
from sklearn.linear_model import LogisticRegression

from core.services import api_key_create
from inference.deployments.services import deployment_create
from registry import services as registry_services
from tests.conftest import upload
from tests.experiments.test_browser import CHROMIUM, CHROMIUM_ARGS, sync_playwright
from tests.experiments.test_browser import pytestmark as browser_mark
from tests.factories import make_model
from tests.inference.live import ROOT, LiveServerTestCase, LiveWebServer

pytestmark = [browser_mark, pytest.mark.slow]
SHOTS = os.environ.get("DOCS_SCREENSHOTS_DIR")  # set it to keep the pages' screenshots for a look


def demo_like_churn_model() -> tuple[LogisticRegression, bytes]:
    """10 features, like the demo `churn-logreg` the docs' example bodies name."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 10))
    model = LogisticRegression(max_iter=500).fit(x, (x[:, 0] + x[:, 9] > 0).astype(int))
    with tempfile.TemporaryDirectory() as folder:
        sio.dump(model, Path(folder) / "model.skops")
        return model, (Path(folder) / "model.skops").read_bytes()


def collected_static() -> str:
    """collectstatic as `make serve` runs it (the production settings' manifest storage)."""
    folder = tempfile.mkdtemp(prefix="sp-static-")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "servingplatform.settings", "STATIC_ROOT": folder}
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                   check=True, timeout=300)
    return folder


class SwaggerTryItOutTests(LiveServerTestCase):
    def setUp(self):
        super().setUp()
        self.model, artifact = demo_like_churn_model()
        model = make_model("churn-logreg")
        version = registry_services.model_version_create(model=model, artifact=upload("a", artifact),
                                                         flavor="sklearn")
        registry_services.model_version_validate(version_id=version.pk)
        deployment_create(endpoint="churn-logreg", model="churn-logreg", version=1)
        self.wait_ready("churn-logreg")
        _, self.key = api_key_create(name="docs-reader", scope="predict")
        static = collected_static()
        self.addCleanup(__import__("shutil").rmtree, static, True)
        self.web = LiveWebServer(STATIC_ROOT=static)
        self.addCleanup(self.web.stop)

    def shot(self, page, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=False)

    def test_swagger_renders_every_operation_and_try_it_out_predicts_with_an_api_key(self):
        fetched = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                # No internet here, as on many machines: a request leaving the app is aborted, and recorded.
                page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
                    (self.web.url, "data:", "blob:")) else (fetched.append(route.request.url), route.abort()))
                page.goto(f"{self.web.url}/api/docs/")
                page.wait_for_selector("#operations-predict-predict", timeout=60_000)
                self.assertGreater(page.locator(".opblock").count(), 40)
                self.shot(page, "swagger")

                page.click("button.authorize")
                scheme = page.locator(".auth-container", has_text="ApiKeyAuth")
                scheme.locator("input").fill(self.key)
                scheme.locator("button.authorize").click()
                page.click("button.btn-done")

                operation = page.locator("#operations-predict-predict")
                operation.locator(".opblock-summary").click()
                operation.locator("button.try-out__btn").click()
                operation.locator("tr[data-param-name='endpoint'] input").fill("churn-logreg")
                body = operation.locator("textarea.body-param__text").input_value()
                self.assertIn('"inputs"', body)  # the example body, as the docs show it
                operation.locator("button.execute").click()
                status = operation.locator(".live-responses-table .response .response-col_status")
                status.wait_for(timeout=60_000)
                self.shot(page, "swagger-try-it-out")
                self.assertEqual(status.first.inner_text().strip(), "200")
                answer = operation.locator(".live-responses-table .response-col_description pre").first.inner_text()
                self.assertIn('"endpoint": "churn-logreg"', answer)
                expected = self.model.predict([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]]).tolist()
                self.assertIn(f'"predictions": [\n    {expected[0]}\n  ]', answer)

                page.goto(f"{self.web.url}/api/redoc/")
                page.wait_for_selector("[data-section-id='operation/predict']", timeout=60_000)
                self.shot(page, "redoc")
            finally:
                browser.close()
        # ReDoc's footer logo is blocked by the page's Content-Security-Policy before any request leaves.
        self.assertEqual(fetched, [], "the docs fetched from outside the app")
