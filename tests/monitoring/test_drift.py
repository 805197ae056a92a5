"""Drift per deployment and version: the reference it uses (and says it used), the features that moved, and the
predictions."""

import numpy as np
from django.test import TestCase, override_settings

from inference.models import Deployment
from monitoring.models import DriftReport, ReferenceSample
from monitoring.sink import caught_up
from tests.experiments.helpers import deployment
from tests.factories import key_client
from tests.monitoring.support import route_of, serve

TYPED = {"input_kind": "tabular", "n_features": 4, "classes": [0, 1], "feature_names": ["age", "income", "score",
                                                                                          "country"],
         "columns": [{"name": "age", "dtype": "float64", "nullable": False},
                     {"name": "income", "dtype": "float64", "nullable": False},
                     {"name": "score", "dtype": "float64", "nullable": False},
                     {"name": "country", "dtype": "string", "nullable": False}]}


def rows(rng, count: int, *, income_shift: float = 0.0, countries=("fr", "de")) -> list[list]:
    return [[float(rng.normal(40, 10)), float(rng.normal(50 + income_shift, 10)), float(rng.normal(0, 1)),
             str(rng.choice(countries))] for _ in range(count)]


@override_settings(DRIFT_REFERENCE_ROWS=300, DRIFT_MIN_ROWS=100, DRIFT_WINDOW_ROWS=400)
class DriftTests(TestCase):
    def setUp(self):
        self.manage = key_client("manage")
        self.rng = np.random.default_rng(5)
        self.route = route_of(deployment("churn", signature=TYPED), log_predictions=1.0)

    def log(self, batch: list[list], prefix: str, predictions=None) -> None:
        for n in range(0, len(batch), 2):  # two rows per request
            chunk = batch[n:n + 2]
            answers = predictions or [int(row[2] > 0) for row in chunk]
            serve(self.route, chunk, answers[: len(chunk)], request_id=f"{prefix}-{n}")
        caught_up()

    def compute(self, expect: int = 200) -> dict:
        response = self.manage.post("/api/v1/deployments/churn/drift/compute")
        self.assertEqual(response.status_code, expect, response.content)
        return response.json()

    def test_the_first_logged_rows_are_the_reference_and_only_the_shifted_features_drift(self):
        self.assertIn("no drift reference yet", self.compute(409)["error"]["message"])
        self.log(rows(self.rng, 300), "ref")
        self.assertIn("drift needs 100", self.compute(409)["error"]["message"])
        self.log(rows(self.rng, 400, income_shift=25, countries=("fr", "de", "es")), "now",
                 predictions=[1, 1])
        report = self.compute()
        by_name = {feature["name"]: feature for feature in report["features"]}
        self.assertEqual({name for name, f in by_name.items() if f["drifted"]}, {"income", "country"})
        self.assertEqual((by_name["income"]["kind"], by_name["income"]["test"]), ("numeric", "ks"))
        self.assertEqual((by_name["country"]["kind"], by_name["country"]["test"]), ("categorical", "chi2"))
        self.assertGreater(by_name["income"]["score"], 0.2)
        self.assertLess(by_name["age"]["score"], 0.2)
        self.assertEqual(report["reference"], {"source": "logged", "size": 300})
        self.assertEqual((report["window"]["rows"], report["drifted_features"]), (400, 2))
        self.assertEqual(report["thresholds"], {"psi": 0.2, "p_value": 0.01})
        self.assertTrue(report["prediction"]["drifted"])  # every answer is 1 now, about half were before
        self.assertEqual(self.manage.get("/api/v1/deployments/churn/drift").json(), report)

    def test_an_uploaded_training_sample_is_the_reference_when_there_is_one(self):
        version = Deployment.objects.get(endpoint="churn").model_version
        path = f"/api/v1/models/{version.model.name}/versions/{version.version}/reference"
        self.assertEqual(self.manage.get(path).status_code, 404)
        refused = self.manage.put(path, {"inputs": [[1, 2]]}, format="json")
        self.assertEqual(refused.status_code, 400)
        self.assertEqual(refused.json()["error"]["details"]["field"], "inputs")
        self.assertIn("4", refused.json()["error"]["message"])
        sample = [row[:3] + ["fr"] for row in rows(self.rng, 200)]
        stored = self.manage.put(path, {"inputs": sample}, format="json")
        self.assertEqual(stored.status_code, 200, stored.content)
        self.assertEqual((stored.json()["source"], stored.json()["size"]), ("training_sample", 200))
        self.log([row[:3] + ["fr"] for row in rows(self.rng, 200)], "now")
        report = self.compute()
        self.assertEqual(report["reference"], {"source": "training_sample", "size": 200})
        self.assertEqual(report["drifted_features"], 0)
        self.assertIsNone(report["prediction"])  # no worker to ask the sample's answers of, in this test
        self.assertEqual(ReferenceSample.objects.get().source, "training_sample")

    def test_an_input_example_with_enough_rows_is_the_reference_before_any_row_is_logged(self):
        version = Deployment.objects.get(endpoint="churn").model_version
        names = TYPED["feature_names"]
        version.input_example = [dict(zip(names, row)) for row in rows(self.rng, 99)]
        version.save(update_fields=["input_example"])
        self.log(rows(self.rng, 200), "now")
        self.assertIn("no drift reference yet", self.compute(409)["error"]["message"])  # 99 rows: too few to test
        version.input_example = [dict(zip(names, row)) for row in rows(self.rng, 150)]
        version.save(update_fields=["input_example"])
        report = self.compute()
        self.assertEqual(report["reference"], {"source": "input_example", "size": 150})
        self.assertEqual(report["drifted_features"], 0)  # the same distribution as the logged rows

    def test_no_report_is_a_404_that_says_how_to_get_one(self):
        response = self.manage.get("/api/v1/deployments/churn/drift")
        self.assertEqual(response.status_code, 404)
        self.assertEqual(response.json()["error"]["code"], "drift_not_computed")
        self.assertEqual(DriftReport.objects.count(), 0)
