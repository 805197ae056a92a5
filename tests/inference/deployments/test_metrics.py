import os
import subprocess
import sys

from django.contrib.auth import get_user_model
from django.test import TestCase

from inference.metrics import histogram_quantile
from tests.factories import make_model
from tests.inference.live import toy_version
from tests.paths import REPO_ROOT as ROOT

ROUTE = 'SimpleNamespace(endpoint="e", model="m", version=1)'

RECORD = """
import sys
from types import SimpleNamespace
from inference import metrics
for _ in range(int(sys.argv[1])):
    metrics.observe_prediction({route}, 0.003, cached=False, cache_used=True, rows=1, batch_size=4)
"""
EXPOSE = "from inference import metrics; import sys; sys.stdout.write(metrics.exposition().decode())"


def _python(code: str, *args: str, env: dict) -> str:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True, timeout=60).stdout


def test_counts_are_summed_across_processes(tmp_path):
    # Two gunicorn workers each count their own requests; /metrics must report the sum.
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    _python(RECORD.format(route=ROUTE), "3", env=env)
    _python(RECORD.format(route=ROUTE), "4", env=env)
    text = _python(EXPOSE, env=env)
    assert 'sp_prediction_requests_total{endpoint="e",model="m",outcome="ok",version="1"} 7.0' in text
    assert 'sp_cache_requests_total{endpoint="e",result="miss"} 7.0' in text
    assert 'sp_batch_size_rows_count{endpoint="e",model="m",version="1"} 7.0' in text


def test_quantiles_interpolate_within_buckets():
    buckets = [(0.001, 0.0), (0.002, 50.0), (0.004, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(buckets, 0.5) == 0.002
    assert abs(histogram_quantile(buckets, 0.75) - 0.003) < 1e-12
    assert histogram_quantile([], 0.5) is None


class DeploymentAdminTests(TestCase):
    def test_the_deployment_list_shows_status_and_live_figures(self):
        from inference.deployments.services import deployment_create

        model = make_model("scorer", task="regression")
        toy_version(model)
        deployment = deployment_create(endpoint="scorer", model="scorer", version=1)
        deployment.runtime = {"loaded": True, "memory_mb": 123.4, "load_ms": 56.0}
        deployment.save()
        admin = get_user_model().objects.create_superuser("root", password="pw")
        self.client.force_login(admin)
        page = self.client.get("/admin/inference/deployment/")
        self.assertEqual(page.status_code, 200)
        html = page.content.decode()
        for text in ("scorer", "pending", "123.4 MB", "P50 / p99"):
            self.assertIn(text, html)
        change = self.client.get(f"/admin/inference/deployment/{deployment.pk}/change/")
        self.assertContains(change, "Live figures")
        self.assertContains(change, "Cache hit rate")

    def test_admin_actions_undeploy_and_restart(self):
        from inference.deployments.services import deployment_create
        from inference.models import Deployment

        model = make_model("scorer", task="regression")
        toy_version(model)
        first = deployment_create(endpoint="one", model="scorer", version=1)
        second = deployment_create(endpoint="two", model="scorer", version=1)
        admin = get_user_model().objects.create_superuser("root", password="pw")
        self.client.force_login(admin)
        self.client.post("/admin/inference/deployment/", {"action": "restart", "_selected_action": [first.pk]})
        self.client.post("/admin/inference/deployment/", {"action": "undeploy", "_selected_action": [second.pk]})
        self.assertEqual(Deployment.objects.get(pk=first.pk).generation, 2)
        self.assertEqual(Deployment.objects.get(pk=second.pk).status, "stopped")


class DeployVersionActionTests(TestCase):
    def test_a_version_is_deployed_from_the_registry_admin(self):
        from inference.models import Deployment

        model = make_model("scorer", task="regression")
        version = toy_version(model)
        admin = get_user_model().objects.create_superuser("root", password="pw")
        self.client.force_login(admin)
        url = "/admin/registry/modelversion/"
        form = self.client.post(url, {"action": "deploy_version", "_selected_action": [version.pk]})
        self.assertContains(form, "scorer-v1")
        self.client.post(url, {"action": "deploy_version", "_selected_action": [version.pk], "apply": "1",
                               "endpoint": "from-admin", "replicas": 2, "max_batch_size": 8,
                               "batch_timeout_ms": 2})
        deployment = Deployment.objects.get(endpoint="from-admin")
        self.assertEqual((deployment.replicas, deployment.max_batch_size, deployment.model_version_id),
                         (2, 8, version.pk))
