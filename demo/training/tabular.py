"""The tabular demo models: churn-logreg (LogisticRegression) and fraud-forest (RandomForest)."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from demo.training.common import (
    SKOPS_SUFFIX,
    TEST_SIZE,
    DemoModel,
    classification_metrics,
    demo_tags,
    dump_skops,
)

# --- churn-logreg -------------------------------------------------------------------------------


def build_churn_logreg(out_dir: pathlib.Path, seed: int) -> DemoModel:
    return _churn_logreg(out_dir, seed, C=1.0, filename="churn-logreg",
                         description="Logistic regression predicting customer churn from 10 numeric features f0..f9.")


def build_churn_logreg_candidate(out_dir: pathlib.Path, seed: int) -> DemoModel:
    """Version 2 of churn-logreg, on the same data with stronger regularisation, under the `staging` alias: the
    candidate the README deploys beside production and puts in an A/B experiment."""
    model = _churn_logreg(out_dir, seed, C=0.05, filename="churn-logreg-candidate",
                          description="Candidate: the churn logistic regression with stronger regularisation "
                                      "(C=0.05).")
    return dataclasses.replace(model, alias="staging")


def _churn_logreg(out_dir: pathlib.Path, seed: int, *, C: float, filename: str, description: str) -> DemoModel:
    params: dict[str, Any] = {"n_samples": 5000, "n_features": 10, "C": C, "max_iter": 1000}
    X, y = make_classification(
        n_samples=params["n_samples"],
        n_features=params["n_features"],
        n_informative=6,
        n_redundant=2,
        class_sep=2.0,
        flip_y=0.02,
        random_state=seed,
    )
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=TEST_SIZE, random_state=seed)
    model = LogisticRegression(C=params["C"], max_iter=params["max_iter"]).fit(X_train, y_train)
    metrics = classification_metrics(y_test, model.predict(X_test))
    # Fitted on an array, so it keeps the numeric fast path (rows of floats, no DataFrame per batch); its
    # feature names come with the upload's signature, so clients may still send objects keyed by name.
    names = [f"f{i}" for i in range(params["n_features"])]
    return DemoModel(
        name="churn-logreg",
        description=description,
        task="classification",
        flavor="sklearn",
        path=dump_skops(model, out_dir / f"{filename}{SKOPS_SUFFIX}"),
        signature={"feature_names": names},
        metrics=metrics,
        params=params,
        tags=demo_tags("linear", input_kind="tabular"),
    )


# --- fraud-forest -------------------------------------------------------------------------------


def build_fraud_forest(out_dir: pathlib.Path, seed: int) -> DemoModel:
    params: dict[str, Any] = {
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
        test_size=TEST_SIZE,
        random_state=seed,
        stratify=y,
    )
    model = RandomForestClassifier(
        n_estimators=params["n_estimators"],
        max_depth=params["max_depth"],
        min_samples_leaf=params["min_samples_leaf"],
        random_state=seed,
    ).fit(X_train, y_train)
    metrics = classification_metrics(y_test, model.predict(X_test))
    metrics["roc_auc"] = round(float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])), 4)
    return DemoModel(
        name="fraud-forest",
        description="Random forest flagging fraudulent transactions (20 numeric features, ~15% positives).",
        task="classification",
        flavor="sklearn",
        path=dump_skops(model, out_dir / f"fraud-forest{SKOPS_SUFFIX}"),
        signature=None,
        metrics=metrics,
        params=params,
        tags=demo_tags("tree-ensemble", input_kind="tabular"),
    )
