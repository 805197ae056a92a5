"""Serving features against a real model server: routing, inputs, cache, health, metrics, explain."""

import threading
import time
from pathlib import Path

from django.conf import settings
from django.test import TestCase
from rest_framework.test import APIClient

from inference.models import Deployment, DeploymentStatus
from inference.predict.dispatch import routes
from registry.services import model_alias_set
from tests.factories import key_client, make_model
from tests.inference.live import LiveServerTestCase, toy_version, wait_for


def deploy(endpoint: str, model: str, **fields):
    if "alias" not in fields:
        fields.setdefault("version", 1)
    response = key_client("manage", f"deployer-{endpoint}").post(
        "/api/v1/deployments/", {"endpoint": endpoint, "model": model, **fields}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


class AliasFollowTests(LiveServerTestCase):
    def test_moving_the_alias_rolls_the_deployment_with_no_failed_request(self):
        model = make_model("scorer", task="regression")
        toy_version(model, weights=(1.0, 0.0, 0.0))
        toy_version(model, weights=(100.0, 0.0, 0.0))
        model_alias_set(model=model, alias="production", version_number=1)
        deploy("live", "scorer", alias="production", follow_alias=True)
        self.wait_ready("live")
        client, failures, seen = key_client("predict"), [], set()
        stop = threading.Event()

        def hammer():
            while not stop.is_set():
                response = client.post("/api/v1/predict/live", {"inputs": [[1, 0, 0]],
                                                               "parameters": {"cache": False}}, format="json")
                if response.status_code != 200:
                    failures.append(response.content)
                else:
                    seen.add((response.json()["version"], response.json()["predictions"][0]))

        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            time.sleep(0.5)
            model_alias_set(model=model, alias="production", version_number=2)
            wait_for(lambda: (2, 100.0) in seen, timeout=60, message="version 2 to answer")
            time.sleep(RETIRE_WAIT_S)
        finally:
            stop.set()
            thread.join()
        self.assertEqual(failures, [])
        self.assertEqual(seen, {(1, 1.0), (2, 100.0)})
        deployment = Deployment.objects.get(endpoint="live")
        self.assertEqual(deployment.model_version.version, 2)
        self.assertEqual(deployment.status, DeploymentStatus.READY)


RETIRE_WAIT_S = 4.0  # past the old generation's retirement, so its shutdown is inside the window


class InputValidationTests(LiveServerTestCase):
    def test_every_bad_input_class_gets_its_4xx_and_the_model_is_never_called(self):
        record = Path(settings.MODEL_STORE_DIR).parent / "calls.log"
        model = make_model("typed", task="regression")
        version = toy_version(model, weights=(1.0, 1.0, 1.0), record=str(record))
        version.signature = {**version.signature, "feature_names": ["a", "b", "c"],
                             "inputs": [{"name": "input", "dtype": "float32", "shape": [-1, 3]}]}
        version.save()
        deploy("typed", "typed", max_rows=5)
        self.wait_ready("typed")
        record.write_text("")  # warm-up calls are not requests
        client = key_client("predict")
        cases = {
            "wrong feature count": ({"inputs": [[1, 2]]}, 400, "inputs[0]"),
            "ragged rows": ({"inputs": [[1, 2, 3], [1, 2]]}, 400, "inputs[1]"),
            "a string": ({"inputs": [[1, "x", 3]]}, 400, "inputs[0][1]"),
            "a boolean": ({"inputs": [[1, True, 3]]}, 400, "inputs[0][1]"),
            "null": ({"inputs": [[1, None, 3]]}, 400, "inputs[0][1]"),
            "NaN as text": ({"inputs": [[1, "NaN", 3]]}, 400, "inputs[0][1]"),
            "float32 overflow": ({"inputs": [[1, 1e39, 3]]}, 400, "inputs[0][1]"),
            "unknown feature": ({"inputs": [{"a": 1, "b": 2, "z": 3}]}, 400, "inputs[0]"),
            "empty": ({"inputs": []}, 400, "inputs"),
            "missing inputs": ({"rows": [[1, 2, 3]]}, 400, "inputs"),
            "too many rows": ({"inputs": [[1, 2, 3]] * 6}, 413, "inputs"),
        }
        for name, (body, status, field) in cases.items():
            with self.subTest(name):
                response = client.post("/api/v1/predict/typed", body, format="json")
                self.assertEqual(response.status_code, status, response.content)
                self.assertIn(field, response.json()["error"]["message"])
        raw = client.generic("POST", "/api/v1/predict/typed", b'{"inputs": [[1, NaN, 3]]}',
                             content_type="application/json")
        self.assertEqual(raw.status_code, 400)
        form = client.post("/api/v1/predict/typed", {"inputs": "1,2,3"})
        self.assertEqual(form.status_code, 415)
        self.assertEqual(record.read_text(), "", "the model was called with invalid data")
        ok = client.post("/api/v1/predict/typed", {"inputs": [{"c": 3, "a": 1, "b": 2}]}, format="json")
        self.assertEqual(ok.json()["predictions"], [6.0])


class ScaleToZeroAndHealthTests(LiveServerTestCase):
    def test_an_idle_deployment_unloads_and_the_next_request_loads_it(self):
        model = make_model("sleepy", task="regression")
        toy_version(model, weights=(2.0, 0.0, 0.0))
        deploy("sleepy", "sleepy", scale_to_zero=True, idle_ttl_s=2)
        scaled = lambda: getattr(routes().endpoint("sleepy"), "status", None) == "scaled_to_zero"
        wait_for(scaled, timeout=30, message="scale to zero")
        ready = APIClient().get("/health/ready")
        self.assertEqual(ready.status_code, 200, ready.content)  # idle is healthy
        client = key_client("predict")
        response = client.post("/api/v1/predict/sleepy", {"inputs": [[3, 0, 0]]}, format="json")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json()["predictions"], [6.0])
        self.assertTrue(routes().endpoint("sleepy").sockets)
        wait_for(scaled, timeout=30, message="unloading after the idle TTL")
        self.assertFalse(Deployment.objects.get(endpoint="sleepy").runtime.get("loaded", True) and
                         routes().endpoint("sleepy").sockets)
        again = client.post("/api/v1/predict/sleepy", {"inputs": [[4, 0, 0]]}, format="json")
        self.assertEqual(again.json()["predictions"], [8.0])

    def test_readiness_follows_the_model_server(self):
        model = make_model("watched", task="regression")
        toy_version(model)
        deploy("watched", "watched")
        self.wait_ready("watched")
        ready = APIClient().get("/health/ready")
        self.assertEqual(ready.status_code, 200, ready.content)
        self.assertTrue(ready.json()["checks"]["model_server"]["ok"])
        self.server.stop()
        wait_for(lambda: APIClient().get("/health/ready").status_code == 503, timeout=30,
                 message="readiness to drop")
        body = APIClient().get("/health/ready").json()
        self.assertFalse(body["checks"]["model_server"]["ok"])


