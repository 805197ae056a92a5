"""The deployments admin: the add form deploys only a ready version of the chosen model (a forged POST
included), handles aliases and ensembles, defaults as the API does, shows a refusal alone; the change page shows
the runtime as a table with units; the overview page lists every deployment and the recent failures."""

import re

from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.test import TestCase

from inference.deployments.services import deployment_create
from inference.models import BatchJob, Deployment, InferenceJob, JobStatus
from registry.models import ModelVersion, VersionStatus
from registry.services import model_alias_set
from tests.factories import key_client, make_model
from tests.inference.live import toy_version

ADD = "/admin/inference/deployment/add/"
KNOBS = {"replicas": 1, "max_batch_size": 32, "batch_timeout_ms": 0, "max_queue": 256, "timeout_ms": 5000,
         "max_rows": 1024, "idle_ttl_s": 300, "warmup_requests": 1, "device": "cpu"}


def messages_of(response) -> list[tuple[str, str]]:
    return [(message.level_tag, str(message)) for message in get_messages(response.wsgi_request)]


class AdminCase(TestCase):
    def setUp(self):
        admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root")
        self.client.force_login(admin)
        self.churn = make_model("churn", task="classification")
        self.fraud = make_model("fraud", task="classification")
        self.churn_v1 = toy_version(self.churn, task_classes=[0, 1])
        self.churn_v2 = toy_version(self.churn, task_classes=[0, 1])
        self.fraud_v1 = toy_version(self.fraud, task_classes=[0, 1])
        ModelVersion.objects.filter(pk=self.churn_v2.pk).update(status=VersionStatus.VALIDATING)

    def add(self, **fields):
        body = {"endpoint": "churn-api", "model": self.churn.pk, "model_version": self.churn_v1.pk, "alias": "",
                "ensemble": "[]", **KNOBS, **fields}
        return self.client.post(ADD, {k: v for k, v in body.items() if v is not None})


