"""XGBoost (JSON and UBJSON), LightGBM and ONNX models end to end: uploaded through the API, validated in the
sandbox, served by real worker processes, their answers equal to those of the model that wrote them."""

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from registry import services as registry_services
from registry.models import ModelVersion
from tests.factories import key_client, make_model
from tests.inference.live import LiveServerTestCase
from tests.inference.runtime.flavors.test_boosters import frame, records

pytestmark = pytest.mark.slow
xgboost = pytest.importorskip("xgboost")
lightgbm = pytest.importorskip("lightgbm")
skl2onnx = pytest.importorskip("skl2onnx")


def saved(tmp, name: str, save) -> bytes:
    path = f"{tmp}/{name}"
    save(path)
    with open(path, "rb") as handle:
        return handle.read()


class NativeFlavorsLiveTests(LiveServerTestCase):
    def setUp(self):
        super().setUp()
        self.manage, self.client = key_client("manage", "deployer"), key_client("predict", "caller")
        self.data, self.target = frame()
        self.sample = self.data.iloc[:30]

    def deploy(self, name: str, data: bytes, flavor: str, task: str = "classification") -> dict:
        make_model(name, task=task)
        response = self.manage.post(f"/api/v1/models/{name}/versions/", {
            "artifact": SimpleUploadedFile("artifact", data), "flavor": flavor}, format="multipart")
        self.assertEqual(response.status_code, 201, response.content)
        version = registry_services.model_version_validate(version_id=ModelVersion.objects.get(model__name=name).pk)
        self.assertEqual(version.status, "ready", version.status_reason)
        created = self.manage.post("/api/v1/deployments/", {"endpoint": name, "model": name, "version": 1},
                                   format="json")
        self.assertEqual(created.status_code, 201, created.content)
        return version.signature

    def predict(self, name: str, inputs) -> dict:
        self.wait_ready(name, timeout=180)
        response = self.client.post(f"/api/v1/predict/{name}", {"inputs": inputs}, format="json")
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()

    def test_boosters_answer_as_the_models_that_wrote_them(self):
        import tempfile

        tmp = self.enterContext(tempfile.TemporaryDirectory())
        classifier = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(self.data, self.target)
        regressor = lightgbm.LGBMRegressor(n_estimators=10, verbose=-1).fit(self.data, self.target.astype(float))
        gbm = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(self.data, self.target)
        self.deploy("xgb-json", saved(tmp, "m.json", classifier.save_model), "xgboost")
        self.deploy("xgb-ubj", saved(tmp, "m.ubj", classifier.save_model), "xgboost")
        self.deploy("lgb", saved(tmp, "m.txt", gbm.booster_.save_model), "lightgbm")
        self.deploy("lgb-reg", saved(tmp, "r.txt", regressor.booster_.save_model), "lightgbm", task="regression")
        rows = records(self.sample)  # missing values as null
        for name in ("xgb-json", "xgb-ubj"):
            body = self.predict(name, rows)
            self.assertEqual(body["predictions"], classifier.predict(self.sample).tolist())
            np.testing.assert_allclose(body["probabilities"], classifier.predict_proba(self.sample), rtol=1e-6)
        body = self.predict("lgb", {name: [row[name] for row in rows] for name in self.sample.columns})  # columns
        self.assertEqual(body["predictions"], gbm.predict(self.sample).tolist())
        np.testing.assert_allclose(body["probabilities"], gbm.predict_proba(self.sample), rtol=1e-9)
        np.testing.assert_allclose(self.predict("lgb-reg", rows)["predictions"], regressor.predict(self.sample),
                                   rtol=1e-9)
        refused = self.client.post("/api/v1/predict/xgb-json", {"inputs": [{**rows[0], "a": "high"}]}, format="json")
        self.assertEqual(refused.status_code, 400)
        self.assertIn("inputs[0].a: expected a number, got string", refused.json()["error"]["message"])

    def test_an_onnx_pipeline_with_a_string_column_answers_as_onnxruntime_and_the_pipeline(self):
        from tests.inference.runtime.flavors.test_onnx import mixed

        data, pipeline = mixed()
        onx = skl2onnx.to_onnx(pipeline, data.iloc[:1], options={"zipmap": False})
        signature = self.deploy("onnx-mixed", onx.SerializeToString(), "onnx")
        self.assertEqual([c["dtype"] for c in signature["columns"]], ["string", "float32", "float32"])
        sample = data.iloc[:25]
        body = self.predict("onnx-mixed", sample.to_dict("records"))
        self.assertEqual(body["predictions"], pipeline.predict(sample).tolist())
        self.assertEqual(body["classes"], ["no", "yes"])
        np.testing.assert_allclose(body["probabilities"], pipeline.predict_proba(sample), atol=1e-5)
        self.assertEqual(self.client.post("/api/v1/predict/onnx-mixed", {"inputs": [{**sample.iloc[0].to_dict(),
                         "country": None}]}, format="json").status_code, 400)  # not nullable
