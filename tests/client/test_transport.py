"""The client's HTTP behaviour against a small real HTTP server on 127.0.0.1 that answers what each test
scripts: retries of 429/503 honouring Retry-After within limits, errors carrying the API's shape,
timeouts, and one pooled connection reused across requests."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from servingplatform_client import (
    BadRequestError,
    Client,
    ClientError,
    ConnectionFailedError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
)

OK = (200, {}, {"predictions": [1]})


def error(status: int, code: str, retry_after: str | None = None, message: str = "busy"):
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return status, headers, {"error": {"code": code, "message": message, "details": {"why": code}}}


class ScriptedServer:
    """Answers requests with `script` in order (the last answer repeats) and records what it received."""

    def __init__(self, script, *, delay_s: float = 0.0):
        self.script, self.delay_s = list(script), delay_s
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is visible

            def do_POST(self):  # noqa: N802 - http.server's naming
                self._answer()

            def do_GET(self):  # noqa: N802
                self._answer()

            def _answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.requests.append({"at": time.monotonic(), "path": self.path, "peer": self.client_address,
                                       "headers": dict(self.headers), "body": body})
                status, headers, payload = owner.script[min(len(owner.requests), len(owner.script)) - 1]
                time.sleep(owner.delay_s)
                raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(script, **kwargs):
        server = ScriptedServer(script, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def client_for(server, **kwargs) -> Client:
    return Client(server.url, "AbCdEfGh.secret", progress=False, **kwargs)


def test_a_503_is_retried_after_the_time_its_retry_after_says(serve):
    server = serve([error(503, "deployment_not_ready", "1"), error(503, "deployment_not_ready", "1"), OK])
    with client_for(server) as client:
        answer = client.predict("churn", [[1.0, 2.0]])
    assert answer == {"predictions": [1]}
    assert len(server.requests) == 3
    gaps = [later["at"] - earlier["at"] for earlier, later in zip(server.requests, server.requests[1:])]
    assert all(gap >= 0.95 for gap in gaps), gaps  # waited what Retry-After asked, each time
    assert {r["body"] for r in server.requests} == {b'{"inputs":[[1.0,2.0]]}'}  # the same body each time
    assert all(r["headers"]["X-API-Key"] == "AbCdEfGh.secret" for r in server.requests)


def test_a_429_is_retried_too(serve):
    server = serve([error(429, "throttled", "0"), OK])
    with client_for(server) as client:
        assert client.predict("churn", [[1.0]]) == {"predictions": [1]}
    assert len(server.requests) == 2


def test_a_retry_after_longer_than_the_budget_is_not_waited_for(serve):
    server = serve([error(503, "overloaded", "30", "queue full")])
    started = time.monotonic()
    with client_for(server, max_retry_wait_s=5) as client, pytest.raises(ServiceUnavailableError) as raised:
        client.predict("churn", [[1.0]])
    assert time.monotonic() - started < 5
    assert len(server.requests) == 1
    error_ = raised.value
    assert (error_.status, error_.code, error_.message, error_.retry_after_s) == (503, "overloaded", "queue full", 30)
    assert error_.details == {"why": "overloaded"}


def test_retries_stop_after_max_retries(serve):
    server = serve([error(429, "throttled", "0")])
    with client_for(server, max_retries=2) as client, pytest.raises(RateLimitError) as raised:
        client.get_model("churn")
    assert len(server.requests) == 3
    assert isinstance(raised.value, ClientError) and raised.value.status == 429


def test_other_errors_are_raised_at_once_with_the_apis_code_message_and_details(serve):
    server = serve([error(400, "validation_error", message="inputs[0]: expected 4 numbers, got 2")])
    with client_for(server) as client, pytest.raises(BadRequestError) as raised:
        client.predict("churn", [[1.0, 2.0]])
    assert (raised.value.status, raised.value.code) == (400, "validation_error")
    assert raised.value.message == "inputs[0]: expected 4 numbers, got 2"
    assert str(raised.value) == "400 validation_error: inputs[0]: expected 4 numbers, got 2"
    assert len(server.requests) == 1

    broken = serve([(500, {}, b"<html>proxy error</html>")])
    with client_for(broken) as client, pytest.raises(ServerError) as raised:
        client.predict("churn", [[1.0]])
    assert (raised.value.status, raised.value.code) == (500, "http_500")
    assert len(broken.requests) == 1  # a 500 is not retried: the prediction may have run


def test_a_server_that_does_not_answer_in_time_is_a_connection_error(serve):
    server = serve([OK], delay_s=2.0)
    with client_for(server, timeout=0.5) as client, pytest.raises(ConnectionFailedError) as raised:
        client.predict("churn", [[1.0]])
    assert raised.value.code == "timeout" and raised.value.status is None


def test_an_unreachable_server_is_a_connection_error(serve):
    server = serve([OK])
    server.close()
    with client_for(server) as client, pytest.raises(ConnectionFailedError) as raised:
        client.predict("churn", [[1.0]])
    assert raised.value.code == "connection_failed"


def test_requests_share_one_kept_alive_connection(serve):
    server = serve([OK])
    with client_for(server) as client:
        for _ in range(5):
            client.predict("churn", [[1.0]])
    assert len(server.requests) == 5
    assert len({r["peer"] for r in server.requests}) == 1


def test_url_and_key_come_from_the_environment(serve, monkeypatch):
    server = serve([OK])
    monkeypatch.setenv("SERVINGPLATFORM_URL", server.url + "/api/v1/")  # the API's address, pasted as is
    monkeypatch.setenv("SERVINGPLATFORM_API_KEY", "FromEnvv.key")
    with Client(progress=False) as client:
        client.predict("churn", [[1.0]])
    assert server.requests[0]["path"] == "/api/v1/predict/churn"
    assert server.requests[0]["headers"]["X-API-Key"] == "FromEnvv.key"


def run_sp(server, *args):
    import os
    import subprocess

    from tests.client.live import SP

    env = {**os.environ, "SERVINGPLATFORM_URL": server.url, "SERVINGPLATFORM_API_KEY": "AbCdEfGh.secret"}
    return subprocess.run([SP, *args], env=env, capture_output=True, text=True, timeout=120)


PENDING = {"endpoint": "x", "model": "m", "version": 1, "status": "pending", "status_reason": "", "generation": 1}


def test_sp_exits_9_when_a_wait_runs_out_and_7_when_the_server_stays_unavailable(serve):
    waiting = serve([(201, {}, PENDING), (200, {}, PENDING)])
    done = run_sp(waiting, "deploy", "x", "--model", "m", "--version", "1", "--wait", "--timeout", "1")
    assert done.returncode == 9, done.stderr
    assert "deploying x did not finish within 1s (last: pending)" in done.stderr
    assert len(waiting.requests) >= 2 and waiting.requests[0]["path"] == "/api/v1/deployments/"
    assert json.loads(waiting.requests[0]["body"]) == {"endpoint": "x", "model": "m", "version": 1}

    down = serve([error(503, "service_unavailable", "0", "Redis is unreachable")])
    done = run_sp(down, "jobs", "list", "--json")
    assert done.returncode == 7, done.stderr
    assert json.loads(done.stdout)["error"] == {"status": 503, "code": "service_unavailable",
                                                "message": "Redis is unreachable",
                                                "details": {"why": "service_unavailable"}}
    assert len(down.requests) == 6  # the first try and five retries
