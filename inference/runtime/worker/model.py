# The model side of a worker: loads a deployment's members and answers predictions, Monte Carlo
# dropout and ablation explanations for the whole (possibly ensembled) deployment. Everything here
# runs on the worker's single model thread, so a runtime never sees two calls at once.
from __future__ import annotations

import hashlib
import importlib
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.runtime.contract.base import ModelRuntime, Prediction, RuntimeOptions
from inference.runtime.contract.columns import ColumnError, typed_rows
from inference.runtime.contract.errors import ModelRuntimeError, PredictionError, UnsupportedOperation
from inference.runtime.contract.flavor_table import create_runtime
from inference.runtime.contract.frames import as_batch
from inference.runtime.contract.protocol import MemberSpec, WorkerSpec
from inference.runtime.contract.signature import Signature, merge_signatures
from inference.runtime.worker.ablation import MAX_EXPLAIN_ROWS, explain_columns, importances

TEST_HOOKS_ENV = "SERVINGPLATFORM_TEST_HOOKS"
MAX_UNCERTAINTY_SAMPLES = 100


class LoadFailed(Exception):
    """Why the deployment cannot be served; the message is safe to show."""


@dataclass
class Member:
    runtime: ModelRuntime
    weight: float


def runtime_options(spec: WorkerSpec) -> RuntimeOptions:
    extra = {"compile": spec.compile, "quantize": spec.quantize}
    return RuntimeOptions(device=spec.device, threads=spec.threads, classes=spec.classes, extra=extra)


def load_model(spec: WorkerSpec) -> ServedModel:
    if not spec.members:
        raise LoadFailed("the deployment has no models to load")
    options = runtime_options(spec)
    members: list[Member] = []
    try:
        for number, member in enumerate(spec.members, start=1):
            weight = _weight(member, number)
            members.append(Member(load_member(member, number, task=spec.task, options=options), weight))
        return ServedModel(members, task=spec.task, given=spec.signature or None, example=spec.input_example)
    except BaseException:
        for loaded in members:
            loaded.runtime.unload()
        raise


def load_member(member: MemberSpec, number: int, *, task: str, options: RuntimeOptions) -> ModelRuntime:
    # The checksum comes first: nothing reads a file that is not the one that was validated.
    check_sha256(member.path, member.sha256, number)
    runtime = make_runtime(member.format)
    runtime.check_options(options)
    runtime.load(member.path, task=task, options=options)
    return runtime


def check_sha256(path: str, expected: str, number: int) -> None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise LoadFailed(f"the artifact of model {number} is missing") from None
    if digest.hexdigest() != expected.strip().lower():
        raise LoadFailed(f"sha256 mismatch: the artifact of model {number} is not the one that was validated")


def make_runtime(fmt: str) -> ModelRuntime:
    # "module:Class" lets tests serve a toy runtime through the real worker. It imports code named
    # by the spec, so it is honoured only when the worker itself runs with the test-hook variable.
    if ":" in fmt and os.environ.get(TEST_HOOKS_ENV) == "1":
        module_name, _, class_name = fmt.partition(":")
        runtime: ModelRuntime = getattr(importlib.import_module(module_name), class_name)()
        return runtime
    return create_runtime(fmt)


def warm_up(model: ServedModel, requests: int) -> None:
    rows = model.smoke_inputs(1) if requests > 0 else None
    for _ in range(requests):
        model.predict(rows)


def _weight(member: MemberSpec, number: int) -> float:
    weight = member.weight
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        raise LoadFailed(f"the weight of model {number} must be a positive number")
    return float(weight)


