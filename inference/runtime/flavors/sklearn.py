# scikit-learn runtimes. Only the registry imports this module, on first use of a sklearn format,
# so the web process never pays for sklearn / skops.
from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Callable
from typing import Any

import joblib
import numpy as np
import skops.io
from sklearn import config_context
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer
from sklearn.pipeline import Pipeline

from inference.runtime.contract.base import (
    ModelRuntime,
    Prediction,
    RuntimeOptions,
    json_safe,
    loaded_signature,
    scrub_paths,
    tabular_batch,
    text_batch,
)
from inference.runtime.contract.columns import generated_rows
from inference.runtime.contract.errors import ArtifactLoadError, PredictionError, UntrustedArtifact
from inference.runtime.contract.frames import ColumnBatch
from inference.runtime.contract.signature import Signature, build_signature
from inference.runtime.flavors.sklearn_columns import frame_columns


def _qualified(module: str, *names: str) -> set[str]:
    return {f"{module}.{name}" for name in names}


# Every type a skops artifact may contain, estimators included: skops trusts most of sklearn by
# default, and the platform supports fewer. Built by dumping each supported estimator with skops
# 0.16 / sklearn 1.9 and collecting the types in its schema plus `get_untrusted_types`.
SKOPS_ALLOWED_TYPES: frozenset[str] = frozenset(
    {
        # containers and scalars skops writes for attributes
        *_qualified("builtins", "dict", "list", "tuple", "str", "int", "float", "bool", "slice"),
        *_qualified("numpy", "ndarray", "dtype", "float32", "float64", "int32", "int64", "uint64", "bool_"),
        "numpy.random._generator.Generator",
        "numpy.random.mtrand.RandomState",
        # elementwise functions for FunctionTransformer: no I/O, no code execution
        *_qualified("numpy", "log1p", "expm1", "log", "exp", "sqrt"),
        # linear models and SVMs
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._base.LinearRegression",
        "sklearn.linear_model._ridge.Ridge",
        *_qualified("sklearn.linear_model._coordinate_descent", "Lasso", "ElasticNet"),
        *_qualified("sklearn.linear_model._stochastic_gradient", "SGDClassifier", "SGDRegressor"),
        *_qualified("sklearn.linear_model._sgd_fast", "Hinge", "SquaredHinge", "ModifiedHuber"),
        "sklearn.linear_model._sgd_fast.EpsilonInsensitive",
        *_qualified("sklearn.svm._classes", "LinearSVC", "LinearSVR", "SVC", "SVR"),
        # trees and ensembles
        *_qualified("sklearn.tree._classes", "DecisionTreeClassifier", "DecisionTreeRegressor"),
        *_qualified("sklearn.tree._classes", "ExtraTreeClassifier", "ExtraTreeRegressor"),
        "sklearn.tree._tree.Tree",
        *_qualified("sklearn.ensemble._forest", "RandomForestClassifier", "RandomForestRegressor"),
        *_qualified("sklearn.ensemble._forest", "ExtraTreesClassifier", "ExtraTreesRegressor"),
        *_qualified("sklearn.ensemble._gb", "GradientBoostingClassifier", "GradientBoostingRegressor"),
        *_qualified(
            "sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
            "HistGradientBoostingClassifier",
            "HistGradientBoostingRegressor",
        ),
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        *_qualified("sklearn.dummy", "DummyClassifier", "DummyRegressor"),
        *_qualified("sklearn._loss.loss", "HalfBinomialLoss", "HalfMultinomialLoss", "HalfSquaredError"),
        *_qualified(
            "sklearn._loss._loss", "CyHalfBinomialLoss", "CyHalfMultinomialLoss", "CyHalfSquaredError"
        ),
        *_qualified("sklearn._loss.link", "IdentityLink", "LogitLink", "MultinomialLogit", "Interval"),
        # neighbours and naive Bayes
        "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.neighbors._regression.KNeighborsRegressor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        *_qualified("sklearn.naive_bayes", "GaussianNB", "MultinomialNB"),
        # pipelines, preprocessing, text
        "sklearn.pipeline.Pipeline",
        "sklearn.compose._column_transformer.ColumnTransformer",
        *_qualified("sklearn.preprocessing._data", "StandardScaler", "MinMaxScaler", "MaxAbsScaler"),
        *_qualified("sklearn.preprocessing._data", "RobustScaler", "Normalizer"),
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.preprocessing._polynomial.PolynomialFeatures",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.decomposition._pca.PCA",
        *_qualified(
            "sklearn.feature_extraction.text", "CountVectorizer", "TfidfVectorizer", "TfidfTransformer"
        ),
    }
)

# schema.json is parsed in full before anything is loaded; a bigger one is not a model we serve.
_MAX_SCHEMA_BYTES = 64 * 1024 * 1024


