"""The serving core end to end: real model server, real worker processes, real Redis."""

import time
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path

from django.core.management import call_command

from inference.models import Deployment, DeploymentStatus
from inference.predict.dispatch import routes
from registry import services as registry_services
from tests.conftest import skops_artifact, upload
from tests.factories import key_client, make_model
from tests.inference.live import LiveServerTestCase, toy_version, wait_for
from tests.inference.runtime.toy_runtime import CRASH, POISON

ROW = [0.5, -1.0, 2.0, 0.1]


def ready_skops_version(model):
    version = registry_services.model_version_create(model=model, artifact=upload("a", skops_artifact()),
                                                     flavor="sklearn")
    return registry_services.model_version_validate(version_id=version.pk)


class DeployPredictUndeployTests(LiveServerTestCase):
    def test_deploy_predict_and_undeploy_over_the_api(self):
        model = make_model("churn")
        ready_skops_version(model)
        manage, predict = key_client("manage"), key_client("predict")
        created = manage.post("/api/v1/deployments/", {"endpoint": "churn", "model": "churn", "version": 1,
                                                        "max_batch_size": 16}, format="json")
        self.assertEqual(created.status_code, 201, created.content)
        self.assertIn(created.json()["status"], ("pending", "loading"))
        self.wait_ready("churn")
        self.wait_status("churn", DeploymentStatus.READY)

        response = predict.post("/api/v1/predict/churn", {"inputs": [ROW, ROW], "request_id": "r-1"}, format="json")
        self.assertEqual(response.status_code, 200, response.content)
        body = response.json()
        self.assertEqual((body["request_id"], body["endpoint"], body["model"], body["version"]),
                         ("r-1", "churn", "churn", 1))
        self.assertEqual(len(body["predictions"]), 2)
        self.assertEqual(body["classes"], [0, 1, 2])
        self.assertEqual(len(body["probabilities"][0]), 3)
        self.assertAlmostEqual(sum(body["probabilities"][0]), 1.0, places=5)
        self.assertFalse(body["cached"])
        self.assertGreater(body["latency_ms"], 0)

        detail = manage.get("/api/v1/deployments/churn/").json()
        self.assertEqual(detail["status"], "ready")
        wait_for(lambda: (Deployment.objects.get(endpoint="churn").runtime or {}).get("loaded"),
                 message="runtime figures")
        runtime = Deployment.objects.get(endpoint="churn").runtime
        self.assertGreater(runtime["memory_mb"], 0)
        self.assertIsNotNone(runtime["load_ms"])

        self.assertEqual(manage.delete("/api/v1/deployments/churn/").status_code, 200)
        wait_for(lambda: routes().endpoint("churn") is None, message="route removal")
        gone = predict.post("/api/v1/predict/churn", {"inputs": [ROW]}, format="json")
        self.assertEqual(gone.status_code, 404)
        self.assertEqual(gone.json()["error"]["code"], "endpoint_not_found")

    def test_deploy_and_undeploy_commands(self):
        model = make_model("churn")
        ready_skops_version(model)
        out = StringIO()
        call_command("deploy", "churn-cmd", "--model", "churn", "--version", "1", "--wait", stdout=out,
                     stderr=StringIO())
        self.assertEqual(out.getvalue().strip(), "churn-cmd ready")
        response = key_client("predict").post("/api/v1/predict/churn-cmd", {"inputs": ROW}, format="json")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(len(response.json()["predictions"]), 1)
        out = StringIO()
        call_command("undeploy", "churn-cmd", stdout=out)
        self.assertEqual(out.getvalue().strip(), "churn-cmd stopped")
        self.assertEqual(Deployment.objects.get(endpoint="churn-cmd").status, DeploymentStatus.STOPPED)

    def test_two_versions_of_one_model_serve_at_once_and_never_share_cache_entries(self):
        model = make_model("scorer", task="regression")
        toy_version(model, weights=(1.0, 0.0, 0.0))
        toy_version(model, weights=(10.0, 0.0, 0.0))
        manage, client = key_client("manage"), key_client("predict")
        for endpoint, version in (("v-one", 1), ("v-two", 2)):
            self.assertEqual(manage.post("/api/v1/deployments/", {"endpoint": endpoint, "model": "scorer",
                                                                   "version": version}, format="json").status_code, 201)
        self.wait_ready("v-one")
        self.wait_ready("v-two")
        ask = lambda endpoint: client.post(f"/api/v1/predict/{endpoint}", {"inputs": [[2, 0, 0]]}, format="json").json()
        first, second = ask("v-one"), ask("v-two")
        self.assertEqual((first["predictions"], first["version"]), ([2.0], 1))
        self.assertEqual((second["predictions"], second["version"]), ([20.0], 2))
        again_one, again_two = ask("v-one"), ask("v-two")
        self.assertTrue(again_one["cached"] and again_two["cached"])
        self.assertEqual((again_one["predictions"], again_two["predictions"]), ([2.0], [20.0]))
        bypass = client.post("/api/v1/predict/v-two", {"inputs": [[2, 0, 0]], "parameters": {"cache": False}},
                             format="json").json()
        self.assertFalse(bypass["cached"])


