import pickle
import re

import django_rq
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.test import TestCase
from rest_framework.test import APIClient

from core.models import ApiKey
from registry import services
from registry.models import ModelAlias, ModelVersion, RegisteredModel, VersionStatus
from registry.queue import VALIDATION_QUEUE
from tests.conftest import run_jobs, skops_artifact, upload
from tests.factories import make_model

VERSIONS = "/admin/registry/modelversion/"
UPLOAD = VERSIONS + "add/"


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


class AdminTestCase(TestCase):
    def setUp(self):
        self.admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root")
        self.client.force_login(self.admin)
        self.model = make_model("churn")

    def add_version(self) -> ModelVersion:
        return services.model_version_create(model=self.model, artifact=upload("a", skops_artifact()),
                                             flavor="sklearn")

    def run_action(self, action: str, versions, **extra):
        body = {"action": action, "_selected_action": [version.pk for version in versions], **extra}
        return self.client.post(VERSIONS, body)


class ModelVersionUploadAdminTests(AdminTestCase):
    def post_upload(self, data: bytes, filename: str = "model.skops"):
        body = {"model": self.model.pk, "artifact": upload("artifact", data, filename), "flavor": "sklearn",
                "description": "", "signature": "", "metrics": "", "tags": ""}
        return self.client.post(UPLOAD, body)

    def test_it_renders_the_upload_form(self):
        response = self.client.get(UPLOAD)
        self.assertEqual(response.status_code, 200)
        self.assertTemplateUsed(response, "admin/registry/modelversion/upload.html")
        self.assertContains(response, 'enctype="multipart/form-data"')
        for field in ("model", "artifact", "flavor", "signature"):
            self.assertContains(response, f'name="{field}"')

    def test_it_creates_a_pending_version_one_and_redirects_to_its_change_page(self):
        response = self.post_upload(skops_artifact())
        version = ModelVersion.objects.get(model=self.model)
        self.assertRedirects(response, f"{VERSIONS}{version.pk}/change/")
        self.assertEqual((version.version, version.status, version.format), (1, VersionStatus.PENDING, "skops"))
        self.assertEqual(version.created_by, self.admin)
        self.assertEqual(len(version.sha256), 64)

    def test_it_shows_the_pickle_refusal_on_the_page_and_creates_nothing(self):
        response = self.post_upload(pickle.dumps({"a": 1}), filename="model.pkl")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "ALLOW_PICKLE_ARTIFACTS")
        self.assertFalse(ModelVersion.objects.exists())
        self.model.refresh_from_db()
        self.assertEqual(self.model.last_version, 0)

    def test_it_redisplays_the_form_when_the_signature_is_not_json(self):
        body = {"model": self.model.pk, "artifact": upload("a", skops_artifact()), "flavor": "sklearn",
                "signature": "{not json"}
        response = self.client.post(UPLOAD, body)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "signature is not valid JSON")
        self.assertFalse(ModelVersion.objects.exists())


class ValidateAgainActionTests(AdminTestCase):
    def test_it_resets_a_failed_version_to_pending_and_the_job_makes_it_ready(self):
        version = self.add_version()
        ModelVersion.objects.filter(pk=version.pk).update(status=VersionStatus.FAILED, status_reason="boom")
        with self.captureOnCommitCallbacks(execute=True):
            response = self.run_action("validate_again", [version])
        self.assertEqual(response.status_code, 302)
        self.assertEqual(django_rq.get_queue(VALIDATION_QUEUE).count, 1)
        version.refresh_from_db()
        self.assertEqual(version.status, VersionStatus.PENDING)
        self.assertIn("Queued validation of 1 version(s).", messages_of(response))
        run_jobs()
        version.refresh_from_db()
        self.assertEqual(version.status, VersionStatus.READY, version.status_reason)
        self.assertEqual(version.signature["n_features"], 4)


