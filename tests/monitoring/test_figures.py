"""Per-minute figures: counting, adding up across processes, and the quantiles Prometheus would compute."""

from inference.metrics import LATENCY_BUCKETS, histogram_quantile
from monitoring.figures import Figures
from monitoring.sink import per_minute


def test_counting_requests_errors_cache_and_batches():
    figures = Figures()
    figures.count(0.003, status=0, cached=False, cache_used=True, batch_size=4)
    figures.count(0.001, status=0, cached=True, cache_used=True, batch_size=None)
    figures.count(0.2, status=504, cached=False, cache_used=False, batch_size=None)
    figures.count(0.01, status=400, cached=False, cache_used=False, batch_size=None)
    point = figures.point()
    assert (point["requests"], point["errors"], point["server_errors"]) == (4, 2, 1)
    assert (point["error_rate"], point["cache_hits"], point["cache_miss_rate"]) == (0.5, 1, 0.5)
    assert point["mean_batch_size"] == 4.0


def test_quantiles_match_prometheus_histogram_quantile_over_the_same_buckets():
    figures = Figures()
    for ms in (1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597):
        figures.count(ms / 1000, status=0, cached=False, cache_used=False, batch_size=None)
    cumulative, running = [], 0
    for upper, count in zip(LATENCY_BUCKETS, figures.latency_buckets):
        running += count
        cumulative.append((upper, running))
    assert figures.quantile_ms(0.95) == round(histogram_quantile(cumulative, 0.95) * 1000, 3)
    assert 610 < figures.quantile_ms(0.95) <= 2048


def test_two_processes_figures_add_up_field_by_field_through_redis_fields():
    one, two = Figures(), Figures()
    one.count(0.002, status=0, cached=False, cache_used=True, batch_size=2)
    two.count(0.5, status=503, cached=False, cache_used=False, batch_size=None)
    merged = Figures.from_fields({k.encode(): str(v).encode() for k, v in one.as_fields().items()})
    merged.add(Figures.from_fields(two.as_fields()))
    assert merged == Figures().add(one).add(two)
    assert (merged.requests, merged.errors, merged.cache_lookups) == (2, 1, 1)


def test_events_are_counted_per_endpoint_version_and_minute():
    events = [("a", 1, 120.5, 0.01, 0, False, True, 1), ("a", 1, 179.9, 0.01, 0, True, True, 1),
              ("a", 1, 180.0, 0.01, 500, False, False, None), ("a", 2, 130.0, 0.01, 0, False, True, 1),
              ("b", 1, 125.0, 0.01, 0, False, True, 1)]
    counted = per_minute(events)
    assert {slot: f.requests for slot, f in counted.items()} == {
        ("a", 1, 120): 2, ("a", 1, 180): 1, ("a", 2, 120): 1, ("b", 1, 120): 1}
    assert counted[("a", 1, 180)].errors == 1


def test_adding_sums_every_field_and_a_rows_values_read_back_whole():
    from monitoring.figures import BUCKETS, FIELDS

    one = Figures(**{name: 1 for name in FIELDS if name != "latency_buckets"}, latency_buckets=[1] * BUCKETS)
    total = Figures().add(one).add(one)
    assert vars(total) == {**{name: 2 for name in FIELDS if name != "latency_buckets"},
                           "latency_buckets": [2] * BUCKETS}
    assert Figures.from_values(vars(total)) == total
    assert Figures.from_values({**vars(Figures()), "latency_buckets": []}) == Figures()  # a row from before buckets
