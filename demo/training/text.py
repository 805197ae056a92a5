"""The text demo models: sentiment-text (a TF-IDF pipeline) and router-scorer (pairwise scoring)."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from demo.training.common import (
    ROUTER_CANDIDATES,
    ROUTER_SEPARATOR,
    ROUTER_SKILLS,
    ROUTER_TOPICS,
    SENTIMENT_CLASSES,
    SKOPS_SUFFIX,
    TEST_SIZE,
    DemoModel,
    classification_metrics,
    demo_tags,
    dump_skops,
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


def build_sentiment_text(out_dir: pathlib.Path, seed: int) -> DemoModel:
    params: dict[str, Any] = {"n_samples": 3000, "ngram_range": [1, 2], "min_df": 2, "sublinear_tf": True, "C": 5.0}
    texts, labels = _sentiment_data(np.random.default_rng(seed), params["n_samples"])
    X_train, X_test, y_train, y_test = train_test_split(
        texts, labels, test_size=TEST_SIZE, random_state=seed
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
        path=dump_skops(model, out_dir / f"sentiment-text{SKOPS_SUFFIX}"),
        signature=text_signature(output_name="label", output_dtype="string"),
        metrics=classification_metrics(np.asarray(y_test), model.predict(X_test)),
        params=params,
        tags=demo_tags("linear", input_kind="text"),
    )


def text_signature(*, output_name: str, output_dtype: str) -> dict[str, Any]:
    # A text pipeline has no n_features_in_, so the runtime cannot infer that rows are raw strings.
    return {
        "inputs": [{"name": "text", "dtype": "string", "shape": [-1]}],
        "outputs": [{"name": output_name, "dtype": output_dtype, "shape": [-1]}],
        "feature_names": None,
        "n_features": None,
        "input_kind": "text",
        "classes": None,
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


def build_router_scorer(out_dir: pathlib.Path, seed: int) -> DemoModel:
    params: dict[str, Any] = {"n_samples": 6000, "noise": 0.05, "n_estimators": 300, "max_depth": 4,
                              "learning_rate": 0.1}
    rows, scores = _router_data(np.random.default_rng(seed), params["n_samples"], params["noise"])
    X_train, X_test, y_train, y_test = train_test_split(rows, scores, test_size=TEST_SIZE, random_state=seed)
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
        path=dump_skops(model, out_dir / f"router-scorer{SKOPS_SUFFIX}"),
        signature=text_signature(output_name="score", output_dtype="float64"),
        metrics={
            "r2": round(float(r2_score(y_test, y_pred)), 4),
            "mae": round(float(mean_absolute_error(y_test, y_pred)), 4),
        },
        params={**params, "candidates": list(ROUTER_CANDIDATES), "topics": list(ROUTER_TOPICS)},
        tags=demo_tags("tree-ensemble", input_kind="text", row_format="<candidate> || <prompt>"),
    )
