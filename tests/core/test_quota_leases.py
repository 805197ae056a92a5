"""QuotaLeases against the real Redis: shared sliding-window limits stay exact across processes while a busy
bucket pays one round trip per lease instead of one per request."""

import math
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
    real = throttling._take_script
    calls = []

    def counting(url):
        script = real(url)

        def call(**kwargs):
            calls.append(kwargs["keys"][0])
            return script(**kwargs)

        return call

    return calls, mock.patch.object(throttling, "_take_script", side_effect=counting)


def redis_down():
    broken = mock.Mock(side_effect=redis.ConnectionError("down"))
    return broken, mock.patch.object(throttling, "_take_script", side_effect=lambda url: broken)


def window_half_gone(shortest: int = 60, longest: int = 200) -> tuple[int, float]:
    """A window length (s) of which 40-60% has passed now, so the previous window's share is large, and that share."""
    now = time.time()
    window = next(length for length in range(shortest, longest) if 0.4 <= (now % length) / length <= 0.6)
    return window, (now % window) / window


def seed_previous_window(bucket: str, window: int, count: int) -> None:
    start = int(time.time() // window) * window
    redis.Redis.from_url(settings.REDIS_URL).set(f"{bucket}:{start - window}", count, ex=2 * window)


def test_a_small_limit_is_counted_request_by_request_and_a_refusal_is_remembered(bucket):
    leases = QuotaLeases()
    calls, patch = count_round_trips()
    with patch:
        answers = [leases.take(bucket, 3, 3600)[0] for _ in range(5)]
    assert answers == [True, True, True, False, False]
    assert len(calls) == 4  # the second refusal came from memory: room cannot appear before the first one's wait
    window_start = int(time.time() // 3600) * 3600
    # Refused requests are not counted: a client throttled while it retries is not punished further.
    assert int(redis.Redis.from_url(settings.REDIS_URL).get(f"{bucket}:{window_start}")) == 3


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
    broken, down = redis_down()
    with down:
        allowed, wait = leases.take(bucket, 200, 3600)
    assert broken.call_count == 0
    assert allowed is False
    assert 0 < wait <= 2 * 3600


def test_the_previous_window_counts_for_the_share_of_it_the_sliding_window_still_covers(bucket):
    window, gone_before = window_half_gone()
    seed_previous_window(bucket, window, 200)
    leases = QuotaLeases()
    allowed = sum(leases.take(bucket, 200, window)[0] for _ in range(300))
    gone_after = (time.time() % window) / window
    # A fixed window would let all 200 through again; the sliding one only what the old requests left room for.
    assert math.floor(200 * gone_before) - 2 <= allowed <= math.floor(200 * gone_after)


def test_a_refusal_says_when_room_comes_back_and_room_comes_back_then(bucket):
    window, _ = window_half_gone(60, 100)
    seed_previous_window(bucket, window, 200)
    leases = QuotaLeases()
    while leases.take(bucket, 200, window)[0]:
        pass
    allowed, wait = leases.take(bucket, 200, window)
    assert allowed is False
    assert 0 < wait <= window / 200 + 0.05  # one request's worth of the previous window has to slide out
    time.sleep(wait + 0.02)
    assert leases.take(bucket, 200, window)[0] is True


def test_a_window_used_up_stays_refused_past_its_end(bucket):
    leases = QuotaLeases()
    assert [leases.take(bucket, 3, 3600)[0] for _ in range(4)] == [True, True, True, False]
    allowed, wait = leases.take(bucket, 3, 3600)
    window_end = int(time.time() // 3600) * 3600 + 3600
    # Its 3 requests still fill the sliding window just after the edge: a burst there is not let through.
    assert allowed is False and wait > window_end - time.time()


def test_take_local_needs_a_lease_first(bucket):
    leases = QuotaLeases()
    assert leases.take_local(bucket, 3600) is None
    assert leases.take(bucket, 1000, 3600)[0] is True
    assert leases.take_local(bucket, 3600) == (True, 0.0)


def test_after_a_redis_failure_requests_fail_open_at_once_for_a_second(bucket):
    leases = QuotaLeases()
    broken, down = redis_down()
    with down:
        for _ in range(6):
            with pytest.raises(redis.ConnectionError):
                leases.take(bucket, 10, 60)
    assert broken.call_count == 1  # the other five never waited on Redis
    leases._down_until = 0.0  # a second later
    assert leases.take(bucket, 10, 60)[0] is True
