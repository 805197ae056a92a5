"""The torch demo model: demand-mlp, an MLP with dropout saved as TorchScript."""

from __future__ import annotations

import pathlib
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import nn

from demo.training.common import (
    DEMAND_CLASSES,
    TEST_SIZE,
    TORCHSCRIPT_SUFFIX,
    DemoModel,
    classification_metrics,
    demo_tags,
)

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


def build_demand_mlp(out_dir: pathlib.Path, seed: int) -> DemoModel:
    params: dict[str, Any] = {"n_samples": 6000, "hidden": 64, "dropout": 0.2, "epochs": 15, "batch_size": 128,
                              "lr": 3e-3}
    X, y = _demand_data(np.random.default_rng(seed), params["n_samples"])
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=TEST_SIZE, random_state=seed)
    # Weight init and dropout masks draw from torch's global RNG; forking it keeps the build
    # deterministic without disturbing the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _DemandMLP(_DEMAND_FEATURES, params["hidden"], len(DEMAND_CLASSES), params["dropout"])
        _train_mlp(model, torch.from_numpy(X_train), torch.from_numpy(y_train), params, seed)
    with torch.no_grad():
        y_pred = model(torch.from_numpy(X_test)).argmax(dim=1).numpy()
    path = _save_torchscript(model, out_dir / f"demand-mlp{TORCHSCRIPT_SUFFIX}")
    return DemoModel(
        name="demand-mlp",
        description="PyTorch MLP with dropout bucketing demand into low / medium / high from 8 features.",
        task="classification",
        flavor="torch",
        path=path,
        signature=_demand_signature(),
        metrics=classification_metrics(y_test, y_pred),
        params=params,
        tags=demo_tags("neural-net", input_kind="tabular", uncertainty="mc-dropout"),
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