class ServedModel:
    """One model, or an ensemble whose outputs are weighted averages of its members' outputs."""

    def __init__(self, members: list[Member], *, task: str, given: Signature | None,
                 example: list[Any] | None = None) -> None:
        self.members = members
        self.signature = merge_signatures(members[0].runtime.signature(), given, example)
        self.example = example or None
        # Typed columns: each forward pass turns the batch's rows into one ColumnBatch (a DataFrame, ...).
        self._columns = self.signature.get("columns") or None
        total = sum(member.weight for member in members)
        self._weights = np.array([member.weight / total for member in members])
        self._averages = ""  # "probabilities" or "values" for ensembles
        self._classes: list[Any] = []
        if len(members) > 1:
            self._check_ensemble(task)

    def smoke_inputs(self, rows: int) -> Any:
        """The input example's first rows when there is one (real values), else generated ones."""
        if self.example and self._columns and isinstance(self.example[0], dict):
            try:
                return typed_rows(self.example[:rows], self._columns, max_rows=rows, field="input_example")
            except ColumnError as exc:
                raise PredictionError(exc.message) from None
        if self.example and not self._columns:
            return self.example[:rows]
        return self.members[0].runtime.smoke_inputs(rows, self.signature)

    def predict(self, rows: Any) -> Prediction:
        batch = as_batch(rows, self._columns)
        if len(self.members) == 1:
            return self.members[0].runtime.predict(batch)
        return self._combine([member.runtime.predict(batch) for member in self.members])

    def predict_with_dropout(self, rows: Any, samples: int) -> tuple[Prediction, list[Any]]:
        if len(self.members) > 1:
            raise UnsupportedOperation("uncertainty estimates are available for single-model deployments only")
        return self.members[0].runtime.predict_with_dropout(as_batch(rows, self._columns), samples)

    def builtin_importances(self) -> list[float] | None:
        found = [member.runtime.builtin_importances() for member in self.members]
        if any(values is None for values in found) or len({len(values or []) for values in found}) != 1:
            return None
        return [float(v) for v in self._weights @ np.array(found, dtype=np.float64)]

    def explain(self, rows: Any, baseline: list[Any] | None) -> dict[str, Any]:
        """Ablation: replace one feature at a time by the baseline's value and measure how much the
        score of the row's own prediction (its class probability, or its value) drops."""
        if self.signature.get("input_kind") == "text":
            raise UnsupportedOperation("explanations are available for tabular models only")
        if self._columns:
            return explain_columns(self, rows, baseline, self._columns, self.example)
        x = _numeric_rows(rows)
        count, width = x.shape
        base = np.zeros(width) if baseline is None else _numeric_rows([baseline])[0]
        if len(base) != width:
            raise PredictionError(f"the baseline must have {width} features; it has {len(base)}")
        if count * width > MAX_EXPLAIN_ROWS:
            raise PredictionError(f"explain takes at most {MAX_EXPLAIN_ROWS} rows x features per request")
        perturbed = np.repeat(x, width, axis=0)  # row i * width + j is row i without feature j
        index = np.arange(len(perturbed))
        perturbed[index, index % width] = base[index % width]
        result = self.predict(np.concatenate([x, base[None, :], perturbed]))
        return {
            "importances": importances(result, count, width).tolist(),
            "baseline": base.tolist(),
            "baseline_prediction": result.predictions[count],
            "predictions": result.predictions[:count],
            "builtin_importances": self.builtin_importances(),
        }

    def unload(self) -> None:
        for member in self.members:
            member.runtime.unload()

    def _check_ensemble(self, task: str) -> None:
        self._check_inputs_agree()
        # Probe every member once: outputs (classes, probabilities) are only certain once seen.
        smoke = as_batch(self.smoke_inputs(2), self._columns)
        results = [member.runtime.predict(smoke) for member in self.members]
        with_proba = [result.probabilities is not None for result in results]
        if task == "classification" or any(with_proba):
            self._check_classifiers(results, with_proba)
        else:
            self._check_regressors(results)

    def _check_inputs_agree(self) -> None:
        signatures = [member.runtime.signature() for member in self.members]
        for key in ("input_kind", "n_features"):
            known = {repr(sig.get(key)) for sig in signatures if sig.get(key) is not None}
            if len(known) > 1:
                raise LoadFailed(f"the models of the ensemble disagree on {key.replace('_', ' ')}")

    def _check_classifiers(self, results: list[Prediction], with_proba: list[bool]) -> None:
        if not all(with_proba):
            raise LoadFailed("every model of a classifier ensemble must give class probabilities")
        # Labels may have made a JSON round trip (1 vs "1"), so compare them as text.
        labels = [[str(c) for c in result.classes or []] for result in results]
        if not labels[0] or any(other != labels[0] for other in labels[1:]):
            raise LoadFailed("the classifiers of the ensemble do not have the same classes in the same order")
        self._averages, self._classes = "probabilities", list(results[0].classes or [])

    def _check_regressors(self, results: list[Prediction]) -> None:
        try:
            shapes = {np.asarray(result.predictions, dtype=np.float64).shape for result in results}
        except (TypeError, ValueError):
            raise LoadFailed("every model of a regression ensemble must predict numbers") from None
        if len(shapes) != 1:
            raise LoadFailed("the models of the ensemble predict outputs of different shapes")
        self._averages = "values"

    def _combine(self, results: list[Prediction]) -> Prediction:
        try:
            if self._averages == "probabilities":
                proba = sum(w * np.asarray(r.probabilities, dtype=np.float64) for w, r in zip(self._weights, results))
                labels = self._classes
                return Prediction([labels[i] for i in np.argmax(proba, axis=1)], proba.tolist(), list(labels))
            values = sum(w * np.asarray(r.predictions, dtype=np.float64) for w, r in zip(self._weights, results))
            return Prediction(np.asarray(values).tolist())
        except (TypeError, ValueError, IndexError) as exc:
            raise ModelRuntimeError(f"the ensemble's outputs could not be combined: {exc}") from exc


def _numeric_rows(rows: Any) -> np.ndarray:
    try:
        x = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError):
        raise PredictionError("inputs must be a list of rows of numbers") from None
    if x.ndim != 2 or x.size == 0:
        raise PredictionError("inputs must be a non-empty list of rows of numbers of the same length")
    if not np.isfinite(x).all():
        raise PredictionError("inputs must be finite numbers")
    return x
