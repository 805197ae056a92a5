"""Monitoring: read and configured with the manage scope; feedback comes from the clients that predict."""

ROUTES = [
    ("GET", "/api/v1/deployments/demo/predictions", "manage"),
    ("GET", "/api/v1/deployments/demo/predictions.csv", "manage"),
    ("GET", "/api/v1/deployments/demo/predictions.jsonl", "manage"),
    ("GET", "/api/v1/deployments/demo/quality", "manage"),
    ("GET", "/api/v1/deployments/demo/timeseries", "manage"),
    ("GET", "/api/v1/deployments/demo/drift", "manage"),
    ("POST", "/api/v1/deployments/demo/drift/compute", "manage"),
    ("GET", "/api/v1/models/churn/versions/1/reference", "manage"),
    ("PUT", "/api/v1/models/churn/versions/1/reference", "manage"),
    ("GET", "/api/v1/alert-rules/", "manage"),
    ("POST", "/api/v1/alert-rules/", "manage"),
    ("GET", "/api/v1/alert-rules/1/", "manage"),
    ("PATCH", "/api/v1/alert-rules/1/", "manage"),
    ("DELETE", "/api/v1/alert-rules/1/", "manage"),
    ("GET", "/api/v1/alerts/", "manage"),
    ("POST", "/api/v1/feedback", "predict"),
]
BODIES = {
    ("PUT", "/api/v1/models/churn/versions/1/reference"): {"inputs": [[1, 2, 3, 4]]},
    ("POST", "/api/v1/alert-rules/"): {"name": "matrix", "metric": "error_rate", "op": ">", "threshold": 0.5},
    ("PATCH", "/api/v1/alert-rules/1/"): {"threshold": 0.4},
    ("POST", "/api/v1/feedback"): {"request_id": "not-recorded", "label": 1},
}
