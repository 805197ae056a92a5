"""The V2 codec alone: JSON and binary tensor bodies -> rows, predictions -> output tensors."""

import gzip
import json
import struct
import zlib

import numpy as np
import pytest
from tritonclient.http import InferInput, InferRequestedOutput, InferResult
from tritonclient.http._utils import _get_inference_request

from inference.runtime.v2.codec import (
    CodecError,
    InferRequest,
    decompress,
    parse_infer_request,
    split_body,
)
from inference.runtime.v2.outputs import encode_response, input_metadata, output_metadata, output_tensors
from inference.runtime.v2.rows import rows_from_inputs

TABULAR = {"input_kind": "tabular", "n_features": 3, "feature_names": None, "classes": [0, 1],
           "inputs": [{"name": "inputs", "dtype": "float64", "shape": [-1, 3]}]}
NAMED = {**TABULAR, "feature_names": ["age", "income", "tenure"]}
TEXT = {"input_kind": "text", "n_features": None, "classes": None,
        "inputs": [{"name": "inputs", "dtype": "string", "shape": [-1]}]}


def tensor(name="inputs", shape=(2, 3), datatype="FP64", **fields):
    return {"name": name, "shape": list(shape), "datatype": datatype, **fields}


def parse(header: dict, binary: bytes = b"") -> InferRequest:
    return parse_infer_request(header, binary)


def rows(header: dict, signature=TABULAR, binary: bytes = b"") -> list:
    return rows_from_inputs(parse(header, binary).inputs, signature)


def refused(call, *args, status: int = 400, **kwargs) -> str:
    with pytest.raises(CodecError) as caught:
        call(*args, **kwargs)
    assert caught.value.status == status
    return caught.value.message


def triton_body(*inputs, outputs=None, binary_output=None) -> tuple[bytes, int | None]:
    """A body exactly as tritonclient's InferenceServerClient.infer builds it."""
    return _get_inference_request(inputs=list(inputs), request_id="r-1", outputs=outputs, sequence_id=0,
                                  sequence_start=False, sequence_end=False, priority=0, timeout=None,
                                  custom_parameters=None)


# --- JSON data ------------------------------------------------------------------------------------


def test_flat_and_nested_json_data_give_the_same_rows():
    nested = rows({"inputs": [tensor(data=[[1, 2, 3], [4.5, 5, 6]])]})
    flat = rows({"inputs": [tensor(data=[1, 2, 3, 4.5, 5, 6])]})
    assert nested == flat == [[1.0, 2.0, 3.0], [4.5, 5.0, 6.0]]


def test_id_parameters_and_requested_outputs_are_read():
    request = parse({"id": "abc", "parameters": {"binary_data_output": True},
                     "inputs": [tensor(data=[0] * 6)],
                     "outputs": [{"name": "probabilities", "parameters": {"binary_data": False, "classification": 2}}]})
    assert (request.id, request.binary_output) == ("abc", True)
    assert [(o.name, o.binary, o.classification) for o in request.outputs] == [("probabilities", False, 2)]


@pytest.mark.parametrize("header, problem", [
    ({"inputs": []}, "inputs: must be a non-empty list"),
    ({"inputs": [tensor(data=[1] * 6)], "id": 5}, "id: must be a string"),
    ({"inputs": [tensor(datatype="BF16", data=[1] * 6)]}, "datatype must be one of BOOL, INT8"),
    ({"inputs": [tensor(shape=(2, -3), data=[])]}, "shape must be a list of non-negative integers"),
    ({"inputs": [tensor(data=[1, 2, 3])]}, "shape holds 6 elements but data has 3"),
    ({"inputs": [tensor()]}, "needs 'data' or parameters.binary_data_size"),
    ({"inputs": [tensor(data=[1, 2, 3, 4, 5, "6"])]}, "element 5: expected a number for FP64, got a string"),
    ({"inputs": [tensor(datatype="INT8", data=[1, 2, 3, 4, 5, 300])]}, "element 5: 300 is out of range for INT8"),
    ({"inputs": [tensor(datatype="UINT8", data=[1, 2, 3, 4, 5, -1])]}, "-1 is out of range for UINT8"),
    ({"inputs": [tensor(datatype="INT32", data=[1, 2, 3, 4, 5, 1.5])]}, "expected an integer for INT32"),
    ({"inputs": [tensor(datatype="FP32", data=[1, 2, 3, 4, 5, 1e39])]}, "1e+39 overflows FP32"),
    ({"inputs": [tensor(datatype="BOOL", data=[1, 2, 3, 4, 5, 6])]}, "expected true or false for BOOL"),
    ({"inputs": [tensor(data=[1] * 6), tensor(data=[1] * 6)]}, "inputs: 'inputs' appears more than once"),
    ({"inputs": [tensor(data=[1] * 6, parameters={"shared_memory_region": "r"})]}, "shared memory is not supported"),
    ({"inputs": [tensor(data=[1] * 6)], "outputs": [{"name": "p"}, {"name": "p"}]}, "outputs: 'p' appears more"),
    ({"inputs": [tensor(data=[1] * 6)], "outputs": [{"name": "p", "parameters": {"binary_data": 1}}]},
     "binary_data: must be true or false"),
])
def test_malformed_requests_are_refused_with_the_field_named(header, problem):
    assert problem in refused(parse, header)


