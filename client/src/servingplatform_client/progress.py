"""Progress bars on stderr for uploads, downloads and waits (rich), or nothing at all.

Shown by default where a person watches (a terminal, a notebook), never in a script's piped output.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Protocol


class Task(Protocol):
    def update(self, *, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None: ...

    def advance(self, amount: float) -> None: ...


class _Silent:
    def update(self, *, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None:
        return None

    def advance(self, amount: float) -> None:
        return None


class _RichTask:
    def __init__(self, progress: Any, task_id: Any) -> None:
        self._progress, self._id = progress, task_id

    def update(self, *, completed: float | None = None, total: float | None = None,
               description: str | None = None) -> None:
        changes = {name: value for name, value in
                   (("completed", completed), ("total", total), ("description", description)) if value is not None}
        self._progress.update(self._id, **changes)

    def advance(self, amount: float) -> None:
        self._progress.advance(self._id, amount)


def watched() -> bool:
    """True in a terminal or a Jupyter kernel: where a person sees stderr as it is written."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


class Reporter:
    """Makes one bar (or spinner) per operation; `enabled=None` decides by `watched()`."""

    def __init__(self, enabled: bool | None = None, *, stream: IO[str] | None = None) -> None:
        self.enabled = watched() if enabled is None else enabled
        self._stream = stream

    @contextmanager
    def task(self, description: str, *, total: float | None = None, kind: str = "steps") -> Iterator[Task]:
        """kind: "bytes" (sizes and speed), "rows" (n of m) or "steps" (a spinner with the elapsed time)."""
        if not self.enabled:
            yield _Silent()
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TransferSpeedColumn,
        )

        columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
        if kind == "bytes":
            columns += [BarColumn(), DownloadColumn(), TransferSpeedColumn()]
        elif kind == "rows":
            columns += [BarColumn(), MofNCompleteColumn()]
        columns.append(TimeElapsedColumn())
        console = Console(file=self._stream or sys.stderr)
        with Progress(*columns, console=console, transient=False) as progress:
            yield _RichTask(progress, progress.add_task(description, total=total))


class ReadProgress:
    """A file wrapper that reports each read to a task: the progress of an upload httpx streams from it.

    httpx seeks to the start before sending (and again when the client retries), so a seek to 0 rewinds
    the count too.
    """

    def __init__(self, file: IO[bytes], task: Task) -> None:
        self._file, self._task, self._done = file, task, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._done += len(chunk)
        self._task.update(completed=self._done)
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._file.seek(offset, whence)
        if position == 0:
            self._done = 0
            self._task.update(completed=0)
        return position

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()
