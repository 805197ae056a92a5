"""Readiness with a failed deployment: the instance stays ready for the others; the failure shows on its own.
A deployment made after the process started does not pull it while its model loads."""

from datetime import timedelta
from unittest import mock

from django.utils import timezone
from rest_framework.test import APIClient

from inference.models import DeploymentStatus
from tests.factories import key_client, make_model
from tests.inference.jobs.support import deploy_toy
from tests.inference.live import LiveServerTestCase, toy_version


class FailedDeploymentReadinessTests(LiveServerTestCase):
    def test_a_deployment_whose_artifact_cannot_load_leaves_the_server_ready_for_the_others(self):
        deploy_toy(self, "healthy")
        toy_version(make_model("broken"), task_classes=[0, 1], fail_load="corrupt artifact")
        manage = key_client("manage")
        created = manage.post("/api/v1/deployments/", {"endpoint": "broken", "model": "broken", "version": 1},
                              format="json")
        self.assertEqual(created.status_code, 201, created.content)
        failed = self.wait_status("broken", DeploymentStatus.FAILED)
        self.assertIn("corrupt artifact", failed.status_reason)

        ready = APIClient().get("/health/ready")
        self.assertEqual(ready.status_code, 200, ready.content)
        model_server = ready.json()["checks"]["model_server"]
        self.assertEqual((model_server["failed"], model_server["not_serving"]), (["broken"], []))
        self.assertEqual(APIClient().get("/v2/health/ready").status_code, 200)

        predict = key_client("predict")
        self.assertEqual(predict.get("/v2/models/broken/ready").status_code, 503)
        self.assertEqual(predict.get("/v2/models/healthy/ready").status_code, 200)
        answer = predict.post("/api/v1/predict/healthy", {"inputs": [[1.0, 2.0, 3.0]]}, format="json")
        self.assertEqual(answer.status_code, 200, answer.content)
        status = manage.get("/api/v1/deployments/broken/").json()
        self.assertEqual(status["status"], "failed")


class StartingDeploymentReadinessTests(LiveServerTestCase):
    def test_a_new_deployment_still_loading_is_listed_not_counted_unless_it_was_there_at_start(self):
        deploy_toy(self, "healthy")
        toy_version(make_model("slow"), task_classes=[0, 1], load_ms=4000)
        created = key_client("manage").post("/api/v1/deployments/", {"endpoint": "slow", "model": "slow",
                                                                      "version": 1}, format="json")
        self.assertEqual(created.status_code, 201, created.content)

        ready = APIClient().get("/health/ready")
        self.assertEqual(ready.status_code, 200, ready.content)
        checks = ready.json()["checks"]
        self.assertEqual((checks["model_server"]["starting"], checks["model_server"]["not_serving"]), (["slow"], []))
        self.assertEqual(checks["model_server_instances"]["starting"], ["slow"])

        # The same deployment as one this process found at its start: it waits for it.
        with mock.patch("inference.modelserver.health.STARTED_AT", timezone.now() + timedelta(days=1)):
            waiting = APIClient().get("/health/ready")
        self.assertEqual(waiting.status_code, 503, waiting.content)
        self.assertEqual(waiting.json()["checks"]["model_server"]["not_serving"], ["slow"])

        self.wait_status("slow", DeploymentStatus.READY)
        with mock.patch("inference.modelserver.health.STARTED_AT", timezone.now() + timedelta(days=1)):
            served = APIClient().get("/health/ready")
        self.assertEqual(served.status_code, 200, served.content)
        self.assertEqual(served.json()["checks"]["model_server"]["starting"], [])
