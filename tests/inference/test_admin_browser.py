"""The admin's serving pages in a real headless browser (Playwright driving Debian's chromium), at a laptop's
size: the overview, the deployments list and a deployment's page, the add-deployment form (its script shows only
the chosen model's versions), the versions list and a version's page.

ADMIN_SCREENSHOTS_DIR=<folder> keeps a screenshot of each page, to look at. Skipped where the browser is
missing, unless REQUIRE_BROWSER_TESTS=1 (CI) makes that a failure.
"""

import os
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles.testing import StaticLiveServerTestCase

from inference import metrics
from inference.deployments import instances
from inference.deployments.services import deployment_create
from inference.models import BatchJob, Deployment, DeploymentStatus, InferenceJob, JobStatus
from registry import services as registry_services
from registry.models import ModelVersion, VersionStatus
from tests.conftest import skops_artifact, upload
from tests.experiments.test_browser import CHROMIUM, CHROMIUM_ARGS, sync_playwright
from tests.experiments.test_browser import pytestmark as browser_mark
from tests.factories import make_model

pytestmark = [browser_mark, pytest.mark.slow]
SHOTS = os.environ.get("ADMIN_SCREENSHOTS_DIR")
LAPTOP = {"width": 1366, "height": 768}
# Wider than the window: the page scrolls sideways (1 px of rounding allowed).
OVERFLOWS = "() => document.documentElement.scrollWidth > window.innerWidth + 1"
# A changelist's table scrolls inside its box when its columns do not fit: columns cut off at the right.
LIST_SCROLLS = ("() => [...document.querySelectorAll('#changelist .results')]"
                ".some(box => box.scrollWidth > box.clientWidth + 1)")
COLUMNS = [{"name": f"f{i}", "dtype": "float64", "nullable": False} for i in range(9)] + [
    {"name": "plan", "dtype": "string", "nullable": True}]


def ready_version(model, *, metrics_: dict, status: str = VersionStatus.READY, reason: str = "") -> ModelVersion:
    version = registry_services.model_version_create(model=model, artifact=upload("a", skops_artifact()),
                                                     flavor="sklearn", metrics=metrics_)
    signature = {"columns": COLUMNS, "n_features": 10, "input_kind": "tabular", "classes": [0, 1],
                 "inputs": [{"name": "input", "dtype": "float64", "shape": [-1, 10]}]}
    ModelVersion.objects.filter(pk=version.pk).update(
        status=status, status_reason=reason, signature=signature,
        validation={"load_ms": 41.73219, "memory_mb": 96.4821, "smoke": {"rows": 4, "predictions": [0, 1, 1, 0]}})
    return ModelVersion.objects.get(pk=version.pk)


def runtime(memory_mb: float, *, replicas: int = 1, restarts: int = 0, error: str | None = None) -> dict:
    now = time.time()
    workers = [{"generation": 1, "replica": n, "state": "ready" if not restarts else "starting", "pid": 4200 + n,
                "load_ms": 3495.221714999957, "memory_mb": memory_mb / replicas, "restarts": restarts,
                "last_error": error, "requests": 1200 + n} for n in range(replicas)]
    return {"loaded": not restarts, "serving_generation": 1, "replicas": workers, "load_ms": 3495.221714999957,
            "memory_mb": memory_mb, "queue_depth": 0, "throughput_rps": 0 if restarts else 41.28571,
            "last_request_at": now - 3, "updated_at": now - 1}


def seed() -> dict:
    churn, fraud = make_model("churn-logreg"), make_model("fraud-forest")
    v1 = ready_version(churn, metrics_={"accuracy": 0.931234567, "f1_macro": 0.9299, "roc_auc": 0.97811})
    v2 = ready_version(churn, metrics_={"accuracy": 0.9412, "f1_macro": 0.9388, "roc_auc": 0.98154})
    ready_version(churn, metrics_={}, status=VersionStatus.VALIDATING)
    failed = ready_version(fraud, metrics_={}, status=VersionStatus.FAILED,
                           reason="the artifact holds types outside the allow-list: numpy.random.RandomState")
    fraud_v = ready_version(fraud, metrics_={"accuracy": 0.9625, "roc_auc": 0.99012})
    registry_services.model_alias_set(model=churn, alias="production", version_number=1)
    registry_services.model_alias_set(model=churn, alias="staging", version_number=2)
    serving = deployment_create(endpoint="churn-logreg", model="churn-logreg", alias="production",
                                follow_alias=True)
    canary = deployment_create(endpoint="churn-v2", model="churn-logreg", version=2, replicas=2)
    crashing = deployment_create(endpoint="fraud-forest", model="fraud-forest", version=fraud_v.version)
    # What the model server of this host reports about itself (its status decides each deployment's).
    here = instances.instance_register(name="ms-1", pool="default", address="", host="localhost", pid=4100)
    instances.instance_heartbeat(instance_id=here.pk, memory_mb=512.0)
    for deployment, figures in ((serving, runtime(182.4)), (canary, runtime(176.9, replicas=2)),
                                (crashing, runtime(0.0, restarts=3, error="worker exited: killed by signal 9 (OOM)"))):
        Deployment.objects.filter(pk=deployment.pk).update(status=DeploymentStatus.READY, runtime=figures)
        instances.instance_record_status(instance_id=here.pk, deployment_id=deployment.pk, generation=1,
                                         status=DeploymentStatus.READY, reason="")
        instances.instance_record_runtime(instance_id=here.pk, deployment_id=deployment.pk, runtime=figures)
    for endpoint, version, count, seconds in (("churn-logreg", 1, 400, 0.0031), ("churn-v2", 2, 90, 0.0047)):
        route = type("Route", (), {"endpoint": endpoint, "model": "churn-logreg", "version": version})()
        for n in range(count):
            metrics.observe_prediction(route, seconds * (1 + n % 7 / 10), cached=n % 5 == 0, cache_used=True, rows=1,
                                       batch_size=1 + n % 4)
        metrics.observe_error(route, "invalid_input")
    InferenceJob.objects.create(endpoint="churn-logreg", inputs=[[1]], owner="anonymous", status=JobStatus.FAILED,
                                error_code="lost", error="the worker process died (OOM killer) on its last attempt")
    BatchJob.objects.create(endpoint="churn-v2", owner="anonymous", input_format="csv", input_path="x",
                            result_path="y", status=JobStatus.FAILED, error_code="timeout",
                            error="the job ran past its timeout_ms (600000)")
    return {"v1": v1, "v2": v2, "failed": failed, "serving": serving, "churn": churn, "fraud": fraud}


