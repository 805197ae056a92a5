# The boosters' and ONNX's own file formats, recognised from their bytes without loading anything:
#   XGBoost  save_model JSON:    {"learner": ...            (the model's first key, in every release since 1.0)
#            save_model UBJSON:  {L<8-byte length>learner   (a UBJSON object whose first key is "learner")
#   LightGBM Booster.save_model: "tree\nversion=v..."        (its text format's first two lines)
#   ONNX     a protobuf ModelProto: the top-level fields are walked (tags, varints and lengths only, no parsing of
#            their content) and must be ModelProto's, with ir_version and a graph.
from __future__ import annotations

import os
import re
from typing import BinaryIO

_HEAD_BYTES = 64
_XGBOOST_JSON = re.compile(rb'^\s*\{\s*"learner"\s*:')
# UBJSON: an object, then the key's length as i/U (1 byte), I (2), l (4) or L (8 bytes, big-endian), then the key.
_XGBOOST_UBJ = re.compile(rb"^\{(?:[iU]\x07|I\x00\x07|l\x00{3}\x07|L\x00{7}\x07)learner")
_LIGHTGBM = re.compile(rb"^tree\r?\nversion=v\d")
# ModelProto's fields (onnx.proto): number -> wire type (0 varint, 2 length-delimited).
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2, 26: 2}
_ONNX_IR_VERSION, _ONNX_GRAPH = 1, 7
_MAX_ONNX_FIELDS = 100_000


def native_format(path: str | os.PathLike[str]) -> str | None:
    with open(path, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
        if _XGBOOST_JSON.match(head):
            return "xgboost_json"
        if _XGBOOST_UBJ.match(head):
            return "xgboost_ubj"
        if _LIGHTGBM.match(head):
            return "lightgbm_text"
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(0)
        return "onnx" if _is_onnx_model(handle, size) else None


def _is_onnx_model(handle: BinaryIO, size: int) -> bool:
    seen: set[int] = set()
    position = 0
    for _ in range(_MAX_ONNX_FIELDS):
        if position == size:
            return {_ONNX_IR_VERSION, _ONNX_GRAPH} <= seen
        key = _varint(handle)
        if key is None:
            return False
        number, wire = key >> 3, key & 7
        if _ONNX_FIELDS.get(number) != wire:
            return False
        value = _varint(handle)
        if value is None:
            return False
        if wire == 2:
            if handle.seek(value, os.SEEK_CUR) > size:
                return False
        seen.add(number)
        position = handle.tell()
    return False


def _varint(handle: BinaryIO) -> int | None:
    result, shift = 0, 0
    while shift < 64:
        byte = handle.read(1)
        if not byte:
            return None
        result |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return result
        shift += 7
    return None
