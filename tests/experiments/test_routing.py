"""Assignment is pure and deterministic: plain pytest functions, one check in a separate process."""

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from experiments.routing import Arm, CompiledExperiment, choose, unit_point, weights_problem

ROOT = Path(__file__).resolve().parents[2]
SUBJECTS = 100_000


def experiment(*weights, salt="s3cr3t", **fields) -> CompiledExperiment:
    arms = tuple(Arm(f"v{i}", f"deployment-{i}", w) for i, w in enumerate(weights))
    return CompiledExperiment(id=1, endpoint="public", salt=salt, arms=arms, **fields)


@pytest.mark.parametrize("weights", [(50, 50), (90, 10), (20, 30, 50), (33.3, 33.3, 33.4), (1, 99), (0, 70, 30)])
def test_over_100000_subjects_the_split_is_within_one_point_of_the_weights(weights):
    routed = experiment(*weights)
    counts = Counter(routed.assign(f"user-{n}").name for n in range(SUBJECTS))
    for index, weight in enumerate(weights):
        share = 100 * counts[f"v{index}"] / SUBJECTS
        assert abs(share - weight) < 1.0, (weights, index, share)


def test_a_zero_weight_variant_never_gets_a_subject():
    routed = experiment(0, 100)
    assert {routed.assign(str(n)).name for n in range(20_000)} == {"v1"}


def test_the_same_subject_always_gets_the_same_variant():
    routed = experiment(50, 50)
    for subject in ("alice", "bob", "42", "user-7"):
        seen = {routed.assign(subject).name for _ in range(100)}
        assert len(seen) == 1, subject


def test_another_experiment_splits_the_same_subjects_independently():
    first, second = experiment(50, 50, salt="a"), experiment(50, 50, salt="b")
    same = sum(first.assign(str(n)).name == second.assign(str(n)).name for n in range(20_000))
    assert 0.48 < same / 20_000 < 0.52


def test_assignment_is_the_same_in_another_process():
    subjects = [f"subject-{n}" for n in range(2000)]
    here = [experiment(25, 25, 50).assign(s).name for s in subjects]
    script = (
        "import json, sys\n"
        "from experiments.routing import Arm, CompiledExperiment\n"
        "arms = tuple(Arm(f'v{i}', f'deployment-{i}', w) for i, w in enumerate((25, 25, 50)))\n"
        "e = CompiledExperiment(id=1, endpoint='public', salt='s3cr3t', arms=arms)\n"
        "print(json.dumps([e.assign(s).name for s in json.load(sys.stdin)]))\n"
    )
    # A fresh interpreter has another hash() seed (PYTHONHASHSEED): only a stable hash gives equal answers.
    there = subprocess.run([sys.executable, "-c", script], input=json.dumps(subjects), capture_output=True,
                           text=True, cwd=ROOT, check=True, env={"PYTHONHASHSEED": "random", "PATH": ""})
    assert json.loads(there.stdout) == here


def test_paused_sends_everyone_to_the_control_and_promoting_to_the_winner():
    assert {experiment(10, 90, paused=True).assign(str(n)).name for n in range(500)} == {"v0"}
    assert {experiment(10, 90, promoting_to="v0").assign(str(n)).name for n in range(500)} == {"v0"}
    shadow = CompiledExperiment(id=1, endpoint="p", salt="s", arms=(Arm("a", "da", 100),),
                                shadows=(Arm("s", "ds"),), promoting_to="s")
    assert shadow.assign("x").endpoint == "ds"
    assert not shadow.recording


def test_choose_falls_back_to_the_last_arm_with_traffic_at_the_top_of_the_range():
    assert choose((50.0, 50.0, 0.0), 0.9999999999999999) == 1
    assert choose((50.0, 50.0), 0.0) == 0


def test_unit_points_are_uniform_in_zero_to_one():
    points = [unit_point("salt", str(n)) for n in range(50_000)]
    assert 0 <= min(points) and max(points) < 1
    assert abs(sum(points) / len(points) - 0.5) < 0.01


@pytest.mark.parametrize("weights, index, words", [
    ([60, 50], None, "sum to 100"),
    ([50, 40], None, "sums to 90"),
    ([-10, 110], 0, "must not be negative"),
    ([math.nan, 100], 0, "finite"),
    ([50, math.inf], 1, "finite"),
    ([], None, "at least one variant"),
    (["50", 50], 0, "must be a number"),
    ([True, 99], 0, "must be a number"),
])
def test_invalid_weight_sets_are_named(weights, index, words):
    problem = weights_problem(weights)
    assert problem is not None
    assert problem[0] == index
    assert words in problem[1]


@pytest.mark.parametrize("weights", [[100], [50, 50], [33.33, 33.33, 33.34], [0.1, 99.9], [0, 100]])
def test_valid_weight_sets_pass(weights):
    assert weights_problem(weights) is None
