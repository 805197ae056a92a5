"""Artifact files in the store MODEL_STORE_URL names: the local folder MODEL_STORE_DIR (the default) or S3.

Paths are always generated here (model id + random name); nothing a client sends, the upload's file
name included, ever becomes part of a path. The same relative path is the file's place under
MODEL_STORE_DIR or its key under the S3 prefix.

What loads an artifact (validation, model servers) asks `local_artifact` for a file on its own disk: the
store's file itself when the store is local, else a copy in ARTIFACT_CACHE_DIR fetched once per sha256,
whose bytes are checked against the recorded sha256 before it is ever handed out.
"""

import contextlib
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from django.conf import settings

from core import objectstore
from core.errors import InvalidInput, PayloadTooLarge

_CHUNK = 1024 * 1024
# A refused artifact (its bytes no longer match) is not fetched again for this long: a model server asks for
# it every tick, and the answer will not change until someone replaces the object.
REFUSAL_MEMORY_S = 30.0


@dataclass(frozen=True)
class StoredFile:
    relative_path: str
    sha256: str
    size_bytes: int


class ArtifactUnavailable(Exception):
    """The artifact could not be given to a loader; the message is safe to show (no path, host or key)."""


class ArtifactRefused(ArtifactUnavailable):
    """The stored bytes are not the ones recorded at upload: they are never loaded."""


class ArtifactFetching(Exception):
    """A background fetch of the artifact is under way (`local_artifact(..., background=True)`): ask again."""


# --- the local folder -----------------------------------------------------------------------------

def store_root() -> Path:
    root = Path(settings.MODEL_STORE_DIR).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def artifact_abspath(relative_path: str) -> Path:
    """The file in the local store (MODEL_STORE_DIR); loaders use `local_artifact`, which also serves S3."""
    root = store_root()
    path = (root / relative_path).resolve()
    # Defence in depth: stored paths are generated, but a tampered row must not escape the store.
    if not path.is_relative_to(root):
        raise ValueError("artifact path escapes the model store")
    return path


def _copy_hashing(chunks: Iterable[bytes], destination: Path, limit: int) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(destination, "xb") as out:
        for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(limit)
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


# --- uploads --------------------------------------------------------------------------------------

@dataclass
class StagedArtifact:
    """An upload written to local disk and hashed, not yet in the store: `local_path` may be inspected
    (format detection) before `commit` puts it there."""

    local_path: Path
    relative_path: str
    sha256: str
    size_bytes: int
    committed: bool = False

    def commit(self) -> StoredFile:
        if objectstore.location() is not None:
            with open(self.local_path, "rb") as source:
                objectstore.put(self.relative_path, source)
        self.committed = True
        return StoredFile(relative_path=self.relative_path, sha256=self.sha256, size_bytes=self.size_bytes)


@contextlib.contextmanager
def artifact_upload(upload, *, model_id: int) -> Iterator[StagedArtifact]:
    """Streams an upload to local disk, hashing it on the way; the caller inspects `local_path` and commits.

    With the local store the file is written at its final place (as it always was) and commit has nothing
    left to do; with S3 it is staged under ARTIFACT_CACHE_DIR and commit streams it to the bucket. Whatever
    goes wrong before the commit, no file is left behind.
    """
    relative = f"{model_id}/{uuid.uuid4().hex}.artifact"
    if objectstore.location() is None:
        (store_root() / str(model_id)).mkdir(parents=True, exist_ok=True)
        destination = store_root() / relative
    else:
        destination = _cache_dir() / f".upload-{uuid.uuid4().hex}.partial"
    chunks = upload.chunks(_CHUNK) if hasattr(upload, "chunks") else iter(lambda: upload.read(_CHUNK), b"")
    staged = None
    try:
        sha256, size = _copy_hashing(chunks, destination, settings.MAX_ARTIFACT_BYTES)
        if size == 0:
            raise InvalidInput("artifact: the file is empty.", details={"field": "artifact"})
        staged = StagedArtifact(local_path=destination, relative_path=relative, sha256=sha256, size_bytes=size)
        yield staged
    except BaseException:
        destination.unlink(missing_ok=True)
        if staged is not None and staged.committed:
            delete_artifact(relative)
        raise
    finally:
        if objectstore.location() is not None:
            # The web tier never loads a model: the staged copy is not kept in its cache.
            destination.unlink(missing_ok=True)


