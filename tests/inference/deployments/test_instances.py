"""Model server instances in the database: each writes its own rows, the deployment's status is what the live
ones add up to (ready with one serving, pending for a pool nobody serves), a lapsed heartbeat drops out; the
API and the admin show it per instance."""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import TestCase, override_settings
from django.utils import timezone

from inference.deployments import instances
from inference.deployments.services import deployment_create
from inference.models import Deployment, ModelServerInstance
from tests.factories import key_client, make_model
from tests.inference.live import toy_version


@override_settings(MODEL_SERVER_HEARTBEAT_TTL_S=10)
class InstanceStatusTests(TestCase):
    def setUp(self):
        model = make_model("churn", task="regression")
        toy_version(model)
        self.deployment = deployment_create(endpoint="churn", model="churn", version=1)
        self.a = instances.instance_register(name="ms-a", pool="default", address="10.0.0.1:7000", host="a", pid=1)
        self.b = instances.instance_register(name="ms-b", pool="default", address="10.0.0.2:7000", host="b", pid=2)

    def record(self, instance, status, reason=""):
        instances.instance_record_status(instance_id=instance.pk, deployment_id=self.deployment.pk, generation=1,
                                         status=status, reason=reason)
        instances.deployment_sum_up(deployment_id=self.deployment.pk)
        self.deployment.refresh_from_db()

    def detail(self):
        response = key_client("manage").get("/api/v1/deployments/churn/")
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()

    def test_one_ready_instance_makes_the_deployment_ready_whatever_the_others_say(self):
        self.record(self.a, "loading", "loading the model")
        self.assertEqual(self.deployment.status, "loading")
        self.record(self.b, "ready")
        self.record(self.a, "failed", "bad weights")  # a's report does not overwrite what b serves
        self.assertEqual(self.deployment.status, "ready")
        body = self.detail()
        self.assertEqual((body["status"], body["instances_ready"]), ("ready", 1))
        self.assertEqual({(i["name"], i["status"]) for i in body["instances"]}, {("ms-a", "failed"), ("ms-b", "ready")})

    def test_a_change_no_instance_has_reported_yet_is_rolling_out_not_done(self):
        self.record(self.a, "ready")
        self.assertEqual((self.detail()["status"], self.detail()["status_reason"]), ("ready", ""))
        # A new version bumps the generation: until a model server reports it, a waiting client must not see
        # "ready" with no reason (the client's deploy() returned while the old version still answered).
        Deployment.objects.filter(pk=self.deployment.pk).update(generation=2)
        self.assertEqual((self.detail()["status"], self.detail()["status_reason"]),
                         ("ready", "rolling out a new generation"))
        instances.instance_record_status(instance_id=self.a.pk, deployment_id=self.deployment.pk, generation=2,
                                         status="ready", reason="")
        self.assertEqual((self.detail()["status"], self.detail()["status_reason"]), ("ready", ""))

    def test_all_instances_failed_is_failed_with_the_reason(self):
        self.record(self.a, "failed", "bad weights")
        self.record(self.b, "failed", "bad weights")
        self.assertEqual((self.deployment.status, self.deployment.status_reason), ("failed", "bad weights"))

    def test_an_instance_whose_heartbeat_lapsed_leaves_the_status_and_the_list(self):
        self.record(self.a, "ready")
        self.record(self.b, "ready")
        self.assertEqual(self.detail()["instances_ready"], 2)
        ModelServerInstance.objects.filter(pk=self.b.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=11))
        body = self.detail()
        self.assertEqual(([i["name"] for i in body["instances"]], body["instances_ready"], body["status"]),
                         (["ms-a"], 1, "ready"))

    def test_with_every_instance_of_its_pool_gone_it_is_pending_with_the_reason(self):
        self.record(self.a, "ready")
        ModelServerInstance.objects.update(heartbeat_at=timezone.now() - timedelta(seconds=30))
        body = self.detail()
        self.assertEqual((body["status"], body["status_reason"], body["instances"]),
                         ("pending", "no live model server in pool 'default'", []))
        instances.deployments_sum_up_orphaned()  # what any live model server does for other pools
        self.deployment.refresh_from_db()
        self.assertEqual(self.deployment.status, "pending")

    def test_a_stopping_instance_takes_only_its_own_rows_away(self):
        self.record(self.a, "ready")
        self.record(self.b, "ready")
        for deployment_id in instances.instance_stop(instance_id=self.b.pk):
            instances.deployment_sum_up(deployment_id=deployment_id)
        self.assertEqual([i["name"] for i in self.detail()["instances"]], ["ms-a"])
        self.assertEqual(Deployment.objects.get().status, "ready")

    def test_prometheus_accounts_for_every_instance_and_the_ready_count(self):
        self.record(self.a, "ready")
        self.record(self.b, "ready")
        ModelServerInstance.objects.filter(pk=self.b.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=30))
        text = key_client("manage").get("/metrics").content.decode()
        self.assertIn('sp_model_server_instance_up{instance="ms-a",pool="default"} 1.0', text)
        self.assertIn('sp_model_server_instance_up{instance="ms-b",pool="default"} 0.0', text)
        self.assertIn('sp_deployment_instances_ready{endpoint="churn"} 1.0', text)

    def test_a_restarted_instance_forgets_what_its_previous_run_reported(self):
        self.record(self.a, "ready")
        instances.instance_register(name="ms-a", pool="default", address="10.0.0.1:7000", host="a", pid=3)
        self.assertEqual([i["name"] for i in self.detail()["instances"]], [])