class _SklearnRuntime(ModelRuntime):
    def __init__(self) -> None:
        self._model: Any = None
        self._signature: Signature | None = None
        self._has_proba = False
        self._predict_proba: Callable[[Any], Any] | None = None
        self._frame = False  # fitted on a DataFrame: called with one
        self._categories: dict[str, list[Any]] = {}

    def load(self, path: str, *, task: str, options: RuntimeOptions) -> None:
        model = self._read(path)
        if not callable(getattr(model, "predict", None)):
            raise ArtifactLoadError("the artifact does not hold a fitted scikit-learn estimator")
        self._model = model
        self._has_proba = has_probabilities(model)
        self._predict_proba = forest_predict_proba(model) or getattr(model, "predict_proba", None)
        self._signature = infer_sklearn_signature(model)
        self._frame = bool(self._signature.get("columns"))
        self._categories = frame_columns(model)[1] if self._frame else {}

    def _read(self, path: str) -> Any:
        raise NotImplementedError

    def signature(self) -> Signature:
        return loaded_signature(self._signature)

    def predict(self, inputs: Any) -> Prediction:
        signature = self.signature()
        batch = self._batch(inputs, signature)
        # Rows were checked finite and well-formed before dispatch (runtime/inputs.py): sklearn's own finiteness
        # scan and parameter validation would repeat that work on every batch. Nullable columns carry NaN.
        finite = not isinstance(inputs, ColumnBatch) or not any(c["nullable"] for c in inputs.columns)
        try:
            with warnings.catch_warnings(), config_context(assume_finite=finite, skip_parameter_validation=True):
                # Rows arrive ordered by the signature's feature names; sklearn cannot tell from a plain array.
                warnings.filterwarnings("ignore", message="X does not have valid feature names")
                labels, proba = self._labels_and_proba(batch)
        except Exception as exc:
            raise PredictionError(f"the model could not predict: {exc}") from exc
        probabilities = None if proba is None else np.asarray(proba, dtype=np.float64).tolist()
        return Prediction(json_safe(labels), probabilities, signature["classes"])

    def _labels_and_proba(self, batch: Any) -> tuple[Any, Any]:
        predict_proba = self._predict_proba
        if not self._has_proba or predict_proba is None:  # has_probabilities() found the method
            return self._model.predict(batch), None
        # One pass: the label is the most probable class (what predict() computes again internally for
        # forests); predicting twice would double the cost of every batch.
        proba = predict_proba(batch)
        return np.asarray(self._model.classes_)[np.argmax(proba, axis=1)], proba

    def _batch(self, inputs: Any, signature: Signature) -> Any:
        if signature["input_kind"] == "text":
            return text_batch(inputs)
        if isinstance(inputs, ColumnBatch) and self._frame:
            return inputs.frame()
        if self._frame:
            raise PredictionError("this model was fitted on a DataFrame: it takes rows of its named columns")
        return tabular_batch(inputs, n_features=signature["n_features"], dtype=np.float64)

    def smoke_inputs(self, rows: int, signature: Signature | None = None) -> Any:
        columns = (signature or self.signature()).get("columns")
        if columns:
            return generated_rows(columns, rows, self._categories)
        return super().smoke_inputs(rows, signature)

    def builtin_importances(self) -> list[float] | None:
        n_features = self.signature()["n_features"]
        values = recorded_importances(_final_estimator(self._model))
        # A pipeline step that changes the width (one-hot, polynomials) leaves them on other features.
        if values is None or n_features is None or len(values) != n_features:
            return None
        return values

    def unload(self) -> None:
        self._model = None
        self._signature = None


class SkopsRuntime(_SklearnRuntime):
    format = "skops"

    def _read(self, path: str) -> Any:
        trusted = check_skops_types(path)
        try:
            return skops.io.load(path, trusted=trusted)
        except Exception as exc:
            raise ArtifactLoadError(
                f"could not load the skops artifact: {scrub_paths(str(exc), path)}"
            ) from exc


class PickleRuntime(_SklearnRuntime):
    format = "pickle"

    def _read(self, path: str) -> Any:
        # Executes arbitrary code by design: callers only get here with pickles explicitly enabled.
        try:
            return joblib.load(path)
        except Exception as exc:
            raise ArtifactLoadError(
                f"could not load the pickle artifact: {scrub_paths(str(exc), path)}"
            ) from exc


def forest_predict_proba(model: Any) -> Callable[[Any], Any] | None:
    """A random forest's predict_proba as table look-ups, for exactly the classes whose method it reproduces.

    sklearn runs each tree's predict_proba as a joblib task that copies the global config and warning
    filters first (~40 us a tree, ~4 ms for 100 trees whatever the batch size), then validates the rows again
    in every tree. A single-output tree's predict_proba is its leaves' class
    fractions, `value[apply(X), 0, :n_classes]`; ForestClassifier sums them in tree order on float32 rows
    and divides by the number of trees. Done here the same way from tables sliced once at load time, it
    gives the same floats (checked against the model's own method before it is used) in ~2 us a tree.
    """
    if type(model) not in (RandomForestClassifier, ExtraTreesClassifier) or model.n_outputs_ != 1:
        return None
    width = int(model.n_classes_)
    trees = [(tree.tree_.apply, np.ascontiguousarray(tree.tree_.value[:, 0, :width])) for tree in model.estimators_]

    def predict_proba(batch: Any) -> Any:
        rows = np.ascontiguousarray(batch, dtype=np.float32)
        total = np.zeros((rows.shape[0], width), dtype=np.float64)
        for apply, fractions in trees:
            total += fractions.take(apply(rows), axis=0)
        total /= len(trees)
        return total

    return predict_proba if _reproduces(model, predict_proba) else None


