"""Tensor decoding and encoding (serving.tensors) and the binary extension's framing (serving.binary):
every datatype, every way a size can be wrong. Pure functions, no I/O."""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import numpy as np
import pytest

from serving import binary, tensors
from serving.jsonio import RequestError

ROWS = [[5.0, 3.0, 1.0, 0.0], [7.0, 3.0, 5.0, 2.0]]
WHAT = "input 'x'"


def _values(datatype: str) -> np.ndarray[Any, Any]:
    if datatype == "BOOL":
        return np.array([[True, False, True, False], [False, True, True, True]])
    return np.array(ROWS, dtype=tensors.DTYPES[datatype])


@pytest.mark.parametrize("datatype", list(tensors.DTYPES))
def test_raw_json_and_typed_values_decode_alike(datatype: str) -> None:
    ref = _values(datatype)
    raw = tensors.from_raw(datatype, (2, 4), ref.tobytes(), what=WHAT)
    assert raw.dtype == tensors.DTYPES[datatype] and raw.shape == (2, 4)
    assert np.array_equal(raw, ref)
    assert np.array_equal(tensors.from_json(datatype, (2, 4), ref.tolist(), what=WHAT), ref)
    assert np.array_equal(tensors.from_json(datatype, (2, 4), ref.reshape(-1).tolist(), what=WHAT), ref)
    assert np.array_equal(tensors.from_values(datatype, (2, 4), ref.reshape(-1).tolist(), what=WHAT), ref)


def test_raw_is_a_zero_copy_view_of_the_body() -> None:
    body = bytearray(np.array(ROWS, dtype="<f4").tobytes())
    arr = tensors.from_raw("FP32", (2, 4), memoryview(body), what=WHAT)
    body[0:4] = struct.pack("<f", 9.5)
    assert arr[0, 0] == 9.5


def test_big_endian_bytes_are_not_what_the_wire_means() -> None:
    # The wire is little-endian: decoding must not depend on the host's or a client's order.
    arr = tensors.from_raw("INT32", (1, 1), struct.pack("<i", 258), what=WHAT)
    assert arr.tolist() == [[258]]


def test_bf16_widens_exactly() -> None:
    f32 = np.array([[1.5, -2.25, 2.0**127, 0.0]], dtype=np.float32)  # all exact in bfloat16
    bf16 = (f32.view(np.uint32) >> 16).astype("<u2")
    assert tensors.from_raw("BF16", (1, 4), bf16.tobytes(), what=WHAT).tolist() == f32.tolist()
    with pytest.raises(RequestError, match="must be sent as binary"):
        tensors.from_json("BF16", (1, 4), [1, 2, 3, 4], what=WHAT)


@pytest.mark.parametrize(("datatype", "raw", "fragment"), [
    ("FP32", b"\x00" * 31, "holds 31 bytes; shape [2, 4] of FP32 needs 32 (4 per element)"),
    ("FP32", b"\x00" * 33, "holds 33 bytes"),
    ("INT64", b"\x00" * 32, "needs 64"),
    ("FP16", b"\x00" * 15, "needs 16"),
    ("BOOL", b"\x00\x01\x02\x00\x00\x00\x00\x00", "BOOL bytes must be 0 or 1"),
    ("BYTES", b"\x00" * 8, "datatype 'BYTES' not supported"),
    ("FP8", b"\x00" * 8, "datatype 'FP8' not supported"),
    (None, b"", "datatype must be a string such as 'FP32', got None"),
])
def test_raw_size_and_type_errors(datatype: Any, raw: bytes, fragment: str) -> None:
    with pytest.raises(RequestError) as exc:
        tensors.from_raw(datatype, (2, 4), raw, what=WHAT)
    assert exc.value.status == 400 and fragment in exc.value.message and WHAT in exc.value.message


@pytest.mark.parametrize(("datatype", "data", "fragment"), [
    ("INT8", [[1, 2, 3, 300]], "outside the range of INT8 (-128..127)"),
    ("UINT16", [[1, 2, 3, -1]], "outside the range of UINT16"),
    ("INT32", [[1, 2, 3.5, 4]], "non-integer"),
    ("BOOL", [[1, 0, 1, 0]], "true/false"),
    ("FP32", [[1, 2, "3", 4]], "non-numeric"),
    ("FP32", [[1, 2], [3]], "regular array"),
    ("FP32", [[1, 2, 3]], "holds 3 values; shape [1, 4] needs 4"),
    ("FP32", {"a": 1}, "must be a list"),
])
def test_json_errors(datatype: str, data: Any, fragment: str) -> None:
    with pytest.raises(RequestError) as exc:
        tensors.from_json(datatype, (1, 4), data, what=WHAT)
    assert exc.value.status == 400 and fragment in exc.value.message


def test_typed_values_range_and_count() -> None:
    with pytest.raises(RequestError, match="outside the range of UINT8"):
        tensors.from_values("UINT8", (1, 4), [1, 2, 3, 256], what=WHAT)
    with pytest.raises(RequestError, match="contents hold 3 values"):
        tensors.from_values("FP32", (1, 4), [1.0, 2.0, 3.0], what=WHAT)


@pytest.mark.parametrize("shape", [[2, -1], [2.0, 4], [True, 4], "2,4", None, {"n": 2}])
def test_bad_shapes(shape: Any) -> None:
    with pytest.raises(RequestError, match="shape must be a list of non-negative integers"):
        tensors.check_shape(shape, what=WHAT)


@pytest.mark.parametrize(("shape", "fragment"), [
    ((0, 2**64), "shape dimension 1 is 18446744073709551616, over the largest (2**63 - 1)"),
    ((2**63, 0), "shape dimension 0 is 9223372036854775808, over the largest"),
    ((0, 2**62, 2**62), "describes more elements than any array can hold"),
    ((0, 2**30, 2**30, 8), "describes more elements than any array can hold"),
    ((0, 2**63 - 1), "describes more elements than any array can hold"),  # numpy: "array is too big"
    ((1,) * 65, "shape has 65 dimensions; at most 64"),
    ((0,) * 1000, "shape has 1000 dimensions; at most 64"),
])
def test_shapes_no_array_can_have(shape: tuple[int, ...], fragment: str) -> None:
    """Each decoder refuses them before numpy does (numpy's errors were 500s, issue 23 item 6)."""
    count = math.prod(shape)  # 0 or 1: the data matches the shape, only the shape is wrong
    for decode in (lambda: tensors.from_json("FP32", shape, [1.0] * count, what=WHAT),
                   lambda: tensors.from_raw("FP32", shape, b"\0" * 4 * count, what=WHAT),
                   lambda: tensors.from_values("FP32", shape, [1.0] * count, what=WHAT)):
        with pytest.raises(RequestError) as exc:
            decode()
        assert exc.value.status == 400 and fragment in exc.value.message, exc.value.message


@pytest.mark.parametrize("shape", [(0, 2**29, 2**29), (1,) * 64, (0, 2**59)])  # numpy builds these
def test_the_largest_shapes_an_array_can_have_pass_the_extent_check(shape: tuple[int, ...]) -> None:
    tensors.check_extent(shape, what=WHAT)


@pytest.mark.parametrize("datatype", [["FP32"], {"name": "FP32"}, 32, None, True])
def test_a_datatype_that_is_not_a_string_is_a_400(datatype: Any) -> None:
    for decode in (lambda: tensors.from_json(datatype, (1, 4), [1, 2, 3, 4], what=WHAT),
                   lambda: tensors.from_raw(datatype, (1, 4), b"\0" * 16, what=WHAT)):
        with pytest.raises(RequestError, match="datatype must be a string such as 'FP32'"):
            decode()


@pytest.mark.parametrize(("arr", "datatype"), [
    (np.array([1, 2], dtype=np.int64), "INT64"), (np.array([1], dtype=np.int32), "INT32"),
    (np.array([1], dtype=np.uint8), "UINT8"), (np.array([0.5], dtype=np.float32), "FP32"),
    (np.array([0.5], dtype=np.float16), "FP16"), (np.array([True]), "BOOL"),
    (np.array(["setosa"]), "BYTES"), (np.array([1], dtype=">i8"), "INT64"),
])
def test_output_datatypes_match_their_width(arr: np.ndarray[Any, Any], datatype: str) -> None:
    assert tensors.datatype_of(arr) == datatype
    raw = tensors.to_raw(arr, datatype)
    if datatype == "BYTES":
        assert raw == struct.pack("<I", 6) + b"setosa"
        assert tensors.to_json_data(arr, datatype) == ["setosa"]
    else:
        assert len(raw) == arr.size * tensors.DTYPES[datatype].itemsize
        assert np.array_equal(np.frombuffer(raw, dtype=tensors.DTYPES[datatype]), arr)