def store_artifact(upload, *, model_id: int) -> StoredFile:
    """Streams an uploaded file into the store, hashing it on the way."""
    with artifact_upload(upload, model_id=model_id) as staged:
        return staged.commit()


# --- reads and deletes ----------------------------------------------------------------------------

def open_artifact(relative_path: str) -> BinaryIO | IO[bytes]:
    """A stored artifact's bytes as a stream, for a download (nothing loads them here)."""
    if objectstore.location() is None:
        return artifact_abspath(relative_path).open("rb")
    return objectstore.open_object(relative_path)


def delete_artifact(relative_path: str) -> None:
    if objectstore.location() is not None:
        objectstore.delete(relative_path)
        return
    try:
        artifact_abspath(relative_path).unlink(missing_ok=True)
    except ValueError:
        pass


def file_sha256(relative_path: str) -> str:
    digest = hashlib.sha256()
    with open_artifact(relative_path) as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- verified local copies ------------------------------------------------------------------------

# (relative path, sha256) -> (until, the failure): what the last fetch met, answered again until then.
_failed: dict[tuple[str, str], tuple[float, ArtifactUnavailable]] = {}
_fetching: dict[tuple[str, str], threading.Thread] = {}
_lock = threading.Lock()


def local_artifact(relative_path: str, sha256: str, *, background: bool = False) -> Path:
    """A file on this host holding the artifact, for a loader (which checks the sha256 again before loading).

    Local store: the stored file. S3: ARTIFACT_CACHE_DIR/<sha256>, fetched once, written to a temporary name
    and renamed only when its bytes hash to `sha256`; otherwise ArtifactRefused, and nothing is kept. With
    `background` a fetch runs in a thread and ArtifactFetching says so, for a caller that must not block (the
    model server's loop, whose heartbeat would stop for as long as a large artifact takes).
    """
    if objectstore.location() is None:
        return artifact_abspath(relative_path)
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise ArtifactRefused("the artifact's recorded sha256 is malformed; it was not loaded")
    cached = _cache_dir() / sha256
    if cached.is_file():
        return cached
    key = (relative_path, sha256)
    with _lock:
        failed = _failed.get(key)
        if failed and failed[0] > time.monotonic():
            raise failed[1]
        if background:
            if key not in _fetching or not _fetching[key].is_alive():
                _fetching[key] = threading.Thread(target=_fetch_quietly, args=(key, cached), daemon=True,
                                                  name=f"fetch-{sha256[:12]}")
                _fetching[key].start()
            raise ArtifactFetching()
    return _fetch(key, cached)


def _fetch_quietly(key: tuple[str, str], cached: Path) -> None:
    try:
        _fetch(key, cached)
    except ArtifactUnavailable:
        pass  # remembered in _failed for the next ask
    except Exception:  # noqa: BLE001 - a thread's failure must reach the next ask, not vanish
        with _lock:
            _failed[key] = (time.monotonic() + 5.0, ArtifactUnavailable("the artifact could not be fetched"))


def _fetch(key: tuple[str, str], cached: Path) -> Path:
    relative_path, sha256 = key
    partial = cached.with_name(f".{sha256}.{uuid.uuid4().hex}.partial")
    try:
        digest, _ = _copy_hashing(objectstore.chunks(relative_path), partial, limit=2**62)
        if digest != sha256:
            raise _remember(key, ArtifactRefused(
                f"sha256 mismatch: the stored artifact hashes to {digest[:12]}..., not the {sha256[:12]}... "
                "recorded at upload (it was changed or damaged in the store); it was not loaded"), REFUSAL_MEMORY_S)
        # Two processes fetching the same artifact both rename identical, verified bytes: either wins.
        os.replace(partial, cached)
    except FileNotFoundError:
        raise _remember(key, ArtifactUnavailable("the artifact is missing from the store; it was not loaded"),
                        5.0) from None
    except objectstore.StoreUnavailable:
        raise _remember(key, ArtifactUnavailable(
            "the artifact store is unavailable; the artifact could not be fetched"), 5.0) from None
    finally:
        partial.unlink(missing_ok=True)
    with _lock:
        _failed.pop(key, None)
    return cached


def _remember(key: tuple[str, str], failure: ArtifactUnavailable, for_s: float) -> ArtifactUnavailable:
    with _lock:
        _failed[key] = (time.monotonic() + for_s, failure)
    return failure


def _cache_dir() -> Path:
    folder = Path(settings.ARTIFACT_CACHE_DIR)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder
