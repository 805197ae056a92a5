"""The admin's JSON fields refuse NUL and lone surrogates, as the API does (core/admin_fields.py)."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models
from django.test import RequestFactory, TestCase

from core.admin_fields import SafeJSONFormField
from inference.models import Deployment
from registry.models import ModelVersion, RegisteredModel
from tests.factories import make_model


class AdminJsonFieldTests(TestCase):
    def setUp(self):
        self.request = RequestFactory().get("/admin/")
        self.request.user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
        self.model = make_model("churn", tags={"team": "risk"})

    def form_for(self, model_class, instance, **changes):
        model_admin = admin.site._registry[model_class]
        form_class = model_admin.get_form(self.request, instance, change=True)
        data = {"name": instance.name, "task": instance.task, "description": instance.description, **changes}
        return form_class(data=data, instance=instance)

    def test_a_lone_surrogate_in_a_model_s_tags_is_refused_and_nothing_changes(self):
        form = self.form_for(RegisteredModel, self.model, tags='{"a": "\\udfff"}')
        self.assertFalse(form.is_valid())
        self.assertIn("surrogate", " ".join(form.errors["tags"]))
        self.assertIn("at a", " ".join(form.errors["tags"]))
        self.model.refresh_from_db()
        self.assertEqual(self.model.tags, {"team": "risk"})

    def test_nul_in_a_key_is_refused(self):
        form = self.form_for(RegisteredModel, self.model, tags='{"a\\u0000b": 1}')
        self.assertFalse(form.is_valid())
        self.assertIn("tags", form.errors)

    def test_plain_json_still_passes(self):
        form = self.form_for(RegisteredModel, self.model, tags='{"a": "\\u00e9t\\u00e9", "n": [1, 2]}')
        self.assertTrue(form.is_valid(), form.errors)
        self.assertEqual(form.cleaned_data["tags"], {"a": "été", "n": [1, 2]})

    def test_every_json_field_of_the_platform_s_admins_uses_the_safe_field(self):
        for model_class in (RegisteredModel, ModelVersion, Deployment):
            model_admin = admin.site._registry[model_class]
            self.assertIs(model_admin.formfield_overrides[models.JSONField]["form_class"], SafeJSONFormField,
                          model_class.__name__)
