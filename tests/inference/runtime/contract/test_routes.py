import json
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path

import pytest

from inference.runtime.contract.protocol import HEADER
from inference.runtime.contract.routes import (
    ControlServer,
    ControlUnavailable,
    Route,
    RoutesReader,
    RoutesWriter,
    RoutingTable,
    control_request,
)


def _route(**fields) -> Route:
    base = {
        "endpoint": "iris",
        "deployment_id": 1,
        "model": "iris",
        "version": 3,
        "model_version_id": 7,
        "sha256": "a" * 64,
        "generation": 1,
        "status": "ready",
        "reason": "",
        "sockets": ("/run/sp/workers/1-0.sock",),
        "task": "classification",
        "signature": {},
        "classes": [0, 1, 2],
        "timeout_ms": 1000,
        "cache": False,
    }
    return Route(**(base | fields))


def _table(**endpoints) -> dict:
    return endpoints


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def routes_path(tmp_path) -> Path:
    return tmp_path / "run" / "routes.json"


@pytest.fixture
def control_path():
    # Short on purpose: a Unix socket path must fit in 108 bytes, which pytest's tmp_path may not.
    folder = Path(tempfile.mkdtemp(prefix="ctl-"))
    yield folder / "control.sock"
    shutil.rmtree(folder, ignore_errors=True)


def test_the_table_file_and_its_directory_are_private(routes_path):
    RoutesWriter(routes_path).write(_table(iris=_route()))

    assert _mode(routes_path) == 0o600 and _mode(routes_path.parent) == 0o700
    assert [p.name for p in routes_path.parent.iterdir()] == ["routes.json"]


def test_the_writer_stamps_the_time_and_its_pid(routes_path):
    RoutesWriter(routes_path).write(_table(iris=_route()))

    table = json.loads(routes_path.read_text())
    assert table["supervisor_pid"] == os.getpid() and time.time() - table["updated_at"] < 5
    assert table["endpoints"]["iris"] == _route().to_json()
    assert Route.from_json(table["endpoints"]["iris"]) == _route()


def test_the_writer_refuses_a_directory_other_users_can_enter(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)

    with pytest.raises(PermissionError, match="0700"):
        RoutesWriter(shared / "routes.json")


def test_the_writer_rejects_an_unknown_status(routes_path):
    with pytest.raises(ValueError, match="unknown status"):
        RoutesWriter(routes_path).write(_table(iris=_route(status="warming")))
    assert not routes_path.exists()


def test_the_writer_removes_temp_files_a_killed_writer_left(routes_path):
    RoutesWriter(routes_path).write(_table())
    (routes_path.parent / ".routes-abc123").write_text("{")

    RoutesWriter(routes_path)

    assert [p.name for p in routes_path.parent.iterdir()] == ["routes.json"]


def test_a_reader_in_a_tight_loop_never_sees_a_partial_table(routes_path):
    writer = RoutesWriter(routes_path)
    reader = RoutesReader(routes_path)
    writer.write(_table())
    done = threading.Event()
    seen: list[int] = []

    def write_many():
        for n in range(250):
            # Sizes vary from a few hundred bytes to ~100 KB, so a torn read would show.
            endpoints = {f"e{i}": _route(deployment_id=n) for i in range(n % 7 * 60)}
            writer.write(_table(**endpoints))
        done.set()

    thread = threading.Thread(target=write_many)
    thread.start()
    while not done.is_set():
        raw = json.loads(routes_path.read_bytes())  # raises on a torn file
        table = reader.table()
        raw_ids = {route["deployment_id"] for route in raw["endpoints"].values()}
        read_ids = {route.deployment_id for route in table.endpoints.values()}
        for ids in (raw_ids, read_ids):
            assert len(ids) <= 1  # every route of one table comes from the same write
        seen.append(len(table.endpoints))
    thread.join()

    assert len(set(seen)) > 1  # the loop really raced the writer