class MetricsAndConfigTests(LiveServerTestCase):
    def test_metrics_count_requests_errors_cache_and_latency(self):
        model = make_model("counted", task="regression")
        toy_version(model)
        deploy("counted", "counted")
        self.wait_ready("counted")
        client = key_client("predict")
        for _ in range(3):
            client.post("/api/v1/predict/counted", {"inputs": [[1, 2, 3]]}, format="json")
        client.post("/api/v1/predict/counted", {"inputs": [[1, 2]]}, format="json")
        manage = key_client("manage")
        summary = next(d for d in manage.get("/api/v1/metrics").json()["deployments"] if d["endpoint"] == "counted")
        self.assertGreaterEqual(summary["requests"], 4)
        self.assertGreaterEqual(summary["errors"], 1)
        self.assertGreater(summary["latency_ms"]["p50"], 0)
        self.assertGreater(summary["cache_hit_rate"], 0)
        text = manage.get("/metrics").content.decode()
        self.assertIn('sp_prediction_requests_total{endpoint="counted"', text)
        self.assertIn("sp_prediction_latency_seconds_bucket", text)
        stats = manage.get("/api/v1/cache/stats").json()
        self.assertGreaterEqual(stats["hits"], 2)
        self.assertEqual(manage.post("/api/v1/cache/clear").status_code, 200)
        self.assertEqual(manage.get("/api/v1/cache/stats").json()["size"], 0)

    def test_config_and_batching_knobs_change_without_a_restart(self):
        model = make_model("tuned", task="regression")
        toy_version(model)
        deploy("tuned", "tuned")
        self.wait_ready("tuned")
        pid = lambda: Deployment.objects.get(endpoint="tuned").runtime.get("replicas", [{}])[0].get("pid")
        first_pid = wait_for(pid, message="worker pid")
        manage = key_client("manage")
        patched = manage.patch("/api/v1/deployments/tuned/", {"max_batch_size": 4, "batch_timeout_ms": 1},
                               format="json")
        self.assertEqual(patched.status_code, 200)
        self.assertEqual(patched.json()["max_batch_size"], 4)
        self.assertEqual(manage.patch("/api/v1/config", {"cache_enabled": False}, format="json").json()
                         ["cache_enabled"], False)
        client = key_client("predict")
        client.post("/api/v1/predict/tuned", {"inputs": [[1, 1, 1]]}, format="json")
        again = client.post("/api/v1/predict/tuned", {"inputs": [[1, 1, 1]]}, format="json").json()
        self.assertFalse(again["cached"])
        time.sleep(1.0)
        self.assertEqual(pid(), first_pid)
        self.assertEqual(Deployment.objects.get(endpoint="tuned").generation, 1)


