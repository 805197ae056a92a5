"""The typed demo models, on one generated customer table with strings, numbers and missing values:
churn-mixed (a scikit-learn Pipeline fitted on the DataFrame: one-hot countries and plans, numbers passed to a
HistGradientBoostingClassifier) and churn-lightgbm (LightGBM on pandas categories, saved in its own text format)."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from demo.training.common import SKOPS_SUFFIX, TEST_SIZE, DemoModel, classification_metrics, demo_tags, dump_skops

COUNTRIES = ("fr", "de", "es", "it")
PLANS = ("basic", "plus", "pro")
EXAMPLE_ROWS = 5


def customer_frame(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers: country and plan (strings), age, tenure in months, income (10% missing); churn as the label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "country": rng.choice(COUNTRIES, size=rows), "plan": rng.choice(PLANS, size=rows, p=[0.5, 0.3, 0.2]),
        "age": rng.integers(18, 80, size=rows).astype(float), "tenure_months": rng.integers(1, 72, size=rows),
        "income": rng.normal(42000, 12000, size=rows).round(2),
    })
    frame.loc[rng.random(rows) < 0.1, "income"] = np.nan
    score = (np.where(frame["plan"] == "basic", 1.2, -0.6) + np.where(frame["country"] == "de", 0.8, 0.0)
             - frame["tenure_months"] / 24 + np.nan_to_num((42000 - frame["income"]) / 20000)
             + rng.normal(0, 0.6, rows))
    return frame, (score > 0).astype(int).to_numpy()


def example_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The first rows as JSON records (None for a missing value), one of them with a missing income."""
    rows = pd.concat([frame.iloc[: EXAMPLE_ROWS - 1], frame[frame["income"].isna()].iloc[:1]])
    return [{str(k): (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in rows.to_dict("records")]


def build_churn_mixed(out_dir: pathlib.Path, seed: int) -> DemoModel:
    params = {"n_samples": 4000, "max_iter": 60}
    frame, target = customer_frame(params["n_samples"], seed)
    train, test, y_train, y_test = train_test_split(frame, target, test_size=TEST_SIZE, random_state=seed)
    encode = ColumnTransformer([("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                                 ["country", "plan"])], remainder="passthrough")
    model = make_pipeline(encode, HistGradientBoostingClassifier(max_iter=params["max_iter"], random_state=seed))
    model.fit(train, y_train)
    return DemoModel(
        name="churn-mixed",
        description="Churn from a customer table: country and plan (strings), age, tenure and income (sometimes "
                    "missing). A scikit-learn Pipeline fitted on a DataFrame.",
        task="classification", flavor="sklearn", path=dump_skops(model, out_dir / f"churn-mixed{SKOPS_SUFFIX}"),
        signature=None, metrics=classification_metrics(y_test, model.predict(test)), params=params,
        tags=demo_tags("pipeline", input_kind="dataframe"), input_example=example_records(frame),
    )


def build_churn_lightgbm(out_dir: pathlib.Path, seed: int) -> DemoModel:
    import lightgbm

    params = {"n_samples": 4000, "n_estimators": 60, "num_leaves": 15}
    frame, target = customer_frame(params["n_samples"], seed)
    categorical = frame.astype({"country": "category", "plan": "category"})
    train, test, y_train, y_test = train_test_split(categorical, target, test_size=TEST_SIZE, random_state=seed)
    model = lightgbm.LGBMClassifier(n_estimators=params["n_estimators"], num_leaves=params["num_leaves"],
                                    random_state=seed, verbose=-1, deterministic=True, force_row_wise=True,
                                    n_jobs=1).fit(train, y_train)
    path = out_dir / "churn-lightgbm.txt"
    model.booster_.save_model(str(path))  # LightGBM's own text format, with the categories' values
    return DemoModel(
        name="churn-lightgbm",
        description="The same churn table with LightGBM on pandas categories, served from its native text format.",
        task="classification", flavor="lightgbm", path=path, signature=None,
        metrics=classification_metrics(y_test, np.asarray(model.predict(test))), params=params,
        tags=demo_tags("boosted-trees", input_kind="dataframe"), input_example=example_records(frame),
    )