class AddFormTests(AdminCase):
    def test_versions_carry_their_model_and_those_not_ready_are_disabled_with_their_status(self):
        page = self.client.get(ADD).content.decode()
        ready = re.search(rf'<option value="{self.churn_v1.pk}" data-model="{self.churn.pk}">([^<]*)</option>', page)
        self.assertIsNotNone(ready, page)
        self.assertIn("v1 \u00b7 ready", ready.group(1))
        self.assertRegex(page, rf'<option value="{self.churn_v2.pk}" data-model="{self.churn.pk}" disabled>'
                               r"v2 \u00b7 validating")
        self.assertIn(f'data-model="{self.fraud.pk}"', page)
        self.assertIn("inference/deployment_form.js", page)  # hides the other models' options

    def test_it_deploys_the_chosen_version_and_says_so(self):
        response = self.add()
        deployment = Deployment.objects.get(endpoint="churn-api")
        self.assertRedirects(response, "/admin/inference/deployment/", fetch_redirect_response=False)
        self.assertEqual((deployment.model, deployment.model_version), (self.churn, self.churn_v1))
        self.assertEqual([level for level, _ in messages_of(response)], ["success"])

    def test_a_forged_post_cannot_deploy_another_models_version(self):
        response = self.add(model_version=self.fraud_v1.pk)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "v1 is a version of &#x27;fraud&#x27;, not of &#x27;churn&#x27;.")
        self.assertFalse(Deployment.objects.exists())
        self.assertEqual(messages_of(response), [])

    def test_a_version_that_is_not_ready_is_refused_beside_the_field(self):
        response = self.add(model_version=self.churn_v2.pk)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Version 2 of &#x27;churn&#x27; is validating")
        self.assertFalse(Deployment.objects.exists())

    def test_an_alias_of_the_model_deploys_what_it_names_and_can_be_followed(self):
        model_alias_set(model=self.churn, alias="production", version_number=1)
        self.add(model_version="", alias="production", follow_alias="on")
        deployment = Deployment.objects.get(endpoint="churn-api")
        self.assertEqual((deployment.alias, deployment.follow_alias, deployment.model_version),
                         ("production", True, self.churn_v1))

    def test_an_alias_the_model_does_not_have_is_refused(self):
        model_alias_set(model=self.fraud, alias="staging", version_number=1)
        response = self.add(model_version="", alias="staging")
        self.assertContains(response, "Model &#x27;churn&#x27; has no alias &#x27;staging&#x27;.")
        self.assertFalse(Deployment.objects.exists())

    def test_an_ensemble_is_checked_by_the_apis_rules(self):
        third = toy_version(self.churn, task_classes=[0, 1])
        self.add(ensemble=f'[{{"version": {third.version}, "weight": 0.5}}]')
        self.assertEqual(Deployment.objects.get().ensemble, [{"version": 3, "weight": 0.5}])
        Deployment.objects.all().delete()
        response = self.add(ensemble='[{"version": 2}]')  # validating: not deployable
        self.assertContains(response, "Version 2 of &#x27;churn&#x27; is validating")
        response = self.add(ensemble='[{"version": 3, "weight": -1}]')
        self.assertContains(response, "Ensure this value is greater than or equal to 0.0.")
        self.assertFalse(Deployment.objects.exists())

    def test_a_taken_endpoint_shows_only_the_error(self):
        deployment_create(endpoint="churn-api", model="fraud", version=1)
        response = self.add()
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Endpoint &#x27;churn-api&#x27; already has a live deployment")
        self.assertEqual(Deployment.objects.count(), 1)
        self.assertEqual(messages_of(response), [])  # no green "added successfully"

    def test_the_forms_defaults_are_the_apis(self):
        created = key_client("manage").post("/api/v1/deployments/", {"endpoint": "api", "model": "churn",
                                                                      "version": 1}, format="json").json()
        page = self.client.get(ADD).content.decode()
        for knob in ("replicas", "max_batch_size", "batch_timeout_ms", "max_queue", "timeout_ms", "max_rows",
                     "idle_ttl_s", "warmup_requests"):
            with self.subTest(knob):
                shown = re.search(rf'name="{knob}" value="([^"]*)"', page).group(1)
                self.assertEqual(float(shown), float(created[knob]))
        self.assertEqual(created["batch_timeout_ms"], 0)

    def test_the_deploy_button_preselects_the_version(self):
        page = self.client.get(ADD, {"model": self.churn.pk, "model_version": self.churn_v1.pk,
                                     "endpoint": "churn-v1"}).content.decode()
        self.assertRegex(page, rf'<option value="{self.churn_v1.pk}" (selected data-model="{self.churn.pk}"|'
                               rf'data-model="{self.churn.pk}" selected)>')
        self.assertIn('value="churn-v1"', page)


class DeployVersionActionTests(AdminCase):
    def test_the_action_form_defaults_as_the_api_and_deploys(self):
        url = "/admin/registry/modelversion/"
        form = self.client.post(url, {"action": "deploy_version", "_selected_action": [self.churn_v1.pk]})
        self.assertContains(form, 'name="batch_timeout_ms" value="0.0"')
        self.assertContains(form, 'value="churn-v1"')
        response = self.client.post(url, {"action": "deploy_version", "_selected_action": [self.churn_v1.pk],
                                          "apply": "1", "endpoint": "from-admin", "replicas": 2, "max_batch_size": 8,
                                          "batch_timeout_ms": 0})
        deployment = Deployment.objects.get(endpoint="from-admin")
        self.assertEqual((deployment.replicas, deployment.batch_timeout_ms, deployment.model_version_id),
                         (2, 0.0, self.churn_v1.pk))
        self.assertEqual([level for level, _ in messages_of(response)], ["info"])  # "Deployed ..."


