"""Artifact files under MODEL_STORE_DIR.

Paths are always generated here (model id + random name); nothing a client sends, the upload's file
name included, ever becomes part of a path.
"""

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from core.errors import InvalidInput, PayloadTooLarge

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredFile:
    relative_path: str
    sha256: str
    size_bytes: int


def store_root() -> Path:
    root = Path(settings.MODEL_STORE_DIR).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def artifact_abspath(relative_path: str) -> Path:
    root = store_root()
    path = (root / relative_path).resolve()
    # Defence in depth: stored paths are generated, but a tampered row must not escape the store.
    if not path.is_relative_to(root):
        raise ValueError("artifact path escapes the model store")
    return path


def open_artifact(relative_path: str) -> BinaryIO:
    """A stored artifact's bytes, for a download (nothing loads them here)."""
    return artifact_abspath(relative_path).open("rb")


def _copy_hashing(chunks, destination: Path, limit: int) -> tuple[str, int]:
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


def store_artifact(upload, *, model_id: int) -> StoredFile:
    """Streams an uploaded file into the store, hashing it on the way."""
    folder = store_root() / str(model_id)
    folder.mkdir(parents=True, exist_ok=True)
    relative = f"{model_id}/{uuid.uuid4().hex}.artifact"
    destination = store_root() / relative
    chunks = upload.chunks(_CHUNK) if hasattr(upload, "chunks") else iter(lambda: upload.read(_CHUNK), b"")
    try:
        sha256, size = _copy_hashing(chunks, destination, settings.MAX_ARTIFACT_BYTES)
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
    if size == 0:
        destination.unlink(missing_ok=True)
        raise InvalidInput("artifact: the file is empty.", details={"field": "artifact"})
    return StoredFile(relative_path=relative, sha256=sha256, size_bytes=size)


def delete_artifact(relative_path: str) -> None:
    try:
        artifact_abspath(relative_path).unlink(missing_ok=True)
    except ValueError:
        pass


def file_sha256(relative_path: str) -> str:
    digest = hashlib.sha256()
    with open(artifact_abspath(relative_path), "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
