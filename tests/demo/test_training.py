import pathlib
from typing import Any

import numpy as np
import pytest
import skops.io as sio
import torch

from demo.training import DemoModel, build_demo_models
from demo.training.common import DEMAND_CLASSES, ROUTER_SKILLS, SENTIMENT_CLASSES
from demo.training.mixed import customer_frame
from demo.training.text import router_row

pytestmark = [
    # TorchScript is the chosen demo format even though torch 2.13 deprecates it.
    pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning"),
]

# What the allow-list for demo artifacts must cover; a new entry here means a new type to review.
EXPECTED_UNTRUSTED = {
    "churn-logreg": [],
    "fraud-forest": ["sklearn.tree._tree.Tree"],
    "sentiment-text": [],
    "router-scorer": ["sklearn.tree._tree.Tree"],
    "churn-mixed": ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"],
}

# Hand-written rather than generated, so the scorer is judged on prompts it never saw.
TOPIC_PROMPTS = {
    "code": ["fix the bug in my python function", "refactor this javascript api and the regex"],
    "math": ["prove the theorem about prime numbers", "solve this equation and the integral"],
    "chit-chat": ["hello how was your weekend", "tell me a joke about coffee and music"],
    "summarization": ["summarize this article in key points", "shorten the meeting transcript"],
    "translation": ["translate this phrase to french", "what is this spanish idiom in german"],
    "creative": ["write a poem about a dragon", "a fantasy story plot with a villain"],
}


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DemoModel]:
    return {m.name: m for m in build_demo_models(tmp_path_factory.mktemp("demo"))}


def load(model: DemoModel) -> Any:
    if model.flavor == "torch":
        return torch.jit.load(str(model.path))
    if model.flavor == "lightgbm":
        import lightgbm

        return lightgbm.Booster(model_file=str(model.path))
    return sio.load(model.path, trusted=sio.get_untrusted_types(file=model.path))


def tabular_probe(n_features: int, rows: int = 16) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(rows, n_features))


def probe_predictions(model: DemoModel) -> np.ndarray:
    loaded = load(model)
    if model.name == "churn-logreg":
        return loaded.predict_proba(tabular_probe(10))
    if model.name == "fraud-forest":
        return loaded.predict_proba(tabular_probe(20))
    if model.name == "sentiment-text":
        return loaded.predict_proba(["the hotel was great", "my order arrived broken", "the food was okay"])
    if model.name == "router-scorer":
        return loaded.predict([router_row(c, "fix the bug in my python function") for c in ROUTER_SKILLS])
    if model.name == "churn-mixed":
        return loaded.predict_proba(customer_frame(16, 1)[0])
    if model.name == "churn-lightgbm":
        return loaded.predict(customer_frame(16, 1)[0].astype({"country": "category", "plan": "category"}))
    with torch.no_grad():
        return loaded(torch.from_numpy(tabular_probe(8).astype(np.float32))).numpy()


def test_it_builds_the_seven_models_in_order(tmp_path: pathlib.Path, demos: dict[str, DemoModel]) -> None:
    described = [(m.name, m.task, m.flavor) for m in demos.values()]
    assert described == [
        ("churn-logreg", "classification", "sklearn"),
        ("fraud-forest", "classification", "sklearn"),
        ("sentiment-text", "classification", "sklearn"),
        ("demand-mlp", "classification", "torch"),
        ("router-scorer", "scoring", "sklearn"),
        ("churn-mixed", "classification", "sklearn"),
        ("churn-lightgbm", "classification", "lightgbm"),
    ]
    for model in demos.values():
        assert model.path.is_file() and model.path.stat().st_size < 15_000_000
        assert model.tags["demo"] == "true"
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in model.tags.items())


def test_sklearn_artifacts_report_only_the_expected_untrusted_types(demos: dict[str, DemoModel]) -> None:
    reported = {
        name: sio.get_untrusted_types(file=model.path)
        for name, model in demos.items()
        if model.flavor == "sklearn"
    }
    assert reported == EXPECTED_UNTRUSTED


def test_tabular_classifiers_reload_and_predict_the_right_shapes(demos: dict[str, DemoModel]) -> None:
    for name, n_features in (("churn-logreg", 10), ("fraud-forest", 20)):
        loaded = load(demos[name])
        X = tabular_probe(n_features)
        assert loaded.predict(X).shape == (16,)
        assert loaded.predict_proba(X).shape == (16, 2)


def test_churn_logreg_is_array_fitted_and_named_by_its_signature(demos: dict[str, DemoModel]) -> None:
    # Fitted on an array (the numeric fast path); the names travel in the upload's signature.
    assert not hasattr(load(demos["churn-logreg"]), "feature_names_in_")
    assert demos["churn-logreg"].signature == {"feature_names": [f"f{i}" for i in range(10)]}


def test_sentiment_text_reads_obvious_sentences(demos: dict[str, DemoModel]) -> None:
    loaded = load(demos["sentiment-text"])
    assert list(loaded.classes_) == list(SENTIMENT_CLASSES)
    predicted = loaded.predict(
        [
            "i love this phone, it is wonderful and amazing",
            "terrible awful service, i hate it",
            "the delivery arrived as expected, it was okay",
        ]
    )
    assert list(predicted) == ["positive", "negative", "neutral"]
    assert demos["sentiment-text"].signature["input_kind"] == "text"


