"""Demo artifacts for `manage.py seed_demo`, built from generated data only.

Nothing is downloaded: every data set is synthesised from a seed, so the same seed always yields the
same artifacts and the same predictions. This module has no Django imports; the management command
registers what `build_demo_models` returns."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Sequence

import numpy as np

from demo.training.common import DEMO_CANDIDATES, DEMO_MODEL_NAMES, ROUTER_SEPARATOR, ROUTER_SKILLS, DemoModel
from demo.training.mixed import build_churn_lightgbm, build_churn_mixed
from demo.training.neural import build_demand_mlp
from demo.training.tabular import build_churn_logreg, build_churn_logreg_candidate, build_fraud_forest
from demo.training.text import build_router_scorer, build_sentiment_text, router_row

__all__ = ["DEMO_CANDIDATES", "DEMO_MODEL_NAMES", "ROUTER_SEPARATOR", "ROUTER_SKILLS", "DemoModel",
           "build_demo_candidates", "build_demo_models", "router_row"]

BUILDERS: Sequence[Callable[[pathlib.Path, int], DemoModel]] = (
    build_churn_logreg,
    build_fraud_forest,
    build_sentiment_text,
    build_demand_mlp,
    build_router_scorer,
    build_churn_mixed,
    build_churn_lightgbm,
)


def build_demo_models(out_dir: pathlib.Path, *, seed: int = 7) -> list[DemoModel]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return [build(out_dir, model_seed) for build, model_seed in zip(BUILDERS, _spawn_seeds(seed, len(BUILDERS)))]


def build_demo_candidates(out_dir: pathlib.Path, *, seed: int = 7) -> list[DemoModel]:
    """Later versions of demo models (DEMO_CANDIDATES), trained on their model's own data."""
    out_dir.mkdir(parents=True, exist_ok=True)
    churn_seed = _spawn_seeds(seed, len(BUILDERS))[BUILDERS.index(build_churn_logreg)]
    return [build_churn_logreg_candidate(out_dir, churn_seed)]


def _spawn_seeds(seed: int, count: int) -> list[int]:
    # Independent streams per model: retuning one model's data never shifts another's, and seeds 7
    # and 8 do not produce overlapping models the way `seed + index` would.
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(count)]
