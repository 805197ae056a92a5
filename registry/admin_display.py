"""A model version as people read it in the admin: its signature as a table of columns, its input example,
metrics and validation figures rounded, its status as a badge."""

from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from core import figures

STATUS_COLOURS = {"ready": "#2e7d32", "validating": "#f9a825", "pending": "#757575", "failed": "#c62828"}
# Metrics shown first in the versions list, when a version has them (its others follow, alphabetically).
KEY_METRICS = ("accuracy", "f1", "f1_macro", "roc_auc", "auc", "precision", "recall", "r2", "rmse", "mae", "loss")
EXAMPLE_ROWS = 5


def badge(status: str, title: str = "") -> SafeString:
    colour = STATUS_COLOURS.get(status, "#757575")
    return format_html('<span class="sp-badge" style="background:{}" title="{}">{}</span>', colour, title, status)


def figure(value: Any) -> str:
    """A metric or a validation figure: numbers rounded, anything else as text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return figures.number(value)
    return str(value)


def key_metrics(metrics: dict[str, Any], limit: int = 2) -> SafeString:
    """The first `limit` metrics (the usual ones first), one a line."""
    names = sorted(metrics, key=lambda name: (KEY_METRICS.index(name) if name in KEY_METRICS else len(KEY_METRICS),
                                                name))
    if not names:
        return SafeString(figures.MISSING)
    return format_html_join("", '<div class="sp-metric">{} <b>{}</b></div>',
                            ((name, figure(metrics[name])) for name in names[:limit]))


def pairs_table(values: dict[str, Any], empty: str) -> SafeString:
    if not values:
        return format_html('<span class="sp-muted">{}</span>', empty)
    rows = format_html_join("", '<tr><th>{}</th><td class="sp-number">{}</td></tr>',
                            ((name, figure(value)) for name, value in sorted(values.items())))
    return format_html('<table class="sp-figures">{}</table>', rows)


# What the validation sandbox measured (registry.services records it), with units.
VALIDATION_ROWS = (("load_ms", "Load time", figures.ms), ("memory_mb", "Memory", figures.megabytes),
                   ("smoke", "Smoke prediction", lambda smoke: f"passed on {smoke.get('rows')} rows"
                    if isinstance(smoke, dict) else str(smoke)))


def validation_table(validation: dict[str, Any]) -> SafeString:
    rows = [(label, show(validation[key])) for key, label, show in VALIDATION_ROWS if validation.get(key) is not None]
    if not rows:
        return format_html('<span class="sp-muted">{}</span>', "Not validated yet.")
    return format_html('<table class="sp-figures">{}</table>',
                       format_html_join("", '<tr><th>{}</th><td class="sp-number">{}</td></tr>', rows))


def grid(head: list[str], rows: list[list[Any]]) -> SafeString:
    header = format_html_join("", "<th>{}</th>", ((name,) for name in head))
    body = format_html_join("", "<tr>{}</tr>", (
        (format_html_join("", "<td>{}</td>", ((figures.MISSING if cell is None else figure(cell),) for cell in row)),)
        for row in rows))
    return format_html('<table class="sp-figures"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
                       header, body)


def signature_columns(signature: dict[str, Any]) -> list[list[Any]]:
    """[name, dtype, nullable] per input column: the typed columns when the version has them, else the feature
    names (or positions) with the input tensor's dtype."""
    if signature.get("columns"):
        return [[c.get("name"), c.get("dtype"), "yes" if c.get("nullable") else "no"] for c in signature["columns"]]
    inputs = signature.get("inputs") or [{}]
    dtype = inputs[0].get("dtype") if len(inputs) == 1 else None
    if signature.get("input_kind") == "text":
        return [[inputs[0].get("name") or "text", dtype or "string", None]]
    names = signature.get("feature_names") or [f"[{i}]" for i in range(signature.get("n_features") or 0)]
    return [[name, dtype, None] for name in names]


def signature_table(signature: dict[str, Any]) -> SafeString:
    if not signature:
        return format_html('<span class="sp-muted">{}</span>', "Not known yet: validation infers it.")
    columns = signature_columns(signature)
    parts = [grid(["column", "dtype", "nullable"], columns) if columns else SafeString("")]
    if signature.get("classes") is not None:
        classes = ", ".join(str(name) for name in signature["classes"])
        parts.append(format_html('<p><b>Classes</b> ({}): {}</p>', len(signature["classes"]), classes))
    outputs = signature.get("outputs") or []
    if outputs:
        parts.append(format_html("<p><b>Outputs</b></p>{}", grid(
            ["name", "dtype", "shape"], [[o.get("name"), o.get("dtype"), str(o.get("shape"))] for o in outputs])))
    return format_html_join("", "{}", ((part,) for part in parts))


def input_example_table(example: Any) -> SafeString:
    """Records (a list of objects) as a table of their first rows; rows of values under positions."""
    if not example:
        return format_html('<span class="sp-muted">{}</span>', "None recorded with this version.")
    rows = example if isinstance(example, list) else [example]
    shown = rows[:EXAMPLE_ROWS]
    if all(isinstance(row, dict) for row in shown):
        head = list(dict.fromkeys(key for row in shown for key in row))
        cells = [[row.get(key) for key in head] for row in shown]
    else:
        width = max((len(row) if isinstance(row, list) else 1 for row in shown), default=0)
        head = [f"[{i}]" for i in range(width)]
        cells = [row if isinstance(row, list) else [row] for row in shown]
    more = format_html('<p class="sp-muted">{} more rows</p>', len(rows) - len(shown)) if len(rows) > len(shown) \
        else SafeString("")
    return format_html("{}{}", grid(head, cells), more)