class AdminPagesBrowserTests(StaticLiveServerTestCase):
    def shot(self, page, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)

    def open(self, page, path: str, name: str, ready: str):
        page.goto(f"{self.live_server_url}{path}")
        page.wait_for_selector(ready)
        self.shot(page, name)
        self.assertFalse(page.evaluate(OVERFLOWS), f"{name} is wider than a laptop's window")
        self.assertFalse(page.evaluate(LIST_SCROLLS), f"{name}: the list scrolls sideways")

    def test_the_serving_pages_render_with_their_figures_at_a_laptops_size(self):
        get_user_model().objects.create_superuser("ana", "ana@example.com", "s3cret-pass!")
        data = seed()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=LAPTOP)
                page.goto(f"{self.live_server_url}/admin/login/?next=/admin/")
                page.fill("#id_username", "ana")
                page.fill("#id_password", "s3cret-pass!")
                page.click("input[type=submit]")
                page.wait_for_selector("#sp-overview-link")
                self.shot(page, "admin-index")

                self.open(page, "/admin/overview/", "overview", "#sp-deployments table")
                rows = page.locator("#sp-deployments tbody tr")
                self.assertEqual(rows.count(), 3)
                churn = page.locator("tr[data-endpoint='churn-logreg']").inner_text()
                self.assertIn("1 of 1", churn)  # replicas ready of those asked for
                self.assertIn("0 of 1", page.locator("tr[data-endpoint='fraud-forest']").inner_text())
                self.assertIn("41.29 req/s", churn)
                self.assertIn("0.25 %", churn)  # 1 error in 401 requests
                failures = page.inner_text("#sp-failures")
                for text in ("fraud-forest", "killed by signal 9", "allow-list", "OOM killer", "timeout_ms"):
                    self.assertIn(text, failures)

                self.open(page, "/admin/inference/deployment/", "deployments", "#result_list")
                listing = page.inner_text("#result_list")
                self.assertIn("182.4 MB", listing)
                self.assertIn("4.49 / 7.93 ms", listing)  # p50 / p99, rounded
                self.assertIn("0.25 %", listing)

                self.open(page, f"/admin/inference/deployment/{data['serving'].pk}/change/", "deployment",
                          "table.sp-replicas")
                state = page.inner_text("fieldset")
                for text in ("3,495 ms", "182.4 MB", "41.29 req/s", "Requests\t401", "p50 / p95 / p99"):
                    self.assertIn(text, state)

                self.open(page, "/admin/inference/deployment/add/", "deployment-add-empty", "#id_model")
                page.select_option("#id_model", str(data["churn"].pk))
                visible = page.eval_on_selector_all("#id_model_version option:not([hidden])",
                                                    "options => options.map(o => o.textContent)")
                self.assertEqual([label.split(" \u00b7 ")[0] for label in visible], ["---------", "v3", "v2", "v1"])
                self.assertTrue(page.locator("#id_model_version option", has_text="validating").is_disabled())
                aliases = page.eval_on_selector_all("#id_alias option:not([hidden])", "o => o.map(x => x.value)")
                self.assertEqual(aliases, ["", "production", "staging"])
                page.fill("#id_endpoint", "churn-canary")
                page.select_option("#id_model_version", str(data["v2"].pk))
                self.shot(page, "deployment-add")
                page.click("input[name=_save]")
                page.wait_for_selector("ul.messagelist")
                self.assertEqual(page.locator("ul.messagelist li.success").count(), 1)

                self.open(page, "/admin/registry/modelversion/", "versions", "#result_list")
                self.assertIn("accuracy 0.9312", page.inner_text("#result_list"))
                self.assertIn("9.0 KB", page.inner_text("#result_list"))
                self.open(page, f"/admin/registry/modelversion/{data['v1'].pk}/change/", "version",
                          ".field-signature_table table")
                self.assertEqual(page.locator(".field-signature_table tbody tr").count(), 10)
                self.assertIn("plan\tstring\tyes", page.inner_text(".field-signature_table"))
                self.assertIn("0.9312", page.inner_text(".field-metrics_table"))
                self.assertIn("passed on 4 rows", page.inner_text(".field-validation_table"))
                self.assertEqual(page.locator("a.sp-deploy").count(), 1)
                self.assertEqual(page.locator("a.sp-download").count(), 1)
            finally:
                browser.close()
        # The ORM refuses to run inside Playwright's event loop: checked once the browser is closed.
        self.assertEqual(Deployment.objects.get(endpoint="churn-canary").model_version, data["v2"])