class SetAliasActionTests(AdminTestCase):
    def test_its_first_post_shows_the_alias_form_and_points_nothing(self):
        version = self.add_version()
        response = self.run_action("set_alias", [version])
        self.assertEqual(response.status_code, 200)
        self.assertTemplateUsed(response, "admin/registry/modelversion/set_alias.html")
        self.assertContains(response, 'name="alias"')
        self.assertContains(response, 'name="apply"')
        self.assertFalse(ModelAlias.objects.exists())

    def test_it_points_the_alias_when_applied(self):
        self.add_version()
        second = self.add_version()
        response = self.run_action("set_alias", [second], apply="1", alias="production")
        self.assertRedirects(response, VERSIONS, fetch_redirect_response=False)
        alias = ModelAlias.objects.get(model=self.model, name="production")
        self.assertEqual(alias.version, second)
        self.assertIn("churn@production -> v2", messages_of(response))

    def test_it_moves_an_existing_alias(self):
        first, second = self.add_version(), self.add_version()
        self.run_action("set_alias", [first], apply="1", alias="production")
        self.run_action("set_alias", [second], apply="1", alias="production")
        self.assertEqual(ModelAlias.objects.get(name="production").version, second)
        self.assertEqual(ModelAlias.objects.count(), 1)

    def test_it_refuses_two_selected_versions(self):
        versions = [self.add_version(), self.add_version()]
        response = self.run_action("set_alias", versions, apply="1", alias="production")
        self.assertEqual(response.status_code, 302)
        self.assertIn("Select exactly one model version for this action.", messages_of(response))
        self.assertFalse(ModelAlias.objects.exists())

    def test_it_refuses_a_failed_version_with_a_message(self):
        version = self.add_version()
        ModelVersion.objects.filter(pk=version.pk).update(status=VersionStatus.FAILED, status_reason="boom")
        response = self.run_action("set_alias", [version], apply="1", alias="production")
        self.assertTrue(any("failed validation" in message for message in messages_of(response)))
        self.assertFalse(ModelAlias.objects.exists())