def _reproduces(model: Any, predict_proba: Callable[[Any], Any]) -> bool:
    # A guard against a scikit-learn release that computes tree probabilities differently: rows drawn from
    # the first trees' split thresholds (give or take a little) reach many leaves, and any change shows.
    spread = np.concatenate([tree.tree_.threshold[tree.tree_.feature >= 0] for tree in model.estimators_[:8]])
    rng = np.random.default_rng(0)
    shape = (64, model.n_features_in_)
    probe = rng.choice(spread if spread.size else np.zeros(1), size=shape) + rng.normal(scale=1e-3, size=shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a forest fitted on a DataFrame: "X does not have feature names"
        expected = model.predict_proba(probe)
    return bool(np.array_equal(predict_proba(probe), expected))


def check_skops_types(path: str) -> list[str]:
    """Raise UntrustedArtifact unless every type in the file is allow-listed; return skops' `trusted`."""
    try:
        flagged = set(skops.io.get_untrusted_types(file=path))
    except Exception as exc:
        raise ArtifactLoadError(f"could not read the skops artifact: {scrub_paths(str(exc), path)}") from exc
    # skops trusts most of sklearn on its own, so also check every type named in the schema.
    offending = (flagged | skops_schema_types(path)) - SKOPS_ALLOWED_TYPES
    if offending:
        raise UntrustedArtifact(sorted(offending))
    return sorted(flagged)


def skops_schema_types(path: str) -> set[str]:
    schema = _read_schema(path)
    found: set[str] = set()
    stack: list[Any] = [schema]
    # Iterative walk: a hostile schema may nest deeper than the recursion limit.
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _read_schema(path: str) -> Any:
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.getinfo("schema.json").file_size > _MAX_SCHEMA_BYTES:
                raise ArtifactLoadError("the skops schema is too large")
            return json.loads(archive.read("schema.json"))
    except (KeyError, zipfile.BadZipFile, ValueError, RecursionError) as exc:
        raise ArtifactLoadError("the skops artifact has no readable schema") from exc


def infer_sklearn_signature(model: Any) -> Signature:
    classes = _classes(model)
    if _is_text_model(model):
        return build_signature(
            input_kind="text",
            input_dtype="string",
            n_features=None,
            classes=classes,
            probabilities=has_probabilities(model),
        )
    columns = frame_columns(model)[0]
    names = [str(c["name"]) for c in columns] if columns else None
    return build_signature(
        input_kind="tabular",
        input_dtype="float64",
        n_features=len(names) if names else _int_or_none(getattr(model, "n_features_in_", None)),
        feature_names=names,
        classes=classes,
        output_width=_output_width(model),
        probabilities=has_probabilities(model),
        columns=columns,
    )


def recorded_importances(estimator: Any) -> list[float] | None:
    """`feature_importances_` (trees) or the mean |coefficient| over classes (linear models)."""
    try:
        values = getattr(estimator, "feature_importances_", None)
        if values is None:
            coef = getattr(estimator, "coef_", None)
            if coef is None:
                return None
            coef = coef.toarray() if hasattr(coef, "toarray") else coef  # sparsified SGD models
            values = np.abs(np.atleast_2d(np.asarray(coef, dtype=np.float64))).mean(axis=0)
        return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]
    except (AttributeError, TypeError, ValueError):
        return None  # unfitted attribute properties raise; importances are optional


def _final_estimator(model: Any) -> Any:
    while isinstance(model, Pipeline):
        model = model.steps[-1][1]
    return model


def has_probabilities(model: Any) -> bool:
    # SVC(probability=False) and pipelines ending in one hide predict_proba, so hasattr is the test.
    return hasattr(model, "classes_") and hasattr(model, "predict_proba")


def _classes(model: Any) -> list[Any] | None:
    classes = getattr(model, "classes_", None)
    if classes is None or not isinstance(classes, (np.ndarray, list, tuple)):
        return None
    return list(json_safe(classes))


def _is_text_model(model: Any) -> bool:
    first = model
    while isinstance(first, Pipeline):
        first = first.steps[0][1]
    return isinstance(first, (CountVectorizer, HashingVectorizer))


def _output_width(model: Any) -> int | None:
    # Trees and forests record multi-target regression here; other estimators are read as one column.
    return _int_or_none(getattr(model, "n_outputs_", None))


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, np.integer)) else None
