"""Shadow copies run off the request path on a bounded pool; their outcomes are recorded, never returned."""

import threading
from unittest import mock

from django.test import TestCase, override_settings

from core.errors import ServiceUnavailable
from experiments import recording, services
from experiments.hooks import ExperimentRouter
from experiments.results import experiment_results
from inference.predict.contract import PredictRequest
from tests.experiments.helpers import arms, deployment
from tests.inference.live import wait_for


class ShadowPoolTests(TestCase):
    def setUp(self):
        for endpoint in ("live-a", "live-b", "copy"):
            deployment(endpoint)
        experiment = services.experiment_create(name="x", endpoint="pub", variants=arms(("a", "live-a", 50),
                                                                                      ("b", "live-b", 50)),
                                                shadows=[{"name": "challenger", "deployment": "copy"}])
        self.experiment = services.experiment_start(experiment=experiment)
        self.request = PredictRequest(endpoint="pub", inputs=[[1, 2, 3, 4]], params={}, request_id="r",
                                              subject_id="s")

    @override_settings(EXPERIMENT_SHADOW_THREADS=1)
    def test_a_full_pool_drops_shadow_copies_instead_of_waiting(self):
        router = ExperimentRouter()  # one thread, two slots
        routing = router.route(self.request)
        self.assertEqual(routing.shadows, ["copy"])
        gate, started = threading.Event(), []

        def slow_model(request):
            started.append(request.endpoint)
            gate.wait(30)
            return {"request_id": request.request_id, "predictions": [1], "cached": False}

        with mock.patch("experiments.hooks.predict_direct", slow_model):
            for _ in range(5):
                router.shadow(routing, self.request)  # returns at once: the gate is still closed
            self.assertFalse(gate.is_set())
            gate.set()
            wait_for(lambda: len(started) == 2, timeout=30, message="the two admitted copies")
            router._pool.get().shutdown(wait=True)
        results = experiment_results(self.experiment)
        shadow = results["variants"][2]
        self.assertEqual((shadow["name"], shadow["shadow"]), ("challenger", True))
        self.assertEqual(shadow["requests"], 2)
        self.assertEqual(shadow["shadow_dropped"], 3)

    def test_a_failing_shadow_is_an_error_in_its_figures_and_nothing_else(self):
        router = ExperimentRouter()
        routing = router.route(self.request)

        def broken(request):
            raise ServiceUnavailable("the shadow's model is down")

        with mock.patch("experiments.hooks.predict_direct", broken):
            router.shadow(routing, self.request)
            router._pool.get().shutdown(wait=True)
        shadow = experiment_results(self.experiment)["variants"][2]
        self.assertEqual((shadow["requests"], shadow["errors"]), (1, 1))
        self.assertEqual(shadow["errors_by_code"], {"service_unavailable": 1})

    def test_recording_survives_an_unreachable_redis(self):
        router = ExperimentRouter()
        routing = router.route(self.request)
        router.record(routing, self.request, {"request_id": "r", "predictions": [1], "cached": False}, 0.001)
        with mock.patch.object(recording, "client", side_effect=recording.redis.ConnectionError("down")):
            self.assertEqual(recording.recorder.flush(), 0)  # dropped with a warning, never raised