@pytest.mark.parametrize(
    ("name", "metric", "bar"),
    [
        ("churn-logreg", "accuracy", 0.85),
        ("fraud-forest", "accuracy", 0.9),
        ("fraud-forest", "roc_auc", 0.9),
        ("sentiment-text", "accuracy", 0.85),
        ("demand-mlp", "accuracy", 0.8),
        ("router-scorer", "r2", 0.8),
        ("churn-mixed", "accuracy", 0.8),
        ("churn-lightgbm", "accuracy", 0.8),
    ],
)
def test_held_out_metrics_clear_their_bar(
    demos: dict[str, DemoModel], name: str, metric: str, bar: float
) -> None:
    assert demos[name].metrics[metric] > bar


def test_router_scorer_error_is_small(demos: dict[str, DemoModel]) -> None:
    assert demos["router-scorer"].metrics["mae"] < 0.1


def test_demand_mlp_reloads_as_torchscript_with_logits_per_class(demos: dict[str, DemoModel]) -> None:
    loaded = load(demos["demand-mlp"])
    assert not loaded.training
    with torch.no_grad():
        logits = loaded(torch.zeros(5, 8))
    assert logits.shape == (5, len(DEMAND_CLASSES)) and logits.dtype == torch.float32
    assert demos["demand-mlp"].signature["classes"] == ["low", "medium", "high"]
    assert demos["demand-mlp"].signature["n_features"] == 8


def test_demand_mlp_dropout_can_be_switched_on_for_mc_dropout(demos: dict[str, DemoModel]) -> None:
    loaded = load(demos["demand-mlp"])
    dropouts = [m for _, m in loaded.named_modules() if m.original_name == "Dropout"]
    assert len(dropouts) == 2
    x = torch.from_numpy(tabular_probe(8, rows=64).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(loaded(x), loaded(x))
        for dropout in dropouts:
            dropout.train()
        assert not torch.equal(loaded(x), loaded(x))


def test_router_scorer_prefers_each_candidate_on_its_strong_topic(demos: dict[str, DemoModel]) -> None:
    loaded = load(demos["router-scorer"])
    for candidate, skills in ROUTER_SKILLS.items():
        strong, weak = max(skills, key=skills.__getitem__), min(skills, key=skills.__getitem__)
        on_strong = loaded.predict([router_row(candidate, p) for p in TOPIC_PROMPTS[strong]])
        on_weak = loaded.predict([router_row(candidate, p) for p in TOPIC_PROMPTS[weak]])
        # Half the true gap: the smallest one (gpt-large) is 0.15 and predictions carry some error.
        assert on_strong.mean() - on_weak.mean() > (skills[strong] - skills[weak]) / 2, candidate


def test_router_scorer_picks_the_best_candidate_for_a_topic(demos: dict[str, DemoModel]) -> None:
    loaded = load(demos["router-scorer"])
    candidates = list(ROUTER_SKILLS)
    scores = loaded.predict([router_row(c, "translate this phrase to french") for c in candidates])
    assert candidates[int(np.argmax(scores))] == "mistral-7b"


def test_the_same_seed_gives_identical_predictions(
    tmp_path: pathlib.Path, demos: dict[str, DemoModel]
) -> None:
    rebuilt = {m.name: m for m in build_demo_models(tmp_path, seed=7)}
    for name, model in demos.items():
        np.testing.assert_array_equal(
            probe_predictions(rebuilt[name]), probe_predictions(model), err_msg=name
        )
        assert rebuilt[name].metrics == model.metrics


def test_the_name_list_matches_what_is_built(demos: dict[str, DemoModel]) -> None:
    from demo.training import DEMO_MODEL_NAMES

    assert tuple(demos) == DEMO_MODEL_NAMES


def test_the_churn_candidate_is_a_second_churn_model_on_the_same_data(tmp_path: pathlib.Path,
                                                                       demos: dict[str, DemoModel]) -> None:
    from demo.training import DEMO_CANDIDATES, build_demo_candidates

    (candidate,) = build_demo_candidates(tmp_path)
    assert [(candidate.name, candidate.alias)] == list(DEMO_CANDIDATES) == [("churn-logreg", "staging")]
    assert demos["churn-logreg"].alias == "production"
    assert candidate.params == {**demos["churn-logreg"].params, "C": 0.05}
    assert candidate.metrics["accuracy"] > 0.8
    probe = tabular_probe(10)
    assert not np.allclose(load(candidate).predict_proba(probe), load(demos["churn-logreg"]).predict_proba(probe))


def test_the_typed_models_come_with_an_input_example_of_strings_numbers_and_a_missing_value(
        demos: dict[str, DemoModel]) -> None:
    for name in ("churn-mixed", "churn-lightgbm"):
        example = demos[name].input_example
        assert example is not None and len(example) == 5
        assert {type(row["country"]) for row in example} == {str}
        assert any(row["income"] is None for row in example)
