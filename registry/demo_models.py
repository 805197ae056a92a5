"""Demo artifacts for `manage.py seed_demo`, built from generated data only.

Nothing is downloaded: every data set is synthesised from a seed, so the same seed always yields the
same artifacts and the same predictions. This module has no Django imports; the management command
registers what `build_demo_models` returns.
"""

from __future__ import annotations

import pathlib
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import skops.io as sio
import torch
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from torch import nn

DEMO_MODEL_NAMES = ("churn-logreg", "fraud-forest", "sentiment-text", "demand-mlp", "router-scorer")
SENTIMENT_CLASSES = ("negative", "neutral", "positive")
DEMAND_CLASSES = ("low", "medium", "high")
ROUTER_SEPARATOR = " || "
ROUTER_CANDIDATES = ("gpt-small", "gpt-large", "claude-mini", "llama-8b", "mistral-7b")
ROUTER_TOPICS = ("code", "math", "chit-chat", "summarization", "translation", "creative")

# The hidden truth behind router-scorer's data, public so tests (and curious humans) can check that
# the scorer learned each candidate's strong and weak topics. Rows follow ROUTER_TOPICS.
ROUTER_SKILLS: dict[str, dict[str, float]] = {
    name: dict(zip(ROUTER_TOPICS, row))
    for name, row in {
        "gpt-small": (0.40, 0.35, 0.80, 0.65, 0.55, 0.60),
        "gpt-large": (0.85, 0.85, 0.70, 0.85, 0.80, 0.80),
        "claude-mini": (0.70, 0.55, 0.85, 0.90, 0.65, 0.75),
        "llama-8b": (0.60, 0.30, 0.70, 0.55, 0.45, 0.90),
        "mistral-7b": (0.80, 0.70, 0.50, 0.60, 0.90, 0.45),
    }.items()
}

_TEST_SIZE = 0.2
_SKOPS_SUFFIX = ".skops"
_TORCHSCRIPT_SUFFIX = ".pt"


@dataclass(frozen=True)
class DemoModel:
    name: str
    description: str
    task: str  # "classification" | "regression" | "scoring"
    flavor: str  # "sklearn" | "torch"
    path: pathlib.Path
    # Only what the artifact cannot tell about itself (input kind, class names of a torch net, ...).
    signature: dict[str, Any] | None
    metrics: dict[str, float]
    params: dict[str, Any]
    tags: dict[str, str]


def build_demo_models(out_dir: pathlib.Path, *, seed: int = 7) -> list[DemoModel]:
    out_dir.mkdir(parents=True, exist_ok=True)
    builders: Sequence[Callable[[pathlib.Path, int], DemoModel]] = (
        _build_churn_logreg,
        _build_fraud_forest,
        _build_sentiment_text,
        _build_demand_mlp,
        _build_router_scorer,
    )
    return [
        build(out_dir, model_seed) for build, model_seed in zip(builders, _spawn_seeds(seed, len(builders)))
    ]


def _spawn_seeds(seed: int, count: int) -> list[int]:
    # Independent streams per model: retuning one model's data never shifts another's, and seeds 7
    # and 8 do not produce overlapping models the way `seed + index` would.
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(count)]


def _tags(family: str, **extra: str) -> dict[str, str]:
    return {"demo": "true", "data": "synthetic", "family": family, **extra}


def _dump_skops(model: Any, path: pathlib.Path) -> pathlib.Path:
    # Deflate: tree arrays compress several-fold, and these files are copied into storage on every seed.
    sio.dump(model, path, compression=zipfile.ZIP_DEFLATED)
    return path


def _classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "f1_macro": round(float(f1_score(y_true, y_pred, average="macro")), 4),
    }


# --- churn-logreg -------------------------------------------------------------------------------


def _build_churn_logreg(out_dir: pathlib.Path, seed: int) -> DemoModel:
    params = {"n_samples": 5000, "n_features": 10, "C": 1.0, "max_iter": 1000}
    X, y = make_classification(
        n_samples=params["n_samples"],
        n_features=params["n_features"],
        n_informative=6,
        n_redundant=2,
        class_sep=2.0,
        flip_y=0.02,
        random_state=seed,
    )
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=_TEST_SIZE, random_state=seed)
    model = LogisticRegression(C=params["C"], max_iter=params["max_iter"]).fit(X_train, y_train)
    metrics = _classification_metrics(y_test, model.predict(X_test))
    # pandas is not a dependency, so the model is fitted on an array and named afterwards: an object
    # array of str round-trips through skops without adding an untrusted type. sklearn will warn
    # ("X does not have valid feature names") when later fed a plain array; predictions are unaffected.
    model.feature_names_in_ = np.asarray([f"f{i}" for i in range(params["n_features"])], dtype=object)
    return DemoModel(
        name="churn-logreg",
        description="Logistic regression predicting customer churn from 10 numeric features f0..f9.",
        task="classification",
        flavor="sklearn",
        path=_dump_skops(model, out_dir / f"churn-logreg{_SKOPS_SUFFIX}"),
        signature=None,
        metrics=metrics,
        params=params,
        tags=_tags("linear", input_kind="tabular"),
    )


