"""Job lists never read a job's payload: inputs, results and the version's JSON columns stay in the database
whatever their size, so a list of large jobs costs what a list of small ones does."""

import re

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from inference.models import BatchJob, InferenceJob, JobStatus
from tests.factories import key_client
from tests.inference.jobs.support import toy_deployment

BIG_ROWS = 20_000
PAYLOAD_COLUMNS = {"inputs", "result", "parameters", "signature", "input_example", "validation", "metrics",
                   "params", "tags"}


def selected_columns(sql: str) -> set[str]:
    select = sql.split(" FROM ", 1)[0]
    return set(re.findall(r'"\w+"\."(\w+)"', select))


class JobListColumnsTests(TestCase):
    def setUp(self):
        deployment = toy_deployment("scorer")
        self.client = key_client("manage", "ops")
        rows = [[float(i), 2.0, 3.0] for i in range(BIG_ROWS)]
        for _ in range(3):
            InferenceJob.objects.create(endpoint="scorer", model_version=deployment.model_version, owner="key:x",
                                        inputs=rows, rows=BIG_ROWS, status=JobStatus.SUCCEEDED,
                                        result={"predictions": [1] * BIG_ROWS})
        BatchJob.objects.create(endpoint="scorer", model_version=deployment.model_version, owner="key:x",
                                input_format="csv", input_path="in.csv", result_path="out.csv",
                                signature={"feature_names": [f"f{i}" for i in range(5000)]})

    def list_queries(self, path: str) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            response = self.client.get(path)
        self.assertEqual(response.status_code, 200, response.content[:300])
        self.assertTrue(response.json()["results"])
        return [q["sql"] for q in queries.captured_queries
                if re.search(r'FROM "inference_(inference|batch)job"', q["sql"]) and "COUNT(" not in q["sql"]]

    def test_the_job_list_selects_no_payload_column(self):
        queries = self.list_queries("/api/v1/jobs?limit=100")
        self.assertEqual(len(queries), 1, queries)
        columns = selected_columns(queries[0])
        self.assertIn("status", columns)
        self.assertIn("version", columns)  # the row still names its model and version
        self.assertFalse(columns & PAYLOAD_COLUMNS, columns & PAYLOAD_COLUMNS)

    def test_the_batch_job_list_selects_no_payload_column(self):
        queries = self.list_queries("/api/v1/batch-jobs/")
        self.assertEqual(len(queries), 1, queries)
        columns = selected_columns(queries[0])
        self.assertIn("row_errors", columns)
        self.assertFalse(columns & PAYLOAD_COLUMNS, columns & PAYLOAD_COLUMNS)

    def test_the_detail_still_returns_the_result_and_the_list_its_rows(self):
        job = InferenceJob.objects.order_by("-created_at").first()
        detail = self.client.get(f"/api/v1/jobs/{job.pk}").json()
        self.assertEqual(len(detail["result"]["predictions"]), BIG_ROWS)
        listed = self.client.get("/api/v1/jobs?limit=1").json()["results"][0]
        self.assertEqual((listed["rows"], listed["model"], listed["version"]), (BIG_ROWS, "scorer", 1))


class JobAdminListColumnsTests(TestCase):
    def test_the_admin_change_list_selects_no_payload_column_and_the_detail_shows_them(self):
        from django.contrib.auth import get_user_model

        deployment = toy_deployment("scorer")
        job = InferenceJob.objects.create(endpoint="scorer", model_version=deployment.model_version, owner="key:x",
                                          inputs=[[1.0, 2.0, 3.0]] * 1000, result={"predictions": [7] * 1000})
        admin = get_user_model().objects.create_superuser("root", password="pw-root-12345")
        self.client.force_login(admin)
        with CaptureQueriesContext(connection) as queries:
            response = self.client.get("/admin/inference/inferencejob/")
        self.assertEqual(response.status_code, 200)
        listed = [q["sql"] for q in queries.captured_queries
                  if 'FROM "inference_inferencejob"' in q["sql"] and "COUNT(" not in q["sql"]]
        self.assertTrue(listed)
        for sql in listed:
            self.assertFalse(selected_columns(sql) & (PAYLOAD_COLUMNS - {"tags"}), sql)  # the model's tags are small
        detail = self.client.get(f"/admin/inference/inferencejob/{job.pk}/change/")
        self.assertEqual(detail.status_code, 200)
        self.assertIn("[7, 7, 7", detail.content.decode())
