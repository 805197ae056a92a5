"""PredictionCache against a real Redis (DB 14 of REDIS_URL's server, else 127.0.0.1:6379; only DB 14 is
flushed). Skipped only when no Redis answers."""

import logging
import os
import socket
import time
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from inference.runtime.web.cache import PredictionCache
from inference.runtime.web.inputs import canonical_key

TEST_DB = 14


def _client(host: str, port: int, password: str | None = None) -> redis.Redis:
    # No retries: redis-py's default backs off for seconds before a failure reaches the cache.
    return redis.Redis(host=host, port=port, db=TEST_DB, password=password, socket_timeout=0.2,
                       socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))


@pytest.fixture
def client():
    url = urlsplit(os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379")
    client = _client(url.hostname or "127.0.0.1", url.port or 6379, url.password)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("no Redis answers")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def cache(client):
    return PredictionCache(client, namespace="test:predcache", ttl_s=60, capacity=100)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _commands(client, monkeypatch) -> list:
    sent = []
    original = client.execute_command

    def counting(*args, **options):
        sent.append(args[0])
        return original(*args, **options)

    monkeypatch.setattr(client, "execute_command", counting)
    return sent


def test_set_then_get_roundtrips_bytes(cache):
    assert cache.get("k") is None
    cache.set("k", b'\x00{"predictions": [1]}')
    assert cache.get("k") == b'\x00{"predictions": [1]}'


def test_get_and_set_each_take_one_round_trip(cache, client, monkeypatch):
    cache.set("warm", b"x")  # loads the scripts into Redis once
    cache.get("warm")
    sent = _commands(client, monkeypatch)
    cache.set("k", b"v")
    assert sent == ["EVALSHA"]
    cache.get("k")
    cache.get("absent")
    assert sent == ["EVALSHA"] * 3


def test_many_keys_take_one_round_trip_and_count_as_single_lookups(cache, client, monkeypatch):
    cache.set("warm", b"x")
    cache.get("warm")  # loads the scripts into Redis once
    cache.clear()
    calls = []
    original = client.pipeline
    monkeypatch.setattr(client, "pipeline", lambda **kw: calls.append(kw) or original(**kw))
    cache.set_many([("a", b"1"), ("b", b"2")])
    assert cache.get_many(["a", "absent", "b"]) == [b"1", None, b"2"]
    assert len(calls) == 2, "one pipeline each for the sets and the gets"
    assert (cache.get("a"), cache.get("b")) == (b"1", b"2")
    stats = cache.stats()
    assert (stats["size"], stats["hits"], stats["misses"]) == (2, 4, 1)
    assert cache.get_many([]) == [] and cache.set_many([]) is None


def test_many_keys_fail_open_when_redis_is_unreachable():
    cache = PredictionCache(_client("127.0.0.1", _closed_port()), ttl_s=60, capacity=10, retry_after_s=0)
    cache.set_many([("a", b"1")])
    assert cache.get_many(["a", "b"]) == [None, None]


def test_entries_expire_and_stop_counting_toward_the_size(client):
    cache = PredictionCache(client, namespace="test:predcache", ttl_s=1, capacity=2)
    cache.set("old", b"1")
    time.sleep(0.6)
    cache.set("young", b"2")
    time.sleep(0.6)
    assert cache.get("old") is None
    assert cache.get("young") == b"2"
    assert cache.stats()["size"] == 1
    # The expired member was pruned, not evicted: room for one more without eviction.
    cache.set("new", b"3")
    assert (cache.stats()["size"], cache.stats()["evictions"]) == (2, 0)


def test_capacity_evicts_the_oldest_and_counts_evictions(client):
    cache = PredictionCache(client, namespace="test:predcache", ttl_s=60, capacity=3)
    # Reverse alphabetical: eviction must follow insertion time, not member order.
    for key in ("e", "d", "c", "b", "a"):
        cache.set(key, key.encode())
    assert [cache.get(key) for key in ("e", "d")] == [None, None]
    assert [cache.get(key) for key in ("c", "b", "a")] == [b"c", b"b", b"a"]
    stats = cache.stats()
    assert (stats["size"], stats["evictions"]) == (3, 2)
    assert client.exists("{test:predcache}:e:e") == 0  # the evicted bytes are gone, not just unindexed


def test_setting_a_key_again_makes_it_the_newest(client):
    cache = PredictionCache(client, namespace="test:predcache", ttl_s=60, capacity=2)
    cache.set("a", b"1")
    cache.set("b", b"2")
    cache.set("a", b"3")
    cache.set("c", b"4")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"3", None, b"4")