# --- fraud-forest -------------------------------------------------------------------------------


def _build_fraud_forest(out_dir: pathlib.Path, seed: int) -> DemoModel:
    params = {
        "n_samples": 6000,
        "n_features": 20,
        "n_estimators": 100,
        "max_depth": 10,
        "min_samples_leaf": 2,
    }
    # Imbalanced like real fraud data, hence ROC AUC next to accuracy (which the majority class inflates).
    X, y = make_classification(
        n_samples=params["n_samples"],
        n_features=params["n_features"],
        n_informative=10,
        n_redundant=4,
        weights=[0.85, 0.15],
        class_sep=1.0,
        flip_y=0.01,
        random_state=seed,
    )
    X_train, X_test, y_train, y_test = train_test_split(
        X,
        y,
        test_size=_TEST_SIZE,
        random_state=seed,
        stratify=y,
    )
    model = RandomForestClassifier(
        n_estimators=params["n_estimators"],
        max_depth=params["max_depth"],
        min_samples_leaf=params["min_samples_leaf"],
        random_state=seed,
    ).fit(X_train, y_train)
    metrics = _classification_metrics(y_test, model.predict(X_test))
    metrics["roc_auc"] = round(float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])), 4)
    return DemoModel(
        name="fraud-forest",
        description="Random forest flagging fraudulent transactions (20 numeric features, ~15% positives).",
        task="classification",
        flavor="sklearn",
        path=_dump_skops(model, out_dir / f"fraud-forest{_SKOPS_SUFFIX}"),
        signature=None,
        metrics=metrics,
        params=params,
        tags=_tags("tree-ensemble", input_kind="tabular"),
    )


# --- sentiment-text -----------------------------------------------------------------------------

# fmt: off
# Word tables stay compact: the formatter would put one word a line.
_SENTIMENT_WORDS = {
    "negative": ("terrible", "awful", "hate", "horrible", "broken", "disappointing", "poor", "worst",
                 "useless", "rude", "annoying", "bad"),
    "neutral": ("okay", "average", "ordinary", "standard", "arrived", "normal", "expected", "usual",
                "plain", "typical", "moderate", "acceptable"),
    "positive": ("great", "excellent", "wonderful", "love", "amazing", "fantastic", "delightful",
                 "perfect", "happy", "brilliant", "pleasant", "good"),
}
_SENTIMENT_SUBJECTS = ("the service", "this phone", "the hotel", "my order", "the movie", "the staff",
                       "this app", "the food", "the delivery", "the price", "the room", "customer support")
_SENTIMENT_FILLERS = ("really", "quite", "today", "again", "overall", "honestly", "so", "very", "just",
                      "still", "", "")
# fmt: on
_SENTIMENT_TEMPLATES = (
    "{subject} was {filler} {w1}",
    "{subject} is {filler} {w1} and {w2}",
    "i think {subject} was {w1} {filler}",
    "{filler} {w1} experience with {subject}, {w2}",
    "{w1} {w2} {subject}",
    "my opinion of {subject}: {w1}, {filler} {w2}",
)


def _sentence(rng: np.random.Generator, label: str) -> str:
    w1 = rng.choice(_SENTIMENT_WORDS[label])
    # One in five sentences carries a word of another class, so the task is not a vocabulary lookup.
    second_label = rng.choice(SENTIMENT_CLASSES) if rng.random() < 0.2 else label
    text = rng.choice(_SENTIMENT_TEMPLATES).format(
        subject=rng.choice(_SENTIMENT_SUBJECTS),
        filler=rng.choice(_SENTIMENT_FILLERS),
        w1=w1,
        w2=rng.choice(_SENTIMENT_WORDS[second_label]),
    )
    return " ".join(text.split())


def _sentiment_data(rng: np.random.Generator, n: int) -> tuple[list[str], list[str]]:
    labels = [str(label) for label in rng.choice(SENTIMENT_CLASSES, size=n)]
    texts = [_sentence(rng, label) for label in labels]
    # A little label noise keeps held-out accuracy honest instead of a perfect 1.0.
    noisy = [str(rng.choice(SENTIMENT_CLASSES)) if rng.random() < 0.03 else label for label in labels]
    return texts, noisy


