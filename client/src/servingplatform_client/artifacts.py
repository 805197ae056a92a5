"""Saving a fitted model in a format the platform serves, without pickle.

scikit-learn objects go through skops, XGBoost and LightGBM models through their own `save_model`,
torch modules through `torch.export` (given an example input), ONNX models as their bytes. Each library
is imported only when such a model is passed; models are recognised by their classes' modules.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from servingplatform_client.payloads import is_dataframe, to_inputs

FLAVORS = ("sklearn", "torch", "xgboost", "lightgbm", "onnx")
# Only suffixes that name one flavor; the server detects the format from the bytes whatever we send.
_SUFFIX_FLAVORS = {".skops": "sklearn", ".pt2": "torch", ".pt": "torch", ".ts": "torch", ".ubj": "xgboost",
                   ".onnx": "onnx"}


@dataclass(frozen=True)
class Artifact:
    path: Path
    flavor: str
    task: str  # for a model created on the way: classification, regression or other
    feature_names: list[str] | None


def _modules(model: Any) -> list[str]:
    return [f"{cls.__module__}.{cls.__qualname__}" for cls in type(model).__mro__]


def detect_flavor(model: Any) -> str | None:
    """The flavor of a fitted model object, or None when it is not one the platform serves."""
    names = _modules(model)
    roots = {name.split(".", 1)[0] for name in names}
    if any(name.startswith("torch.nn.modules.module.Module") for name in names):
        return "torch"
    for flavor in ("xgboost", "lightgbm", "onnx"):
        if flavor in roots:
            return flavor
    if hasattr(model, "get_params") and (hasattr(model, "predict") or hasattr(model, "transform")):
        return "sklearn"
    return None


def flavor_of_path(path: Path) -> str:
    flavor = _SUFFIX_FLAVORS.get(path.suffix.lower())
    if flavor is None:
        raise ValueError(f"cannot tell the flavor of {path.name} from its name: pass flavor= (one of "
                         f"{', '.join(FLAVORS)})")
    return flavor


def task_of(model: Any) -> str:
    tags = getattr(model, "__sklearn_tags__", None)
    kind = None
    if callable(tags):
        try:
            kind = tags().estimator_type
        except Exception:  # noqa: BLE001 - a third-party estimator's tags may be incomplete
            kind = None
    kind = kind or getattr(model, "_estimator_type", None)
    if kind == "classifier" or (kind is None and hasattr(model, "classes_")):
        return "classification"
    if kind == "regressor":
        return "regression"
    return "other"


def feature_names_of(model: Any) -> list[str] | None:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        names = getattr(model, "feature_names", None)  # XGBoost and LightGBM boosters
    if callable(names):
        names = names()
    return [str(name) for name in names] if names is not None and len(names) else None


@contextmanager
def saved(model_or_path: Any, *, flavor: str | None, input_example: Any = None) -> Iterator[Artifact]:
    """The artifact as a file: a path as given, a model saved into a temporary folder for the upload."""
    if isinstance(model_or_path, (str, os.PathLike)):
        path = Path(model_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is not a file")
        yield Artifact(path, flavor or flavor_of_path(path), "other", None)
        return
    detected = detect_flavor(model_or_path)
    if detected is None:
        raise TypeError(f"cannot save a {type(model_or_path).__name__}: pass a fitted scikit-learn, XGBoost, "
                        "LightGBM, torch or ONNX model, or the path of a saved artifact")
    if flavor and flavor != detected:
        raise ValueError(f"flavor={flavor!r} does not match a {type(model_or_path).__name__} (a {detected} model); "
                         "save it in that flavor's format first and pass the path")
    with tempfile.TemporaryDirectory(prefix="sp-artifact-") as folder:
        path = _SAVERS[detected](model_or_path, Path(folder), input_example)
        yield Artifact(path, detected, task_of(model_or_path), feature_names_of(model_or_path))


def _save_sklearn(model: Any, folder: Path, _example: Any) -> Path:
    try:
        import skops.io as sio
    except ImportError:
        raise ImportError("saving a scikit-learn model needs skops: pip install 'servingplatform-client[sklearn]'") \
            from None
    path = folder / "model.skops"
    sio.dump(model, path)
    return path


def _save_xgboost(model: Any, folder: Path, _example: Any) -> Path:
    path = folder / "model.json"  # XGBoost's own JSON format (the scikit-learn wrappers write it too)
    model.save_model(str(path))
    return path


def _save_lightgbm(model: Any, folder: Path, _example: Any) -> Path:
    booster = getattr(model, "booster_", model)  # LGBMClassifier/LGBMRegressor wrap a Booster
    path = folder / "model.txt"
    booster.save_model(str(path))
    return path


def _save_onnx(model: Any, folder: Path, _example: Any) -> Path:
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _save_torch(model: Any, folder: Path, example: Any) -> Path:
    import torch

    if example is None:
        raise ValueError("saving a torch module needs input_example= (a few rows of its input) for torch.export")
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    rows = example.to_numpy().tolist() if is_dataframe(example) else to_inputs(example)
    tensor = torch.as_tensor(rows, dtype=dtype)
    if tensor.ndim == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.shape[0] < 2:
        # torch.export specializes a dimension whose example size is 1: two rows keep the batch dynamic.
        tensor = torch.cat([tensor, tensor])
    batch = torch.export.Dim("batch")
    program = torch.export.export(model.eval(), (tensor,), dynamic_shapes=({0: batch},))
    path = folder / "model.pt2"
    torch.export.save(program, str(path))
    return path


_SAVERS = {"sklearn": _save_sklearn, "xgboost": _save_xgboost, "lightgbm": _save_lightgbm, "onnx": _save_onnx,
           "torch": _save_torch}