class BatchingTests(LiveServerTestCase):
    def test_batched_results_equal_unbatched_results_row_for_row(self, rows: int = 48):
        model = make_model("scorer", task="classification")
        record = Path(self.server_dir_file("batches.log"))
        toy_version(model, weights=(0.3, -0.2, 0.5), task_classes=[0, 1], sleep_ms=20, record=str(record))
        manage = key_client("manage")
        manage.post("/api/v1/deployments/", {"endpoint": "batched", "model": "scorer", "version": 1,
                                             "max_batch_size": 16, "batch_timeout_ms": 20}, format="json")
        manage.post("/api/v1/deployments/", {"endpoint": "single", "model": "scorer", "version": 1,
                                             "max_batch_size": 1, "batch_timeout_ms": 0}, format="json")
        self.wait_ready("batched")
        self.wait_ready("single")
        inputs = [[i * 0.1, (i % 7) - 3.0, (i % 5) * 0.7] for i in range(rows)]
        clients = [key_client("predict", f"k{i}") for i in range(8)]

        def ask(endpoint):
            def one(index):
                body = {"inputs": [inputs[index]], "parameters": {"cache": False}}
                return clients[index % 8].post(f"/api/v1/predict/{endpoint}", body, format="json").json()

            with ThreadPoolExecutor(8) as pool:
                return list(pool.map(one, range(rows)))

        batched, single = ask("batched"), ask("single")
        for index in range(rows):
            self.assertEqual(batched[index]["predictions"], single[index]["predictions"], index)
            # A batched matrix product may round the last bit differently from a one-row one.
            for got, expected in zip(batched[index]["probabilities"][0], single[index]["probabilities"][0]):
                self.assertAlmostEqual(got, expected, places=12, msg=index)
        sizes = [int(line.split()[0]) for line in record.read_text().splitlines()]
        self.assertGreater(max(sizes), 1, "the batched endpoint never batched")

    def test_the_batch_route_answers_every_item_and_its_items_share_forward_passes(self):
        model = make_model("scorer", task="classification")
        record = Path(self.server_dir_file("batches.log"))
        toy_version(model, weights=(0.3, -0.2, 0.5), task_classes=[0, 1], sleep_ms=20, record=str(record))
        registry_services.model_alias_set(model=model, alias="production", version_number=1)
        key_client("manage").post("/api/v1/deployments/", {"endpoint": "batched", "model": "scorer", "version": 1,
                                                           "max_batch_size": 16}, format="json")
        self.wait_ready("batched")
        rows = [[i * 0.1, (i % 7) - 3.0, (i % 5) * 0.7] for i in range(12)]
        uncached = {"cache": False}
        items = [{"endpoint": "batched", "inputs": [row], "request_id": f"r{i}", "parameters": uncached}
                 for i, row in enumerate(rows)]
        items += [{"model": "scorer", "inputs": [rows[0]], "parameters": uncached},  # universal: production
                  {"endpoint": "batched", "inputs": [[1.0]]},
                  {"endpoint": "nowhere", "inputs": [rows[0]]},
                  [1, 2, 3]]
        client = key_client("predict")
        record.write_text("")  # warm-up passes are not the batch's
        response = client.post("/api/v1/predict/batch", {"requests": items}, format="json")
        self.assertEqual(response.status_code, 200, response.content)
        body = response.json()
        sizes = [int(line.split()[0]) for line in record.read_text().splitlines()]
        # The 13 items for the endpoint (the universal one included) reach its batcher together: one pass,
        # two if the socket split their frames. Sent side by side from threads they came in waves.
        self.assertEqual(sum(sizes), 13, sizes)
        self.assertLessEqual(len(sizes), 2, sizes)

        self.assertEqual((body["count"], body["succeeded"], body["success_rate"]), (16, 13, round(13 / 16, 4)))
        self.assertGreater(body["total_ms"], 0)
        results = body["results"]
        self.assertEqual([result["index"] for result in results], list(range(16)))
        for index, row in enumerate(rows):
            alone = client.post("/api/v1/predict/batched", {"inputs": [row], "parameters": uncached},
                                format="json").json()
            self.assertTrue(results[index]["ok"], results[index])
            self.assertEqual(results[index]["result"]["request_id"], f"r{index}")
            self.assertEqual(results[index]["result"]["predictions"], alone["predictions"], index)
        self.assertEqual((results[12]["ok"], results[12]["result"]["version"]), (True, 1))
        failures = [(result["ok"], result["status"], result["error"]["code"]) for result in results[13:]]
        self.assertEqual(failures, [(False, 400, "invalid_input"), (False, 404, "endpoint_not_found"),
                                    (False, 400, "invalid_input")])
        self.assertIn("requests[15]", str(results[15]["error"]))

        # With the cache: the first call stores each item's answer, the second is answered from it.
        cacheable = {"requests": [{"endpoint": "batched", "inputs": [row]} for row in rows[:3]]}
        first, again = [client.post("/api/v1/predict/batch", cacheable, format="json").json()["results"]
                        for _ in range(2)]
        self.assertEqual([result["result"]["cached"] for result in first + again], [False] * 3 + [True] * 3)
        self.assertEqual([result["result"]["predictions"] for result in again],
                         [result["result"]["predictions"] for result in first])
        self.assertEqual([result["result"]["predictions"] for result in first],
                         [results[index]["result"]["predictions"] for index in range(3)])

    def server_dir_file(self, name: str) -> str:
        from django.conf import settings

        return str(Path(settings.MODEL_STORE_DIR).parent / name)


