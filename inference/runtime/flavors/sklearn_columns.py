# What a scikit-learn model fitted on a DataFrame tells about its columns: their names (feature_names_in_),
# which take strings (the categories its fitted encoders learnt, text vectorizers), which numbers, and which
# take missing values (an imputer on the way, encoders that know a missing category, estimators that handle NaN).
# Columns it cannot tell about are left to the input example and the uploader's signature (contract/examples.py).
from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder

from inference.runtime.contract.columns import Column
from inference.runtime.contract.examples import NUMBER

# Categories kept per string column for generated smoke rows: a few known values, never the whole vocabulary.
_SMOKE_CATEGORIES = 8
_ENCODERS = (OneHotEncoder, OrdinalEncoder)
_VECTORIZERS = (CountVectorizer, HashingVectorizer, TfidfVectorizer)


def frame_feature_names(model: Any) -> list[str] | None:
    """The columns a model fitted on a DataFrame takes, in order; None for a model fitted on an array."""
    first = model.steps[0][1] if isinstance(model, Pipeline) else model
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        names = getattr(first, "feature_names_in_", None)
    return None if names is None else [str(name) for name in names]


def frame_columns(model: Any) -> tuple[list[Column] | None, dict[str, list[Any]]]:
    """(columns with what the model tells of each, known categories of its string columns)."""
    names = frame_feature_names(model)
    if names is None:
        return None, {}
    steps = _flat_steps(model)
    described: dict[str, Column] = {name: {"name": name, "dtype": None, "nullable": None} for name in names}
    categories: dict[str, list[Any]] = {}
    if isinstance(steps[0], ColumnTransformer):
        for _, transformer, selected in steps[0].transformers_:
            path = [] if transformer == "passthrough" else None if transformer == "drop" else _flat_steps(transformer)
            for position, name in enumerate(_selected_names(selected, names)):
                if path is not None:
                    _describe(described[name], path, steps[1:], position, categories)
    else:
        for name in names:
            _describe(described[name], [], steps, 0, categories)
    return [described[name] for name in names], categories


def _flat_steps(model: Any) -> list[Any]:
    if isinstance(model, Pipeline):
        return [step for _, step in model.steps if step not in (None, "passthrough")]
    return [model]


def _selected_names(selected: Any, names: list[str]) -> list[str]:
    items = list(selected) if isinstance(selected, (list, tuple, np.ndarray)) else [selected]
    if items and all(isinstance(item, (bool, np.bool_)) for item in items):
        return [name for name, keep in zip(names, items) if keep]
    return [names[int(item)] if isinstance(item, (int, np.integer)) else str(item) for item in items]


def _describe(column: Column, path: list[Any], downstream: list[Any], position: int,
              categories: dict[str, list[Any]]) -> None:
    for step in path:
        if isinstance(step, FunctionTransformer) and step.func is None:
            continue  # the identity (what ColumnTransformer makes of remainder="passthrough")
        if isinstance(step, SimpleImputer):
            column["nullable"] = True if column["nullable"] is None else column["nullable"]
            continue
        if isinstance(step, _ENCODERS):
            _from_encoder(column, step, position, categories)
            return
        if isinstance(step, _VECTORIZERS):
            column["dtype"] = "string"
            _set_nullable(column, False)
            return
        column["dtype"] = NUMBER
        _set_nullable(column, _all_allow_nan([step, *downstream]))
        return
    column["dtype"] = NUMBER if column["dtype"] is None else column["dtype"]
    _set_nullable(column, _all_allow_nan(downstream))


def _from_encoder(column: Column, encoder: Any, position: int, categories: dict[str, list[Any]]) -> None:
    names = list(getattr(encoder, "feature_names_in_", []))
    index = names.index(column["name"]) if column["name"] in names else position
    learnt = list(encoder.categories_[index]) if index < len(encoder.categories_) else []
    present = [value for value in learnt if not _missing(value)]
    column["dtype"] = "string" if present and all(isinstance(v, str) for v in present) else NUMBER
    if column["dtype"] == "string":
        categories[column["name"]] = present[:_SMOKE_CATEGORIES]
    unknown_ok = getattr(encoder, "handle_unknown", "error") != "error"
    _set_nullable(column, len(present) < len(learnt) or unknown_ok)


def _set_nullable(column: Column, value: bool) -> None:
    if column["nullable"] is None:
        column["nullable"] = value


def _all_allow_nan(steps: list[Any]) -> bool:
    return bool(steps) and all(_allows_nan(step) for step in steps)


def _allows_nan(step: Any) -> bool:
    try:
        return bool(step.__sklearn_tags__().input_tags.allow_nan)
    except (AttributeError, TypeError, ValueError):
        return False


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
