"""Where a batch job's input and result files live.

By default in BATCH_DIR, on the host's disk. With an s3:// MODEL_STORE_URL they live in the store under
`batch/<job id>/`, so an RQ worker on any host runs the job and a web process on any host serves its result.

A result grows a chunk at a time, and a retried execution resumes from the last recorded offset (the row's
`result_bytes`), so every committed chunk must be durable at once. A local file is appended to and fsynced.
S3 objects cannot be appended to: each committed chunk is its own object, `<result>.parts/<offset>`, named by
the offset it starts at; the result is those parts in order, up to `result_bytes`. A part at or past
`result_bytes` belongs to an execution that died before recording it and is dropped, as the local file is
truncated.
"""

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from django.conf import settings

from core import objectstore
from inference.models import BatchJob

_CHUNK = 1024 * 1024
_PREFIX = "batch"


class ResultSink(Protocol):
    def write(self, data: bytes, /) -> int | None: ...

    def commit(self) -> int:
        """Makes what was written durable; the result's size in bytes."""
        ...


def batch_path(relative: str) -> Path:
    return Path(settings.BATCH_DIR) / relative


def _in_store() -> bool:
    return objectstore.location() is not None


def _key(relative: str) -> str:
    return f"{_PREFIX}/{relative}"


def _parts(job: BatchJob) -> str:
    return f"{_key(job.result_path)}.parts/"


# --- input ----------------------------------------------------------------------------------------

def input_save(job: BatchJob, upload: Any) -> None:
    upload.seek(0)
    if _in_store():
        objectstore.put(_key(job.input_path), upload)
        return
    target = batch_path(job.input_path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(target, "xb") as out:
        os.chmod(target, 0o600)
        shutil.copyfileobj(upload, out, _CHUNK)


@contextlib.contextmanager
def input_opened(job: BatchJob) -> Iterator[IO[bytes]]:
    if not _in_store():
        with open(batch_path(job.input_path), "rb") as source:
            yield source
        return
    # A private scratch copy on the worker's own disk (gone when closed): the job re-reads and skips rows.
    with tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR) as scratch:
        for data in objectstore.chunks(_key(job.input_path)):
            scratch.write(data)
        scratch.seek(0)
        yield scratch


# --- results --------------------------------------------------------------------------------------

class _FileSink:
    def __init__(self, handle: IO[bytes]):
        self.handle = handle

    def write(self, data: bytes, /) -> int | None:
        return self.handle.write(data)

    def commit(self) -> int:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        return self.handle.tell()


class _StoreSink:
    def __init__(self, job: BatchJob):
        self.parts = _parts(job)
        self.position = job.result_bytes
        self.buffer = io.BytesIO()

    def write(self, data: bytes, /) -> int | None:
        return self.buffer.write(data)

    def commit(self) -> int:
        data = self.buffer.getvalue()
        if data:
            objectstore.put(f"{self.parts}{self.position:015d}", io.BytesIO(data))
            self.position += len(data)
            self.buffer = io.BytesIO()
        return self.position


@contextlib.contextmanager
def result_sink(job: BatchJob) -> Iterator[ResultSink]:
    """Where an execution appends its rows, starting at the recorded `result_bytes`."""
    if _in_store():
        result_truncate(job)
        yield _StoreSink(job)
        return
    path = batch_path(job.result_path)
    with open(path, "r+b" if path.exists() else "w+b") as handle:
        # Rows past the last recorded offset belong to an execution that died before recording them.
        handle.truncate(job.result_bytes)
        handle.seek(job.result_bytes)
        yield _FileSink(handle)


def _stored_parts(job: BatchJob) -> list[tuple[int, str, int]]:
    found = []
    for key, size in objectstore.keys(_parts(job)):
        offset = key.rsplit("/", 1)[-1]
        if offset.isdigit():
            found.append((int(offset), key, size))
    return sorted(found)


def result_truncate(job: BatchJob) -> None:
    if not _in_store():
        path = batch_path(job.result_path)
        if path.exists():
            with open(path, "r+b") as handle:
                handle.truncate(job.result_bytes)
        return
    for offset, key, _ in _stored_parts(job):
        if offset >= job.result_bytes:
            objectstore.delete(key)


def result_exists(job: BatchJob) -> bool:
    if not _in_store():
        return batch_path(job.result_path).exists()
    # Every recorded byte was in the bucket before it was recorded, and the objects go only with the row (the
    # sweeper's purge): the row answers, without a request to the store for each job a list shows.
    return job.result_bytes > 0


def result_chunks(job: BatchJob) -> Iterator[bytes]:
    """The result's first `result_bytes` bytes (a running job may have written past them)."""
    if not _in_store():
        return _read(batch_path(job.result_path), job.result_bytes)
    return _read_parts(_stored_parts(job), job.result_bytes)


def _read(path: Path, size: int, block: int = 256 * 1024) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while size > 0:
            data = handle.read(min(block, size))
            if not data:
                return
            size -= len(data)
            yield data


def _read_parts(parts: list[tuple[int, str, int]], size: int) -> Iterator[bytes]:
    position = 0
    for offset, key, length in parts:
        if offset != position or position >= size:
            return  # a gap, or parts past the recorded end: what follows is not the result
        yield from objectstore.chunks(key, limit=min(length, size - position))
        position += length


def files_delete(job_id: Any) -> None:
    if _in_store():
        objectstore.delete_prefix(_key(f"{job_id}/"))
        return
    shutil.rmtree(batch_path(str(job_id)), ignore_errors=True)