# --- binary extension framing ---------------------------------------------------------------

def _body(header: dict[str, Any], *blobs: bytes) -> tuple[bytes, str]:
    h = json.dumps(header).encode()
    return h + b"".join(blobs), str(len(h))


def _t(name: str, size: int | None = None, **extra: Any) -> dict[str, Any]:
    t: dict[str, Any] = {"name": name, "shape": [1, 4], "datatype": "FP32", **extra}
    if size is not None:
        t["parameters"] = {"binary_data_size": size}
    return t


def test_split_and_slice_inputs_in_order() -> None:
    body, n = _body({"inputs": [_t("a", 3), _t("b", data=[1, 2, 3, 4]), _t("c", 2)]}, b"AAA", b"CC")
    doc, rest = binary.split(body, n)
    blobs = binary.slice_inputs(doc["inputs"], rest)
    assert [None if b is None else bytes(b) for b in blobs] == [b"AAA", None, b"CC"]


@pytest.mark.parametrize(("header_length", "fragment"), [
    ("abc", "must be a decimal byte count"), ("-5", "must be a decimal byte count"),
    ("1e3", "must be a decimal byte count"), ("\uff15", "must be a decimal byte count"),  # a full-width digit
    ("0", "must be non-empty"), ("100000", "is 100000 but the body holds"),
    ("5", "malformed JSON in the first 5 bytes"),
    ("9" * 5000, "is 5000 digits long but the body holds"),
    ("0" * 5000 + "5", "malformed JSON in the first 5"),
    ("9" * 21, "is 21 digits long"), ("9" * 20, "is 99999999999999999999 but the body holds"),
])
def test_split_errors(header_length: str, fragment: str) -> None:
    body, _ = _body({"inputs": [_t("a", 4)]}, b"1234")
    with pytest.raises(RequestError) as exc:
        binary.split(body, header_length)
    assert exc.value.status == 400 and fragment in exc.value.message


@pytest.mark.parametrize(("inputs", "blob", "fragment"), [
    ([_t("a", 16)], b"x" * 15, "binary_data_size is 16 but only 15 bytes remain"),
    ([_t("a", 16)], b"x" * 17,
     "17 bytes follow the JSON header but the inputs' binary_data_size values add up to 16"),
    ([_t("a")], b"x" * 4, "4 bytes follow the JSON header"),
    ([_t("a", -1)], b"", "binary_data_size must be a non-negative integer, got -1"),
    ([_t("a", True)], b"", "got True"),
    ([{"name": "a", "parameters": {"binary_data_size": "16"}}], b"", "got '16'"),
    ([{"name": "a", "parameters": [1]}], b"", "parameters must be an object"),
    ([_t("a", 4, data=[1])], b"x" * 4, "has both data and binary_data_size"),
    ([_t("a", 8), _t("b", 8)], b"x" * 12, "input 'b': binary_data_size is 8 but only 4 bytes remain"),
])
def test_slice_inputs_errors(inputs: list[dict[str, Any]], blob: bytes, fragment: str) -> None:
    with pytest.raises(RequestError) as exc:
        binary.slice_inputs(inputs, memoryview(blob))
    assert exc.value.status == 400 and fragment in exc.value.message


@pytest.mark.parametrize(("params", "requested", "expected"), [
    (None, [], [False, False]),
    ({"binary_data_output": True}, [], [True, True]),
    ({"binary_data_output": True}, [{"name": "predict", "parameters": {"binary_data": False}}],
     [False, True]),
    (None, [{"name": "predict_proba", "parameters": {"binary_data": True}}], [False, True]),
    ({"binary_data_output": False}, [{"name": "predict"}], [False, False]),
])
def test_binary_outputs(params: Any, requested: list[dict[str, Any]], expected: list[bool]) -> None:
    assert binary.binary_outputs(params, requested, ["predict", "predict_proba"]) == expected


def test_binary_output_flags_must_be_booleans() -> None:
    with pytest.raises(RequestError, match="binary_data_output must be true or false"):
        binary.binary_outputs({"binary_data_output": "yes"}, [], ["predict"])
    with pytest.raises(RequestError, match="output 'predict': parameter binary_data must be true or false"):
        binary.binary_outputs(None, [{"name": "predict", "parameters": {"binary_data": 1}}], ["predict"])