def test_the_reader_parses_the_file_only_when_it_changes(routes_path, monkeypatch):
    parses = []
    real_parse = RoutingTable.from_json
    monkeypatch.setattr(RoutingTable, "from_json", lambda data: parses.append(1) or real_parse(data))
    writer, reader = RoutesWriter(routes_path), RoutesReader(routes_path)
    writer.write(_table(iris=_route(version=1)))

    for _ in range(100):
        assert reader.endpoint("iris").version == 1
    assert len(parses) == 1

    writer.write(_table(iris=_route(version=2)))
    assert reader.endpoint("iris").version == 2
    assert len(parses) == 2


def test_the_reader_sees_a_rewrite_with_the_same_size_and_mtime(routes_path):
    writer, reader = RoutesWriter(routes_path), RoutesReader(routes_path)
    writer.write(_table(iris=_route(version=1)), updated_at=1000.0)
    before = routes_path.stat()
    assert reader.endpoint("iris").version == 1

    writer.write(_table(iris=_route(version=2)), updated_at=1000.0)
    os.utime(routes_path, ns=(before.st_atime_ns, before.st_mtime_ns))

    assert routes_path.stat().st_size == before.st_size
    assert reader.endpoint("iris").version == 2


def test_the_reader_is_safe_across_threads(routes_path):
    writer, reader = RoutesWriter(routes_path), RoutesReader(routes_path)
    writer.write(_table(iris=_route()))
    errors = []

    def read_many():
        try:
            for _ in range(2000):
                assert reader.endpoint("iris").model == "iris"
        except Exception as exc:  # surfaced below; an assert in a thread would be lost
            errors.append(exc)

    threads = [threading.Thread(target=read_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for n in range(50):
        writer.write(_table(iris=_route(generation=n)))
    for thread in threads:
        thread.join()

    assert errors == []


def test_the_supervisor_is_alive_while_the_table_is_fresh(routes_path):
    writer, reader = RoutesWriter(routes_path), RoutesReader(routes_path, stale_after_s=10)

    writer.write(_table())
    assert reader.supervisor_alive()

    writer.write(_table(), updated_at=time.time() - 11)
    assert not reader.supervisor_alive()


def test_a_missing_table_means_no_supervisor_and_no_routes(routes_path):
    reader = RoutesReader(routes_path)

    assert reader.endpoint("iris") is None
    assert not reader.supervisor_alive()
    assert reader.table().endpoints == {}


def test_the_control_channel_round_trips_a_wake_request(control_path):
    received = []

    def handler(request):
        received.append(request)
        return {"ok": True, "status": "loading"}

    with ControlServer(control_path, handler):
        answer = control_request(control_path, {"op": "wake", "endpoint": "iris"}, timeout_s=2)
        assert _mode(control_path) == 0o600 and _mode(control_path.parent) == 0o700

    assert answer == {"ok": True, "status": "loading"}
    assert received == [{"op": "wake", "endpoint": "iris"}]
    assert not control_path.exists()


def test_the_control_channel_answers_errors_in_one_shape_and_survives_bad_clients(control_path):
    def handler(request):
        raise RuntimeError("boom at /srv/secret")

    with ControlServer(control_path, handler):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(control_path))
            sock.sendall(HEADER.pack(5) + b"nope!")
        no_op = control_request(control_path, {"endpoint": "iris"}, timeout_s=2)
        failed = control_request(control_path, {"op": "wake", "endpoint": "iris"}, timeout_s=2)

    assert no_op["error"]["code"] == "bad_request"
    assert failed == {
        "ok": False,
        "error": {"code": "internal", "message": "the model server could not handle the request"},
    }


def test_a_control_request_without_a_server_raises_unavailable(control_path):
    with pytest.raises(ControlUnavailable):
        control_request(control_path, {"op": "wake", "endpoint": "iris"}, timeout_s=0.5)


def test_a_second_server_cannot_take_over_a_live_socket_but_replaces_a_stale_one(control_path):
    with ControlServer(control_path, lambda request: {"ok": True}):
        with pytest.raises(RuntimeError, match="another model server"):
            ControlServer(control_path, lambda request: {"ok": False}).start()
        assert control_request(control_path, {"op": "wake"}, timeout_s=2) == {"ok": True}

    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(control_path))  # bound but never listening: what a killed server leaves
    stale.close()
    with ControlServer(control_path, lambda request: {"ok": "fresh"}):
        assert control_request(control_path, {"op": "wake"}, timeout_s=2) == {"ok": "fresh"}
