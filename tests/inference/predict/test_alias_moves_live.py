"""The universal route (predict by model name and alias) while the alias moves: a real model server rolls the
deployment that follows the alias, and not one request may fail meanwhile, through Django or the fast lane."""

import threading

from rest_framework.test import APIClient

from core.auth import forget_cached_keys
from core.services import api_key_create
from inference.fastlane import FastLane
from inference.predict.dispatch import routes
from registry.services import model_alias_set
from tests.factories import make_model
from tests.inference.live import LiveServerTestCase, toy_version, wait_for
from tests.inference.predict.test_serving_features import deploy
from tests.inference.test_fastlane import CountingFallback, call

MOVES = 4
BODY = {"model": "mover", "inputs": [[1, 0, 0]], "parameters": {"cache": False}}
ANSWER = {1: 1.0, 2: 100.0}  # each version's prediction for BODY's row


class UniversalRouteAliasMoveTests(LiveServerTestCase):
    def setUp(self):
        super().setUp()
        forget_cached_keys()
        self.addCleanup(forget_cached_keys)

    def test_moving_the_alias_back_and_forth_never_fails_a_universal_request(self):
        model = make_model("mover", task="regression")
        toy_version(model, weights=(ANSWER[1], 0.0, 0.0))
        toy_version(model, weights=(ANSWER[2], 0.0, 0.0))
        model_alias_set(model=model, alias="production", version_number=1)
        deploy("mover", "mover", alias="production", follow_alias=True)
        self.wait_ready("mover")
        _, secret = api_key_create(name="predictor", scope="predict")
        django = APIClient()
        django.credentials(HTTP_X_API_KEY=secret)
        lane = FastLane(CountingFallback(), threads=2)
        failures, answers = [], {"django": [], "lane": []}
        stop = threading.Event()

        def hammer():
            while not stop.is_set():
                for path in answers:
                    if path == "django":
                        response = django.post("/api/v1/predict", BODY, format="json")
                        status, body = response.status_code, response.json()
                    else:
                        answer = call(lane, "/api/v1/predict", body=BODY, headers={"x-api-key": secret})
                        status, body = answer.status, answer.json()
                    if status == 200:
                        answers[path].append((body["version"], body["predictions"][0]))
                    else:
                        failures.append((path, status, body))

        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            for move in range(MOVES):
                target = 2 if move % 2 == 0 else 1
                model_alias_set(model=model, alias="production", version_number=target)
                wait_for(lambda target=target: self._serves(target) and all(
                    (target, ANSWER[target]) in seen[-4:] for seen in answers.values()),
                    timeout=60, message=f"version {target} to answer")
        finally:
            stop.set()
            thread.join()
        self.assertEqual(len(failures), 0, failures[:3])
        for seen in answers.values():
            self.assertEqual(set(seen), {(1, ANSWER[1]), (2, ANSWER[2])})
            self.assertGreater(len(seen), 20)

    def _serves(self, version: int) -> bool:
        route = routes().endpoint("mover", fresh=True)
        return route is not None and route.version == version and bool(route.sockets)
