"""Batch jobs: uploads checked whole before anything runs, and runs on real RQ workers through the real
model server (progress, per-row errors, cancel mid-run, a worker killed mid-run, the command)."""

import csv
import io
import json
import math
import os
import stat
import time
from io import StringIO
from pathlib import Path

import django_rq
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import TestCase, override_settings
from rest_framework.test import APIClient

from inference.models import BatchJob, JobStatus
from tests.factories import key_client, user_client
from tests.inference.jobs.support import PrivateBatchDir, RqWorker, deploy_toy, toy_deployment, wait_job
from tests.inference.live import LiveServerTestCase, wait_for

WEIGHTS = (0.5, -0.25, 1.0)
FEATURES = ("age", "income", "score")


def named_csv(rows: int) -> bytes:
    lines = ["score,age,income"] + [f"{i % 5 - 2},{i % 7 - 3},{i % 11 - 5}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def plain_csv(rows: int) -> bytes:
    lines = ["a,b,c"] + [f"{i % 7 - 3},{i % 11 - 5},{i % 5 - 2}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def expected(row: list[float]) -> tuple[int, float]:
    """What the toy classifier answers for a row: exact, since the weights and cells are binary fractions."""
    score = sum(w * x for w, x in zip(WEIGHTS, row))
    positive = 1.0 / (1.0 + math.exp(-score))
    return int(positive > 0.5), positive


def upload(client, data: bytes, name: str = "rows.csv", endpoint: str = "scorer", **fields):
    return client.post("/api/v1/batch-jobs/", {"file": SimpleUploadedFile(name, data), "endpoint": endpoint,
                                                **fields}, format="multipart")


class BatchUploadTests(PrivateBatchDir, TestCase):
    def setUp(self):
        super().setUp()
        toy_deployment("scorer", feature_names=FEATURES)
        self.client = key_client("predict", "batcher")

    def test_an_upload_is_checked_stored_privately_and_queued_by_id(self):
        with self.captureOnCommitCallbacks(execute=True):
            response = upload(self.client, named_csv(25))
        self.assertEqual(response.status_code, 202, response.content)
        body = response.json()
        self.assertEqual((body["status"], body["format"], body["total_rows"], body["rows_done"], body["progress"]),
                         ("queued", "csv", 25, 0, 0.0))
        self.assertEqual(body["columns"], ["score", "age", "income"])
        self.assertIsNone(body["result_url"])
        self.assertEqual(response["Location"], body["status_url"])
        stored = self.batch_dir / body["id"] / "input.csv"
        self.assertEqual(stored.read_bytes(), named_csv(25))
        self.assertEqual(stat.S_IMODE(stored.stat().st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(stored.parent.stat().st_mode), 0o700)
        queue = django_rq.get_queue("low")  # batch work is low priority unless asked otherwise
        self.assertEqual(queue.job_ids, [f"batch-{body['id']}"])
        self.assertEqual(queue.fetch_job(f"batch-{body['id']}").args, [body["id"]])

    @override_settings(BATCH_MAX_FILE_BYTES=200, BATCH_MAX_ROWS=10)
    def test_bad_files_are_refused_before_anything_runs(self):
        cases = [
            ("wrong columns", b"age,income,height\n1,2,3\n", "rows.csv", "wrong_columns"),
            ("non-numeric", b"age,income,score\n1,2,3\n1,two,3\n", "rows.csv", "invalid_batch_file"),
            ("empty", b"", "rows.csv", "empty_file"),
            ("header only", b"age,income,score\n", "rows.csv", "empty_file"),
            ("too large", named_csv(30), "rows.csv", "file_too_large"),
            ("too many rows", named_csv(11), "rows.csv", "too_many_rows"),
            ("not csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8", "rows.csv", "not_a_batch_file"),
            ("not json lines", b'{"age": 1, "income": 2, "score": 3}\n{"age": 1,\n', "rows.jsonl",
             "invalid_batch_file"),
        ]
        for label, data, name, reason in cases:
            with self.subTest(label):
                response = upload(self.client, data, name)
                self.assertEqual(response.status_code, 400, response.content)
                error = response.json()["error"]
                self.assertEqual((error["code"], error["details"]["reason"]), ("invalid_batch_file", reason))
        non_numeric = upload(self.client, b"age,income,score\n1,2,3\n1,two,3\n").json()["error"]
        self.assertEqual(non_numeric["message"], "line 3, column 'income': 'two' is not a number")
        self.assertEqual(upload(self.client, named_csv(2), endpoint="nowhere").status_code, 404)
        no_file = self.client.post("/api/v1/batch-jobs/", {"endpoint": "scorer"}, format="multipart")
        self.assertEqual((no_file.status_code, no_file.json()["error"]["code"]), (400, "validation_error"))
        as_json = self.client.post("/api/v1/batch-jobs/", {"endpoint": "scorer"}, format="json")
        self.assertEqual(as_json.status_code, 415)
        self.assertFalse(BatchJob.objects.exists())
        self.assertEqual(list(self.batch_dir.iterdir()), [])
        self.assertEqual(sum(len(django_rq.get_queue(name)) for name in ("high", "default", "low")), 0)

    def test_only_the_owner_or_manage_scope_sees_a_batch_job_and_a_queued_one_cancels(self):
        with self.captureOnCommitCallbacks(execute=True):
            job_id = upload(self.client, named_csv(5), priority="high").json()["id"]
        outsider = key_client("predict", "outsider")
        self.assertEqual(outsider.get(f"/api/v1/batch-jobs/{job_id}/").status_code, 404)
        self.assertEqual(outsider.delete(f"/api/v1/batch-jobs/{job_id}/").status_code, 404)
        self.assertEqual(outsider.get(f"/api/v1/batch-jobs/{job_id}/result").status_code, 404)
        self.assertEqual(outsider.get("/api/v1/batch-jobs/").json()["results"], [])
        listed = key_client("manage", "ops").get("/api/v1/batch-jobs/?status=queued&priority=high").json()
        self.assertEqual([job["id"] for job in listed["results"]], [job_id])
        not_yet = self.client.get(f"/api/v1/batch-jobs/{job_id}/result")
        self.assertEqual((not_yet.status_code, not_yet.json()["error"]["code"]), (409, "result_not_ready"))
        cancelled = self.client.delete(f"/api/v1/batch-jobs/{job_id}/")
        self.assertEqual((cancelled.status_code, cancelled.json()["status"]), (200, "cancelled"))
        self.assertEqual(len(django_rq.get_queue("high")), 0)
        self.assertEqual(self.client.delete(f"/api/v1/batch-jobs/{job_id}/").status_code, 409)
        self.assertEqual(self.client.get(f"/api/v1/batch-jobs/{job_id}/result").status_code, 409)

    @override_settings(BATCH_MAX_ACTIVE_PER_OWNER=1)
    def test_a_caller_may_have_only_so_many_active_batch_jobs(self):
        self.assertEqual(upload(self.client, named_csv(3)).status_code, 202)
        refused = upload(self.client, named_csv(3))
        self.assertEqual((refused.status_code, refused.json()["error"]["code"]), (429, "too_many_batch_jobs"))
        self.assertEqual(upload(key_client("predict", "another"), named_csv(3)).status_code, 202)


class JobAdminTests(PrivateBatchDir, TestCase):
    def test_the_admin_lists_jobs_with_filters_a_progress_bar_and_the_rq_dashboard(self):
        toy_deployment("scorer", feature_names=FEATURES)
        client = key_client("predict", "batcher")
        job_id = upload(client, named_csv(40)).json()["id"]
        BatchJob.objects.filter(pk=job_id).update(status=JobStatus.RUNNING, rows_done=30, rows_failed=3)
        client.post("/api/v1/predict/scorer/async", {"inputs": [[1, 2, 3]]}, format="json")
        staff = APIClient()
        staff.force_login(get_user_model().objects.create_superuser("root", password="pw-root-12345"))
        for path in ("/admin/inference/batchjob/", "/admin/inference/inferencejob/"):
            page = staff.get(path)
            self.assertEqual(page.status_code, 200, path)
            self.assertContains(page, 'href="/admin/rq/"')
            self.assertContains(page, "By status")
        listing = staff.get("/admin/inference/batchjob/?status__exact=running")
        self.assertContains(listing, "30/40 (75.0%)")
        self.assertContains(staff.get(f"/admin/inference/batchjob/{job_id}/change/"), f"batch-{job_id}")
        response = staff.post("/admin/inference/batchjob/", {"action": "cancel", "_selected_action": [job_id]})
        self.assertEqual(response.status_code, 302)
        self.assertEqual(BatchJob.objects.get(pk=job_id).status, JobStatus.CANCELLED)
        self.assertEqual(user_client("member", staff=False).get("/admin/inference/batchjob/").status_code, 302)


class BatchRunTests(PrivateBatchDir, LiveServerTestCase):
    def setUp(self):
        super().setUp()
        self.client = key_client("predict", "batcher")

    def start_worker(self) -> RqWorker:
        worker = RqWorker(burst=True).start()
        self.addCleanup(worker.stop)
        return worker

    def result_rows(self, job_id: str) -> list[dict]:
        response = self.client.get(f"/api/v1/batch-jobs/{job_id}/result")
        self.assertEqual(response.status_code, 200)
        return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))

    def assert_correct(self, rows: list[dict]) -> None:
        for row in rows:
            prediction, positive = expected([float(row["a"]), float(row["b"]), float(row["c"])])
            self.assertEqual(int(row["prediction"]), prediction, row)
            self.assertAlmostEqual(float(row["probability_1"]), positive, places=12)
            self.assertEqual(row["error"], "")

    def test_a_ten_thousand_row_csv_completes_with_progress_visible_while_it_runs(self):
        deploy_toy(self, "scorer", weights=WEIGHTS, toy={"sleep_ms": 100}, max_rows=1024)
        accepted = upload(self.client, plain_csv(10_000))
        self.assertEqual(accepted.status_code, 202, accepted.content)
        job_id = accepted.json()["id"]
        self.start_worker()
        seen = []

        def finished():
            body = self.client.get(f"/api/v1/batch-jobs/{job_id}/").json()
            seen.append((body["status"], body["rows_done"], body["progress"]))
            return body if body["status"] not in ("queued", "running") else None

        body = wait_for(finished, timeout=240, interval=0.02, message="the batch job")
        self.assertTrue(any(status == "running" and 0 < done < 10_000 and 0 < progress < 1
                            for status, done, progress in seen), seen[:50])
        self.assertEqual((body["status"], body["rows_done"], body["rows_failed"], body["progress"]),
                         ("succeeded", 10_000, 0, 1.0), body)
        self.assertTrue(body["result_url"].endswith(f"/api/v1/batch-jobs/{job_id}/result"))
        response = self.client.get(f"/api/v1/batch-jobs/{job_id}/result")
        self.assertEqual(response["Content-Type"], "text/csv; charset=utf-8")
        self.assertIn("attachment", response["Content-Disposition"])
        rows = self.result_rows(job_id)
        self.assertEqual(list(rows[0]), ["a", "b", "c", "prediction", "probability_0", "probability_1", "error"])
        self.assertEqual([[r["a"], r["b"], r["c"]] for r in rows],
                         [line.split(",") for line in plain_csv(10_000).decode().splitlines()[1:]])
        self.assert_correct(rows)

    @override_settings(BATCH_CHUNK_SIZE=100)
    def test_cancel_mid_run_keeps_the_rows_already_done(self):
        deploy_toy(self, "scorer", weights=WEIGHTS, toy={"sleep_ms": 150})
        job_id = upload(self.client, plain_csv(3000)).json()["id"]
        worker = self.start_worker()
        wait_for(lambda: BatchJob.objects.get(pk=job_id).rows_done >= 300, timeout=120, message="some progress")
        cancelled = self.client.delete(f"/api/v1/batch-jobs/{job_id}/")
        self.assertEqual((cancelled.status_code, cancelled.json()["status"]), (200, "cancelled"))
        self.assertEqual(worker.wait(), 0)
        body = self.client.get(f"/api/v1/batch-jobs/{job_id}/").json()
        self.assertEqual(body["status"], "cancelled")
        self.assertTrue(300 <= body["rows_done"] < 3000, body)
        self.assertEqual(body["rows_done"] % 100, 0)
        rows = self.result_rows(job_id)
        self.assertEqual(len(rows), body["rows_done"])
        self.assert_correct(rows)

    @override_settings(BATCH_CHUNK_SIZE=100)
    def test_a_worker_killed_mid_run_resumes_where_it_stopped_without_duplicating_rows(self):
        deploy_toy(self, "scorer", weights=WEIGHTS, toy={"sleep_ms": 150})
        job_id = upload(self.client, plain_csv(1500)).json()["id"]
        worker = self.start_worker()
        wait_for(lambda: BatchJob.objects.get(pk=job_id).rows_done >= 300, timeout=120, message="some progress")
        worker.kill_horse()
        job = wait_job(job_id, model=BatchJob, timeout=180)
        self.assertEqual((job.status, job.attempts, job.rows_done), (JobStatus.SUCCEEDED, 2, 1500))
        rows = self.result_rows(job_id)
        self.assertEqual([[r["a"], r["b"], r["c"]] for r in rows],
                         [line.split(",") for line in plain_csv(1500).decode().splitlines()[1:]])
        self.assert_correct(rows)

    @override_settings(BATCH_CHUNK_SIZE=10)
    def test_rows_the_model_refuses_are_recorded_one_by_one_in_json_lines(self):
        deploy_toy(self, "scorer", task="regression", weights=WEIGHTS)
        lines = [json.dumps([i, 1, 2]) if i != 16 else json.dumps([-999.0, 0, 0]) for i in range(40)]
        job_id = upload(self.client, ("\n".join(lines) + "\n").encode(), name="rows.jsonl").json()["id"]
        self.start_worker()
        body = self.client.get(f"/api/v1/batch-jobs/{wait_job(job_id, model=BatchJob).pk}/").json()
        self.assertEqual((body["status"], body["format"], body["rows_done"], body["rows_failed"],
                          body["rows_succeeded"]), ("succeeded", "jsonl", 40, 1, 39), body)
        self.assertEqual(body["row_errors"], [{"line": 17, "error": "a poison row"}])
        response = self.client.get(f"/api/v1/batch-jobs/{job_id}/result")
        self.assertEqual(response["Content-Type"], "application/x-ndjson")
        results = [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]
        self.assertEqual(len(results), 40)
        self.assertEqual(results[16], {"line": 17, "input": [-999.0, 0, 0], "error": "a poison row"})
        self.assertEqual(results[3], {"line": 4, "input": [3, 1, 2], "prediction": 3 * 0.5 - 0.25 + 2.0})

    def test_the_batch_predict_command_scores_a_file_here_with_a_progress_bar(self):
        deploy_toy(self, "scorer", weights=WEIGHTS)
        folder = Path(self.batch_dir) / "cli"
        folder.mkdir()
        source, target = folder / "rows.csv", folder / "out.csv"
        source.write_bytes(plain_csv(1200))
        out, err = StringIO(), StringIO()
        started = time.monotonic()
        call_command("batch_predict", str(source), "--endpoint", "scorer", "--output", str(target), stdout=out,
                     stderr=err)
        self.assertLess(time.monotonic() - started, 120)
        self.assertEqual(out.getvalue().strip(), str(target))
        self.assertIn("[##############################] 1200/1200 rows (100%), 0 failed", err.getvalue())
        self.assertIn("500/1200", err.getvalue())  # the bar moved chunk by chunk
        rows = list(csv.DictReader(io.StringIO(target.read_text())))
        self.assertEqual(len(rows), 1200)
        self.assert_correct(rows)
        job = BatchJob.objects.get()
        self.assertEqual((job.status, job.owner, job.rq_job_id), (JobStatus.SUCCEEDED, "command", ""))
        (folder / "bad.csv").write_bytes(b"a,b\n1,2\n")
        with self.assertRaisesMessage(CommandError, "The model takes 3 features; the header has 2 columns."):
            call_command("batch_predict", str(folder / "bad.csv"), "--endpoint", "scorer", stdout=out, stderr=err)
        self.assertFalse(os.path.exists(folder / "bad.predictions.csv"))
