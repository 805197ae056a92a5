"""PyTriton: Triton Inference Server's core (the tritonserver binary that the nvidia-pytriton wheel
bundles) with the demo's scikit-learn models as Python inference callables, run by bench/peers
(pytriton.py) in its own venv:
    python pytriton_app.py --models-dir DIR --http-port P --metrics-port M [--instances 2] [--max-batch 32]

Each model: one FP64 input "input" of shape [-1] per row, one output "probabilities", Triton's dynamic
batcher (max batch 32, no added queue delay by default) and --instances copies of the callable, which
Triton feeds as separate model instances.
"""

import argparse
from pathlib import Path

import joblib
import numpy as np
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def proba_callable(model):
    @batch
    def infer(**inputs):
        return {"probabilities": model.predict_proba(inputs["input"])}

    return infer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--queue-delay-us", type=int, default=0)
    args = parser.parse_args()
    config = TritonConfig(http_address="127.0.0.1", http_port=args.http_port, allow_grpc=False,
                          metrics_address="127.0.0.1", metrics_port=args.metrics_port, log_verbose=0)
    batching = ModelConfig(max_batch_size=args.max_batch,
                           batcher=DynamicBatcher(max_queue_delay_microseconds=args.queue_delay_us))
    with Triton(config=config) as triton:
        for folder in sorted(args.models_dir.iterdir()):
            if not (folder / "model.joblib").is_file():
                continue
            model = joblib.load(folder / "model.joblib")
            triton.bind(model_name=folder.name, infer_func=[proba_callable(model) for _ in range(args.instances)],
                        inputs=[Tensor(name="input", dtype=np.float64, shape=(-1,))],
                        outputs=[Tensor(name="probabilities", dtype=np.float64, shape=(-1,))], config=batching)
        triton.serve()  # until SIGINT


if __name__ == "__main__":
    main()
