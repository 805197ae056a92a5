# The Open Inference Protocol (KServe V2) over HTTP, without Django: request bodies (JSON, optionally
# compressed, optionally followed by raw tensors as in the binary tensor data extension) become the rows
# the prediction path takes. The way back (model metadata, predictions as V2 output tensors) is in
# v2outputs.py.
#
# Pure Python with struct on purpose, like inputs.py: this runs on every V2 request in web processes,
# which never import numpy-heavy code, and struct reads little-endian arrays at C speed.
from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ("binary_tensor_data", "classification")

# name -> struct code (little-endian element), or None for BYTES (length-prefixed strings).
STRUCT_CODES = {
    "BOOL": "?", "INT8": "b", "INT16": "h", "INT32": "i", "INT64": "q",
    "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q",
    "FP16": "e", "FP32": "f", "FP64": "d", "BYTES": None,
}
DATATYPES = tuple(STRUCT_CODES)
_INT_RANGES = {
    name: ((0, 2 ** bits - 1) if name.startswith("U") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    for name, bits in (("INT8", 8), ("INT16", 16), ("INT32", 32), ("INT64", 64),
                       ("UINT8", 8), ("UINT16", 16), ("UINT32", 32), ("UINT64", 64))
}
_FLOAT_LIMITS = {"FP16": 65504.0, "FP32": 3.4028234663852886e38}
_DECOMPRESSORS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class CodecError(Exception):
    """A request the protocol layer refuses; `message` is safe to show, `status` is the HTTP status."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    data: list[Any]  # flat, row-major


@dataclass
class RequestedOutput:
    name: str
    binary: bool | None = None
    classification: int = 0


@dataclass
class InferRequest:
    id: str | None
    parameters: dict[str, Any]
    inputs: list[Tensor]
    outputs: list[RequestedOutput] = field(default_factory=list)

    @property
    def binary_output(self) -> bool:
        return self.parameters.get("binary_data_output") is True


# --- request body --------------------------------------------------------------------------------


def decompress(body: bytes, encoding: str | None, *, max_bytes: int) -> bytes:
    """Content-Encoding gzip/deflate (tritonclient's request_compression_algorithm), bounded: a small
    compressed body must not inflate past the same limit a plain body has."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in _DECOMPRESSORS:
        raise CodecError(f"Content-Encoding '{encoding[:32]}' is not supported; use gzip, deflate or none.",
                         status=415)
    inflater = zlib.decompressobj(_DECOMPRESSORS[encoding])
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        raise CodecError(f"The body is not valid {encoding} data.") from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise CodecError(f"The decompressed body is larger than the limit of {max_bytes} bytes.", status=413)
    return data


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON header, binary tail). Without Inference-Header-Content-Length the whole body is JSON."""
    if header_length is None:
        return body, b""
    text = header_length.strip()
    if not text.isdigit() or len(text) > 19:
        raise CodecError(f"{HEADER_LENGTH} must be a non-negative integer.")
    length = int(text)
    if not 0 < length <= len(body):
        raise CodecError(f"{HEADER_LENGTH} is {length} but the body has {len(body)} bytes.")
    return body[:length], body[length:]


def parse_infer_request(header: Any, binary: bytes) -> InferRequest:
    """Checks the JSON header field by field and reads every input's data (inline or from `binary`)."""
    if not isinstance(header, dict):
        raise CodecError("The inference request must be a JSON object.")
    request_id = header.get("id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > 128):
        raise CodecError("id: must be a string of at most 128 characters.")
    parameters = _parameters(header.get("parameters"), "parameters")
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise CodecError("inputs: must be a non-empty list of tensors.")
    reader = _BinaryReader(binary)
    inputs = [_input(raw, index, reader) for index, raw in enumerate(raw_inputs)]
    _check_unique([tensor.name for tensor in inputs], "inputs")
    if reader.remaining:
        raise CodecError(f"The body has {reader.remaining} bytes after the last binary input that no input's "
                         "binary_data_size accounts for.")
    return InferRequest(id=request_id, parameters=parameters, inputs=inputs,
                        outputs=_requested_outputs(header.get("outputs")))


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CodecError(f"{where}: must be a JSON object.")
    return value


def _check_unique(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise CodecError(f"{where}: '{name[:64]}' appears more than once.")
        seen.add(name)


def _input(raw: Any, index: int, reader: _BinaryReader) -> Tensor:
    where = f"inputs[{index}]"
    if not isinstance(raw, dict):
        raise CodecError(f"{where}: must be a JSON object with name, shape, datatype and data.")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise CodecError(f"{where}.name: must be a non-empty string.")
    where = f"input '{name[:64]}'"
    datatype = raw.get("datatype")
    if datatype not in STRUCT_CODES:
        raise CodecError(f"{where}: datatype must be one of {', '.join(DATATYPES)}.")
    shape = _shape(raw.get("shape"), where)
    count = math.prod(shape)
    parameters = _parameters(raw.get("parameters"), f"{where}.parameters")
    if any(key.startswith("shared_memory") for key in parameters):
        raise CodecError(f"{where}: shared memory is not supported; send the data inline or as binary data.")
    size = parameters.get("binary_data_size")
    if size is None:
        if "data" not in raw:
            raise CodecError(f"{where}: needs 'data' or parameters.binary_data_size.")
        data = _json_data(raw["data"], datatype, count, where)
    elif "data" in raw:
        raise CodecError(f"{where}: give either 'data' or parameters.binary_data_size, not both.")
    else:
        data = _binary_data(reader.take(size, where), datatype, count, where)
    return Tensor(name=name, datatype=datatype, shape=shape, data=data)


def _shape(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(type(dim) is int and dim >= 0 for dim in value):
        raise CodecError(f"{where}: shape must be a list of non-negative integers.")
    if len(value) > 8:
        raise CodecError(f"{where}: shape has {len(value)} dimensions; at most 8 are supported.")
    return value


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    # Iterative: depth is bounded by the JSON parser already, but recursion per element is slow.
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _json_data(data: Any, datatype: str, count: int, where: str) -> list[Any]:
    flat = _flatten(data)
    if len(flat) != count:
        raise CodecError(f"{where}: shape holds {count} elements but data has {len(flat)}.")
    check = _ELEMENT_CHECKS[_family(datatype)]
    for position, value in enumerate(flat):
        problem = check(value, datatype)
        if problem:
            raise CodecError(f"{where}: element {position}: {problem}.")
    return flat


def _family(datatype: str) -> str:
    if datatype in _INT_RANGES:
        return "int"
    if datatype.startswith("FP"):
        return "float"
    return datatype


def _check_bool(value: Any, datatype: str) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false for BOOL, got {_kind(value)}"


def _check_int(value: Any, datatype: str) -> str | None:
    if type(value) is not int:
        return f"expected an integer for {datatype}, got {_kind(value)}"
    low, high = _INT_RANGES[datatype]
    return None if low <= value <= high else f"{value} is out of range for {datatype}"


def _check_float(value: Any, datatype: str) -> str | None:
    if type(value) is not float and type(value) is not int:
        return f"expected a number for {datatype}, got {_kind(value)}"
    return _float_problem(float(value), datatype)


def _float_problem(value: float, datatype: str) -> str | None:
    if value - value != 0.0:
        return "NaN and Infinity are not allowed"
    limit = _FLOAT_LIMITS.get(datatype)
    return f"{value:g} overflows {datatype}" if limit is not None and abs(value) > limit else None


def _check_bytes(value: Any, datatype: str) -> str | None:
    return None if isinstance(value, str) else f"expected a string for BYTES, got {_kind(value)}"


_ELEMENT_CHECKS = {"BOOL": _check_bool, "int": _check_int, "float": _check_float, "BYTES": _check_bytes}


class _BinaryReader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.offset = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def take(self, size: Any, where: str) -> memoryview:
        if type(size) is not int or size < 0:
            raise CodecError(f"{where}: binary_data_size must be a non-negative integer.")
        if size > self.remaining:
            raise CodecError(f"{where}: binary_data_size is {size} but only {self.remaining} bytes of binary "
                             f"data remain (is {HEADER_LENGTH} right?).")
        chunk = self.data[self.offset:self.offset + size]
        self.offset += size
        return chunk


def _binary_data(chunk: memoryview, datatype: str, count: int, where: str) -> list[Any]:
    code = STRUCT_CODES[datatype]
    if code is None:
        return _binary_strings(chunk, count, where)
    expected = count * struct.calcsize(code)
    if len(chunk) != expected:
        raise CodecError(f"{where}: {count} {datatype} elements take {expected} bytes but binary_data_size "
                         f"is {len(chunk)}.")
    values = list(struct.unpack(f"<{count}{code}", chunk))
    if datatype.startswith("FP"):
        for position, value in enumerate(values):
            problem = _float_problem(value, datatype)
            if problem:
                raise CodecError(f"{where}: element {position}: {problem}.")
    return values


def _binary_strings(chunk: memoryview, count: int, where: str) -> list[Any]:
    values, offset = [], 0
    for position in range(count):
        if offset + 4 > len(chunk):
            raise CodecError(f"{where}: binary BYTES data ends before element {position}.")
        (length,) = struct.unpack_from("<I", chunk, offset)
        offset += 4
        if offset + length > len(chunk):
            raise CodecError(f"{where}: element {position} claims {length} bytes past the end of its data.")
        try:
            values.append(bytes(chunk[offset:offset + length]).decode("utf-8"))
        except UnicodeDecodeError:
            raise CodecError(f"{where}: element {position} is not valid UTF-8 text.") from None
        offset += length
    if offset != len(chunk):
        raise CodecError(f"{where}: binary_data_size is {len(chunk)} but {count} strings take {offset} bytes.")
    return values


def _requested_outputs(value: Any) -> list[RequestedOutput]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CodecError("outputs: must be a list of {\"name\": ...} objects.")
    outputs = []
    for index, raw in enumerate(value):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise CodecError(f"outputs[{index}]: must be an object with a 'name' string.")
        parameters = _parameters(raw.get("parameters"), f"outputs[{index}].parameters")
        binary = parameters.get("binary_data")
        classes = parameters.get("classification", 0)
        if binary is not None and not isinstance(binary, bool):
            raise CodecError(f"outputs[{index}].parameters.binary_data: must be true or false.")
        if type(classes) is not int or classes < 0:
            raise CodecError(f"outputs[{index}].parameters.classification: must be a non-negative integer.")
        if any(key.startswith("shared_memory") for key in parameters):
            raise CodecError(f"outputs[{index}]: shared memory is not supported.")
        outputs.append(RequestedOutput(name=raw["name"], binary=binary, classification=classes))
    _check_unique([output.name for output in outputs], "outputs")
    return outputs


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"
