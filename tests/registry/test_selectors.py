"""registry.selectors.model_version_id_resolve and its per-process cache: the universal prediction route's lookup."""

from django.test import TestCase, override_settings

from registry.errors import ModelVersionNotFound, RegisteredModelNotFound
from registry.models import ModelAlias
from registry.selectors import (
    model_version_get,
    model_version_id_cached,
    model_version_id_known,
    model_version_id_resolve,
)
from registry.services import model_alias_delete, model_alias_set, model_version_delete
from tests.core.test_invalidation import listening
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


class CachedResolveTests(TestCase):
    def setUp(self):
        listening()
        self.model = make_model("scorer")
        self.first, self.second = toy_version(self.model), toy_version(self.model)
        model_alias_set(model=self.model, alias="production", version_number=1)

    def test_a_lookup_is_answered_from_memory_until_the_alias_moves(self):
        self.assertEqual(model_version_id_cached("scorer", "production"), self.first.pk)
        with self.assertNumQueries(0):
            self.assertEqual(model_version_id_cached("scorer", "production"), self.first.pk)
            self.assertEqual(model_version_id_known("scorer", "production"), self.first.pk)
        model_alias_set(model=self.model, alias="production", version_number=2)
        self.assertIsNone(model_version_id_known("scorer", "production"))
        self.assertEqual(model_version_id_cached("scorer", "production"), self.second.pk)

    def test_deleting_an_alias_or_a_version_drops_what_was_cached(self):
        model_alias_set(model=self.model, alias="staging", version_number=2)
        for ref in ("staging", 2):
            model_version_id_cached("scorer", ref)
        model_alias_delete(model=self.model, alias="staging")
        with self.assertRaises(ModelVersionNotFound):
            model_version_id_cached("scorer", "staging")
        model_version_id_cached("scorer", 2)
        model_version_delete(version=self.second)
        with self.assertRaises(ModelVersionNotFound):
            model_version_id_cached("scorer", 2)

    def test_errors_are_not_kept(self):
        with self.assertRaises(ModelVersionNotFound):
            model_version_id_cached("scorer", "staging")
        ModelAlias.objects.create(model=self.model, name="staging", version=self.second)  # never announced
        self.assertEqual(model_version_id_cached("scorer", "staging"), self.second.pk)

    @override_settings(REGISTRY_CACHE_S=0)
    def test_a_zero_ttl_asks_the_database_every_time(self):
        model_version_id_cached("scorer", "production")
        with self.assertNumQueries(1):
            model_version_id_cached("scorer", "production")
