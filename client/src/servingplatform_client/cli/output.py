"""What `sp` prints: the API's JSON with --json, else tables and one-line summaries."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from servingplatform_client.session import JSON


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.console = Console(soft_wrap=True, highlight=False, width=None if sys.stdout.isatty() else 160)

    def result(self, data: Any, *human: Callable[[Any], None]) -> None:
        """`data` as JSON, or shown by each of `human` in turn."""
        if self.as_json:
            sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
            return
        for show in human:
            show(data)

    def line(self, text: str) -> None:
        self.console.print(text, markup=False)

    def listing(self, items: list[JSON], columns: Mapping[str, str | Callable[[JSON], Any]], *, empty: str) -> None:
        """`items` as JSON, or as a table with one column per entry: header -> field name or function."""
        cells = [[column(item) if callable(column) else item.get(column) for column in columns.values()]
                 for item in items]
        self.result(items, lambda _: self.table(list(columns), cells, empty=empty))

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, empty: str) -> None:
        if not rows:
            self.line(empty)
            return
        table = Table(*columns, box=None, pad_edge=False, header_style="bold")
        for row in rows:
            table.add_row(*("" if value is None else str(value) for value in row))
        self.console.print(table)


def aliases_text(model: JSON) -> str:
    return ", ".join(f"{a['name']}->v{a['version']}" for a in model.get("aliases", []))


def version_line(version: JSON) -> str:
    reason = f" ({version['status_reason']})" if version.get("status_reason") else ""
    aliases = f" [{', '.join(version['aliases'])}]" if version.get("aliases") else ""
    return f"{version['model']} v{version['version']}: {version['status']}{reason}{aliases} " \
           f"{version['flavor']}/{version.get('format') or '?'} sha256 {str(version.get('sha256'))[:12]}"


def deployment_line(deployment: JSON) -> str:
    reason = f" ({deployment['status_reason']})" if deployment.get("status_reason") else ""
    return f"{deployment['endpoint']}: {deployment['status']}{reason} -> {deployment['model']} v{deployment['version']}"


def prediction_rows(answer: JSON) -> list[list[Any]]:
    probabilities = answer.get("probabilities") or []
    rows = []
    for index, prediction in enumerate(answer.get("predictions", [])):
        confidence = f"{max(probabilities[index]):.4f}" if index < len(probabilities) else None
        rows.append([index, json.dumps(prediction), confidence])
    return rows


def show_prediction(out: Output, answer: JSON) -> None:
    out.line(f"{answer['endpoint']} -> {answer['model']} v{answer['version']}, {answer['latency_ms']:.1f} ms"
             f"{' (cached)' if answer.get('cached') else ''}, request {answer['request_id']}")
    out.table(["row", "prediction", "probability"], prediction_rows(answer), empty="no rows")


def job_line(job: JSON) -> str:
    error = f" ({job['error']['message']})" if job.get("error") else ""
    ident = job.get("job_id") or job.get("id")
    progress = f" {job['rows_done']}/{job['total_rows']} rows" if "rows_done" in job else ""
    return f"{ident}: {job['status']}{error} {job['endpoint']}{progress}"