class PoolApiTests(TestCase):
    def setUp(self):
        toy_version(make_model("churn", task="regression"))
        self.manage = key_client("manage")

    def test_a_pool_is_set_on_create_and_patch_and_validated(self):
        created = self.manage.post("/api/v1/deployments/", {"endpoint": "churn", "model": "churn", "version": 1,
                                                             "pool": "gpu"}, format="json")
        self.assertEqual((created.status_code, created.json()["pool"]), (201, "gpu"))
        patched = self.manage.patch("/api/v1/deployments/churn/", {"pool": "cpu-large"}, format="json")
        self.assertEqual((patched.status_code, patched.json()["pool"]), (200, "cpu-large"))
        refused = self.manage.patch("/api/v1/deployments/churn/", {"pool": "../gpu"}, format="json")
        self.assertEqual(refused.status_code, 400)
        self.assertIn("pool", refused.json()["error"]["details"]["fields"])
        self.assertEqual(Deployment.objects.get().pool, "cpu-large")

    def test_the_default_pool_is_default(self):
        created = self.manage.post("/api/v1/deployments/", {"endpoint": "churn", "model": "churn", "version": 1},
                                   format="json")
        self.assertEqual(created.json()["pool"], "default")


@override_settings(MODEL_SERVER_HEARTBEAT_TTL_S=10)
class InstanceAdminTests(TestCase):
    def setUp(self):
        admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root")
        self.client.force_login(admin)
        toy_version(make_model("churn", task="regression"))
        self.deployment = deployment_create(endpoint="churn", model="churn", version=1)
        live = instances.instance_register(name="ms-live", pool="gpu", address="h:1", host="h", pid=1)
        gone = instances.instance_register(name="ms-gone", pool="default", address="h:2", host="h", pid=2)
        ModelServerInstance.objects.filter(pk=gone.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
        instances.instance_record_status(instance_id=live.pk, deployment_id=self.deployment.pk, generation=1,
                                         status="ready", reason="")
        instances.instance_record_runtime(instance_id=live.pk, deployment_id=self.deployment.pk,
                                          runtime={"loaded": True, "memory_mb": 12.5, "queue_depth": 3})

    def test_the_instances_list_shows_health_pool_heartbeat_and_loaded_deployments(self):
        page = self.client.get("/admin/inference/modelserverinstance/").content.decode()
        self.assertRegex(page, r"ms-live.*background:#2e7d32.*gpu")
        self.assertRegex(page, r"ms-gone.*background:#c62828")
        self.assertIn("churn", page)

    def test_the_deployment_page_lists_its_instances(self):
        page = self.client.get(f"/admin/inference/deployment/{self.deployment.pk}/change/").content.decode()
        self.assertRegex(page, r"<td>ms-live</td><td>gpu</td><td>ready</td><td>yes</td>")
        self.assertIn("3", page)


class ModelServerStartTests(TestCase):
    """run_model_server refuses what would serve other hosts unsafely, before anything starts."""

    def refusal(self, **overrides) -> str:
        with override_settings(**overrides), self.assertRaises(CommandError) as refused:
            call_command("run_model_server")
        return str(refused.exception)

    def test_a_listener_needs_a_long_enough_secret(self):
        self.assertIn("MODEL_SERVER_SECRET", self.refusal(MODEL_SERVER_LISTEN="127.0.0.1:7070", MODEL_SERVER_SECRET=""))
        self.assertIn("MODEL_SERVER_SECRET", self.refusal(MODEL_SERVER_LISTEN="127.0.0.1:7070",
                                                          MODEL_SERVER_SECRET="short"))

    def test_a_bad_listen_address_or_pool_is_named(self):
        self.assertIn("MODEL_SERVER_LISTEN", self.refusal(MODEL_SERVER_LISTEN="no-port", MODEL_SERVER_SECRET="x" * 32))
        self.assertIn("MODEL_SERVER_POOL", self.refusal(MODEL_SERVER_POOL="GPU pool"))

    def test_a_certificate_without_its_key_is_refused(self):
        self.assertIn("MODEL_SERVER_TLS_KEY", self.refusal(MODEL_SERVER_LISTEN="127.0.0.1:7070",
                                                           MODEL_SERVER_SECRET="x" * 32, MODEL_SERVER_TLS_CERT="c.pem"))
