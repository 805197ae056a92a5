"""A deployment's figures as tables with units, for the admin (the API answers the raw numbers)."""

from collections.abc import Callable
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from core import figures

STATUS_COLOURS = {"ready": "#2e7d32", "loading": "#f9a825", "pending": "#757575", "failed": "#c62828",
                  "stopped": "#9e9e9e"}

# The runtime the model server records (inference/modelserver/loop.py), row by row: key, label, format.
RUNTIME_ROWS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("loaded", "Loaded", lambda value: "yes" if value else "no"),
    ("serving_generation", "Serving generation", figures.number),
    ("load_ms", "Load time", figures.ms),
    ("memory_mb", "Memory (all replicas)", figures.megabytes),
    ("queue_depth", "Queued requests", figures.number),
    ("throughput_rps", "Throughput", figures.per_second),
    ("last_request_at", "Last request", figures.ago),
    ("updated_at", "Figures updated", figures.ago),
)
REPLICA_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("replica", "replica", figures.number),
    ("generation", "generation", figures.number),
    ("state", "state", str),
    ("pid", "pid", str),
    ("load_ms", "load time", figures.ms),
    ("memory_mb", "memory", figures.megabytes),
    ("requests", "requests", figures.number),
    ("restarts", "restarts", figures.number),
    ("last_error", "last error", str),
)


INSTANCE_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("name", "instance", str),
    ("pool", "pool", str),
    ("status", "status", str),
    ("loaded", "loaded", lambda value: "yes" if value else "no"),
    ("heartbeat_at", "heartbeat", lambda value: figures.ago(value.timestamp()) if value else "-"),
    ("memory_mb", "memory", figures.megabytes),
    ("queue_depth", "queued", figures.number),
)


def instances_table(instances: list[dict[str, Any]]) -> SafeString:
    """A deployment on each live model server instance (inference/deployments/instances.py)."""
    if not instances:
        return format_html("<p>{}</p>", "No live model server instance holds it.")
    head = format_html_join("", "<th>{}</th>", ((label,) for _, label, _ in INSTANCE_COLUMNS))
    rows = format_html_join("", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", (
        (show(row.get(key)),) for key, _, show in INSTANCE_COLUMNS)),) for row in instances))
    return format_html('<table class="sp-figures"><tr>{}</tr>{}</table>', head, rows)


def badge(status: str, title: str = "") -> SafeString:
    colour = STATUS_COLOURS.get(status, "#757575")
    return format_html('<span class="sp-badge" style="background:{}" title="{}">{}</span>', colour, title, status)


def table(rows: list[tuple[str, str]]) -> SafeString:
    body = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
    return format_html('<table class="sp-figures">{}</table>', body)


def runtime_table(runtime: dict[str, Any]) -> SafeString:
    """What is loaded and how it performs; replicas in a table of their own. Keys the model server adds later
    are listed too, rounded."""
    if not runtime:
        return format_html("<p>{}</p>", "Nothing reported yet: the model server records it within seconds.")
    known = {key for key, _, _ in RUNTIME_ROWS} | {"replicas"}
    rows = [(label, show(runtime.get(key))) for key, label, show in RUNTIME_ROWS if key in runtime]
    rows += [(key.replace("_", " "), _any(value)) for key, value in runtime.items() if key not in known]
    replicas = runtime.get("replicas") or []
    return format_html("{}{}", table(rows), replica_table(replicas) if replicas else "")


def replica_table(replicas: list[dict[str, Any]]) -> SafeString:
    head = format_html_join("", "<th>{}</th>", ((label,) for _, label, _ in REPLICA_COLUMNS))
    body = format_html_join("", "<tr>{}</tr>", (
        (format_html_join("", "<td>{}</td>", ((_cell(replica.get(key), show),) for key, _, show in REPLICA_COLUMNS)),)
        for replica in replicas))
    return format_html('<table class="sp-figures sp-replicas"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
                       head, body)


def live_table(summary: dict[str, Any], runtime: dict[str, Any]) -> SafeString:
    latency = summary["latency_ms"]
    return table([
        ("Requests", figures.number(summary["requests"])),
        ("Errors", f"{figures.number(summary['errors'])} ({figures.percent(summary['error_rate'])})"),
        ("Latency p50 / p95 / p99", " / ".join(figures.ms(latency[q]) for q in ("p50", "p95", "p99"))),
        ("Mean batch size", figures.number(summary["mean_batch_size"])),
        ("Cache hit rate", figures.percent(summary["cache_hit_rate"])),
        ("Throughput", figures.per_second(runtime.get("throughput_rps"))),
        ("Queued requests", figures.number(runtime.get("queue_depth"))),
    ])


def _cell(value: Any, show: Callable[[Any], str]) -> str:
    return figures.MISSING if value in (None, "") else show(value)


def _any(value: Any) -> str:
    if isinstance(value, (int, float)) or value is None:
        return figures.number(value)
    return str(value)
