"""The fast lane as `make serve` runs it: gunicorn + uvicorn workers over real HTTP, the lane and Django
behind it in one process."""

import json
import time
import urllib.error
import urllib.request

import pytest

from core.models import ApiKey
from core.services import api_key_create, api_keys_changed
from registry.models import ModelAlias
from registry.services import model_alias_set
from tests.factories import key_client, make_model
from tests.inference.live import LiveServerTestCase, LiveWebServer, toy_version, wait_for

ROWS = [[1.0, 2.0, 3.0], [0.5, -1.5, 0.25]]


def http_post(url: str, body: dict, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                      headers={"Content-Type": "application/json", "X-API-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
class ServedAsMakeServeDoesTests(LiveServerTestCase):
    """gunicorn + uvicorn workers over real HTTP: the lane and Django behind it in one process."""

    def test_predictions_and_django_routes_over_http(self):
        model = make_model("scorer", task="classification")
        toy_version(model, weights=(0.3, -0.2, 0.5), task_classes=[0, 1])
        key_client("manage").post("/api/v1/deployments/", {"endpoint": "scorer", "model": "scorer", "version": 1},
                                  format="json")
        self.wait_ready("scorer")
        _, secret = api_key_create(name="predictor", scope="predict")
        web = LiveWebServer()
        self.addCleanup(web.stop)

        def post(body, key=secret):
            return http_post(f"{web.url}/api/v1/predict/scorer", body, key)

        first, second = post({"inputs": ROWS}), post({"inputs": ROWS, "parameters": {"cache": False}})
        self.assertEqual((first[0], second[0]), (200, 200))
        self.assertEqual(first[1]["probabilities"], second[1]["probabilities"])
        self.assertEqual(len(second[1]["predictions"]), 2)
        self.assertEqual(post({"inputs": [[1.0]]})[0], 400)
        self.assertEqual(post({"inputs": ROWS}, key="AbCdEfGh.wrong")[0], 401)
        _, manage = api_key_create(name="manager", scope="manage")
        request = urllib.request.Request(f"{web.url}/api/v1/deployments/scorer/", headers={"X-API-Key": manage})
        with urllib.request.urlopen(request, timeout=30) as answer:  # Django, in the same process
            self.assertEqual(json.loads(answer.read())["status"], "ready")

    def test_revocations_and_alias_moves_reach_the_web_process_at_once(self):
        model = make_model("scorer", task="classification")
        for weights in ((0.3, -0.2, 0.5), (1.0, 1.0, 1.0)):
            toy_version(model, weights=weights, task_classes=[0, 1])
        manage = key_client("manage")
        for version in (1, 2):
            manage.post("/api/v1/deployments/", {"endpoint": f"scorer-v{version}", "model": "scorer",
                                                 "version": version}, format="json")
        model_alias_set(model=model, alias="production", version_number=1)
        for version in (1, 2):
            self.wait_ready(f"scorer-v{version}")
        key, secret = api_key_create(name="predictor", scope="predict")
        # Long TTLs: whatever stops working below stops because it was announced, not because it expired.
        web = LiveWebServer(API_KEY_CACHE_S="300", REGISTRY_CACHE_S="3600")
        self.addCleanup(web.stop)
        body = {"model": "scorer", "inputs": ROWS, "parameters": {"cache": False}}

        def version_served():
            status, answer = http_post(f"{web.url}/api/v1/predict", body, secret)
            return answer["version"] if status == 200 else status

        self.assertEqual(version_served(), 1)
        time.sleep(1.0)  # the web process's listener subscribes on its first request; then all is cached
        self.assertEqual(version_served(), 1)

        # Changes made behind the application's back are not seen: both answers come from memory.
        ModelAlias.objects.filter(model=model, name="production").update(version=model.versions.get(version=2))
        ApiKey.objects.filter(pk=key.pk).update(revoked=True)
        self.assertEqual(version_served(), 1)

        model_alias_set(model=model, alias="production", version_number=2)  # commits, then announces
        wait_for(lambda: version_served() == 2, timeout=2, message="the alias move reached the web process")
        api_keys_changed()
        wait_for(lambda: version_served() == 401, timeout=2, message="the revocation reached the web process")
