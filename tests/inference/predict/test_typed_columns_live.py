"""A scikit-learn Pipeline fitted on a DataFrame (a string column one-hot encoded, numbers with missing values,
a HistGradientBoostingClassifier) end to end: uploaded with an input example, validated in the sandbox, served
by real worker processes. Every way in (records, columns, the batch route, async jobs, batch CSV files, V2 BYTES
tensors from tritonclient) answers what the pipeline itself answers; every bad type is a 400 naming the column
before the model is called; the signature cannot be corrected once the version is deployed."""

import csv
import io
import json
import time

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from django.core.files.uploadedfile import SimpleUploadedFile

from core.services import api_key_create
from inference.predict.dispatch import routes, workers
from registry import services as registry_services
from registry.models import ModelVersion
from tests.factories import key_client, make_model
from tests.inference.jobs.support import PrivateBatchDir, RqWorker
from tests.inference.live import LiveServerTestCase, LiveWebServer, wait_for
from tests.inference.runtime.flavors.test_sklearn_frames import mixed_frame, mixed_pipeline, records

pytestmark = pytest.mark.slow
COLUMNS = [{"name": "country", "dtype": "string", "nullable": False},
           {"name": "age", "dtype": "float64", "nullable": False},
           {"name": "income", "dtype": "float64", "nullable": True}]


