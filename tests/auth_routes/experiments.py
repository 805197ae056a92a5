"""Experiments: managed with the manage scope (their feedback route is monitoring's: auth_routes/monitoring.py)."""

ROUTES = [
    ("GET", "/api/v1/experiments/", "manage"),
    ("POST", "/api/v1/experiments/", "manage"),
    ("GET", "/api/v1/experiments/1/", "manage"),
    ("PATCH", "/api/v1/experiments/1/", "manage"),
    ("DELETE", "/api/v1/experiments/1/", "manage"),
    ("POST", "/api/v1/experiments/1/start/", "manage"),
    ("POST", "/api/v1/experiments/1/pause/", "manage"),
    ("POST", "/api/v1/experiments/1/stop/", "manage"),
    ("POST", "/api/v1/experiments/1/promote/", "manage"),
    ("GET", "/api/v1/experiments/1/results/", "manage"),
]
BODIES = {
    ("POST", "/api/v1/experiments/"): {"name": "x", "endpoint": "demo",
                                       "variants": [{"name": "a", "deployment": "demo", "weight": 100}]},
    ("PATCH", "/api/v1/experiments/1/"): {"name": "y"},
}
