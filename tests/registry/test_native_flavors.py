"""Uploads of XGBoost, LightGBM and ONNX artifacts: the format is told from the bytes, and a pickle uploaded as
any of these flavors is refused at once (even with pickles allowed for scikit-learn) and never unpickled."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TransactionTestCase, override_settings

from registry.models import ModelVersion
from tests.factories import key_client, make_model

xgboost = pytest.importorskip("xgboost")


class Unpickled:
    """Writes a marker file if anything ever unpickles it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def xgboost_json() -> bytes:
    x = np.random.default_rng(0).normal(size=(60, 3))
    model = xgboost.XGBClassifier(n_estimators=2).fit(x, (x[:, 0] > 0).astype(int))
    return bytes(model.get_booster().save_raw("json"))


class NativeFlavorUploadTests(TransactionTestCase):
    def setUp(self):
        super().setUp()
        make_model("boosted", task="classification")
        self.client = key_client("manage")

    def post(self, data: bytes, flavor: str, name: str = "model.bin"):
        return self.client.post("/api/v1/models/boosted/versions/",
                                {"artifact": SimpleUploadedFile(name, data), "flavor": flavor}, format="multipart")

    def test_a_pickle_is_refused_as_every_native_flavor_and_never_unpickled(self):
        import tempfile

        marker = Path(tempfile.mkdtemp(prefix="sp-pickle-")) / "unpickled"
        payload = pickle.dumps(Unpickled(marker))
        for allowed in (False, True):
            with override_settings(ALLOW_PICKLE_ARTIFACTS=allowed):
                for flavor, name in (("xgboost", "model.json"), ("lightgbm", "model.txt"), ("onnx", "model.onnx")):
                    response = self.post(payload, flavor, name)
                    self.assertEqual(response.status_code, 400, response.content)
                    error = response.json()["error"]
                    self.assertEqual(error["code"], "pickle_not_allowed")
                    self.assertIn(f"a {flavor} model never is", error["message"])
        self.assertFalse(marker.exists())
        self.assertEqual(ModelVersion.objects.count(), 0)

    def test_formats_are_detected_from_the_bytes_whatever_the_name(self):
        created = self.post(xgboost_json(), "xgboost", name="model.onnx")
        self.assertEqual(created.status_code, 201, created.content)
        self.assertEqual(created.json()["format"], "xgboost_json")
        mismatch = self.post(xgboost_json(), "onnx", name="model.onnx")
        self.assertEqual(mismatch.status_code, 400)
        self.assertIn("a onnx model must be one of onnx; the artifact is xgboost_json",
                      mismatch.json()["error"]["message"])

    def test_an_input_example_is_read_limited_and_checked_against_the_signature(self):
        def upload(example: bytes, signature: str = "{}"):
            return self.client.post("/api/v1/models/boosted/versions/", {
                "artifact": SimpleUploadedFile("m.json", xgboost_json()), "flavor": "xgboost",
                "signature": signature, "input_example": SimpleUploadedFile("rows.csv", example)},
                format="multipart")

        ok = upload(b"f0,f1,f2\n1.5,,3\n")
        self.assertEqual(ok.status_code, 201, ok.content)
        self.assertEqual(ok.json()["input_example"], [{"f0": 1.5, "f1": None, "f2": 3}])
        with override_settings(MAX_INPUT_EXAMPLE_BYTES=10):
            too_big = upload(b"f0,f1,f2\n1.5,,3\n")
        self.assertEqual(too_big.status_code, 413)
        self.assertIn("input_example", too_big.json()["error"]["message"])
        contradicted = upload(b"f0,f1,f2\nx,1,2\n", '{"columns": [{"name": "f0", "dtype": "float64"}, '
                                                    '{"name": "f1", "dtype": "float64"}, '
                                                    '{"name": "f2", "dtype": "float64"}]}')
        self.assertEqual(contradicted.status_code, 400)
        self.assertEqual(contradicted.json()["error"]["details"], {"field": "input_example"})
        self.assertIn("input_example[0].f0: expected a number, got string", contradicted.json()["error"]["message"])
        unreadable = upload(b'[{"f0": NaN}]')
        self.assertEqual(unreadable.status_code, 400)
        self.assertIn("input_example: the input example is not valid JSON", unreadable.json()["error"]["message"])
        self.assertEqual(ModelVersion.objects.count(), 1)


def test_the_upload_documents_input_example_in_the_openapi_document(db):
    from django.test import Client

    schema = Client().get("/api/schema/", {"format": "json"}).json()
    upload = schema["components"]["schemas"]["ModelVersionCreateInRequest"]["properties"]
    assert upload["input_example"]["format"] == "binary"
    columns = schema["components"]["schemas"]["SignatureRequest"]["properties"]["columns"]
    assert columns["type"] == "array"
    assert schema["paths"]["/api/v1/models/{name}/versions/{version}/"]["patch"]["operationId"] == "versions_update"
