"""Races against the real database (PostgreSQL in CI through DATABASE_URL; SQLite with `make test`)."""

import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import connection, connections
from django.test import TransactionTestCase

from registry import selectors, services
from registry.errors import ModelVersionNotFound
from registry.models import ModelVersion
from tests.conftest import skops_artifact, upload
from tests.factories import make_model


def _in_thread(function):
    """Runs function on its own DB connection and closes it, as a separate web worker would."""

    def run(*args):
        try:
            return function(*args)
        finally:
            connections.close_all()

    return run


class ConcurrentUploadTests(TransactionTestCase):
    def test_simultaneous_uploads_get_distinct_version_numbers(self):
        model = make_model("churn")
        uploads = 8
        barrier = threading.Barrier(uploads)
        data = skops_artifact()

        @_in_thread
        def create(_):
            barrier.wait()
            return services.model_version_create(model=model, artifact=upload("a", data), flavor="sklearn").version

        with ThreadPoolExecutor(uploads) as pool:
            numbers = list(pool.map(create, range(uploads)))
        self.assertEqual(sorted(numbers), list(range(1, uploads + 1)))
        self.assertEqual(ModelVersion.objects.filter(model=model).count(), uploads)
        model.refresh_from_db()
        self.assertEqual(model.last_version, uploads)

    def test_it_runs_against_the_configured_database(self):
        # Documents which engine the races above were checked on (postgresql under .ci/run).
        self.assertIn(connection.vendor, ("postgresql", "sqlite"))


class AliasMoveTests(TransactionTestCase):
    def test_readers_always_see_the_old_or_the_new_target_while_an_alias_moves(self):
        model = make_model("churn")
        for _ in range(2):
            services.model_version_create(model=model, artifact=upload("a", skops_artifact()), flavor="sklearn")
        services.model_alias_set(model=model, alias="production", version_number=1)
        stop = threading.Event()
        seen, missing = set(), []

        @_in_thread
        def mover():
            for index in range(60):
                services.model_alias_set(model=model, alias="production", version_number=1 + index % 2)
            stop.set()

        @_in_thread
        def reader():
            while not stop.is_set():
                try:
                    seen.add(selectors.model_version_get(model, "production").version)
                except ModelVersionNotFound:
                    missing.append(1)

        threads = [threading.Thread(target=mover)] + [threading.Thread(target=reader) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        self.assertEqual(missing, [])
        self.assertEqual(seen, {1, 2})
        self.assertEqual(selectors.model_version_get(model, "production").version, 2)

    def test_moving_an_alias_to_a_failed_version_is_refused(self):
        model = make_model("churn")
        version = services.model_version_create(model=model, artifact=upload("a", skops_artifact()),
                                                flavor="sklearn")
        ModelVersion.objects.filter(pk=version.pk).update(status="failed", status_reason="smoke test failed")
        from core.errors import ApplicationError

        with self.assertRaises(ApplicationError) as caught:
            services.model_alias_set(model=model, alias="production", version_number=1)
        self.assertIn("smoke test failed", caught.exception.message)
