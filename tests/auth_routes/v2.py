"""The Open Inference Protocol routes (inference/v2/urls.py) and pairwise scoring."""

_INFER = {"inputs": [{"name": "inputs", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}

ROUTES = [
    ("GET", "/v2", "public"),
    ("GET", "/v2/health/live", "public"),
    ("GET", "/v2/health/ready", "public"),
    ("GET", "/v2/models/churn", "predict"),
    ("GET", "/v2/models/churn/versions/1", "predict"),
    ("GET", "/v2/models/churn/ready", "predict"),
    ("GET", "/v2/models/churn/versions/1/ready", "predict"),
    ("POST", "/v2/models/churn/infer", "predict"),
    ("POST", "/v2/models/churn/versions/1/infer", "predict"),
    ("POST", "/api/v1/predict/demo/score", "predict"),
]
BODIES = {
    ("POST", "/v2/models/churn/infer"): _INFER,
    ("POST", "/v2/models/churn/versions/1/infer"): _INFER,
    ("POST", "/api/v1/predict/demo/score"): {"candidates": ["gpt-small"], "prompts": ["hello"]},
}