def test_a_non_object_body_is_refused():
    assert "must be a JSON object" in refused(parse, [1, 2])


# --- binary tensor data extension ---------------------------------------------------------------


@pytest.mark.parametrize("datatype, code, values", [
    ("FP64", "d", [0.1, -2.5, 1e-300, 3.0, 1.7976931348623157e308, 0.3333333333333333]),
    ("FP32", "f", [0.5, -2.5, 1.25, 3.0, 65504.0, -0.125]),
    ("FP16", "e", [0.5, -2.5, 1.25, 3.0, 65504.0, -0.125]),
    ("INT8", "b", [-128, 127, 0, 1, 2, 3]),
    ("INT16", "h", [-32768, 32767, 0, 1, 2, 3]),
    ("INT32", "i", [-2 ** 31, 2 ** 31 - 1, 0, 1, 2, 3]),
    ("INT64", "q", [-2 ** 53, 2 ** 53, 0, 1, 2, 3]),
    ("UINT8", "B", [0, 255, 1, 2, 3, 4]),
    ("UINT16", "H", [0, 65535, 1, 2, 3, 4]),
    ("UINT32", "I", [0, 2 ** 32 - 1, 1, 2, 3, 4]),
    ("UINT64", "Q", [0, 2 ** 53, 1, 2, 3, 4]),
    ("BOOL", "?", [True, False, True, True, False, False]),
])
def test_binary_inputs_of_every_numeric_datatype_decode_little_endian(datatype, code, values):
    blob = struct.pack(f"<6{code}", *values)
    got = rows({"inputs": [tensor(datatype=datatype, parameters={"binary_data_size": len(blob)})]}, binary=blob)
    assert got == [[float(v) for v in values[:3]], [float(v) for v in values[3:]]]


def test_a_body_built_by_tritonclient_splits_and_decodes_exactly():
    matrix = np.array([[0.1, 0.2, 0.3], [1e-12, -7.25, 123456.789]], dtype=np.float64)
    given = InferInput("inputs", list(matrix.shape), "FP64")
    given.set_data_from_numpy(matrix, binary_data=True)
    body, header_length = triton_body(given)
    header, binary = split_body(body, str(header_length))
    request = parse(json.loads(header), binary)
    assert request.id == "r-1" and request.binary_output  # no outputs named: all come back binary
    assert rows_from_inputs(request.inputs, TABULAR) == matrix.tolist()


def test_binary_text_inputs_from_tritonclient_decode_to_strings():
    texts = np.array(["gpt-large || prove the theorem", "été ☀"], dtype=np.object_)
    given = InferInput("inputs", [2], "BYTES")
    given.set_data_from_numpy(texts, binary_data=True)
    body, header_length = triton_body(given)
    header, binary = split_body(body, str(header_length))
    assert rows_from_inputs(parse(json.loads(header), binary).inputs, TEXT) == list(texts)


def test_binary_sizes_are_checked_against_the_shape_and_the_body():
    blob = struct.pack("<6d", *range(6))
    sized = lambda size: {"inputs": [tensor(parameters={"binary_data_size": size})]}
    assert "6 FP64 elements take 48 bytes but binary_data_size is 40" in refused(parse, sized(40), blob[:40])
    assert "binary_data_size is 48 but only 40 bytes" in refused(parse, sized(48), blob[:40])
    assert "8 bytes after the last binary input" in refused(parse, sized(48), blob + b"\0" * 8)
    assert "give either 'data' or parameters.binary_data_size" in refused(
        parse, {"inputs": [tensor(data=[0] * 6, parameters={"binary_data_size": 48})]}, blob)
    assert "binary_data_size must be a non-negative integer" in refused(parse, sized(-1), blob)


