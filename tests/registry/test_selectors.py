"""registry.selectors.model_version_id_resolve: the universal prediction route's lookup, on every request."""

from django.test import TestCase

from registry.errors import ModelVersionNotFound, RegisteredModelNotFound
from registry.selectors import model_version_get, model_version_id_resolve
from registry.services import model_alias_set
from tests.factories import make_model
from tests.inference.live import toy_version


class ResolveTests(TestCase):
    def setUp(self):
        self.model = make_model("scorer")
        self.first, self.second = toy_version(self.model), toy_version(self.model)
        model_alias_set(model=self.model, alias="production", version_number=2)
        other = make_model("other")
        toy_version(other)
        model_alias_set(model=other, alias="production", version_number=1)

    def test_finds_what_model_version_get_finds_in_one_query(self):
        for ref in (1, "2", "production"):
            with self.subTest(ref=ref), self.assertNumQueries(1):
                found = model_version_id_resolve("scorer", ref)
            self.assertEqual(found, model_version_get(self.model, ref).pk)
        self.assertEqual(model_version_id_resolve("scorer", "production"), self.second.pk)

    def test_errors_name_the_model_and_what_it_lacks(self):
        cases = [("nobody", 1, RegisteredModelNotFound, "No registered model named 'nobody'."),
                 ("nobody", "production", RegisteredModelNotFound, "No registered model named 'nobody'."),
                 ("scorer", 3, ModelVersionNotFound, "Model 'scorer' has no version '3'."),
                 ("scorer", "staging", ModelVersionNotFound, "Model 'scorer' has no alias 'staging'.")]
        for name, ref, error, message in cases:
            with self.subTest(name=name, ref=ref), self.assertRaises(error) as raised:
                model_version_id_resolve(name, ref)
            self.assertEqual(raised.exception.message, message)
