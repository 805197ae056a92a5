"""MLServer (Seldon; `mlserver` + `mlserver-sklearn`) at its documented throughput settings: adaptive batching
(max_batch_size 32, max_batch_time 5 ms), parallel_workers 2, debug off. bench_serving.py and bench_peers.py both
start it from here."""

from __future__ import annotations

import json
from pathlib import Path

from .base import Peer, V2Protocol, free_ports

# MLServer 1.7.x's parallel workers die at start with the newest uvloop; py-spy serves bench_serving's
# --profile.
MLSERVER_PACKAGES = ("mlserver", "mlserver-sklearn", "uvloop==0.21.0", "httptools", "py-spy")
BATCHING = {"max_batch_size": 32, "max_batch_time": 0.005}
PARALLEL_WORKERS = 2


def write_mlserver_settings(folder: Path, ports: dict[str, int]) -> None:
    """settings.json in the folder, model-settings.json beside each <name>/model.joblib."""
    settings = {"debug": False, "parallel_workers": PARALLEL_WORKERS, "host": "127.0.0.1", **ports}
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    for model in sorted(path.parent for path in folder.glob("*/model.joblib")):
        model_settings = {"name": model.name, "implementation": "mlserver_sklearn.SKLearnModel", **BATCHING,
                          "parameters": {"uri": "./model.joblib"}}
        (model / "model-settings.json").write_text(json.dumps(model_settings, indent=2))


class MLServer(V2Protocol, Peer):
    """V2 with one FP64 row of shape [1, n], asking for predict_proba only: one pass of the model, as the
    platform makes for its labels and probabilities (asking for "predict" too would run a forest twice)."""

    name = "mlserver"
    title = "MLServer {version}, adaptive batching 32 / 5 ms, 2 parallel workers, V2"
    venv_name = "mlserver"
    packages = MLSERVER_PACKAGES
    version_of = "mlserver"
    output_name = "predict_proba"

    def command(self, port: int, models: Path) -> list[str]:
        grpc, metrics = free_ports(2)
        write_mlserver_settings(models, {"http_port": port, "grpc_port": grpc, "metrics_port": metrics})
        return [str(self.venv / "bin" / "mlserver"), "start", "."]
