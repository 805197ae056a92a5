import itertools
import random

import pytest

from inference.runtime.supervisor.policy import LoadCandidate, plan_loaded

NOW = 10_000.0


def _pinned(deployment_id: int, loaded: bool = True) -> LoadCandidate:
    return LoadCandidate(deployment_id, False, 0.0, None, None, loaded)


def _s2z(
    deployment_id: int,
    *,
    loaded: bool = True,
    last_request_at: float | None = None,
    wanted_at: float | None = None,
    ttl: float = 300.0,
) -> LoadCandidate:
    return LoadCandidate(deployment_id, True, ttl, last_request_at, wanted_at, loaded)


def test_nothing_to_plan_loads_nothing():
    assert plan_loaded([], max_loaded=3, now=NOW) == set()


def test_a_negative_cap_is_rejected():
    with pytest.raises(ValueError):
        plan_loaded([], max_loaded=-1, now=NOW)


def test_pinned_deployments_stay_loaded_even_past_the_cap_and_unused():
    pinned = [_pinned(n) for n in (1, 2, 3)]
    assert plan_loaded(pinned, max_loaded=1, now=NOW) == {1, 2, 3}


def test_a_pinned_deployment_that_is_not_loaded_yet_is_loaded():
    assert plan_loaded([_pinned(1, loaded=False)], max_loaded=0, now=NOW) == {1}


def test_a_scale_to_zero_deployment_idle_past_its_ttl_is_unloaded():
    idle = _s2z(1, last_request_at=NOW - 301)
    assert plan_loaded([idle], max_loaded=5, now=NOW) == set()


def test_a_scale_to_zero_deployment_used_within_its_ttl_stays():
    recent, at_the_edge = _s2z(1, last_request_at=NOW - 10), _s2z(2, last_request_at=NOW - 300)
    assert plan_loaded([recent, at_the_edge], max_loaded=5, now=NOW) == {1, 2}


def test_each_deployment_uses_its_own_ttl():
    short, long = _s2z(1, last_request_at=NOW - 60, ttl=30), _s2z(2, last_request_at=NOW - 60, ttl=120)
    assert plan_loaded([short, long], max_loaded=5, now=NOW) == {2}


def test_a_woken_deployment_is_kept_before_its_first_request():
    woken = _s2z(1, wanted_at=NOW - 5, last_request_at=NOW - 3000)
    assert plan_loaded([woken], max_loaded=5, now=NOW) == {1}


def test_a_loaded_deployment_never_used_nor_woken_is_unloaded():
    assert plan_loaded([_s2z(1)], max_loaded=5, now=NOW) == set()


def test_an_unloaded_deployment_is_not_loaded_by_requests_alone():
    evicted = _s2z(1, loaded=False, last_request_at=NOW - 1)
    assert plan_loaded([evicted], max_loaded=5, now=NOW) == set()


def test_a_wake_loads_its_deployment_when_a_slot_is_free():
    assert plan_loaded([_s2z(1, loaded=False, wanted_at=NOW)], max_loaded=1, now=NOW) == {1}


def test_a_wake_older_than_the_ttl_has_lapsed():
    lapsed = _s2z(1, loaded=False, wanted_at=NOW - 301)
    assert plan_loaded([lapsed], max_loaded=5, now=NOW) == set()


def test_at_the_cap_a_wake_evicts_the_least_recently_used_deployment():
    older = _s2z(1, last_request_at=NOW - 100)
    newer = _s2z(2, last_request_at=NOW - 50)
    woken = _s2z(3, loaded=False, wanted_at=NOW)
    assert plan_loaded([newer, woken, older], max_loaded=2, now=NOW) == {2, 3}


def test_lru_counts_the_later_of_last_request_and_wake():
    woken_recently = _s2z(1, last_request_at=NOW - 200, wanted_at=NOW - 20)
    requested_earlier = _s2z(2, last_request_at=NOW - 50)
    woken = _s2z(3, loaded=False, wanted_at=NOW)
    assert plan_loaded([woken_recently, requested_earlier, woken], max_loaded=2, now=NOW) == {1, 3}


def test_an_expired_deployment_frees_its_slot_before_a_warm_one_is_evicted():
    expired = _s2z(1, last_request_at=NOW - 400)
    warm = _s2z(2, last_request_at=NOW - 250)
    woken = _s2z(3, loaded=False, wanted_at=NOW)
    assert plan_loaded([expired, warm, woken], max_loaded=2, now=NOW) == {2, 3}


