"""Figures as people read them on admin pages: rounded, with their unit (`3,495 ms`, `7.1 %`, `4.2 MB`).

The API answers raw numbers (clients compute with them); only pages use these. None reads as an en dash.
"""

from datetime import UTC, datetime

MISSING = "\u2013"  # an en dash: no figure yet


def number(value: float | int | None) -> str:
    """Integers whole, with thousands separators; other numbers with three or four significant digits."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4g}"


def ms(value: float | None) -> str:
    if value is None:
        return MISSING
    if abs(value) >= 100:
        return f"{value:,.0f} ms"
    return f"{value:.1f} ms" if abs(value) >= 10 else f"{value:.2f} ms"


def megabytes(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.1f} MB"


def percent(rate: float | None) -> str:
    """A rate in [0, 1] as a percentage: small ones keep two decimals, so 0.04 % does not read as 0."""
    if rate is None:
        return MISSING
    share = rate * 100
    if share == 0:
        return "0 %"
    return f"{share:.2f} %" if abs(share) < 1 else f"{share:.1f} %"


def per_second(value: float | None) -> str:
    return MISSING if value is None else f"{number(value)} req/s"


def size(size_bytes: int | None) -> str:
    """A file size in KB, MB or GB (1024-based, as file managers show them)."""
    if size_bytes is None:
        return MISSING
    for unit, scale in (("GB", 1024 ** 3), ("MB", 1024 ** 2), ("KB", 1024)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:,.1f} {unit}"
    return f"{size_bytes} B"


def ago(epoch_s: float | None, now: float | None = None) -> str:
    """How long ago a Unix time was, coarsely (`12 s ago`, `3 min ago`, `2 h ago`, else the UTC date)."""
    if epoch_s is None:
        return MISSING
    now = datetime.now(UTC).timestamp() if now is None else now
    elapsed = max(now - epoch_s, 0.0)
    if elapsed < 60:
        return f"{elapsed:.0f} s ago"
    if elapsed < 3600:
        return f"{elapsed / 60:.0f} min ago"
    if elapsed < 86400:
        return f"{elapsed / 3600:.0f} h ago"
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M UTC")