def example_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Eight rows, one of them with a missing income."""
    return pd.concat([frame.iloc[:7], frame[frame["income"].isna()].iloc[:1]])


def register(pipeline, frame: pd.DataFrame) -> dict:
    """Uploads the pipeline with an input example (CSV, empty cells missing) and a signature, then validates it."""
    artifact = io.BytesIO()
    sio.dump(pipeline, artifact)
    make_model("churn-mixed", task="classification")
    example = example_rows(frame).to_csv(index=False).encode()
    response = key_client("manage", "uploader").post("/api/v1/models/churn-mixed/versions/", {
        "artifact": SimpleUploadedFile("model.skops", artifact.getvalue()), "flavor": "sklearn",
        "signature": json.dumps({"columns": COLUMNS}), "input_example": SimpleUploadedFile("rows.csv", example),
    }, format="multipart")
    assert response.status_code == 201, response.content
    version = registry_services.model_version_validate(version_id=ModelVersion.objects.get().pk)
    assert version.status == "ready", version.status_reason
    return response.json()


class TypedPipelineLiveTests(PrivateBatchDir, LiveServerTestCase):
    def setUp(self):
        super().setUp()
        self.frame, target = mixed_frame()
        self.pipeline = mixed_pipeline(self.frame, target)
        self.uploaded = register(self.pipeline, self.frame)
        self.manage, self.client = key_client("manage", "deployer"), key_client("predict", "caller")
        created = self.manage.post("/api/v1/deployments/", {"endpoint": "churn-mixed", "model": "churn-mixed",
                                                            "version": 1, "max_batch_size": 64}, format="json")
        self.assertEqual(created.status_code, 201, created.content)
        self.route = self.wait_ready("churn-mixed")
        self.sample = self.frame.iloc[:40]

    def predict(self, inputs, **parameters) -> dict:
        response = self.client.post("/api/v1/predict/churn-mixed", {"inputs": inputs, "parameters": parameters},
                                    format="json")
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()

    def assert_answers(self, predictions, probabilities, rows: pd.DataFrame) -> None:
        self.assertEqual(predictions, self.pipeline.predict(rows).tolist())
        np.testing.assert_allclose(probabilities, self.pipeline.predict_proba(rows), rtol=1e-9)

    def worker_rows(self) -> int:
        answer = workers().call(list(routes().endpoint("churn-mixed").sockets), {"op": "stats", "inputs": [],
                                "params": {}}, deadline=time.time() + 10)
        return answer["stats"]["rows"]

    def test_records_columns_and_the_batch_route_answer_as_the_pipeline(self):
        shown = self.manage.get("/api/v1/models/churn-mixed/versions/1/").json()
        self.assertEqual(shown["input_example"], records(example_rows(self.frame)))
        self.assertEqual(shown["signature"]["columns"], COLUMNS)
        self.assertEqual(shown["validation"]["smoke"]["from"], "input_example")

        by_records = self.predict(records(self.sample), cache=False)
        self.assert_answers(by_records["predictions"], by_records["probabilities"], self.sample)
        columns = {name: [None if v != v else v for v in self.sample[name].tolist()] for name in self.sample}
        by_columns = self.predict(columns)
        self.assertEqual(by_columns["predictions"], by_records["predictions"])
        again = self.predict(columns)  # the cache key is the typed rows: records and columns alike hit it
        self.assertTrue(again["cached"])
        self.assertTrue(self.predict(records(self.sample))["cached"])
        items = [{"endpoint": "churn-mixed", "inputs": [row]} for row in records(self.sample.iloc[:10])]
        batch = self.client.post("/api/v1/predict/batch", {"requests": items}, format="json").json()
        self.assertEqual([item["ok"] for item in batch["results"]], [True] * 10)
        self.assert_answers([item["result"]["predictions"][0] for item in batch["results"]],
                            [item["result"]["probabilities"][0] for item in batch["results"]], self.sample.iloc[:10])

    def test_every_bad_type_is_a_400_naming_the_column_before_the_model_is_called(self):
        good = {"country": "fr", "age": 31.0, "income": None}
        before = self.worker_rows()
        cases = [
            ([{**good, "country": 3}], "inputs[0].country: expected a string, got number"),
            ([{**good, "age": "31"}], "inputs[0].age: expected a number, got string"),
            ([{**good, "age": None}], "inputs[0].age: null is not allowed"),
            ([{"country": "fr", "age": 31.0}], "inputs[0]: missing columns: income"),
            ([{**good, "city": "paris"}], "inputs[0]: unknown columns: city"),
            ([good, {**good, "country": ["fr"]}], "inputs[1].country: expected a string, got list"),
            ({"country": ["fr", "de"], "age": [31.0, "x"], "income": [1.0, 2.0]},
             "inputs.age[1]: expected a number, got string"),
        ]
        for inputs, message in cases:
            response = self.client.post("/api/v1/predict/churn-mixed", {"inputs": inputs}, format="json")
            self.assertEqual(response.status_code, 400, (inputs, response.content))
            self.assertIn(message, response.json()["error"]["message"])
        nan = self.client.post("/api/v1/predict/churn-mixed", data=b'{"inputs": [{"country": "fr", "age": NaN, '
                               b'"income": 1.0}]}', content_type="application/json")
        self.assertEqual(nan.status_code, 400)
        explain = self.client.post("/api/v1/predict/churn-mixed/explain", {"inputs": [{**good, "country": 1}]},
                                   format="json")
        self.assertEqual(explain.status_code, 400)
        self.assertIn("country", explain.json()["error"]["message"])
        self.assertEqual(self.worker_rows(), before)  # not one row reached the model
        self.predict([good])
        self.assertEqual(self.worker_rows(), before + 1)

    def test_explain_ablates_the_country_to_the_examples_most_frequent_value(self):
        explained = self.client.post("/api/v1/predict/churn-mixed/explain",
                                     {"inputs": [{"country": "fr", "age": 31.0, "income": 42000.0}]}, format="json")
        self.assertEqual(explained.status_code, 200, explained.content)
        body = explained.json()
        counts = example_rows(self.frame)["country"].value_counts()
        common = counts.index[0]
        self.assertGreater(counts.iloc[0], counts.iloc[1])  # one most frequent value
        self.assertEqual(body["feature_names"], ["country", "age", "income"])
        self.assertEqual(body["baseline"], [common, 0.0, 0.0])
        self.assertNotIn("skipped", body)
        self.assertEqual(len(body["importances"][0]), 3)

    def test_async_jobs_and_a_batch_csv_file_answer_as_the_pipeline(self):
        sample = example_rows(self.frame)  # one missing income
        accepted = self.client.post("/api/v1/predict/churn-mixed/async", {"inputs": records(sample)}, format="json")
        self.assertEqual(accepted.status_code, 202, accepted.content)
        text = sample.to_csv(index=False)  # NaN income: an empty cell
        self.assertIn(",\n", text)
        uploaded = self.client.post("/api/v1/batch-jobs/", {"file": SimpleUploadedFile("rows.csv", text.encode()),
                                                             "endpoint": "churn-mixed"}, format="multipart")
        self.assertEqual(uploaded.status_code, 202, uploaded.content)
        bad = self.client.post("/api/v1/batch-jobs/", {"file": SimpleUploadedFile(
            "bad.csv", b"country,age,income\nfr,,1.0\n"), "endpoint": "churn-mixed"}, format="multipart")
        self.assertEqual(bad.status_code, 400)
        self.assertIn("column 'age': null is not allowed", bad.json()["error"]["message"])
        worker = RqWorker(burst=True).start()
        self.addCleanup(worker.stop)

        def finished(url):
            body = self.client.get(url).json()
            return body if body["status"] not in ("queued", "running") else None

        job = wait_for(lambda: finished(accepted.json()["status_url"]), timeout=180, message="the async job")
        self.assertEqual(job["status"], "succeeded", job)
        self.assert_answers(job["result"]["predictions"], job["result"]["probabilities"], sample)
        batch = wait_for(lambda: finished(f"/api/v1/batch-jobs/{uploaded.json()['id']}/"), timeout=180,
                         message="the batch job")
        self.assertEqual((batch["status"], batch["rows_failed"]), ("succeeded", 0), batch)
        result = self.client.get(f"/api/v1/batch-jobs/{uploaded.json()['id']}/result")
        rows = list(csv.DictReader(io.StringIO(b"".join(result.streaming_content).decode())))
        self.assert_answers([int(row["prediction"]) for row in rows],
                            [[float(row["probability_0"]), float(row["probability_1"])] for row in rows], sample)

    def test_v2_takes_one_tensor_per_column_with_bytes_for_strings_from_tritonclient(self):
        import tritonclient.http as triton

        web = LiveWebServer()
        self.addCleanup(web.stop)
        client = triton.InferenceServerClient(url=f"127.0.0.1:{web.port}", network_timeout=60)
        _, secret = api_key_create(name="v2", scope="predict")
        metadata = client.get_model_metadata("churn-mixed", headers={"X-API-Key": secret})
        self.assertEqual([(i["name"], i["datatype"]) for i in metadata["inputs"]],
                         [("country", "BYTES"), ("age", "FP64"), ("income", "FP64")])
        sample = self.sample.dropna().iloc[:16]
        tensors = []
        for name, datatype, values in (("country", "BYTES", sample["country"].to_numpy(dtype=object)),
                                       ("age", "FP64", sample["age"].to_numpy()),
                                       ("income", "FP64", sample["income"].to_numpy())):
            tensor = triton.InferInput(name, [len(sample)], datatype)
            tensor.set_data_from_numpy(values)
            tensors.append(tensor)
        result = client.infer("churn-mixed", tensors, headers={"X-API-Key": secret})
        self.assert_answers(result.as_numpy("predict").tolist(), result.as_numpy("probabilities"), sample)
        wrong = triton.InferInput("country", [len(sample)], "FP64")
        wrong.set_data_from_numpy(sample["age"].to_numpy())
        with self.assertRaises(triton.InferenceServerException) as refused:
            client.infer("churn-mixed", [wrong, *tensors[1:]], headers={"X-API-Key": secret})
        self.assertIn("country", str(refused.exception))

    def test_the_signature_is_corrected_only_while_no_deployment_serves_the_version(self):
        url = "/api/v1/models/churn-mixed/versions/1/"
        refused = self.manage.patch(url, {"signature": {"columns": COLUMNS[:2]}}, format="json")
        self.assertEqual(refused.status_code, 409, refused.content)
        self.assertIn("deployed at endpoint 'churn-mixed'", refused.json()["error"]["message"])
        self.assertEqual(self.manage.delete("/api/v1/deployments/churn-mixed/").status_code, 200)
        wait_for(lambda: routes().endpoint("churn-mixed") is None, message="route removal")
        contradicted = self.manage.patch(url, {"signature": {"columns": [
            {**COLUMNS[0], "dtype": "float64"}, *COLUMNS[1:]]}}, format="json")
        self.assertEqual(contradicted.status_code, 400)
        self.assertIn("input_example[0].country: expected a number, got string",
                      contradicted.json()["error"]["message"])
        no_gaps = self.manage.patch(url, {"signature": {"columns": [*COLUMNS[:2], {**COLUMNS[2], "nullable": False}]}},
                                    format="json")
        self.assertEqual(no_gaps.status_code, 400)
        self.assertIn("input_example[7].income: null is not allowed", no_gaps.json()["error"]["message"])
        ages = [COLUMNS[0], {**COLUMNS[1], "dtype": "int64"}, COLUMNS[2]]
        corrected = self.manage.patch(url, {"description": "fixed", "tags": {"team": "growth"},
                                            "signature": {"columns": ages}}, format="json")
        self.assertEqual(corrected.status_code, 200, corrected.content)
        self.assertEqual((corrected.json()["description"], corrected.json()["status"]), ("fixed", "pending"))
        version = registry_services.model_version_validate(version_id=ModelVersion.objects.get().pk)
        self.assertEqual(version.status, "ready", version.status_reason)  # validated against the model again
        self.assertEqual(version.signature["columns"], ages)