class FailureTests(LiveServerTestCase):
    def deploy_toy(self, endpoint: str, model_name: str, **knobs):
        model = make_model(model_name, task="regression")
        toy_version(model, **knobs.pop("toy", {}))
        response = key_client("manage").post("/api/v1/deployments/", {"endpoint": endpoint, "model": model_name,
                                                                       "version": 1, **knobs}, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        return self.wait_ready(endpoint)

    def test_a_worker_killed_mid_request_answers_503_fast_and_is_respawned(self):
        self.deploy_toy("fragile", "fragile")
        client = key_client("predict")
        started = time.monotonic()
        response = client.post("/api/v1/predict/fragile", {"inputs": [[CRASH, 0, 0]]}, format="json")
        elapsed = time.monotonic() - started
        self.assertEqual(response.status_code, 503, response.content)
        self.assertIn("Retry-After", response)
        self.assertLess(elapsed, 2.0)
        wait_for(lambda: any(r["restarts"] >= 1 and r["state"] == "ready"
                             for r in (Deployment.objects.get(endpoint="fragile").runtime or {}).get("replicas", [])),
                 message="the worker to be respawned")
        ok = client.post("/api/v1/predict/fragile", {"inputs": [[1, 1, 1]]}, format="json")
        self.assertEqual(ok.status_code, 200, ok.content)
        self.assertEqual(ok.json()["predictions"], [6.0])

    def test_a_crash_looping_model_ends_failed_while_others_serve(self):
        self.deploy_toy("steady", "steady")
        broken = make_model("broken", task="regression")
        toy_version(broken, fail_load="the weights are corrupt")
        key_client("manage").post("/api/v1/deployments/", {"endpoint": "broken", "model": "broken", "version": 1},
                                  format="json")
        failed = self.wait_status("broken", DeploymentStatus.FAILED)
        self.assertIn("the weights are corrupt", failed.status_reason)
        response = key_client("predict").post("/api/v1/predict/steady", {"inputs": [[1, 0, 0]]}, format="json")
        self.assertEqual(response.status_code, 200)
        refused = key_client("predict").post("/api/v1/predict/broken", {"inputs": [[1, 0, 0]]}, format="json")
        self.assertEqual(refused.status_code, 503)

    def test_a_full_queue_answers_503_at_once_and_a_deadline_504(self):
        self.deploy_toy("slow", "slow", max_queue=1, max_batch_size=1, timeout_ms=3000, toy={"sleep_ms": 400})
        clients = [key_client("predict", f"k{i}") for i in range(6)]

        def ask(index):
            started = time.monotonic()
            response = clients[index].post("/api/v1/predict/slow", {"inputs": [[index, 0, 0]],
                                                                   "parameters": {"cache": False}}, format="json")
            return response, time.monotonic() - started

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(ask, range(6)))
        refused = [(r, t) for r, t in answers if r.status_code == 503]
        served = [t for r, t in answers if r.status_code == 200]
        self.assertTrue(refused and served, [r.status_code for r, _ in answers])
        for response, _ in refused:
            self.assertEqual(response.json()["error"]["code"], "overloaded")
            self.assertEqual(response["Retry-After"], "1")
        # "At once": a refusal does not wait for the queue; it is back before any served request.
        self.assertLess(max(t for _, t in refused), min(served))
        key_client("manage").patch("/api/v1/deployments/slow/", {"timeout_ms": 100}, format="json")
        time.sleep(0.5)  # the routing table carries the new deadline within a tick
        late = clients[0].post("/api/v1/predict/slow", {"inputs": [[9, 0, 0]], "parameters": {"cache": False}},
                               format="json")
        self.assertEqual(late.status_code, 504, late.content)
        self.assertEqual(late.json()["error"]["code"], "deadline_exceeded")

    def test_a_bad_row_in_a_batch_fails_only_its_own_request(self):
        self.deploy_toy("mixed", "mixed", max_batch_size=8, batch_timeout_ms=50)
        clients = [key_client("predict", f"k{i}") for i in range(4)]
        bodies = [[[1, 0, 0]], [[POISON, 0, 0]], [[2, 0, 0]], [[3, 0, 0]]]
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda i: clients[i].post("/api/v1/predict/mixed", {"inputs": bodies[i]},
                                                              format="json"), range(4)))
        self.assertEqual([a.status_code for a in answers], [200, 400, 200, 200])
        self.assertEqual([a.json()["predictions"] for a in (answers[0], answers[2], answers[3])],
                         [[1.0], [2.0], [3.0]])


