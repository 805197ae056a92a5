"""The prediction log, feedback and history through the real web tier (gunicorn, the fast lane) and the model
server's worker processes: what each web process buffers reaches the database and Redis on its own."""

import time
from datetime import UTC, datetime

import numpy as np
import pytest

from core.services import api_key_create
from inference.predict.dispatch import ROUTES_RECHECK_S, routes
from monitoring import logwriter
from monitoring.models import MetricMinute, PredictionLog
from tests.inference.jobs.support import deploy_toy
from tests.inference.live import LiveServerTestCase, LiveWebServer, wait_for
from tests.monitoring.support import Http, stack

pytestmark = pytest.mark.slow

class LiveMonitoringTestCase(LiveServerTestCase):
    def web(self, **env: str) -> Http:
        server = LiveWebServer(PREDICTION_LOG_FLUSH_MS="200", **env)
        self.addCleanup(server.stop)
        client = Http(server.url, self.key)
        self.addCleanup(client.close)
        return client

    def setUp(self):
        super().setUp()
        self.key = api_key_create(name="live", scope="manage")[1]


def logged(prefix: str) -> int:
    """Rows in the log, once what the web processes pushed to Redis is written (as any reader of the log does)."""
    logwriter.drain()
    return PredictionLog.objects.filter(request_id__startswith=prefix).count()


class LoggingTests(LiveMonitoringTestCase):
    def set_rate(self, web: Http, rate: float) -> None:
        web.ok("PATCH", "/api/v1/deployments/scorer/", {"log_predictions": rate})
        wait_for(lambda: (route := routes().endpoint("scorer")) and route.log_predictions == rate,
                 message=f"the routing table to carry log_predictions={rate}")
        # The web server's processes look at routes.json again within ROUTES_RECHECK_S of their last look (the
        # PATCH itself may have been one, just before the model server rewrote the file).
        time.sleep(2 * ROUTES_RECHECK_S)

    def predict(self, web: Http, prefix: str, count: int, rng) -> list[dict]:
        answers = []
        for n in range(count):
            row = rng.normal(0, 1, 3).round(4).tolist()
            answers.append(web.ok("POST", "/api/v1/predict/scorer", {"inputs": [row], "request_id": f"{prefix}-{n}",
                                                                   "parameters": {"cache": False}}))
        return answers

    def test_sampling_is_honoured_and_feedback_on_logged_requests_moves_the_quality(self):
        rng = np.random.default_rng(2)
        deploy_toy(self, "scorer", log_predictions=0.5)
        web = self.web()
        self.predict(web, "half", 200, rng)
        # Binomial(200, 0.5): 100 +- 7.1; five sd either side. The flusher writes within a second.
        wait_for(lambda: logged("half-") >= 65, message="the sampled requests in the log")
        time.sleep(1.5)  # past every web process's next flush
        count = logged("half-")
        self.assertTrue(65 <= count <= 135, count)
        self.set_rate(web, 1.0)
        answers = self.predict(web, "all", 20, rng)
        self.set_rate(web, 0.0)
        self.predict(web, "none", 20, rng)
        wait_for(lambda: logged("all-") == 20, message="every request at rate 1.0 in the log")
        time.sleep(1.5)
        self.assertEqual(logged("none-"), 0)
        page = web.ok("GET", "/api/v1/deployments/scorer/predictions", limit=5, since="2000-01-01T00:00:00Z")
        self.assertEqual(page["results"][0]["request_id"], "all-19")
        self.assertEqual(page["results"][0]["outputs"]["predictions"], answers[-1]["predictions"])

        before = web.ok("GET", "/api/v1/deployments/scorer/quality", window="1h")["versions"][0]
        self.assertEqual((before["logged_requests"], before["rows_with_feedback"]), (count + 20, 0))
        for n, answer in enumerate(answers):  # the truth agrees with the first 15 answers only
            truth = answer["predictions"][0] if n < 15 else 1 - answer["predictions"][0]
            self.assertEqual(web.call("POST", "/api/v1/feedback", {"request_id": f"all-{n}", "label": truth})[0], 201)
        after = web.ok("GET", "/api/v1/deployments/scorer/quality", window="1h")["versions"][0]
        self.assertEqual((after["rows_with_feedback"], after["accuracy"]), (20, 0.75))
        status, refused = web.call("POST", "/api/v1/feedback", {"request_id": "all-0", "label": 1})
        self.assertEqual((status, refused["error"]["code"]), (409, "feedback_exists"))
        status, unknown = web.call("POST", "/api/v1/feedback", {"request_id": "none-3", "label": 1})
        self.assertEqual((status, unknown["error"]["code"]), (404, "request_not_recorded"))


class TimeseriesAcrossProcessesTests(LiveMonitoringTestCase):
    def burst(self, webs: list[Http], counts: list[int]) -> int:
        """Sends each server its count of requests inside one minute; returns that minute."""
        while time.time() % 60 > 40:  # far enough from the minute's end for every request to land in it
            time.sleep(0.5)
        minute = int(time.time() // 60) * 60
        for web, count in zip(webs, counts):
            for _ in range(count):
                web.ok("POST", "/api/v1/predict/scorer", {"inputs": [[0.1, 0.2, 0.3]], "parameters": {"cache": False}})
        self.assertEqual(int(time.time() // 60) * 60, minute)
        return minute

    def points(self, web: Http) -> dict[int, int]:
        body = web.ok("GET", "/api/v1/deployments/scorer/timeseries", window="1h")
        return {point["t"]: point["requests"] for point in body["points"]}

    def test_the_requests_sent_per_minute_are_summed_across_two_web_processes(self):
        deploy_toy(self, "scorer")
        stack(self, ALERT_EVAL_S="2", DRIFT_EVAL_S="3600", MONITORING_RETENTION_S="3600")
        first, second = self.web(), self.web()
        one = self.burst([first, second], [7, 5])
        wait_for(lambda: int(time.time() // 60) * 60 > one, timeout=70, interval=0.5, message="the next minute")
        two = self.burst([first, second], [3, 6])
        expected = {one: 12, two: 9}
        wait_for(lambda: all(self.points(web).get(t) == n for web in (first, second) for t, n in expected.items()),
                 timeout=30, message=f"per-minute counts {expected} from both servers")
        points = self.points(first)
        self.assertEqual(sum(points.values()), 21)
        # The scheduler moves closed minutes into the database; the figures stay what they were.
        rolled = wait_for(lambda: MetricMinute.objects.filter(endpoint="scorer", minute=_at(one)).first(), timeout=90,
                          message="the first minute rolled up")
        self.assertEqual((rolled.requests, rolled.errors), (12, 0))
        self.assertEqual(self.points(second), points)


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)
