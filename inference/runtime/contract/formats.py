# Serialization formats, told apart by file content alone (a client controls the file name).
# Nothing here unpickles or loads an artifact: zips are inspected through their central directory
# (member names only), pickles through their first two bytes, XGBoost and LightGBM files through their
# first bytes and ONNX files by walking their top-level protobuf fields (native_formats.py), so detection is
# safe to run on untrusted uploads before any decision about loading them.

from __future__ import annotations

import os
import zipfile

from inference.runtime.contract.native_formats import native_format

SKOPS = "skops"
PICKLE = "pickle"
TORCHSCRIPT = "torchscript"
TORCH_EXPORT = "torch_export"
XGBOOST_JSON = "xgboost_json"
XGBOOST_UBJ = "xgboost_ubj"
LIGHTGBM_TEXT = "lightgbm_text"
ONNX = "onnx"

# No flavor but sklearn's takes a pickle, whatever ALLOW_PICKLE_ARTIFACTS says: a pickle uploaded as xgboost,
# lightgbm or onnx is refused at upload and never loaded.
FLAVOR_FORMATS: dict[str, tuple[str, ...]] = {
    "sklearn": (SKOPS, PICKLE),
    "torch": (TORCHSCRIPT, TORCH_EXPORT),
    "xgboost": (XGBOOST_JSON, XGBOOST_UBJ),
    "lightgbm": (LIGHTGBM_TEXT,),
    "onnx": (ONNX,),
}
# Formats whose loading never needs torch: their processes refuse to import it (flavors/torchless.py).
TORCHLESS_FORMATS = frozenset({SKOPS, XGBOOST_JSON, XGBOOST_UBJ, LIGHTGBM_TEXT, ONNX})

_PICKLE_PROTO = 0x80
_PICKLE_PROTOCOLS = range(2, 6)
_ZIP_LOCAL_HEADER = b"PK\x03\x04"


class UnknownFormat(ValueError):
    pass


class FormatMismatch(ValueError):
    pass


class ArchiveTooLarge(ValueError):
    pass


ZIP_FORMATS = frozenset({SKOPS, TORCHSCRIPT, TORCH_EXPORT})
# More members than any real artifact has (a skops forest of 1,000 trees has a few thousand).
MAX_ZIP_MEMBERS = 100_000


def check_zip_expansion(path: str | os.PathLike[str], limit_bytes: int) -> None:
    """Refuse a zip whose members declare more bytes than `limit_bytes` once expanded, reading only its central
    directory. zipfile never inflates a member past its declared size, so the declaration bounds what loading
    can inflate: a zip bomb (a few MB declaring GBs) is refused before one byte of it is decompressed."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
        raise UnknownFormat("the artifact is a damaged or unsupported zip archive") from None
    if len(members) > MAX_ZIP_MEMBERS:
        raise ArchiveTooLarge(f"the archive has {len(members):,} members, more than the {MAX_ZIP_MEMBERS:,} allowed")
    expanded = sum(member.file_size for member in members)
    if expanded > limit_bytes:
        raise ArchiveTooLarge(
            f"the archive expands to {_size(expanded)} ({os.path.getsize(path):,} bytes compressed), more than "
            f"the {_size(limit_bytes)} of memory validation may use; it was refused before being decompressed")


def _size(count: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def detect_format(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as fh:
        head = fh.read(4)
    if len(head) >= 2 and head[0] == _PICKLE_PROTO and head[1] in _PICKLE_PROTOCOLS:
        return PICKLE
    if head == _ZIP_LOCAL_HEADER:
        return _zip_format(_zip_names(path))
    native = native_format(path)
    if native is not None:
        return native
    raise UnknownFormat(
        "unrecognised artifact format: expected a skops, pickle, TorchScript, torch.export, XGBoost (JSON or UBJSON "
        "save_model), LightGBM (text save_model) or ONNX file"
    )


def is_pickle_format(fmt: str) -> bool:
    return fmt == PICKLE


def check_flavor(flavor: str, fmt: str) -> None:
    allowed = FLAVOR_FORMATS.get(flavor)
    if allowed is None:
        raise FormatMismatch(f"unknown flavor {flavor!r}; expected one of {sorted(FLAVOR_FORMATS)}")
    if fmt not in allowed:
        raise FormatMismatch(f"a {flavor} model must be one of {', '.join(allowed)}; the artifact is {fmt}")


def _zip_names(path: str | os.PathLike[str]) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError):
        raise UnknownFormat("the artifact is a damaged or unsupported zip archive") from None


def _zip_format(names: list[str]) -> str:
    if "schema.json" in names:
        return SKOPS
    prefix = _torch_root(names)
    if prefix is None:
        raise UnknownFormat("the zip archive is neither a skops nor a PyTorch artifact")
    members = set(names)
    if f"{prefix}archive_format" in members and any(_is_export_model(n, prefix) for n in names):
        return TORCH_EXPORT
    has_code = any(n.startswith(f"{prefix}code/") for n in names)
    if has_code and f"{prefix}constants.pkl" in members and f"{prefix}data.pkl" in members:
        return TORCHSCRIPT
    if f"{prefix}data.pkl" in members:
        # torch.save output: its data.pkl goes through Python's unpickler, so it is a pickle.
        return PICKLE
    raise UnknownFormat("the zip archive is neither a skops nor a PyTorch artifact")


def _torch_root(names: list[str]) -> str | None:
    # PyTorch archives put every member under a single top-level folder (the file's stem).
    roots = {name.split("/", 1)[0] for name in names if "/" in name}
    if len(roots) != 1 or any("/" not in name for name in names):
        return None
    return f"{roots.pop()}/"


def _is_export_model(name: str, prefix: str) -> bool:
    return name.startswith(f"{prefix}models/") and name.endswith(".json")