def test_pinned_deployments_count_toward_the_cap_and_are_never_evicted_for_a_wake():
    pinned, warm = _pinned(1), _s2z(2, last_request_at=NOW - 1)
    woken = _s2z(3, loaded=False, wanted_at=NOW)
    assert plan_loaded([pinned, warm, woken], max_loaded=2, now=NOW) == {1, 3}
    assert plan_loaded([pinned, _pinned(4), woken], max_loaded=2, now=NOW) == {1, 4}


def test_a_wake_waits_when_no_slot_can_be_made():
    assert plan_loaded([_pinned(1), _s2z(2, loaded=False, wanted_at=NOW)], max_loaded=1, now=NOW) == {1}
    assert plan_loaded([_s2z(2, loaded=False, wanted_at=NOW)], max_loaded=0, now=NOW) == set()


def test_competing_wakes_are_served_oldest_first_and_do_not_evict_each_other():
    first = _s2z(1, loaded=False, wanted_at=NOW - 10)
    second = _s2z(2, loaded=False, wanted_at=NOW - 5)
    third = _s2z(3, loaded=False, wanted_at=NOW)
    assert plan_loaded([third, second, first], max_loaded=1, now=NOW) == {1}
    assert plan_loaded([third, second, first], max_loaded=2, now=NOW) == {1, 2}


def test_a_wake_for_a_loaded_deployment_just_keeps_it():
    loaded = _s2z(1, wanted_at=NOW, last_request_at=NOW - 1000)
    assert plan_loaded([loaded, _s2z(2, last_request_at=NOW - 1)], max_loaded=2, now=NOW) == {1, 2}


def test_a_lowered_cap_keeps_the_most_recently_used():
    warm = [_s2z(n, last_request_at=NOW - n) for n in (1, 2, 3, 4)]
    assert plan_loaded(warm, max_loaded=2, now=NOW) == {1, 2}


def _invariants(candidates: list[LoadCandidate], max_loaded: int) -> None:
    plan = plan_loaded(candidates, max_loaded=max_loaded, now=NOW)
    by_id = {c.deployment_id: c for c in candidates}
    pinned = {c.deployment_id for c in candidates if not c.scale_to_zero}
    assert pinned <= plan
    assert len(plan) <= max(max_loaded, len(pinned))
    for deployment_id in plan - pinned:
        candidate = by_id[deployment_id]
        last_used = max(t for t in (candidate.last_request_at, candidate.wanted_at, -1e18) if t is not None)
        assert NOW - last_used <= candidate.idle_ttl_s  # never keeps or loads an idle one
        assert candidate.loaded or candidate.wanted_at is not None  # loads only on a wake
    free = max(0, max_loaded - len(pinned))
    pending = [c for c in candidates if c.scale_to_zero and not c.loaded and c.wanted_at is not None]
    live_pending = [c for c in pending if NOW - max(c.wanted_at, c.last_request_at or -1e18) <= c.idle_ttl_s]
    # As many live wakes are served as slots allow; a slot never stays empty while a wake waits.
    assert len([c for c in live_pending if c.deployment_id in plan]) == min(free, len(live_pending))


def test_the_plan_keeps_its_invariants_over_every_small_combination():
    times = (None, NOW - 400, NOW - 100, NOW - 1)
    shapes = list(itertools.product((True, False), (True, False), times, times))
    for scale_to_zero, loaded, last_request_at, wanted_at in shapes:
        candidate = LoadCandidate(1, scale_to_zero, 300.0, last_request_at, wanted_at, loaded)
        for max_loaded in (0, 1, 2):
            _invariants([candidate], max_loaded)


def test_the_plan_keeps_its_invariants_over_random_fleets():
    rng = random.Random(7)
    times = (None, NOW - 400, NOW - 200, NOW - 100, NOW - 10, NOW)
    for _ in range(2000):
        fleet = [_random_candidate(rng, n, times) for n in range(rng.randint(0, 8))]
        _invariants(fleet, rng.randint(0, 6))


def _random_candidate(rng: random.Random, deployment_id: int, times: tuple) -> LoadCandidate:
    ttl, last_request_at, wanted_at = rng.choice((60.0, 300.0)), rng.choice(times), rng.choice(times)
    return LoadCandidate(deployment_id, rng.random() < 0.8, ttl, last_request_at, wanted_at, rng.random() < 0.5)
