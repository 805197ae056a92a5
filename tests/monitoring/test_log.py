"""The prediction log: sampled off the hot path, written in batches, listed, exported, and its inputs shown
to manage keys and staff only."""

import csv
import io
import json
import random
from dataclasses import replace
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import TestCase, TransactionTestCase
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from monitoring import logwriter
from monitoring.models import PredictionLog
from monitoring.sink import caught_up, sink
from tests.factories import key_client
from tests.monitoring.support import fail, route_of, serve

BASE = "/api/v1/deployments"


class SamplingTests(TestCase):
    def test_the_hot_path_writes_nothing_and_the_flush_writes_each_sampled_request_once(self):
        route = route_of("churn", log_predictions=1.0)
        with CaptureQueriesContext(connection) as queries:
            for n in range(50):
                serve(route, [[n, 1.0, 2.0, 3.0]], [n % 2], request_id=f"r-{n}", subject="alice")
        self.assertEqual(len(queries), 0)
        self.assertEqual(PredictionLog.objects.count(), 0)
        with CaptureQueriesContext(connection) as queries:
            sink.flush()  # what a web process's flusher does: one push to Redis, no database write either
        self.assertEqual((len(queries), PredictionLog.objects.count()), (0, 0))
        self.assertEqual(logwriter.drain(), 50)  # the scheduler's job, or a reader of the log
        self.assertEqual(PredictionLog.objects.count(), 50)
        row = PredictionLog.objects.get(request_id="r-7")
        self.assertEqual((row.endpoint, row.version, row.subject_id, row.inputs, row.outputs["predictions"]),
                         ("churn", 1, "alice", [[7, 1.0, 2.0, 3.0]], [1]))
        caught_up()
        self.assertEqual(PredictionLog.objects.count(), 50)

    def test_the_rate_is_honoured(self):
        random.seed(11)
        route = route_of("churn", log_predictions=0.25)
        for n in range(4000):
            serve(route, [[n, 0, 0, 0]], [0], request_id=f"s-{n}")
        silent = route_of("quiet")
        for n in range(200):
            serve(silent, [[n, 0, 0, 0]], [0], request_id=f"q-{n}")
        caught_up()
        logged = PredictionLog.objects.filter(endpoint="churn").count()
        # Binomial(4000, 0.25): mean 1000, sd 27.4; five sd either side.
        self.assertTrue(863 <= logged <= 1137, logged)
        self.assertEqual(PredictionLog.objects.filter(endpoint="quiet").count(), 0)

    def test_failed_requests_are_counted_but_never_logged(self):
        route = route_of("churn", log_predictions=1.0)
        fail(route)
        caught_up()
        self.assertEqual(PredictionLog.objects.count(), 0)