class ChangePageTests(AdminCase):
    def setUp(self):
        super().setUp()
        self.deployment = deployment_create(endpoint="churn-api", model="churn", version=1)
        self.url = f"/admin/inference/deployment/{self.deployment.pk}/change/"

    def test_the_runtime_is_a_table_with_units_not_json(self):
        Deployment.objects.filter(pk=self.deployment.pk).update(runtime={
            "loaded": True, "serving_generation": 1, "load_ms": 3495.221714999957, "memory_mb": 81.23456,
            "queue_depth": 0, "throughput_rps": 12.3456, "last_request_at": None, "updated_at": None,
            "replicas": [{"generation": 1, "replica": 0, "state": "ready", "pid": 4242, "load_ms": 3495.22,
                          "memory_mb": 81.23456, "restarts": 0, "last_error": None, "requests": 12}]})
        page = self.client.get(self.url).content.decode()
        for shown in ("3,495 ms", "81.2 MB", "12.35 req/s", "<th>Load time</th>", "<th>memory</th>", "4242"):
            self.assertIn(shown, page)
        self.assertNotIn("3495.221714999957", page)
        self.assertNotIn("&quot;serving_generation&quot;", page)  # no raw JSON blob

    def test_only_the_models_versions_are_offered_and_a_change_rolls_out(self):
        page = self.client.get(self.url).content.decode()
        self.assertNotIn(f'<option value="{self.fraud_v1.pk}"', page)
        third = toy_version(self.churn, task_classes=[0, 1])
        response = self.client.post(self.url, {"model_version": third.pk, "alias": "", "ensemble": "[]", **KNOBS})
        self.assertRedirects(response, "/admin/inference/deployment/", fetch_redirect_response=False)
        self.deployment.refresh_from_db()
        self.assertEqual((self.deployment.model_version, self.deployment.generation), (third, 2))

    def test_a_refused_change_shows_only_the_error(self):
        response = self.client.post(self.url, {"model_version": self.churn_v1.pk, "alias": "",
                                               "ensemble": '[{"version": 2}]', **KNOBS})
        self.assertEqual(response.status_code, 302)
        self.assertEqual([level for level, _ in messages_of(response)], ["error"])
        self.assertIn("is validating", messages_of(response)[0][1])
        self.deployment.refresh_from_db()
        self.assertEqual(self.deployment.ensemble, [])

    def test_the_list_rounds_its_figures(self):
        Deployment.objects.filter(pk=self.deployment.pk).update(runtime={"loaded": True, "memory_mb": 123.456,
                                                                         "load_ms": 56.04})
        page = self.client.get("/admin/inference/deployment/").content.decode()
        for shown in ("123.5 MB", "\u2013/1", "sp-badge", "churn-api", "churn v1"):
            self.assertIn(shown, page)


class OverviewTests(AdminCase):
    def test_it_lists_every_deployment_and_the_recent_failures_with_links(self):
        ready = deployment_create(endpoint="churn-api", model="churn", version=1)
        Deployment.objects.filter(pk=ready.pk).update(status="ready", runtime={
            "serving_generation": 1, "throughput_rps": 4.5,
            "replicas": [{"generation": 1, "state": "ready", "restarts": 0}]})
        crashing = deployment_create(endpoint="fraud-api", model="fraud", version=1)
        Deployment.objects.filter(pk=crashing.pk).update(status="ready", runtime={
            "serving_generation": 1, "replicas": [{"generation": 1, "state": "starting", "restarts": 3,
                                                   "last_error": "worker exited with code -9"}]})
        failed = toy_version(self.churn)
        ModelVersion.objects.filter(pk=failed.pk).update(status=VersionStatus.FAILED, status_reason="bad bytes")
        job = InferenceJob.objects.create(endpoint="churn-api", inputs=[[1]], owner="anonymous",
                                          status=JobStatus.FAILED, error_code="lost", error="worker died")
        batch = BatchJob.objects.create(endpoint="churn-api", owner="anonymous", input_format="csv", input_path="x",
                                        result_path="y", status=JobStatus.FAILED, error_code="timeout", error="late")

        page = self.client.get("/admin/overview/").content.decode()
        for shown in ("churn-api", "fraud-api", "1 of 1", "0 of 1", "4.50 req/s", "3 restarts",
                      "worker exited with code -9", "bad bytes", "worker died", "late",
                      f"/admin/inference/deployment/{crashing.pk}/change/",
                      f"/admin/registry/modelversion/{failed.pk}/change/",
                      f"/admin/inference/inferencejob/{job.pk}/change/",
                      f"/admin/inference/batchjob/{batch.pk}/change/"):
            self.assertIn(shown, page)
        self.assertIn("/admin/overview/", self.client.get("/admin/").content.decode())

    def test_staff_only(self):
        self.client.logout()
        self.assertRedirects(self.client.get("/admin/overview/"), "/admin/login/?next=/admin/overview/",
                             fetch_redirect_response=False)