def test_binary_floats_must_be_finite():
    blob = struct.pack("<6d", 1, 2, 3, 4, 5, float("nan"))
    assert "element 5: NaN and Infinity are not allowed" in refused(
        parse, {"inputs": [tensor(parameters={"binary_data_size": 48})]}, blob)


def test_binary_strings_must_be_well_formed_utf8():
    text = lambda payload: {"inputs": [tensor(shape=(1,), datatype="BYTES",
                                              parameters={"binary_data_size": len(payload)})]}
    bad = struct.pack("<I", 2) + b"\xff\xfe"
    assert "element 0 is not valid UTF-8" in refused(parse, text(bad), bad)
    short = struct.pack("<I", 9) + b"abc"
    assert "claims 9 bytes past the end" in refused(parse, text(short), short)


@pytest.mark.parametrize("value, problem", [
    ("abc", "must be a non-negative integer"), ("-5", "must be a non-negative integer"),
    ("0", "is 0 but the body has 10 bytes"), ("11", "is 11 but the body has 10 bytes"),
])
def test_the_header_length_must_fit_the_body(value, problem):
    assert problem in refused(split_body, b"0123456789", value)


def test_without_a_header_length_the_whole_body_is_json():
    assert split_body(b'{"inputs": []}', None) == (b'{"inputs": []}', b"")


def test_compressed_bodies_are_inflated_within_the_limit():
    body = b'{"inputs": []}' * 10
    assert decompress(gzip.compress(body), "gzip", max_bytes=1000) == body
    assert decompress(zlib.compress(body), "deflate", max_bytes=1000) == body
    assert decompress(body, None, max_bytes=1000) == body
    bomb = gzip.compress(b"\0" * 1_000_000)
    assert "larger than the limit of 1000 bytes" in refused(decompress, bomb, "gzip", max_bytes=1000, status=413)
    assert "not supported" in refused(decompress, body, "br", max_bytes=1000, status=415)
    assert "not valid gzip data" in refused(decompress, b"not gzip", "gzip", max_bytes=1000)


# --- tensors -> rows ----------------------------------------------------------------------------


def test_text_models_take_one_bytes_tensor_of_shape_n_or_n_by_1():
    assert rows({"inputs": [tensor(shape=(2,), datatype="BYTES", data=["a", "b"])]}, TEXT) == ["a", "b"]
    assert rows({"inputs": [tensor(shape=(2, 1), datatype="BYTES", data=[["a"], ["b"]])]}, TEXT) == ["a", "b"]
    assert "datatype must be BYTES, not FP64" in refused(rows, {"inputs": [tensor(shape=(2,), data=[1, 2])]}, TEXT)
    assert "expected shape [n] or [n, 1]" in refused(
        rows, {"inputs": [tensor(shape=(1, 2), datatype="BYTES", data=["a", "b"])]}, TEXT)


def test_tabular_models_take_an_n_by_k_numeric_tensor():
    assert "expected shape [n, 3], got [6]" in refused(rows, {"inputs": [tensor(shape=(6,), data=[1] * 6)]})
    assert "expected shape [n, 3], got [3, 2]" in refused(rows, {"inputs": [tensor(shape=(3, 2), data=[1] * 6)]})
    assert "BYTES is for text models" in refused(
        rows, {"inputs": [tensor(datatype="BYTES", data=["1"] * 6)]})
    bools = rows({"inputs": [tensor(shape=(1, 3), datatype="BOOL", data=[True, False, True])]})
    assert bools == [[1.0, 0.0, 1.0]]


def test_one_tensor_per_named_feature_builds_rows_in_the_models_feature_order():
    columns = [tensor("tenure", (2,), data=[7, 8]), tensor("age", (2, 1), data=[[30], [40]]),
               tensor("income", (2,), datatype="INT64", data=[100, 200])]
    assert rows({"inputs": columns}, NAMED) == [[30.0, 100.0, 7.0], [40.0, 200.0, 8.0]]
    assert "named after the model's features (age, income, tenure)" in refused(rows, {"inputs": columns[:2]}, NAMED)
    assert "this model has no feature names" in refused(rows, {"inputs": columns}, TABULAR)
    uneven = [tensor("tenure", (1,), data=[7]), *columns[1:]]
    assert "different lengths" in refused(rows, {"inputs": uneven}, NAMED)


# --- metadata -------------------------------------------------------------------------------------


