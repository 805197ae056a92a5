"""The Open Inference Protocol (V2) routes: field for field against the protocol, through the real
prediction path, and driven over real HTTP by tritonclient against the web tier started as `make serve` starts it."""

import json
import struct

import numpy as np
import pytest
import tritonclient.http as triton
from django.test import TestCase
from rest_framework.test import APIClient
from tritonclient.utils import InferenceServerException

from core.services import api_key_create
from inference.deployments.services import deployment_create
from inference.predict.contract import ExperimentHooks, Routing
from inference.predict.contract import hooks as registered_hooks
from registry import services as registry_services
from tests.conftest import skops_artifact, upload
from tests.factories import key_client, make_model, principals
from tests.inference.live import LiveServerTestCase, LiveWebServer, toy_version

WEIGHTS = (0.3, -0.2, 0.5)
ROWS = [[1.0, 2.0, 3.0], [0.5, -1.5, 0.25]]


def toy_probabilities(rows) -> list[list[float]]:
    scores = np.asarray(rows, dtype=np.float64) @ np.asarray(WEIGHTS)
    positive = 1.0 / (1.0 + np.exp(-scores))
    return np.stack([1.0 - positive, positive], axis=1).tolist()


def infer_body(rows=ROWS, **fields) -> dict:
    return {"inputs": [{"name": "input", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": rows}],
            **fields}


def post_json(client: APIClient, path: str, body, **extra):
    return client.post(path, json.dumps(body), content_type="application/json", **extra)


def binary_body(rows, **header_fields) -> tuple[bytes, int]:
    blob = struct.pack(f"<{len(rows) * len(rows[0])}d", *[v for row in rows for v in row])
    header = json.dumps({"inputs": [{"name": "input", "shape": [len(rows), len(rows[0])], "datatype": "FP64",
                                     "parameters": {"binary_data_size": len(blob)}}], **header_fields}).encode()
    return header + blob, len(header)


def assert_protocol_error(testcase, response, status: int, fragment: str = "") -> str:
    testcase.assertEqual(response.status_code, status, response.content)
    body = response.json()
    testcase.assertEqual(list(body), ["error"])
    testcase.assertIsInstance(body["error"], str)  # the protocol's shape, not {"error": {"code", ...}}
    testcase.assertIn(fragment, body["error"])
    return body["error"]


class ServerRoutesTests(TestCase):
    def test_server_metadata_names_the_server_and_its_extensions(self):
        response = APIClient().get("/v2")
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertEqual(set(body), {"name", "version", "extensions"})
        self.assertEqual(body["name"], "servingplatform")
        self.assertEqual(body["version"], "0.1.0")
        self.assertIn("binary_tensor_data", body["extensions"])
        self.assertIn("classification", body["extensions"])

    def test_health_answers_carry_json_bodies_without_credentials(self):
        anonymous = APIClient()
        live = anonymous.get("/v2/health/live")
        self.assertEqual((live.status_code, live.json()), (200, {"live": True}))
        ready = anonymous.get("/v2/health/ready")
        self.assertEqual((ready.status_code, ready.json()), (200, {"ready": True}))

    def test_the_server_is_not_ready_while_a_deployment_has_no_model_server(self):
        model = make_model("churn")
        toy_version(model, weights=WEIGHTS, task_classes=[0, 1])
        deployment_create(endpoint="churn", model="churn", version=1)
        ready = APIClient().get("/v2/health/ready")
        self.assertEqual((ready.status_code, ready.json()), (503, {"ready": False}))

    def test_other_v2_paths_and_methods_answer_in_the_protocol_shape(self):
        client = key_client("predict")
        assert_protocol_error(self, client.get("/v2/repository/index"), 404)
        assert_protocol_error(self, client.get("/v2/models/churn/config"), 404)
        assert_protocol_error(self, client.get("/v2/models/churn/infer"), 405)


class ModelRoutesWithoutModelServerTests(TestCase):
    """Metadata comes from the deployment and its version even before the model server routes it."""

    @classmethod
    def setUpTestData(cls):
        # Once per class: validation runs the artifact in the sandbox, a process that imports sklearn.
        model = make_model("churn")
        version = registry_services.model_version_create(model=model, artifact=upload("a", skops_artifact()),
                                                         flavor="sklearn")
        registry_services.model_version_validate(version_id=version.pk)
        deployment_create(endpoint="churn-v2", model="churn", version=1)

    def setUp(self):
        self.client = key_client("predict")

    def test_model_metadata_matches_the_protocol_field_for_field(self):
        for path in ("/v2/models/churn-v2", "/v2/models/churn-v2/versions/1"):
            response = self.client.get(path)
            self.assertEqual(response.status_code, 200, response.content)
            self.assertEqual(response.json(), {
                "name": "churn-v2", "versions": ["1"], "platform": "sklearn_skops",
                "inputs": [{"name": "inputs", "datatype": "FP64", "shape": [-1, 4]}],
                "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                            {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]}],
            })

    def test_another_version_or_an_unknown_model_is_404(self):
        assert_protocol_error(self, self.client.get("/v2/models/churn-v2/versions/2"), 404, "serves version 1")
        assert_protocol_error(self, self.client.get("/v2/models/churn-v2/versions/2/ready"), 404)
        assert_protocol_error(self, post_json(self.client, "/v2/models/churn-v2/versions/2/infer", infer_body()), 404)
        for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/nope/versions/1"):
            assert_protocol_error(self, self.client.get(path), 404, "nope")
        assert_protocol_error(self, post_json(self.client, "/v2/models/nope/infer", infer_body()), 404)

    def test_a_deployment_the_model_server_has_not_loaded_is_not_ready(self):
        response = self.client.get("/v2/models/churn-v2/ready")
        self.assertEqual((response.status_code, response.json()), (503, {"name": "churn-v2", "ready": False}))
        infer = post_json(self.client, "/v2/models/churn-v2/infer", infer_body([[1, 2, 3, 4]]))
        assert_protocol_error(self, infer, 503)
        self.assertIn("Retry-After", infer)

    def test_credentials_are_required_and_refusals_use_the_protocol_shape(self):
        callers = principals()
        for path in ("/v2/models/churn-v2", "/v2/models/churn-v2/ready"):
            assert_protocol_error(self, callers.anonymous.get(path), 401)
            assert_protocol_error(self, callers.user.get(path), 403)
            self.assertIn(callers.manage.get(path).status_code, (200, 503))
        assert_protocol_error(self, post_json(callers.anonymous, "/v2/models/churn-v2/infer", infer_body()), 401)

    def test_nul_and_lone_surrogates_are_400_naming_the_field(self):
        path = "/v2/models/churn-v2/infer"
        rows = '{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}'
        for body, field in [(f'{{"id": "\\udfff", "inputs": [{rows}]}}', "id: "),
                            (f'{{"id": "\\u0000", "inputs": [{rows}]}}', "id: "),
                            (f'{{"inputs": [{rows}], "parameters": {{"tag": "\\ud800"}}}}', "parameters.tag: ")]:
            with self.subTest(body):
                message = assert_protocol_error(self, self.client.post(path, body.encode(),
                                                                       content_type="application/json"), 400)
                self.assertTrue(message.startswith(field), message)

    def test_malformed_bodies_are_400_and_foreign_content_types_415(self):
        path = "/v2/models/churn-v2/infer"
        assert_protocol_error(self, self.client.post(path, b"{nope", content_type="application/json"), 400,
                              "JSON parse error")
        assert_protocol_error(self, self.client.post(path, b'{"inputs": [1e999]}', content_type="application/json"),
                              400)
        assert_protocol_error(self, post_json(self.client, path, {"inputs": []}), 400, "inputs")
        assert_protocol_error(self, self.client.post(path, {"a": "b"}, format="multipart"), 415)
        assert_protocol_error(self, self.client.post(path, b"{}", content_type="application/json",
                                                     HTTP_INFERENCE_HEADER_CONTENT_LENGTH="9"), 400,
                              "Inference-Header-Content-Length")
        assert_protocol_error(self, self.client.post(path, b"{}", content_type="application/json",
                                                     HTTP_CONTENT_ENCODING="br"), 415)


class RecordingHooks(ExperimentHooks):
    """An experiment that sends every request for `public` to `variant`, recording what it saw."""

    def __init__(self, public: str, variant: str):
        self.public, self.variant, self.seen = public, variant, []

    def route(self, request):
        if request.endpoint != self.public:
            return None
        self.seen.append((request.endpoint, request.inputs))
        return Routing(endpoint=self.variant, variant="b", experiment_id=1)


class InferThroughThePredictionPathTests(LiveServerTestCase):
    def setUp(self):
        super().setUp()
        model = make_model("scorer", task="classification")
        toy_version(model, weights=WEIGHTS, task_classes=[0, 1])
        toy_version(model, weights=(-1.0, 0.0, 0.0), task_classes=[0, 1])
        manage = key_client("manage")
        for endpoint, version in (("scorer", 1), ("scorer-b", 2)):
            created = manage.post("/api/v1/deployments/", {"endpoint": endpoint, "model": "scorer", "version": version,
                                                            "max_rows": 4}, format="json")
            self.assertEqual(created.status_code, 201, created.content)
        self.wait_ready("scorer")
        self.wait_ready("scorer-b")
        self.client = key_client("predict")

    def test_a_json_infer_answers_every_protocol_field_and_matches_api_v1(self):
        response = post_json(self.client, "/v2/models/scorer/infer", infer_body(id="req-7"))
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response["Content-Type"], "application/json")
        body = response.json()
        self.assertEqual(set(body), {"model_name", "model_version", "id", "parameters", "outputs"})
        self.assertEqual((body["model_name"], body["model_version"], body["id"]), ("scorer", "1", "req-7"))
        predict, probabilities = body["outputs"]
        self.assertEqual(set(predict), {"name", "datatype", "shape", "data"})
        self.assertEqual((predict["name"], predict["datatype"], predict["shape"]), ("predict", "INT64", [2]))
        self.assertEqual((probabilities["name"], probabilities["datatype"], probabilities["shape"]),
                         ("probabilities", "FP64", [2, 2]))
        np.testing.assert_allclose(np.reshape(probabilities["data"], (2, 2)), toy_probabilities(ROWS), rtol=1e-12)

        v1 = self.client.post("/api/v1/predict/scorer", {"inputs": ROWS}, format="json").json()
        self.assertEqual(predict["data"], v1["predictions"])
        self.assertEqual(np.reshape(probabilities["data"], (2, 2)).tolist(), v1["probabilities"])
        self.assertTrue(v1["cached"], "the V2 call and /api/v1/predict share one prediction cache")
        again = post_json(self.client, "/v2/models/scorer/infer", infer_body(parameters={"cache": False})).json()
        self.assertEqual(again["parameters"], {"cached": False})
        self.assertEqual(len(again["id"]), 32)  # no id given: the request id

    def test_binary_inputs_and_outputs_round_trip_and_version_paths_work(self):
        body, header_length = binary_body(ROWS, parameters={"binary_data_output": True})
        response = self.client.post("/v2/models/scorer/versions/1/infer", body,
                                    content_type="application/octet-stream",
                                    HTTP_INFERENCE_HEADER_CONTENT_LENGTH=str(header_length))
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response["Content-Type"], "application/octet-stream")
        result = triton.InferResult.from_response_body(
            response.content, header_length=int(response["Inference-Header-Content-Length"]))
        np.testing.assert_allclose(result.as_numpy("probabilities"), toy_probabilities(ROWS), rtol=1e-12)
        self.assertEqual(result.as_numpy("predict").tolist(), [int(p[1] > 0.5) for p in toy_probabilities(ROWS)])
        header = result.get_response()
        self.assertEqual(header["model_version"], "1")
        self.assertEqual(header["outputs"][1]["parameters"], {"binary_data_size": 32})

        only = post_json(self.client, "/v2/models/scorer/infer", infer_body(outputs=[{"name": "probabilities"}]))
        self.assertEqual([output["name"] for output in only.json()["outputs"]], ["probabilities"])

    def test_readiness_and_metadata_follow_the_routing_table(self):
        ready = self.client.get("/v2/models/scorer/versions/1/ready")
        self.assertEqual((ready.status_code, ready.json()), (200, {"name": "scorer", "ready": True}))
        metadata = self.client.get("/v2/models/scorer").json()
        self.assertEqual(metadata["inputs"], [{"name": "input", "datatype": "FP64", "shape": [-1, 3]}])
        self.assertEqual(metadata["versions"], ["1"])

    def test_errors_keep_the_status_of_the_prediction_path(self):
        path = "/v2/models/scorer/infer"
        assert_protocol_error(self, post_json(self.client, path, infer_body([[1.0, 2.0]])), 400,
                              "expected shape [n, 3]")
        assert_protocol_error(self, post_json(self.client, path, infer_body([[0.0, 0.0, 0.0]] * 5)), 413, "limit of 4")
        assert_protocol_error(self, post_json(self.client, path, infer_body(outputs=[{"name": "x"}])), 400, "unknown")
        assert_protocol_error(self, post_json(self.client, "/v2/models/scorer/versions/2/infer", infer_body()), 404)

    def test_experiments_and_metrics_see_v2_requests(self):
        hooks = RecordingHooks("scorer", "scorer-b")
        with registered_hooks.registered(hooks):
            body = post_json(self.client, "/v2/models/scorer/infer", infer_body()).json()
        self.assertEqual(hooks.seen, [("scorer", ROWS)])
        self.assertEqual((body["model_name"], body["model_version"]), ("scorer", "2"))  # the variant answered
        self.assertEqual(body["parameters"]["variant"], "b")
        metrics = key_client("manage", "m").get("/api/v1/metrics").json()["deployments"]
        self.assertEqual({d["endpoint"]: d["requests"] for d in metrics}["scorer-b"], 1)


