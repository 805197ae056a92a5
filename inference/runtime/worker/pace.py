# How long the model takes for a forward pass of n rows, learnt from the passes it ran: fixed + per_row * n.
# The batcher sizes the passes of a long request with it. Both parts matter: a model whose calls cost a fixed
# 100 ms (a GPU launch, a remote runtime) gains nothing from short passes and would crawl through 1-row ones,
# while one that costs per row (MC dropout) must be cut into slices to let the short requests through.
from __future__ import annotations

from collections import deque

# Passes remembered; old ones age out as the load, threads or the model's warmth change.
_SAMPLES = 32
_MIN_PER_ROW_S = 1e-9


class Pace:
    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=_SAMPLES)

    def add(self, rows: float, seconds: float) -> None:
        """A pass of `rows` (rows x samples for MC dropout) that took `seconds`."""
        if rows > 0:
            self._samples.append((rows, max(seconds, 0.0)))

    def rows_for(self, target_s: float, *, cost: int = 1, fallback: int = 1) -> int:
        """Rows of weight `cost` for a pass of about `target_s`, or of twice the fixed cost when that is longer
        (half of each pass spent on it at worst); `fallback` before any pass was seen. Never more than 8x the
        largest pass seen: beyond it the line is a guess."""
        if not self._samples:
            return max(1, fallback)
        largest = max(rows for rows, _ in self._samples)
        line = self._fit()
        if line is None:
            # Passes of one size only: the fixed part cannot be told from the slope. At least twice that size,
            # so that the next pass shows the line.
            rows, seconds = self._samples[-1]
            effective = rows * max(target_s / max(seconds, _MIN_PER_ROW_S), 2.0)
        else:
            fixed_s, per_row_s = line
            effective = (max(target_s, 2 * fixed_s) - fixed_s) / per_row_s
        return max(1, int(min(effective, 8 * largest) / max(cost, 1)))

    def _fit(self) -> tuple[float, float] | None:
        """(fixed, per row) seconds by least squares; None while every pass had the same size."""
        sizes = [rows for rows, _ in self._samples]
        times = [seconds for _, seconds in self._samples]
        mean_rows, mean_s = sum(sizes) / len(sizes), sum(times) / len(times)
        spread = sum((rows - mean_rows) ** 2 for rows in sizes)
        if spread == 0:
            return None
        slope = sum((rows - mean_rows) * (s - mean_s) for rows, s in zip(sizes, times)) / spread
        per_row_s = max(slope, _MIN_PER_ROW_S)
        return max(mean_s - per_row_s * mean_rows, 0.0), per_row_s