def test_stats_report_the_hit_rate(cache):
    cache.set("k", b"v")
    for _ in range(3):
        cache.get("k")
    cache.get("missing")
    stats = cache.stats()
    assert stats == {
        "available": True,
        "size": 1,
        "capacity": 100,
        "hits": 3,
        "misses": 1,
        "hit_rate": 0.75,
        "evictions": 0,
        "ttl_s": 60,
    }


def test_the_hit_rate_is_zero_before_any_lookup(cache):
    assert cache.stats()["hit_rate"] == 0.0


def test_clear_removes_every_entry_and_resets_the_counters(cache):
    for key in ("a", "b", "c"):
        cache.set(key, b"v")
    cache.get("a")
    assert cache.clear() == 3
    assert cache.get("a") is None
    stats = cache.stats()
    assert (stats["size"], stats["hits"], stats["misses"]) == (0, 0, 1)


def test_clear_leaves_other_namespaces_alone(client, cache):
    other = PredictionCache(client, namespace="test:other", ttl_s=60, capacity=10)
    other.set("k", b"v")
    cache.set("k", b"v")
    assert cache.clear() == 1
    assert other.get("k") == b"v"


def test_configure_changes_ttl_for_new_entries_and_trims_to_a_smaller_capacity(cache, client):
    for key in ("a", "b", "c", "d"):
        cache.set(key, b"v")
    cache.configure(ttl_s=5, capacity=2)
    stats = cache.stats()
    assert (stats["ttl_s"], stats["capacity"], stats["size"], stats["evictions"]) == (5, 2, 2, 2)
    assert (cache.get("a"), cache.get("d")) == (None, b"v")
    cache.set("e", b"v")
    assert 4000 < client.pttl("{test:predcache}:e:e") <= 5000


@pytest.mark.parametrize("change", [{"ttl_s": 0}, {"capacity": 0}, {"capacity": -1}, {"ttl_s": 1.5}])
def test_configure_refuses_non_positive_settings(cache, change):
    with pytest.raises(ValueError):
        cache.configure(**change)


def test_two_versions_never_share_entries(cache):
    rows, params = [[1.0, 2.0, 3.0]], {"cache": True}
    version_1 = canonical_key("1:" + "a" * 64, rows, params)
    version_2 = canonical_key("2:" + "b" * 64, rows, params)
    same_id_new_artifact = canonical_key("1:" + "c" * 64, rows, params)
    cache.set(version_1, b"from version 1")
    assert cache.get(version_2) is None
    assert cache.get(same_id_new_artifact) is None
    assert cache.get(canonical_key("1:" + "a" * 64, [[1, 2, 3]], {})) == b"from version 1"


def test_a_client_that_decodes_responses_is_refused():
    with pytest.raises(ValueError):
        PredictionCache(redis.Redis(decode_responses=True), ttl_s=1, capacity=1)


def test_it_fails_open_quickly_when_redis_is_unreachable(caplog):
    cache = PredictionCache(_client("127.0.0.1", _closed_port()), ttl_s=60, capacity=10, retry_after_s=0)
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="inference.runtime.web.cache"):
        assert cache.get("k") is None
        cache.set("k", b"v")
        stats = cache.stats()
        cache.configure(capacity=5)
    assert time.perf_counter() - started < 1.0
    assert stats["available"] is False and stats["size"] is None and stats["capacity"] == 10
    # Four failures, one warning: a Redis outage must not flood the logs.
    assert len([r for r in caplog.records if r.name == "inference.runtime.web.cache"]) == 1


def test_after_a_failure_it_skips_redis_for_a_moment(monkeypatch):
    client = _client("127.0.0.1", _closed_port())
    cache = PredictionCache(client, ttl_s=60, capacity=10, retry_after_s=30)
    assert cache.get("k") is None
    sent = _commands(client, monkeypatch)
    assert cache.get("k") is None
    cache.set("k", b"v")
    assert cache.stats()["available"] is False
    assert sent == []