# --- tritonclient against a live gunicorn -----------------------------------------------------------


@pytest.mark.slow
class TritonClientTests(LiveServerTestCase):
    def setUp(self):
        super().setUp()
        model = make_model("scorer", task="classification")
        toy_version(model, weights=WEIGHTS, task_classes=[0, 1])
        self.assertEqual(key_client("manage").post("/api/v1/deployments/", {"endpoint": "scorer", "model": "scorer",
                                                                             "version": 1}, format="json").status_code,
                         201)
        self.wait_ready("scorer")
        _, secret = api_key_create(name="triton", scope="predict")
        self.headers = {"X-API-Key": secret}
        self.web = LiveWebServer()
        self.addCleanup(self.web.stop)
        self.triton = triton.InferenceServerClient(url=f"127.0.0.1:{self.web.port}", network_timeout=60)
        self.addCleanup(self.triton.close)

    def fp64(self, rows, *, binary: bool) -> triton.InferInput:
        tensor = triton.InferInput("input", [len(rows), len(rows[0])], "FP64")
        tensor.set_data_from_numpy(np.asarray(rows, dtype=np.float64), binary_data=binary)
        return tensor

    def test_tritonclient_works_unchanged(self):
        client, headers = self.triton, self.headers
        self.assertTrue(client.is_server_live())
        self.assertTrue(client.is_server_ready())
        self.assertEqual(client.get_server_metadata()["name"], "servingplatform")
        self.assertTrue(client.is_model_ready("scorer", headers=headers))
        self.assertTrue(client.is_model_ready("scorer", "1", headers=headers))
        metadata = client.get_model_metadata("scorer", headers=headers)
        self.assertEqual((metadata["name"], metadata["versions"], metadata["inputs"]),
                         ("scorer", ["1"], [{"name": "input", "datatype": "FP64", "shape": [-1, 3]}]))
        self.assertEqual([o["name"] for o in metadata["outputs"]], ["predict", "probabilities"])

        expected = toy_probabilities(ROWS)
        as_json = client.infer("scorer", [self.fp64(ROWS, binary=False)], request_id="t-1", headers=headers,
                               outputs=[triton.InferRequestedOutput("probabilities", binary_data=False),
                                        triton.InferRequestedOutput("predict", binary_data=False)])
        self.assertEqual(as_json.get_response()["id"], "t-1")
        self.assertIn("data", as_json.get_output("probabilities"))  # really sent back as JSON
        np.testing.assert_allclose(as_json.as_numpy("probabilities"), expected, rtol=1e-12)
        self.assertEqual(as_json.as_numpy("predict").tolist(), [int(p[1] > 0.5) for p in expected])

        # tritonclient's defaults: binary inputs, every output binary; plus a version in the path.
        as_binary = client.infer("scorer", [self.fp64(ROWS, binary=True)], model_version="1", headers=headers)
        self.assertNotIn("data", as_binary.get_output("probabilities"))
        self.assertEqual(as_binary.as_numpy("probabilities").dtype, np.float64)
        np.testing.assert_allclose(as_binary.as_numpy("probabilities"), expected, rtol=1e-12)
        self.assertEqual(as_binary.get_response()["model_version"], "1")

        compressed = client.infer("scorer", [self.fp64(ROWS, binary=True)], headers=headers,
                                  request_compression_algorithm="gzip", response_compression_algorithm="gzip")
        np.testing.assert_allclose(compressed.as_numpy("probabilities"), expected, rtol=1e-12)

    def test_errors_reach_the_client_as_inference_server_exceptions(self):
        client, headers = self.triton, self.headers
        with self.assertRaises(InferenceServerException) as wrong_version:
            client.infer("scorer", [self.fp64(ROWS, binary=True)], model_version="2", headers=headers)
        self.assertEqual(wrong_version.exception.status(), "404")
        self.assertIn("serves version 1", wrong_version.exception.message())
        with self.assertRaises(InferenceServerException) as bad_shape:
            client.infer("scorer", [self.fp64([[1.0, 2.0]], binary=True)], headers=headers)
        self.assertEqual(bad_shape.exception.status(), "400")
        self.assertIn("expected shape [n, 3], got [1, 2]", bad_shape.exception.message())
        with self.assertRaises(InferenceServerException) as no_key:
            client.get_model_metadata("scorer")
        self.assertEqual(no_key.exception.status(), "401")
        self.assertFalse(client.is_model_ready("nope", headers=headers))
