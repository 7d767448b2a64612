"""serving.wire finds a ModelInferRequest's raw tensors as views of its bytes: the same bytes, in
the same order, as protobuf's own ``raw_input_contents``, whatever other fields surround them."""

from __future__ import annotations

import pytest

from serving.grpc_gen import grpc_predict_v2_pb2 as pb
from serving.wire import RAW_INPUT_CONTENTS, WireError, length_delimited

Tensor = pb.ModelInferRequest.InferInputTensor
Output = pb.ModelInferRequest.InferRequestedOutputTensor


def _with_parameters(req: pb.ModelInferRequest) -> pb.ModelInferRequest:
    req.parameters["int"].int64_param = -(2**62)  # a negative varint: ten bytes on the wire
    req.parameters["flag"].bool_param = True
    req.parameters["text"].string_param = "raw_input_contents"
    return req


CASES = {
    "none": pb.ModelInferRequest(model_name="m"),
    "one": pb.ModelInferRequest(model_name="m", inputs=[Tensor(name="x", datatype="FP32", shape=[1, 4])],
                                raw_input_contents=[bytes(range(16))]),
    "two, with every other field": _with_parameters(pb.ModelInferRequest(
        model_name="m", model_version="7", id="req-1",
        inputs=[Tensor(name="a", datatype="FP64", shape=[2**40, -1]), Tensor(name="b", datatype="BYTES")],
        outputs=[Output(name="predict")], raw_input_contents=[b"\x07" * 300, b"\x00" * 5])),
    "an empty one between others": pb.ModelInferRequest(raw_input_contents=[b"a", b"", b"\xff" * 70_000]),
    "large": pb.ModelInferRequest(model_name="m", raw_input_contents=[bytes(1_000_000)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_views_are_protobufs_raw_input_contents(name: str) -> None:
    message = CASES[name].SerializeToString()
    views = length_delimited(message, RAW_INPUT_CONTENTS)
    assert [bytes(v) for v in views] == list(pb.ModelInferRequest.FromString(message).raw_input_contents)
    assert all(v.obj is message for v in views)  # views of the message, not copies


def test_fields_of_every_wire_type_are_skipped() -> None:
    # field 1 varint, field 2 fixed64, field 3 fixed32, then field 7: none of the first three are
    # ModelInferRequest's, which is the point: the scan skips what it does not know.
    message = bytes([1 << 3 | 0, 0x96, 0x01, 2 << 3 | 1, *b"8 bytes!", 3 << 3 | 5, *b"4by",
                     0x01, 7 << 3 | 2, 3, *b"abc"])
    assert [bytes(v) for v in length_delimited(message)] == [b"abc"]


@pytest.mark.parametrize("message", [
    bytes([7 << 3 | 2, 5, *b"abc"]),  # length past the end
    bytes([1 << 3 | 0, 0x80]),  # varint cut off
    bytes([2 << 3 | 1, *b"1234"]),  # fixed64 cut off
    bytes([1 << 3 | 3]),  # a group: not proto3
    bytes([1 << 3 | 0, *([0xFF] * 11), 0x01]),  # varint longer than 64 bits
])
def test_malformed_messages_raise_wire_error(message: bytes) -> None:
    with pytest.raises(WireError):
        length_delimited(message)