def test_metadata_describes_inputs_and_outputs_with_a_batch_dimension():
    assert input_metadata(TABULAR) == [{"name": "inputs", "datatype": "FP64", "shape": [-1, 3]}]
    assert input_metadata(TEXT) == [{"name": "inputs", "datatype": "BYTES", "shape": [-1]}]
    assert input_metadata({**TABULAR, "inputs": [{"name": "x", "dtype": "float32"}]})[0]["datatype"] == "FP32"
    assert output_metadata(TABULAR) == [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                                        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]}]
    assert output_metadata({**TABULAR, "classes": ["no", "yes", "maybe"]})[0]["datatype"] == "BYTES"
    assert output_metadata(TEXT) == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    wide = {"outputs": [{"name": "predictions", "dtype": "float64", "shape": [-1, 4]}]}
    assert output_metadata(wide) == [{"name": "predict", "datatype": "FP64", "shape": [-1, 4]}]


# --- prediction -> response -----------------------------------------------------------------------

CLASSIFIED = {"predictions": ["no", "yes"], "probabilities": [[0.9, 0.1], [0.25, 0.75]], "classes": ["no", "yes"]}
BODY = {"model_name": "m", "model_version": "1", "id": "x"}


def respond(prediction, request_fields) -> tuple[bytes, int | None]:
    request = parse({"inputs": [tensor(data=[0] * 6)], **request_fields})
    return encode_response(BODY, output_tensors(prediction, request))


def test_json_responses_carry_every_output_flat_and_row_major():
    content, header_length = respond(CLASSIFIED, {})
    assert header_length is None
    assert json.loads(content) == {**BODY, "outputs": [
        {"name": "predict", "datatype": "BYTES", "shape": [2], "data": ["no", "yes"]},
        {"name": "probabilities", "datatype": "FP64", "shape": [2, 2], "data": [0.9, 0.1, 0.25, 0.75]},
    ]}


def test_label_datatypes_follow_the_values():
    for predictions, datatype in (([0, 1], "INT64"), ([True, False], "BOOL"), ([0.5, 1], "FP64")):
        content, _ = respond({"predictions": predictions}, {})
        assert json.loads(content)["outputs"][0]["datatype"] == datatype
    content, _ = respond({"predictions": [[1.0, 2.0], [3.0, 4.0]]}, {})
    assert json.loads(content)["outputs"][0] | {"data": None} == {
        "name": "predict", "datatype": "FP64", "shape": [2, 2], "data": None}


def test_binary_outputs_decode_with_tritonclient():
    content, header_length = respond(CLASSIFIED, {"parameters": {"binary_data_output": True}})
    assert json.loads(content[:header_length])["outputs"][1]["parameters"] == {"binary_data_size": 32}
    result = InferResult.from_response_body(content, header_length=header_length)
    assert result.as_numpy("probabilities").tolist() == [[0.9, 0.1], [0.25, 0.75]]
    assert result.as_numpy("predict").tolist() == [b"no", b"yes"]


def test_outputs_are_selected_by_name_each_binary_or_not():
    content, header_length = respond(CLASSIFIED, {
        "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}, {"name": "predict"}]})
    header = json.loads(content[:header_length])
    assert [(o["name"], "data" in o) for o in header["outputs"]] == [("probabilities", False), ("predict", True)]
    assert "unknown output 'nope'; this model returns predict, probabilities" in refused(
        respond, CLASSIFIED, {"outputs": [{"name": "nope"}]})


def test_the_classification_extension_returns_the_top_classes():
    content, _ = respond(CLASSIFIED, {"outputs": [{"name": "probabilities", "parameters": {"classification": 1,
                                                                                            "binary_data": False}}]})
    [output] = json.loads(content)["outputs"]
    assert (output["datatype"], output["shape"]) == ("BYTES", [2, 1])
    assert output["data"] == ["0.900000:0:no", "0.750000:1:yes"]
    assert "returns no class probabilities" in refused(
        respond, {"predictions": [1.0, 2.0]}, {"outputs": [{"name": "predict", "parameters": {"classification": 1}}]})


def test_tritonclient_requested_outputs_are_understood():
    given = InferInput("inputs", [2, 3], "FP64")
    given.set_data_from_numpy(np.zeros((2, 3)), binary_data=False)
    body, header_length = triton_body(given, outputs=[InferRequestedOutput("probabilities", binary_data=True)])
    assert header_length is None
    request = parse(json.loads(body))
    content, header_length = encode_response(BODY, output_tensors(CLASSIFIED, request))
    result = InferResult.from_response_body(content, header_length=header_length)
    assert result.as_numpy("probabilities").tolist() == [[0.9, 0.1], [0.25, 0.75]]  # reshaped by `shape`
    assert result.as_numpy("predict") is None  # not asked for