class LogApiTests(TestCase):
    def setUp(self):
        self.manage = key_client("manage")
        self.route = route_of("churn", log_predictions=1.0)
        for n in range(30):
            serve(self.route, [[n, 0.5, 0.5, 0.5]], [n % 2], request_id=f"r-{n:02d}", variant="a" if n < 10 else None)
        caught_up()

    def get(self, path: str, client=None, expect: int = 200):
        response = (client or self.manage).get(f"{BASE}/churn/{path}")
        self.assertEqual(response.status_code, expect, "" if response.streaming else response.content)
        return response

    def test_the_list_is_newest_first_paginated_and_filtered(self):
        page = self.get("predictions?limit=5").json()
        self.assertEqual(page["count"], 30)
        self.assertEqual([item["request_id"] for item in page["results"]], [f"r-{n:02d}" for n in range(29, 24, -1)])
        self.assertIn("page=2", page["next"])
        self.assertEqual(page["results"][0]["inputs"], [[29, 0.5, 0.5, 0.5]])
        self.assertEqual(self.get("predictions?variant=a").json()["count"], 10)
        self.assertEqual(self.get("predictions?version=2").json()["count"], 0)
        PredictionLog.objects.filter(request_id__in=["r-00", "r-01"]).update(
            created_at=timezone.now() - timedelta(days=2))
        since = (timezone.now() - timedelta(days=1)).isoformat()
        self.assertEqual(self.manage.get(f"{BASE}/churn/predictions", {"since": since}).json()["count"], 28)
        self.assertEqual(self.manage.get(f"{BASE}/churn/predictions", {"until": since}).json()["count"], 2)

    def test_bad_queries_name_the_parameter_and_unknown_endpoints_are_404(self):
        error = self.get("predictions?limit=0", expect=400).json()["error"]
        self.assertIn("limit", error["details"]["fields"])
        self.assertIn("until", self.get("predictions?since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z",
                                        expect=400).json()["error"]["details"]["fields"])
        self.assertIn("since", self.get("predictions?since=yesterday", expect=400).json()["error"]["details"]["fields"])
        self.assertEqual(self.manage.get(f"{BASE}/nope/predictions").status_code, 404)

    def test_inputs_are_shown_to_manage_keys_and_staff_only(self):
        staff = APIClient()
        staff.force_login(get_user_model().objects.create_user("ops", is_staff=True))
        member = get_user_model().objects.create_user("analyst")
        member.user_permissions.add(Permission.objects.get(codename="use_manage"))
        manager = APIClient()
        manager.force_login(member)
        self.assertIsNotNone(self.get("predictions", staff).json()["results"][0]["inputs"])
        hidden = self.get("predictions", manager).json()["results"][0]
        self.assertIsNone(hidden["inputs"])
        self.assertEqual(hidden["outputs"], {"predictions": [1]})
        self.assertEqual(key_client("predict").get(f"{BASE}/churn/predictions").status_code, 403)
        rows = list(csv.DictReader(io.StringIO(b"".join(self.get("predictions.csv", manager).streaming_content)
                                               .decode())))
        self.assertEqual({row["inputs"] for row in rows}, {"null"})

    def test_csv_and_json_lines_exports_carry_every_row_and_field(self):
        response = self.get("predictions.jsonl?limit=12")
        self.assertEqual(response["Content-Type"], "application/x-ndjson")
        lines = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
        self.assertEqual(len(lines), 12)
        self.assertEqual(lines[0]["request_id"], "r-29")
        self.assertEqual(lines[-1]["inputs"], [[18, 0.5, 0.5, 0.5]])
        response = self.get("predictions.csv?variant=a")
        self.assertTrue(response["Content-Type"].startswith("text/csv"))
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        self.assertEqual(len(rows), 10)
        self.assertEqual(set(rows[0]), {"request_id", "created_at", "endpoint", "version", "variant", "subject_id",
                                        "latency_ms", "cached", "inputs", "outputs"})
        self.assertEqual(json.loads(rows[0]["outputs"]), {"predictions": [1]})
        self.assertEqual(json.loads(rows[-1]["inputs"]), [[0, 0.5, 0.5, 0.5]])


class NonFiniteTests(TestCase):
    def test_a_row_json_cannot_carry_is_still_logged(self):
        route = route_of("churn", log_predictions=1.0)
        serve(route, [[1.0, float("nan"), 2.0, 3.0]], [1], request_id="nan-1")
        serve(route, [[1.0, 0.0, 2.0, 3.0]], [0], request_id="fine-1")
        caught_up()
        # Neither PostgreSQL's jsonb nor SQLite's JSON check takes NaN: the batch is written again, null in its place.
        self.assertEqual(PredictionLog.objects.get(request_id="nan-1").inputs, [[1.0, None, 2.0, 3.0]])
        self.assertEqual(PredictionLog.objects.get(request_id="fine-1").inputs, [[1.0, 0.0, 2.0, 3.0]])


class RefusedRowTests(TransactionTestCase):
    """A TransactionTestCase: SQLite checks foreign keys when a transaction commits, which a TestCase never does."""

    def test_a_row_the_database_refuses_is_dropped_and_the_rest_written(self):
        route = route_of("churn", log_predictions=1.0)
        serve(route, [[1, 2, 3, 4]], [1], request_id="kept-1")
        serve(replace(route, model_version_id=999_999), [[1, 2, 3, 4]], [1], request_id="orphan")  # no such version
        serve(route, [[1, 2, 3, 4]], [0], request_id="kept-2")
        with self.assertLogs("monitoring.logwriter", "WARNING") as logs:
            caught_up()
        self.assertEqual(sorted(PredictionLog.objects.values_list("request_id", flat=True)), ["kept-1", "kept-2"])
        self.assertIn("request orphan", logs.output[0])
        self.assertEqual(logwriter.drain(), 0)  # nothing left behind to hold up the next drain
