"""Async inference jobs and batch jobs: all in the predict scope (a caller sees its own jobs; manage sees all)."""

UUID = "00000000-0000-0000-0000-000000000001"

ROUTES = [
    ("POST", "/api/v1/predict/demo/async", "predict"),
    ("GET", "/api/v1/jobs", "predict"),
    ("GET", f"/api/v1/jobs/{UUID}", "predict"),
    ("DELETE", f"/api/v1/jobs/{UUID}", "predict"),
    ("GET", "/api/v1/batch-jobs/", "predict"),
    ("POST", "/api/v1/batch-jobs/", "predict"),
    ("GET", f"/api/v1/batch-jobs/{UUID}/", "predict"),
    ("DELETE", f"/api/v1/batch-jobs/{UUID}/", "predict"),
    ("GET", f"/api/v1/batch-jobs/{UUID}/result", "predict"),
]
BODIES = {
    ("POST", "/api/v1/predict/demo/async"): {"inputs": [[1, 2, 3, 4]]},
    ("POST", "/api/v1/batch-jobs/"): {"endpoint": "demo"},
}
MULTIPART = {("POST", "/api/v1/batch-jobs/")}
