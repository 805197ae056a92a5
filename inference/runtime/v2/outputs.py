# The Open Inference Protocol (KServe V2) answers, without Django: a model's signature becomes its V2
# metadata, and a prediction becomes V2 output tensors, in JSON or binary on request. Requests are read
# in v2codec.py; this is pure Python with struct for the same reason: web processes stay free of numpy.
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from inference.runtime.v2.codec import STRUCT_CODES, CodecError, InferRequest, RequestedOutput
from inference.runtime.v2.rows import input_name

# The platform's signature dtypes (inference/runtime/contract/signature.py) as V2 datatypes.
_FROM_DTYPE = {"float64": "FP64", "float32": "FP32", "float16": "FP16", "int64": "INT64", "int32": "INT32",
               "bool": "BOOL", "string": "BYTES"}
_LABEL_OUTPUT = "predict"
_PROBABILITIES = "probabilities"


# --- metadata ------------------------------------------------------------------------------------


def datatype_of(dtype: str | None) -> str:
    return _FROM_DTYPE.get(dtype or "", "FP64")


def input_metadata(signature: dict[str, Any] | None) -> list[dict[str, Any]]:
    signature = signature or {}
    name = input_name(signature)
    if signature.get("input_kind") == "text":
        return [{"name": name, "datatype": "BYTES", "shape": [-1]}]
    if signature.get("columns"):
        # One [n] tensor per column, named after it (BYTES for strings), as pandas-style V2 clients send them.
        return [{"name": column["name"], "datatype": datatype_of(column["dtype"]), "shape": [-1]}
                for column in signature["columns"]]
    dtype = ((signature.get("inputs") or [{}])[0].get("dtype")) or "float64"
    return [{"name": name, "datatype": datatype_of(dtype), "shape": [-1, signature.get("n_features") or -1]}]


def output_metadata(signature: dict[str, Any] | None) -> list[dict[str, Any]]:
    signature = signature or {}
    classes = signature.get("classes")
    if classes:
        return [{"name": _LABEL_OUTPUT, "datatype": _label_datatype(classes), "shape": [-1]},
                {"name": _PROBABILITIES, "datatype": "FP64", "shape": [-1, len(classes)]}]
    shape = ((signature.get("outputs") or [{}])[0].get("shape")) or [-1]
    return [{"name": _LABEL_OUTPUT, "datatype": "FP64", "shape": [-1, shape[1]] if len(shape) == 2 else [-1]}]


def _label_datatype(values: list[Any]) -> str:
    if all(isinstance(value, bool) for value in values):
        return "BOOL"
    if all(type(value) is int and -(2 ** 63) <= value < 2 ** 63 for value in values):
        return "INT64"
    if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        return "FP64"
    return "BYTES"


# --- prediction -> response ----------------------------------------------------------------------


@dataclass
class OutputTensor:
    name: str
    datatype: str
    shape: list[int]
    data: list[Any]  # flat, row-major


def output_tensors(prediction: dict[str, Any], request: InferRequest) -> list[tuple[OutputTensor, bool]]:
    """The outputs asked for (all when none), each with whether it goes back as binary data: an
    output's own `binary_data` parameter, else the request's `binary_data_output`."""
    available = _available(prediction)
    default = request.binary_output
    if not request.outputs:
        return [(tensor, default) for tensor in available.values()]
    chosen = []
    for output in request.outputs:
        tensor = available.get(output.name)
        if tensor is None:
            raise CodecError(f"outputs: unknown output '{output.name[:64]}'; this model returns "
                             f"{', '.join(available)}.")
        if output.classification:
            tensor = _classification(prediction, output, tensor)
        chosen.append((tensor, default if output.binary is None else output.binary))
    return chosen


def _available(prediction: dict[str, Any]) -> dict[str, OutputTensor]:
    values = prediction["predictions"]
    n = len(values)
    if n and all(isinstance(value, list) for value in values):
        width = len(values[0])
        label = OutputTensor(_LABEL_OUTPUT, "FP64", [n, width], [float(v) for row in values for v in row])
    else:
        datatype = _label_datatype(values) if n else "FP64"
        data = [str(v) for v in values] if datatype == "BYTES" else values
        label = OutputTensor(_LABEL_OUTPUT, datatype, [n], data)
    tensors = {_LABEL_OUTPUT: label}
    probabilities = prediction.get("probabilities")
    if probabilities is not None:
        width = len(probabilities[0]) if probabilities else len(prediction.get("classes") or [])
        tensors[_PROBABILITIES] = OutputTensor(_PROBABILITIES, "FP64", [len(probabilities), width],
                                               [float(p) for row in probabilities for p in row])
    return tensors


def _classification(prediction: dict[str, Any], output: RequestedOutput, tensor: OutputTensor) -> OutputTensor:
    """The classification extension: the top-k classes per row as "<probability>:<index>:<label>"."""
    probabilities, classes = prediction.get("probabilities"), prediction.get("classes") or []
    if probabilities is None:
        raise CodecError(f"outputs: '{output.name[:64]}' cannot be classified: this model returns no "
                         "class probabilities.")
    k = min(output.classification, len(classes))
    data = []
    for row in probabilities:
        ranked = sorted(range(len(row)), key=lambda index: -row[index])[:k]
        data += [f"{row[index]:.6f}:{index}:{classes[index]}" for index in ranked]
    return OutputTensor(tensor.name, "BYTES", [len(probabilities), k], data)


def encode_response(body: dict[str, Any], outputs: list[tuple[OutputTensor, bool]]) -> tuple[bytes, int | None]:
    """(response bytes, JSON header length or None). Binary outputs follow the JSON header in order."""
    blobs, described = [], []
    for tensor, binary in outputs:
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        if binary:
            blob = _pack(tensor)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = tensor.data
        described.append(entry)
    header = json.dumps({**body, "outputs": described}, separators=(",", ":"), allow_nan=False).encode()
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def _pack(tensor: OutputTensor) -> bytes:
    code = STRUCT_CODES[tensor.datatype]
    if code is None:
        encoded = [str(value).encode("utf-8") for value in tensor.data]
        return b"".join(struct.pack("<I", len(item)) + item for item in encoded)
    return struct.pack(f"<{len(tensor.data)}{code}", *tensor.data)
