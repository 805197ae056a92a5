"""KServe's Python ModelServer serving the demo's scikit-learn models, run by bench/peers (kserve.py) in its
own venv:
    python kserve_app.py --models-dir DIR --http_port PORT --workers 2 --enable_grpc false
        --enable_latency_logging false --log_config_file FILE

The model class is what KServe's own sklearnserver does with PREDICT_PROBA on: `get_predict_input` turns the
V1 body ({"instances": [[...]]}) or a V2 InferRequest into an array, and `get_predict_response` answers in
the same protocol. A sync predict(), as sklearnserver's, runs on the event loop without a thread hop.
"""

import argparse
from functools import wraps
from pathlib import Path

import joblib
import kserve
import kserve.protocol.rest.server as rest_server
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnProba(kserve.Model):
    def __init__(self, name, path):
        super().__init__(name)
        self.path = path
        self.model = None
        self.load()

    def load(self):
        self.model = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        instances = get_predict_input(payload)
        return get_predict_response(payload, self.model.predict_proba(instances), self.name)


def loopback_only(config):
    """KServe's REST server binds 0.0.0.0 and has no option for it; this benchmark serves on 127.0.0.1."""

    @wraps(config)
    def make(*args, **kwargs):
        kwargs["host"] = "127.0.0.1"
        return config(*args, **kwargs)

    return make


def main():
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--models-dir", type=Path, required=True)
    args, _ = parser.parse_known_args()
    rest_server.uvicorn.Config = loopback_only(rest_server.uvicorn.Config)
    models = [SKLearnProba(folder.name, folder / "model.joblib") for folder in sorted(args.models_dir.iterdir())
              if (folder / "model.joblib").is_file()]
    kserve.ModelServer().start(models)


if __name__ == "__main__":  # the workers are spawned: they import this file again and must not start a server
    main()
