"""The alerts the seed documents ask for, as rules `make serve` creates (notifications off until someone adds a
webhook or an e-mail address). deploy/kubernetes/components/prometheus-rules/prometheus-rules.yaml holds the
same four for teams that alert from Prometheus; tests/monitoring/test_defaults.py keeps the two in step."""

DEFAULT_RULES = [
    {"name": "High error rate", "metric": "error_rate", "op": ">", "threshold": 0.05, "for_s": 300, "window_s": 300},
    {"name": "High p95 latency", "metric": "p95_ms", "op": ">", "threshold": 1000.0, "for_s": 300, "window_s": 300},
    {"name": "High cache miss rate", "metric": "cache_miss_rate", "op": ">", "threshold": 0.5, "for_s": 600,
     "window_s": 600},
    {"name": "Failed health checks", "metric": "health", "op": "<", "threshold": 1.0, "for_s": 60, "window_s": 300},
]
