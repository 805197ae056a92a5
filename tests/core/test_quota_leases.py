"""QuotaLeases against the real Redis: shared limits stay exact across processes while a busy bucket pays
one round trip per lease instead of one per request."""

import time
import uuid
from unittest import mock

import pytest
import redis
from django.conf import settings

from core import throttling
from core.throttling import QuotaLeases


@pytest.fixture
def bucket():
    key = f"sp:throttle:test:{uuid.uuid4().hex}"
    yield key
    client = redis.Redis.from_url(settings.REDIS_URL)
    for name in client.scan_iter(f"{key}:*"):
        client.delete(name)


def count_round_trips():
    real = throttling._redis

    calls = []

    def counting(url):
        client = real(url)
        calls.append(url)
        return client

    return calls, mock.patch.object(throttling, "_redis", side_effect=counting)


def test_a_small_limit_is_counted_request_by_request(bucket):
    leases = QuotaLeases()
    answers = [leases.take(bucket, 3, 3600)[0] for _ in range(5)]
    assert answers == [True, True, True, False, False]
    window_start = int(time.time() // 3600) * 3600
    assert int(redis.Redis.from_url(settings.REDIS_URL).get(f"{bucket}:{window_start}")) == 5


def test_two_processes_sharing_a_large_limit_never_exceed_it(bucket):
    first, second = QuotaLeases(), QuotaLeases()  # each web process has its own
    allowed = {"first": 0, "second": 0}
    for _ in range(700):
        for name, leases in (("first", first), ("second", second)):
            allowed[name] += leases.take(bucket, 1000, 3600)[0]
    assert allowed["first"] + allowed["second"] == 1000
    assert allowed["first"] >= 490 and allowed["second"] >= 490  # leases of 10: neither starves the other


def test_a_busy_bucket_pays_one_round_trip_per_lease(bucket):
    leases = QuotaLeases()
    calls, patch = count_round_trips()
    with patch:
        allowed = sum(leases.take(bucket, 10_000, 3600)[0] for _ in range(1000))
    assert allowed == 1000
    assert len(calls) == 10  # leases of 100


def test_an_exhausted_bucket_is_refused_without_asking_redis_again(bucket):
    leases = QuotaLeases()
    assert sum(leases.take(bucket, 200, 3600)[0] for _ in range(250)) == 200
    with mock.patch.object(throttling, "_redis", side_effect=redis.ConnectionError("down")):
        allowed, wait = leases.take(bucket, 200, 3600)
    assert allowed is False
    assert 0 < wait <= 3600


def test_a_new_window_starts_a_new_count(bucket):
    leases = QuotaLeases()
    while time.time() % 1 > 0.5:  # leave room to use up the one-second window before it ends
        time.sleep(0.05)
    assert [leases.take(bucket, 200, 1)[0] for _ in range(201)][-2:] == [True, False]
    time.sleep(1.0 - time.time() % 1 + 0.01)
    assert leases.take(bucket, 200, 1)[0] is True


def test_take_local_needs_a_lease_first(bucket):
    leases = QuotaLeases()
    assert leases.take_local(bucket, 3600) is None
    assert leases.take(bucket, 1000, 3600)[0] is True
    allowed, wait = leases.take_local(bucket, 3600)
    assert allowed is True and 0 < wait <= 3600


def test_after_a_redis_failure_requests_fail_open_at_once_for_a_second(bucket):
    leases = QuotaLeases()
    broken = mock.Mock(side_effect=redis.ConnectionError("down"))
    with mock.patch.object(throttling, "_redis", side_effect=lambda url: mock.Mock(pipeline=lambda **kw: mock.Mock(
            execute=broken))):
        with pytest.raises(redis.ConnectionError):
            leases.take(bucket, 10, 60)
        for _ in range(5):
            with pytest.raises(redis.ConnectionError):
                leases.take(bucket, 10, 60)
    assert broken.call_count == 1  # the other five never waited on Redis
    leases._down_until = 0.0  # a second later
    assert leases.take(bucket, 10, 60)[0] is True
