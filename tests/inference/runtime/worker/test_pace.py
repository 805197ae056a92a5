"""How the batcher sizes the passes of a long request from the model's pace (fixed + per row seconds)."""

from inference.runtime.worker.pace import Pace

TARGET_S = 0.05


def seen(*passes: tuple[float, float]) -> Pace:
    pace = Pace()
    for rows, seconds in passes:
        pace.add(rows, seconds)
    return pace


def test_before_any_pass_it_takes_the_fallback():
    assert Pace().rows_for(TARGET_S, fallback=32) == 32
    assert Pace().rows_for(TARGET_S, fallback=0) == 1


def test_a_model_slow_per_row_gets_passes_of_about_the_target():
    per_row = seen((32, 0.032), (128, 0.128), (64, 0.064))  # 1 ms a row
    assert per_row.rows_for(TARGET_S) == 50
    assert per_row.rows_for(TARGET_S, cost=10) == 5  # MC dropout: each row is 10 samples


def test_a_model_with_a_fixed_cost_per_call_is_not_cut_into_tiny_passes():
    # 100 ms a call whatever the rows: passes of the target would be all overhead, so they grow instead.
    fixed = seen((32, 0.1), (64, 0.1))
    assert fixed.rows_for(TARGET_S) == 8 * 64  # as far as the line may be trusted: 8x the largest pass seen
    assert seen((32, 0.1)).rows_for(TARGET_S) == 64  # one size seen: twice it, to learn the line


def test_a_fast_model_grows_its_passes_at_most_eightfold_past_what_it_has_seen():
    fast = seen((1, 0.0003), (2, 0.00031), (3, 0.00032))
    assert fast.rows_for(TARGET_S) == 24