def _build_sentiment_text(out_dir: pathlib.Path, seed: int) -> DemoModel:
    params = {"n_samples": 3000, "ngram_range": [1, 2], "min_df": 2, "sublinear_tf": True, "C": 5.0}
    texts, labels = _sentiment_data(np.random.default_rng(seed), params["n_samples"])
    X_train, X_test, y_train, y_test = train_test_split(
        texts, labels, test_size=_TEST_SIZE, random_state=seed
    )
    model = Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, 2), min_df=params["min_df"], sublinear_tf=True)),
            ("clf", LogisticRegression(C=params["C"], max_iter=1000)),
        ]
    ).fit(X_train, y_train)
    return DemoModel(
        name="sentiment-text",
        description="TF-IDF + logistic regression labelling short reviews negative / neutral / positive.",
        task="classification",
        flavor="sklearn",
        path=_dump_skops(model, out_dir / f"sentiment-text{_SKOPS_SUFFIX}"),
        signature=_text_signature(output_name="label", output_dtype="string"),
        metrics=_classification_metrics(np.asarray(y_test), model.predict(X_test)),
        params=params,
        tags=_tags("linear", input_kind="text"),
    )


def _text_signature(*, output_name: str, output_dtype: str) -> dict[str, Any]:
    # A text pipeline has no n_features_in_, so the runtime cannot infer that rows are raw strings.
    return {
        "inputs": [{"name": "text", "dtype": "string", "shape": [-1]}],
        "outputs": [{"name": output_name, "dtype": output_dtype, "shape": [-1]}],
        "feature_names": None,
        "n_features": None,
        "input_kind": "text",
        "classes": None,
    }


# --- demand-mlp ---------------------------------------------------------------------------------

_DEMAND_FEATURES = 8


