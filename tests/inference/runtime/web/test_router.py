"""The merged routing table of a web process: local first, remote instances interleaved, expiry and down marks."""

import time

import pytest

from inference.runtime.contract.routes import Route, RoutesReader, RoutesWriter
from inference.runtime.web.router import Announcement, InstanceRouter, merge

INFO = {"endpoint": "churn", "deployment_id": 1, "model": "churn", "version": 1, "model_version_id": 1,
        "sha256": "ab", "generation": 1, "status": "ready"}


def route(**changes) -> Route:
    return Route(**{**INFO, "sockets": ("/run/w1-1-0.sock",), **changes})


def announcement(name, address, *, replicas=1, heartbeat_at=None, status="ready", **info):
    return {"name": name, "pool": "default", "address": address, "tls": False,
            "heartbeat_at": time.time() if heartbeat_at is None else heartbeat_at,
            "endpoints": {"churn": {**INFO, "status": status, "replicas": replicas, **info}}}


def table(local_routes=None, *, updated_at=None):
    from inference.runtime.contract.routes import RoutingTable

    return RoutingTable(updated_at=time.time() if updated_at is None else updated_at, supervisor_pid=1,
                        endpoints={r.endpoint: r for r in (local_routes or [])})


def parsed(*raw):
    return [Announcement.from_json(a) for a in raw]


def test_local_ready_workers_win_over_remote_instances():
    merged = merge(table([route()]), True, parsed(announcement("b", "10.0.0.2:7000")), local_name="a")
    assert merged.endpoints["churn"].sockets == ("/run/w1-1-0.sock",)


def test_without_local_workers_every_remote_replica_is_used_interleaved_by_instance():
    merged = merge(table(), False, parsed(announcement("b", "10.0.0.2:7000", replicas=2),
                                          announcement("c", "10.0.0.3:7000", replicas=1)), local_name="a")
    assert merged.endpoints["churn"].sockets == (
        "tcp://10.0.0.2:7000/churn/0", "tcp://10.0.0.3:7000/churn/0", "tcp://10.0.0.2:7000/churn/1")
    assert merged.endpoints["churn"].status == "ready"


def test_a_local_route_still_loading_gives_way_to_a_ready_remote_one():
    merged = merge(table([route(status="loading", sockets=())]), True, parsed(announcement("b", "h:1")),
                   local_name="a")
    assert merged.endpoints["churn"].sockets == ("tcp://h:1/churn/0",)


def test_the_local_instance_own_announcement_and_down_instances_are_left_out():
    merged = merge(table(), False, parsed(announcement("a", "h:1"), announcement("b", "h:2")), local_name="a",
                   down=["h:2"])
    assert "churn" not in merged.endpoints


def test_a_stale_local_table_gives_way_to_live_remote_instances_but_is_kept_alone():
    stale = table([route()], updated_at=time.time() - 60)
    assert merge(stale, False, parsed(announcement("b", "h:2")), local_name="a").endpoints["churn"].sockets == (
        "tcp://h:2/churn/0",)
    assert merge(stale, False, [], local_name="a").endpoints["churn"].sockets == ("/run/w1-1-0.sock",)


def test_a_remote_endpoint_still_loading_is_routed_without_sockets_and_says_so():
    merged = merge(table(), False, parsed(announcement("b", "h:2", status="loading", replicas=0,
                                                       reason="loading the model")), local_name="a")
    assert merged.endpoints["churn"].sockets == ()
    assert merged.endpoints["churn"].reason == "loading the model"


@pytest.fixture
def reader(tmp_path):
    directory = tmp_path / "ms"
    RoutesWriter(directory / "routes.json")
    return RoutesReader(directory / "routes.json")


def test_an_instance_whose_heartbeat_lapses_leaves_the_table_without_a_refresh(reader):
    now = time.time()
    published = [announcement("b", "h:2", heartbeat_at=now), announcement("c", "h:3", heartbeat_at=now - 3.5)]
    router = InstanceRouter(reader, lambda: published, local_name="a", heartbeat_ttl_s=4.0, refresh_s=60)
    assert set(router.endpoint("churn").sockets) == {"tcp://h:2/churn/0", "tcp://h:3/churn/0"}
    time.sleep(0.7)
    assert router.endpoint("churn").sockets == ("tcp://h:2/churn/0",)
    assert [a.name for a in router.live_instances()] == ["b"] and router.supervisor_alive()


def test_marking_an_instance_down_takes_it_out_at_once_and_back_after_the_delay(reader):
    published = [announcement("b", "h:2"), announcement("c", "h:3")]
    router = InstanceRouter(reader, lambda: published, local_name="a", down_for_s=0.3, refresh_s=60)
    assert len(router.endpoint("churn").sockets) == 2
    router.mark_down("h:3")
    assert router.endpoint("churn").sockets == ("tcp://h:2/churn/0",)
    time.sleep(0.4)
    assert len(router.endpoint("churn").sockets) == 2


def test_a_store_that_fails_keeps_the_last_announcements_and_new_ones_replace_them(reader):
    state = {"published": [announcement("b", "h:2")], "fail": False}

    def fetch():
        if state["fail"]:
            raise ConnectionError("redis down")
        return state["published"]

    router = InstanceRouter(reader, fetch, local_name="a", refresh_s=60)
    assert router.endpoint("churn").sockets == ("tcp://h:2/churn/0",)
    state["fail"] = True
    router.refresh()
    assert router.endpoint("churn").sockets == ("tcp://h:2/churn/0",)
    state.update(fail=False, published=[announcement("c", "h:3"), {"garbage": True}])
    router.refresh()
    assert router.endpoint("churn").sockets == ("tcp://h:3/churn/0",)