class ChangelistAdminTests(AdminTestCase):
    def test_it_lists_registered_models(self):
        response = self.client.get("/admin/registry/registeredmodel/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "churn")
        self.assertContains(response, "column-last_version")

    def test_it_lists_versions_with_status_aliases_and_size(self):
        version = self.add_version()
        services.model_alias_set(model=self.model, alias="production", version_number=1)
        response = self.client.get(VERSIONS)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "column-status_badge")
        self.assertContains(response, "column-size")
        self.assertNotContains(response, version.sha256)  # on the version's page, not in a laptop-wide list
        self.assertContains(response, "pending")
        self.assertContains(response, "production")

    def test_it_renders_a_version_change_page(self):
        version = self.add_version()
        response = self.client.get(f"{VERSIONS}{version.pk}/change/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, version.sha256)

    def test_it_lists_api_keys_with_prefix_and_scope(self):
        key, _ = ApiKey.objects.create_key(name="ci-key", scope="manage")
        response = self.client.get("/admin/core/apikey/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "ci-key")
        self.assertContains(response, key.prefix)
        self.assertContains(response, "column-scope")


class ApiKeyAdminTests(AdminTestCase):
    def test_it_shows_the_new_key_once_and_stores_only_its_hash(self):
        response = self.client.post("/admin/core/apikey/add/", {"name": "ci", "scope": "manage"}, follow=True)
        self.assertEqual(response.status_code, 200)
        row = ApiKey.objects.get(name="ci")
        shown = [re.search(r"The API key for ci is: (\S+?)\. ", m) for m in messages_of(response)]
        keys = [match.group(1) for match in shown if match]
        self.assertEqual(len(keys), 1)
        key = keys[0]
        self.assertTrue(key.startswith(row.prefix + "."))
        self.assertEqual(row.scope, "manage")
        stored = [str(value) for value in ApiKey.objects.filter(pk=row.pk).values().get().values()]
        secret = key.partition(".")[2]
        self.assertFalse(any(secret in value for value in stored))
        self.assertTrue(row.is_valid(key))

        client = APIClient()
        client.credentials(HTTP_X_API_KEY=key)
        self.assertEqual(client.get("/api/v1/models/").status_code, 200)

        again = self.client.get(f"/admin/core/apikey/{row.pk}/change/")
        self.assertEqual(again.status_code, 200)
        self.assertNotContains(again, secret)
        self.assertNotContains(self.client.get("/admin/core/apikey/"), secret)


class AdminAccessTests(TestCase):
    def test_it_redirects_a_non_staff_user_to_the_login_page(self):
        user = get_user_model().objects.create_user("member", password="pw-member", is_staff=False)
        self.client.force_login(user)
        for url in (UPLOAD, VERSIONS, "/admin/core/apikey/"):
            response = self.client.get(url)
            self.assertRedirects(response, f"/admin/login/?next={url}", fetch_redirect_response=False)

    def test_it_does_not_let_a_non_staff_user_upload(self):
        user = get_user_model().objects.create_user("member", password="pw-member", is_staff=False)
        self.client.force_login(user)
        model = make_model("churn")
        response = self.client.post(UPLOAD, {"model": model.pk, "artifact": upload("a", skops_artifact()),
                                             "flavor": "sklearn"})
        self.assertEqual(response.status_code, 302)
        self.assertFalse(ModelVersion.objects.exists())
        self.assertEqual(RegisteredModel.objects.get().last_version, 0)


class VersionPageTests(AdminTestCase):
    def ready_version(self, **fields) -> ModelVersion:
        version = self.add_version()
        ModelVersion.objects.filter(pk=version.pk).update(status=VersionStatus.READY, **fields)
        return ModelVersion.objects.get(pk=version.pk)

    def test_the_signature_is_a_table_of_columns_with_dtypes(self):
        version = self.ready_version(signature={
            "columns": [{"name": "age", "dtype": "int64", "nullable": False},
                        {"name": "plan", "dtype": "string", "nullable": True}],
            "classes": ["stay", "churn"]})
        page = self.client.get(f"{VERSIONS}{version.pk}/change/").content.decode()
        self.assertIn("<tr><td>age</td><td>int64</td><td>no</td></tr>", page)
        self.assertIn("<tr><td>plan</td><td>string</td><td>yes</td></tr>", page)
        self.assertIn("<b>Classes</b> (2): stay, churn", page)

    def test_without_typed_columns_the_feature_names_and_the_input_dtype_are_shown(self):
        version = self.ready_version(signature={"n_features": 2, "feature_names": ["f0", "f1"], "input_kind": "tabular",
                                                "inputs": [{"name": "input", "dtype": "float64", "shape": [-1, 2]}]})
        page = self.client.get(f"{VERSIONS}{version.pk}/change/").content.decode()
        self.assertIn("<tr><td>f0</td><td>float64</td><td>\u2013</td></tr>", page)
        self.assertIn("None recorded with this version.", page)  # no input example (yet)

    def test_metrics_are_a_rounded_table_and_the_page_offers_deploy_and_download(self):
        version = self.ready_version(metrics={"accuracy": 0.931234567, "latency_ms": 3495.221714999957},
                                     validation={"load_ms": 12.3456, "memory_mb": 80.1})
        page = self.client.get(f"{VERSIONS}{version.pk}/change/").content.decode()
        for shown in ('<th>accuracy</th><td class="sp-number">0.9312</td>',
                      '<th>latency_ms</th><td class="sp-number">3,495.2</td>',
                      '<th>Load time</th><td class="sp-number">12.3 ms</td>'):
            self.assertIn(shown, page)
        self.assertNotIn("0.931234567", page.split('name="metrics"')[0])  # only the JSON editor has all digits
        self.assertIn(f"/admin/inference/deployment/add/?model={self.model.pk}&amp;model_version={version.pk}", page)
        self.assertIn(f"/admin/registry/modelversion/{version.pk}/artifact/", page)

    def test_a_version_not_ready_has_no_deploy_button(self):
        page = self.client.get(f"{VERSIONS}{self.add_version().pk}/change/").content.decode()
        self.assertNotIn("/admin/inference/deployment/add/?model=", page)

    def test_the_list_fits_a_laptop_sizes_badges_and_key_metrics(self):
        self.ready_version(metrics={"zeta": 1, "f1_macro": 0.81234, "accuracy": 0.93456, "rmse": 2.5})
        page = self.client.get(VERSIONS).content.decode()
        kb = f"{len(skops_artifact()) / 1024:,.1f} KB"
        for shown in (kb, "sp-badge", '<div class="sp-metric">accuracy <b>0.9346</b></div>'
                          '<div class="sp-metric">f1_macro <b>0.8123</b></div></td>'):
            self.assertIn(shown, page)
        self.assertNotIn(f">{len(skops_artifact())}<", page)  # no raw byte counts


class ArtifactDownloadTests(AdminTestCase):
    def test_staff_with_the_permission_download_the_stored_bytes(self):
        version = self.add_version()
        response = self.client.get(f"{VERSIONS}{version.pk}/artifact/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(b"".join(response.streaming_content), skops_artifact())
        self.assertEqual(response["Content-Disposition"], 'attachment; filename="churn-v1.skops"')
        self.assertEqual(response["X-Content-SHA256"], version.sha256)

    def test_staff_without_it_get_no_button_and_a_403(self):
        version = self.add_version()
        staff = get_user_model().objects.create_user("viewer", password="pw-viewer", is_staff=True)
        staff.user_permissions.add(Permission.objects.get(codename="view_modelversion"))
        self.client.force_login(staff)
        page = self.client.get(f"{VERSIONS}{version.pk}/change/")
        self.assertEqual(page.status_code, 200)
        self.assertNotContains(page, "/artifact/")
        self.assertEqual(self.client.get(f"{VERSIONS}{version.pk}/artifact/").status_code, 403)
        staff.user_permissions.add(Permission.objects.get(codename="download_artifact"))
        staff = get_user_model().objects.get(pk=staff.pk)  # permissions are cached per instance
        self.client.force_login(staff)
        self.assertEqual(self.client.get(f"{VERSIONS}{version.pk}/artifact/").status_code, 200)


def test_an_input_example_is_a_table_of_its_first_rows():
    from registry.admin_display import input_example_table

    records = [{"age": 30 + i, "plan": "pro"} for i in range(7)]
    html = str(input_example_table(records))
    assert "<th>age</th><th>plan</th>" in html
    assert "<tr><td>30</td><td>pro</td></tr>" in html and "<td>35</td>" not in html
    assert "2 more rows" in html
    assert "<th>[0]</th><th>[1]</th>" in str(input_example_table([[1.5, 2], [3, 4]]))


class InputExampleAdminTests(AdminTestCase):
    def test_the_upload_form_takes_an_input_example_and_the_version_page_shows_it_escaped(self):
        response = self.client.post(UPLOAD, {
            "model": self.model.pk, "flavor": "sklearn", "artifact": upload("a", skops_artifact()),
            "input_example": upload("rows.csv", b"a,b,c,d\n<b>1</b>,2,,4\n", filename="rows.csv"),
            "signature": "", "metrics": "", "tags": "", "description": ""})
        self.assertEqual(response.status_code, 302, response.content[-2000:])
        version = ModelVersion.objects.get()
        self.assertEqual(version.input_example, [{"a": "<b>1</b>", "b": 2, "c": None, "d": 4}])
        page = self.client.get(f"{VERSIONS}{version.pk}/change/").content.decode()
        self.assertIn("<th>a</th><th>b</th><th>c</th><th>d</th>", page)
        self.assertIn("<td>&lt;b&gt;1&lt;/b&gt;</td><td>2</td><td>\u2013</td><td>4</td>", page)  # – : missing
