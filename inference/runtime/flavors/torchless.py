# Keeping torch out of processes that only ever touch skops artifacts.
#
# skops walks every scikit-learn module to list the estimators it knows, and scikit-learn's array API shim
# imports torch whenever it is installed: ~3 s and ~300 MB in every sklearn worker and every validation of
# an uploaded skops file, for nothing. An allow-listed skops artifact never needs torch, and libraries that
# probe for it take the refusal (an ImportError) as torch being absent. Pickles may hold anything and
# TorchScript needs torch, so callers refuse it only when every artifact in the process is skops.
from __future__ import annotations

import importlib.abc
import sys
from typing import Any


def refuse_torch(reason: str) -> bool:
    """Makes `import torch` fail from now on in this process; False if torch is already imported."""
    if "torch" in sys.modules:
        return False
    if not any(isinstance(finder, _RefuseTorch) for finder in sys.meta_path):
        # A finder rather than sys.modules["torch"] = None: scipy reads sys.modules for torch and would
        # take a None entry for the module itself.
        sys.meta_path.insert(0, _RefuseTorch(reason))
    return True


class _RefuseTorch(importlib.abc.MetaPathFinder):
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"torch is not loaded {self.reason}", name=name)
        return None