class DeploymentApiTests(TestCase):
    def setUp(self):
        self.manage = key_client("manage")
        self.model = make_model("scorer", task="regression")
        self.version = toy_version(self.model)

    def test_a_pending_or_failed_version_cannot_be_deployed(self):
        self.version.status = "failed"
        self.version.status_reason = "smoke test failed"
        self.version.save()
        response = self.manage.post("/api/v1/deployments/", {"endpoint": "x", "model": "scorer", "version": 1},
                                    format="json")
        self.assertEqual(response.status_code, 400)
        self.assertIn("smoke test failed", response.json()["error"]["message"])

    def test_exactly_one_of_version_or_alias(self):
        for body in ({"endpoint": "x", "model": "scorer"}, {"endpoint": "x", "model": "scorer", "version": 1,
                                                              "alias": "production"}):
            response = self.manage.post("/api/v1/deployments/", body, format="json")
            self.assertEqual(response.status_code, 400)
            self.assertIn("version", response.json()["error"]["message"])

    def test_an_endpoint_has_one_live_deployment_and_can_be_reused_after_undeploy(self):
        body = {"endpoint": "x", "model": "scorer", "version": 1}
        self.assertEqual(self.manage.post("/api/v1/deployments/", body, format="json").status_code, 201)
        taken = self.manage.post("/api/v1/deployments/", body, format="json")
        self.assertEqual(taken.status_code, 409)
        self.assertEqual(taken.json()["error"]["code"], "endpoint_taken")
        self.assertEqual(self.manage.delete("/api/v1/deployments/x/").status_code, 200)
        self.assertEqual(self.manage.post("/api/v1/deployments/", body, format="json").status_code, 201)

    def test_a_deployed_version_cannot_be_deleted(self):
        self.manage.post("/api/v1/deployments/", {"endpoint": "x", "model": "scorer", "version": 1}, format="json")
        response = self.manage.delete("/api/v1/models/scorer/versions/1/")
        self.assertEqual(response.status_code, 409)
        self.assertIn("endpoint 'x'", response.json()["error"]["message"])
        self.assertEqual(self.manage.delete("/api/v1/models/scorer/").status_code, 409)
        self.manage.delete("/api/v1/deployments/x/")
        self.assertEqual(self.manage.delete("/api/v1/models/scorer/versions/1/").status_code, 204)

    def test_bad_knobs_are_refused_naming_the_field(self):
        response = self.manage.post("/api/v1/deployments/", {"endpoint": "x", "model": "scorer", "version": 1,
                                                              "max_batch_size": 0}, format="json")
        self.assertEqual(response.status_code, 400)
        self.assertIn("max_batch_size", response.json()["error"]["message"])

    def test_a_misspelt_knob_is_refused_and_nothing_changes(self):
        self.manage.post("/api/v1/deployments/", {"endpoint": "x", "model": "scorer", "version": 1,
                                                  "max_batch_size": 8}, format="json")
        cases = {
            "a misspelt knob": ({"max_batchsize": 64}, "max_batchsize: Unknown field; did you mean 'max_batch_size'?"),
            "a rename": ({"endpoint": "y", "max_queue": 3}, "endpoint: An endpoint cannot be renamed"),
            "inside an ensemble member": ({"ensemble": [{"version": 1, "weigth": 1.0}]},
                                          "ensemble.0.weigth: Unknown field; did you mean 'weight'?"),
        }
        for name, (body, message) in cases.items():
            with self.subTest(name):
                response = self.manage.patch("/api/v1/deployments/x/", body, format="json")
                self.assertEqual(response.status_code, 400, response.content)
                self.assertTrue(response.json()["error"]["message"].startswith(message),
                                response.json()["error"]["message"])
        deployment = Deployment.objects.get(endpoint="x")
        self.assertEqual((deployment.max_batch_size, deployment.max_queue, deployment.ensemble),
                         (8, Deployment._meta.get_field("max_queue").default, []))
        created = self.manage.post("/api/v1/deployments/", {"endpoint": "z", "model": "scorer", "version": 1,
                                                            "replica": 2}, format="json")
        self.assertEqual(created.status_code, 400)
        self.assertIn("did you mean 'replicas'", created.json()["error"]["message"])
        self.assertFalse(Deployment.objects.filter(endpoint="z").exists())

    def test_the_config_a_get_returned_can_be_sent_back(self):
        config = self.manage.get("/api/v1/config").json()
        updated = self.manage.patch("/api/v1/config", {**config, "cache_ttl_s": 123}, format="json")
        self.assertEqual(updated.status_code, 200, updated.content)
        self.assertEqual(updated.json()["cache_ttl_s"], 123)

    def test_a_new_version_starts_a_new_generation_but_knobs_do_not(self):
        toy_version(self.model, weights=(5.0, 0.0, 0.0))
        self.manage.post("/api/v1/deployments/", {"endpoint": "x", "model": "scorer", "version": 1}, format="json")
        knobs = self.manage.patch("/api/v1/deployments/x/", {"max_queue": 10}, format="json").json()
        self.assertEqual(knobs["generation"], 1)
        rolled = self.manage.patch("/api/v1/deployments/x/", {"version": 2}, format="json").json()
        self.assertEqual((rolled["generation"], rolled["version"]), (2, 2))

    def test_predicting_on_an_endpoint_nobody_serves_is_404_and_on_an_unserved_one_503(self):
        client = key_client("predict")
        self.assertEqual(client.post("/api/v1/predict/nope", {"inputs": [[1]]}, format="json").status_code, 404)
        self.manage.post("/api/v1/deployments/", {"endpoint": "x", "model": "scorer", "version": 1}, format="json")
        response = client.post("/api/v1/predict/x", {"inputs": [[1, 2, 3]]}, format="json")
        self.assertEqual(response.status_code, 503)
        self.assertIn("Retry-After", response)

    def test_universal_predict_without_a_deployment_is_a_clear_404(self):
        model_alias_set(model=self.model, alias="production", version_number=1)
        response = key_client("predict").post("/api/v1/predict", {"model": "scorer", "inputs": [[1, 2, 3]]},
                                              format="json")
        self.assertEqual(response.status_code, 404)
        self.assertIn("deploy", response.json()["error"]["message"])


class CacheScopeTests(TestCase):
    """The prediction cache files answers by what decides them (inference.modelserver.loop.cache_scope)."""

    def test_only_deployments_that_answer_alike_share_cache_entries(self):
        from inference.deployments.services import deployment_create
        from inference.modelserver.loop import cache_scope

        model = make_model("scoped", task="regression")
        toy_version(model)
        toy_version(model, weights=(3.0, 0.0, 0.0))
        plain = deployment_create(model="scoped", endpoint="a", version=1)
        twin = deployment_create(model="scoped", endpoint="b", version=1, replicas=2, max_batch_size=4)
        blend = deployment_create(model="scoped", endpoint="c", version=1, ensemble=[{"version": 2}])
        heavier = deployment_create(model="scoped", endpoint="d", version=1,
                                    ensemble=[{"version": 2, "weight": 2.0}])
        int8 = deployment_create(model="scoped", endpoint="e", version=1, quantize=True)
        other = deployment_create(model="scoped", endpoint="f", version=2)
        scopes = [cache_scope(d) for d in (plain, twin, blend, heavier, int8, other)]
        self.assertEqual(scopes[0], scopes[1], "serving knobs do not change answers")
        self.assertEqual(len(set(scopes[1:])), 5, scopes)
