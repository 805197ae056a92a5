"""KServe's Python ModelServer (the `kserve` package; servers/kserve_app.py): a kserve.Model subclass
answering predict_proba, 2 uvicorn worker processes (`--workers 2`: since 0.14 the ModelServer spawns
them itself and shares one socket), gRPC off, the per-request latency log and uvicorn's access log off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .base import OUT, SERVERS, Peer, V2Protocol

# What KServe's own log config sets at INFO, raised to WARNING: a log line per request is not serving.
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "loggers": {name: {"handlers": ["stderr"], "level": "WARNING", "propagate": False}
                for name in ("kserve", "kserve.trace", "uvicorn", "uvicorn.error", "uvicorn.access")},
}


class KServe(Peer):
    """V1 protocol ({"instances": [[...]]} -> {"predictions": [[...]]}): KServe hands the parsed dict
    straight to predict(), where V2 first builds an InferRequest of InferInput objects, and the
    answer back; V1 is its fast path on single rows (`--peers kserve-v2` measures the other)."""

    name = "kserve"
    title = "KServe {version} ModelServer, V1, 2 workers"
    venv_name = "kserve"
    packages = ("kserve",)
    version_of = "kserve"
    workers = 2

    def command(self, port: int, models: Path) -> list[str]:
        log_config = OUT / "kserve-log-config.json"
        log_config.write_text(json.dumps(LOG_CONFIG))
        return [str(self.python), str(SERVERS / "kserve_app.py"), "--models-dir", str(models),
                "--http_port", str(port), "--workers", str(self.workers), "--enable_grpc", "false",
                "--enable_latency_logging", "false", "--log_config_file", str(log_config)]

    def path(self, model: str) -> str:
        return f"/v1/models/{model}:predict"

    def template(self, model: str, width: int) -> str:
        return '{"instances":[{row}]}'

    def probabilities(self, answer: Any) -> list[float]:
        return answer["predictions"][0]


class KServeV2(V2Protocol, KServe):
    """The same server through the Open Inference Protocol (V2), one FP64 tensor of shape [1, n]."""

    name = "kserve-v2"
    title = "KServe {version} ModelServer, V2, 2 workers"
