"""The model server's TCP gateway with the real clients: the handshake, refusal of a wrong secret before any
frame is read, relaying to a local worker socket, TLS, and failover between instances."""

import asyncio
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from inference.runtime.contract.gateway import (
    MAGIC,
    NONCE_BYTES,
    GatewayAuth,
    client_tls,
    parse_remote,
    remote_address,
    server_tls,
)
from inference.runtime.contract.protocol import encode, recv_message
from inference.runtime.supervisor.gateway import Gateway
from inference.runtime.web import remote
from inference.runtime.web.aioclient import AsyncWorkerClient
from inference.runtime.web.client import DeadlineExceeded, NotDelivered, WorkerClient, WorkerUnavailable

SECRET = b"a-shared-secret-of-32-characters"


class EchoWorker:
    """A worker socket answering every frame with its id and the socket's name (no model)."""

    def __init__(self, name: str) -> None:
        self.dir = tempfile.mkdtemp(prefix="gw-", dir="/tmp")
        self.path = str(Path(self.dir) / f"{name}.sock")
        self.requests = 0
        worker = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                while True:
                    try:
                        message = recv_message(self.request)
                    except (OSError, ValueError, Exception):
                        return
                    worker.requests += 1
                    self.request.sendall(encode({"id": message.get("id"), "ok": True, "served_by": name,
                                                 "inputs": message.get("inputs")}))

        self.server = socketserver.ThreadingUnixStreamServer(self.path, Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.1,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def worker():
    echo = EchoWorker("w0")
    yield echo
    echo.close()


class Lookups:
    def __init__(self, sockets):
        self.sockets = sockets
        self.calls = 0

    def __call__(self, endpoint):
        self.calls += 1
        return self.sockets.get(endpoint, ())


def start_gateway(worker, secret=SECRET, tls=None):
    lookup = Lookups({"churn": (worker.path,)})
    gateway = Gateway("127.0.0.1", 0, GatewayAuth(secret, tls), lookup).start()
    return gateway, lookup


def blocking_client(auth, down):
    def connect(address, deadline):
        return remote.connect_blocking(parse_remote(address), auth, deadline, down.append)

    return WorkerClient(remote=connect)


def test_a_client_with_the_secret_reaches_the_worker_through_the_gateway(worker):
    gateway, _ = start_gateway(worker)
    try:
        down: list[str] = []
        client = blocking_client(GatewayAuth(SECRET), down)
        address = remote_address(f"127.0.0.1:{gateway.bound_port}", "churn", 0)
        for n in range(3):  # the connection is kept and reused
            answer = client.call([address], {"op": "predict", "inputs": [[n]], "params": {}},
                                 deadline=time.time() + 5)
            assert answer["inputs"] == [[n]] and answer["served_by"] == "w0"
        assert worker.requests == 3 and down == [] and gateway.refused == 0
    finally:
        gateway.close()


def test_a_wrong_secret_is_refused_before_any_frame_and_marks_nothing_served(worker):
    gateway, lookup = start_gateway(worker)
    try:
        down: list[str] = []
        client = blocking_client(GatewayAuth(b"not-the-secret-but-long-enough!!"), down)
        address = remote_address(f"127.0.0.1:{gateway.bound_port}", "churn", 0)
        with pytest.raises(WorkerUnavailable):
            client.call([address], {"op": "predict", "inputs": [[1]], "params": {}}, deadline=time.time() + 5)
        assert worker.requests == 0 and lookup.calls == 0
        assert gateway.refused == 1
        assert down == [f"127.0.0.1:{gateway.bound_port}"]  # the caller routes around it for a while
    finally:
        gateway.close()


def test_a_raw_connection_sending_frames_without_the_handshake_is_closed_unread(worker):
    gateway, lookup = start_gateway(worker)
    try:
        with socket.create_connection(("127.0.0.1", gateway.bound_port), timeout=5) as raw:
            greeting = raw.recv(len(MAGIC) + NONCE_BYTES)
            assert greeting.startswith(MAGIC)
            # A worker frame where the proof belongs: its first 64 bytes are read as a (wrong) proof.
            frame = encode({"id": "x", "op": "predict", "inputs": [[1.0] * 40], "params": {}})
            raw.sendall(frame)
            assert raw.recv(100) == b""  # closed without an answer
        assert worker.requests == 0 and lookup.calls == 0 and gateway.refused == 1
    finally:
        gateway.close()


def test_an_endpoint_the_instance_does_not_serve_is_not_delivered_without_marking_it_down(worker):
    gateway, _ = start_gateway(worker)
    try:
        down: list[str] = []
        client = blocking_client(GatewayAuth(SECRET), down)
        address = remote_address(f"127.0.0.1:{gateway.bound_port}", "other", 0)
        with pytest.raises(WorkerUnavailable, match="refused"):
            client.call([address], {"op": "predict", "inputs": [], "params": {}}, deadline=time.time() + 5)
        assert down == []
    finally:
        gateway.close()


def test_a_dead_instance_fails_over_to_the_next_one_and_is_marked_down(worker):
    gateway, _ = start_gateway(worker)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    try:
        down: list[str] = []
        client = blocking_client(GatewayAuth(SECRET), down)
        addresses = [remote_address(f"127.0.0.1:{dead_port}", "churn", 0),
                     remote_address(f"127.0.0.1:{gateway.bound_port}", "churn", 0)]
        answer = client.call(addresses, {"op": "predict", "inputs": [[2]], "params": {}}, deadline=time.time() + 5)
        assert answer["served_by"] == "w0"
        assert down == [f"127.0.0.1:{dead_port}"]
    finally:
        gateway.close()


def test_the_event_loop_client_multiplexes_over_one_authenticated_connection(worker):
    gateway, _ = start_gateway(worker)

    async def run():
        async def connect(address, factory):
            return await remote.connect_async(parse_remote(address), GatewayAuth(SECRET), down.append, factory)

        client = AsyncWorkerClient(remote=connect)
        address = remote_address(f"127.0.0.1:{gateway.bound_port}", "churn", 0)
        answers = await asyncio.gather(*[
            client.call([address], {"op": "predict", "inputs": [[n]], "params": {}}, deadline=time.time() + 5)
            for n in range(20)])
        client.close()
        return answers

    down: list[str] = []
    try:
        answers = asyncio.run(run())
        assert [a["inputs"] for a in answers] == [[[n]] for n in range(20)]
        assert down == []
    finally:
        gateway.close()


def test_the_event_loop_client_is_refused_with_a_wrong_secret(worker):
    gateway, _ = start_gateway(worker)
    down: list[str] = []

    async def run():
        async def connect(address, factory):
            return await remote.connect_async(parse_remote(address), GatewayAuth(b"wrong-secret-wrong-secret-wrong!"),
                                              down.append, factory)

        client = AsyncWorkerClient(remote=connect)
        with pytest.raises(WorkerUnavailable):
            await client.call([remote_address(f"127.0.0.1:{gateway.bound_port}", "churn", 0)],
                              {"op": "predict", "inputs": [], "params": {}}, deadline=time.time() + 5)

    try:
        asyncio.run(run())
        assert worker.requests == 0 and gateway.refused == 1 and len(down) == 1
    finally:
        gateway.close()


@pytest.fixture
def certificate(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ms",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def test_tls_carries_the_handshake_and_the_frames(worker, certificate):
    cert, key = certificate
    gateway, _ = start_gateway(worker, tls=server_tls(cert, key, ""))
    try:
        down: list[str] = []
        client = blocking_client(GatewayAuth(SECRET, client_tls("", "", cert)), down)
        address = remote_address(f"127.0.0.1:{gateway.bound_port}", "churn", 0, tls=True)
        answer = client.call([address], {"op": "predict", "inputs": [[7]], "params": {}}, deadline=time.time() + 5)
        assert answer["inputs"] == [[7]] and down == []
        # Plain TCP to a TLS gateway gets nowhere (each side waits for the other's greeting).
        plain = remote_address(f"127.0.0.1:{gateway.bound_port}", "churn", 0)
        with pytest.raises((WorkerUnavailable, DeadlineExceeded)):
            client.call([plain], {"op": "predict", "inputs": [[7]], "params": {}}, deadline=time.time() + 1)
        assert worker.requests == 1
    finally:
        gateway.close()


def test_without_a_secret_a_process_does_not_connect_to_other_hosts():
    with pytest.raises(NotDelivered):
        remote.connect_blocking(parse_remote("tcp://127.0.0.1:9/churn/0"), None, time.time() + 1, print)
