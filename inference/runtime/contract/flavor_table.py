# Format -> runtime class. Entries are dotted strings resolved on first use, so importing the
# table (the web process does) never imports torch or sklearn. A new format is one module plus one
# line here.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from inference.runtime.contract.formats import UnknownFormat

if TYPE_CHECKING:
    from inference.runtime.contract.base import ModelRuntime

RUNTIMES: dict[str, str] = {
    "skops": "inference.runtime.flavors.sklearn:SkopsRuntime",
    "pickle": "inference.runtime.flavors.sklearn:PickleRuntime",
    "torchscript": "inference.runtime.flavors.torch:TorchScriptRuntime",
    "torch_export": "inference.runtime.flavors.torch:TorchExportRuntime",
    "xgboost_json": "inference.runtime.flavors.xgboost:XGBoostJsonRuntime",
    "xgboost_ubj": "inference.runtime.flavors.xgboost:XGBoostUbjRuntime",
    "lightgbm_text": "inference.runtime.flavors.lightgbm:LightGBMTextRuntime",
    "onnx": "inference.runtime.flavors.onnx:OnnxRuntime",
}


def get_runtime_class(fmt: str) -> type[ModelRuntime]:
    from inference.runtime.contract.base import ModelRuntime

    target = RUNTIMES.get(fmt)
    if target is None:
        raise UnknownFormat(f"no runtime serves the {fmt!r} format")
    module_name, _, class_name = target.partition(":")
    runtime_class = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(runtime_class, type) and issubclass(runtime_class, ModelRuntime)):
        raise TypeError(f"{target} is not a ModelRuntime")
    return runtime_class


def create_runtime(fmt: str) -> ModelRuntime:
    return get_runtime_class(fmt)()