class ModelFeatureTests(LiveServerTestCase):
    def test_an_ensemble_averages_its_members_by_weight(self):
        model = make_model("blend", task="regression")
        toy_version(model, weights=(1.0, 0.0, 0.0))
        toy_version(model, weights=(3.0, 0.0, 0.0))
        manage = key_client("manage")
        response = manage.post("/api/v1/deployments/", {
            "endpoint": "blend", "model": "blend", "version": 1, "ensemble": [{"version": 2, "weight": 1.0}],
        }, format="json")
        self.assertEqual(response.status_code, 201, response.content)
        manage.post("/api/v1/deployments/", {"endpoint": "plain", "model": "blend", "version": 1}, format="json")
        self.wait_ready("blend")
        self.wait_ready("plain")
        client = key_client("predict")
        row = {"inputs": [[2, 0, 0]]}
        # Version 1 alone answers first and is cached; the ensemble built on it must not be given that answer.
        self.assertEqual(client.post("/api/v1/predict/plain", row, format="json").json()["predictions"], [2.0])
        answer = client.post("/api/v1/predict/blend", row, format="json").json()
        self.assertEqual((answer["predictions"], answer["cached"]), ([4.0], False))  # (1*2 + 3*2) / 2
        self.assertTrue(client.post("/api/v1/predict/blend", row, format="json").json()["cached"])
        # New weights are a new model: nothing cached under the old ones answers for it.
        reweighted = manage.patch("/api/v1/deployments/blend/", {"ensemble": [{"version": 2, "weight": 3.0}]},
                                  format="json")
        self.assertEqual(reweighted.status_code, 200, reweighted.content)
        wait_for(lambda: client.post("/api/v1/predict/blend", row, format="json").json()["predictions"] == [5.0],
                 timeout=60, message="the reweighted ensemble to serve")  # (1*2 + 3*3*2) / 4

    def test_monte_carlo_dropout_and_explanations_through_the_api(self):
        import torch
        from torch import nn

        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2)).eval()
        path = Path(self.server_dir_file("mlp.pt"))
        torch.jit.save(torch.jit.script(net), str(path))
        mlp = make_model("mlp", task="classification")
        version = registry_services.model_version_create(model=mlp, artifact=path.open("rb"), flavor="torch",
                                                         signature={"n_features": 4, "classes": ["no", "yes"]})
        self.assertEqual(registry_services.model_version_validate(version_id=version.pk).status, "ready")
        churn = make_model("churn")
        ready_skops_version(churn)
        manage, client = key_client("manage"), key_client("predict")
        for endpoint, name in (("mlp", "mlp"), ("churn", "churn")):
            manage.post("/api/v1/deployments/", {"endpoint": endpoint, "model": name, "version": 1}, format="json")
            self.wait_ready(endpoint)
        sampled = client.post("/api/v1/predict/mlp", {"inputs": [ROW], "parameters": {
            "uncertainty": {"samples": 30}, "cache": False}}, format="json")
        self.assertEqual(sampled.status_code, 200, sampled.content)
        body = sampled.json()
        self.assertEqual(body["classes"], ["no", "yes"])
        self.assertEqual(len(body["uncertainty"]["std"][0]), 2)
        self.assertGreater(max(body["uncertainty"]["std"][0]), 0.0)
        refused = client.post("/api/v1/predict/churn", {"inputs": [ROW], "parameters": {
            "uncertainty": {"samples": 30}}}, format="json")
        self.assertEqual(refused.status_code, 400)
        self.assertEqual(refused.json()["error"]["details"]["field"], "parameters.uncertainty")
        bad = client.post("/api/v1/predict/mlp", {"inputs": [ROW], "parameters": {"uncertainty": {"samples": 0}}},
                          format="json")
        self.assertEqual(bad.status_code, 400)
        self.assertIn("samples", bad.json()["error"]["message"])
        explained = client.post("/api/v1/predict/churn/explain", {"inputs": [ROW]}, format="json")
        self.assertEqual(explained.status_code, 200, explained.content)
        self.assertEqual(len(explained.json()["importances"][0]), 4)
        self.assertEqual(len(explained.json()["builtin_importances"]), 4)

    def server_dir_file(self, name: str) -> str:
        from django.conf import settings

        return str(Path(settings.MODEL_STORE_DIR).parent / name)


class OrphanTests(LiveServerTestCase):
    def test_workers_exit_when_the_model_server_is_killed(self):
        import os
        import signal

        model = make_model("orphaned", task="regression")
        toy_version(model)
        key_client("manage").post("/api/v1/deployments/", {"endpoint": "orphaned", "model": "orphaned",
                                                            "version": 1}, format="json")
        self.wait_ready("orphaned")
        pid = wait_for(lambda: ((Deployment.objects.get(endpoint="orphaned").runtime or {}).get("replicas")
                                or [{}])[0].get("pid"), message="the worker's pid")
        os.kill(self.server.process.pid, signal.SIGKILL)

        def gone():
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        wait_for(gone, timeout=30, message="the orphaned worker to exit")