class _DemandMLP(nn.Module):
    def __init__(self, n_features: int, hidden: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        # Dropout stays a real nn.Dropout submodule (not F.dropout) so Monte-Carlo dropout can switch
        # just these layers to train mode in the loaded TorchScript module.
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _demand_data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    X = rng.normal(size=(n, _DEMAND_FEATURES)).astype(np.float32)
    weights = np.array([1.0, -0.8, 0.6, 0.5, -0.4, 0.3, 0.0, 0.0], dtype=np.float32)
    # Non-linear terms give the hidden layers something a linear model would miss.
    latent = X @ weights + 0.8 * np.sin(2 * X[:, 0]) + 0.6 * X[:, 1] * X[:, 2] + rng.normal(0, 0.3, n)
    y = np.digitize(latent, np.quantile(latent, [1 / 3, 2 / 3])).astype(np.int64)
    return X, y


def _train_mlp(model: nn.Module, X: torch.Tensor, y: torch.Tensor, params: dict[str, Any], seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"])
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(params["epochs"]):
        for batch in torch.randperm(len(X), generator=generator).split(params["batch_size"]):
            optimizer.zero_grad()
            loss_fn(model(X[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()


def _build_demand_mlp(out_dir: pathlib.Path, seed: int) -> DemoModel:
    params = {"n_samples": 6000, "hidden": 64, "dropout": 0.2, "epochs": 15, "batch_size": 128, "lr": 3e-3}
    X, y = _demand_data(np.random.default_rng(seed), params["n_samples"])
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=_TEST_SIZE, random_state=seed)
    # Weight init and dropout masks draw from torch's global RNG; forking it keeps the build
    # deterministic without disturbing the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _DemandMLP(_DEMAND_FEATURES, params["hidden"], len(DEMAND_CLASSES), params["dropout"])
        _train_mlp(model, torch.from_numpy(X_train), torch.from_numpy(y_train), params, seed)
    with torch.no_grad():
        y_pred = model(torch.from_numpy(X_test)).argmax(dim=1).numpy()
    path = _save_torchscript(model, out_dir / f"demand-mlp{_TORCHSCRIPT_SUFFIX}")
    return DemoModel(
        name="demand-mlp",
        description="PyTorch MLP with dropout bucketing demand into low / medium / high from 8 features.",
        task="classification",
        flavor="torch",
        path=path,
        signature=_demand_signature(),
        metrics=_classification_metrics(y_test, y_pred),
        params=params,
        tags=_tags("neural-net", input_kind="tabular", uncertainty="mc-dropout"),
    )


def _save_torchscript(model: nn.Module, path: pathlib.Path) -> pathlib.Path:
    # torch 2.13 deprecates TorchScript, but it is still the one format that keeps nn.Dropout as a
    # switchable submodule and loads without the model's Python class; silence the notice, not errors.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning
        )
        torch.jit.save(torch.jit.script(model), str(path))
    return path


def _demand_signature() -> dict[str, Any]:
    return {
        "inputs": [{"name": "input", "dtype": "float32", "shape": [-1, _DEMAND_FEATURES]}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [-1, len(DEMAND_CLASSES)]}],
        "feature_names": None,
        "n_features": _DEMAND_FEATURES,
        "input_kind": "tabular",
        "classes": list(DEMAND_CLASSES),
    }


# --- router-scorer ------------------------------------------------------------------------------

# fmt: off
_TOPIC_KEYWORDS = {
    "code": ("python", "function", "bug", "compile", "refactor", "api", "regex", "javascript", "sql",
             "stacktrace"),
    "math": ("integral", "prove", "equation", "probability", "derivative", "matrix", "prime", "theorem",
             "algebra", "geometry"),
    "chit-chat": ("weekend", "favorite", "hello", "weather", "hobby", "music", "friends", "joke",
                  "coffee", "mood"),
    "summarization": ("summarize", "article", "report", "meeting", "notes", "abstract", "outline",
                      "paper", "transcript", "shorten"),
    "translation": ("translate", "french", "spanish", "german", "japanese", "phrase", "idiom",
                    "portuguese", "italian", "localize"),
    "creative": ("poem", "story", "dragon", "haiku", "lyrics", "character", "fantasy", "plot", "villain",
                 "sonnet"),
}
# fmt: on
_PROMPT_TEMPLATES = (
    "can you help me with {k1} and {k2}",
    "{k1} {k2} {k3}",
    "i need {k1} for {k2} please",
    "quick question about {k1} {k2}",
    "please explain the {k1} in this {k2}",
)


def _prompt(rng: np.random.Generator, topic: str) -> str:
    k1, k2, k3 = rng.choice(_TOPIC_KEYWORDS[topic], size=3, replace=False)
    return str(rng.choice(_PROMPT_TEMPLATES)).format(k1=k1, k2=k2, k3=k3)


def router_row(candidate: str, prompt: str) -> str:
    """The row format router-scorer expects; the routing feature must build rows the same way."""
    return f"{candidate}{ROUTER_SEPARATOR}{prompt}"


def _router_data(rng: np.random.Generator, n: int, noise: float) -> tuple[list[str], np.ndarray]:
    candidates = rng.choice(ROUTER_CANDIDATES, size=n)
    topics = rng.choice(ROUTER_TOPICS, size=n)
    rows = [router_row(str(c), _prompt(rng, str(t))) for c, t in zip(candidates, topics)]
    skills = np.array([ROUTER_SKILLS[str(c)][str(t)] for c, t in zip(candidates, topics)])
    return rows, np.clip(skills + rng.normal(0, noise, n), 0.0, 1.0)


def _build_router_scorer(out_dir: pathlib.Path, seed: int) -> DemoModel:
    params = {"n_samples": 6000, "noise": 0.05, "n_estimators": 300, "max_depth": 4, "learning_rate": 0.1}
    rows, scores = _router_data(np.random.default_rng(seed), params["n_samples"], params["noise"])
    X_train, X_test, y_train, y_test = train_test_split(rows, scores, test_size=_TEST_SIZE, random_state=seed)
    # The score is a candidate x topic interaction, which a linear model over bag-of-words cannot
    # express; shallow boosted trees on sparse word indicators can, with no custom (untrusted) code.
    # Binary counts rather than TF-IDF: a word's weight then does not depend on prompt length, so one
    # split isolates it (held-out r2 ~0.80 -> ~0.90 for the same trees).
    model = Pipeline(
        [
            # Keep "gpt-small" / "llama-8b" as single tokens; the "||" separator is dropped.
            ("words", CountVectorizer(token_pattern=r"[\w\-]+", binary=True)),
            (
                "gbr",
                GradientBoostingRegressor(
                    n_estimators=params["n_estimators"],
                    max_depth=params["max_depth"],
                    learning_rate=params["learning_rate"],
                    random_state=seed,
                ),
            ),
        ]
    ).fit(X_train, y_train)
    y_pred = model.predict(X_test)
    return DemoModel(
        name="router-scorer",
        description='Scores how well an LLM would answer a prompt; rows are "<candidate> || <prompt>".',
        task="scoring",
        flavor="sklearn",
        path=_dump_skops(model, out_dir / f"router-scorer{_SKOPS_SUFFIX}"),
        signature=_text_signature(output_name="score", output_dtype="float64"),
        metrics={
            "r2": round(float(r2_score(y_test, y_pred)), 4),
            "mae": round(float(mean_absolute_error(y_test, y_pred)), 4),
        },
        params={**params, "candidates": list(ROUTER_CANDIDATES), "topics": list(ROUTER_TOPICS)},
        tags=_tags("tree-ensemble", input_kind="text", row_format="<candidate> || <prompt>"),
    )
