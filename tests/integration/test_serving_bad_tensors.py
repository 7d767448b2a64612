"""Absurd datatypes and shapes are the client's mistake on every path: 400 / INVALID_ARGUMENT, never 5xx.

Issue 23 item 6: a datatype that is a list or an object, a shape whose dimensions overflow
(``[0, 2**64]``), whose element count no array can hold (``[0, 2**62, 2**62]``) or with more
than 64 dimensions answered 500 on REST (JSON and binary), INTERNAL on gRPC; an
``Inference-Header-Content-Length`` of 5,000 nines answered 500; malformed protobuf bytes
UNKNOWN. The same table goes through REST JSON, REST binary and gRPC (raw and typed contents)
on one server over real sockets, and after each the server still answers a good request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from serving.grpc_gen import grpc_predict_v2_pb2 as pb
from serving.train import TrainResult, train
from tests.integration.test_serving_grpc import Endpoints, _serve

NAME = "iris"
V2 = f"/v2/models/{NAME}/infer"
HDR = "Inference-Header-Content-Length"
SETOSA = [5.1, 3.5, 1.4, 0.2]
GOOD = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": SETOSA}]}
Tensor = pb.ModelInferRequest.InferInputTensor

# (case, datatype, shape, number of elements the data holds, what the answer says)
TENSORS: list[tuple[str, Any, list[int], int, str]] = [
    ("datatype-list", ["FP32"], [1, 4], 4, "datatype must be a string such as 'FP32', got ['FP32']"),
    ("datatype-object", {"name": "FP32"}, [1, 4], 4,
     "datatype must be a string such as 'FP32', got {'name': 'FP32'}"),
    ("dimension-over-int64", "FP32", [0, 2**64], 0,
     "dimension 1 is 18446744073709551616, over the largest (2**63 - 1)"),
    ("element-count-past-any-array", "FP32", [0, 2**62, 2**62], 0, "more elements than any array can hold"),
    ("65-dimensions", "FP32", [1] * 65, 1, "65 dimensions; at most 64"),
    ("200-dimensions-of-zero", "FP32", [0] * 200, 0, "200 dimensions; at most 64"),
]
IDS = [t[0] for t in TENSORS]
# gRPC shapes are int64 on the wire: the dimension over int64 cannot be sent, and the datatype is a string.
GRPC_TENSORS = [t for t in TENSORS if isinstance(t[1], str) and max(t[2]) < 2**63]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(out=tmp_path_factory.mktemp("model"), seed=42)


@pytest.fixture
async def ep(trained: TrainResult) -> AsyncIterator[Endpoints]:
    async for e in _serve(model_name=NAME, model_dir=trained.model_path.parent, max_body_bytes=64 * 1024):
        yield e


async def _post(ep: Endpoints, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with ep.http.post(ep.rest + V2, data=body, headers=headers) as r:
        return r.status, await r.json()


async def _still_serves(ep: Endpoints) -> None:
    async with ep.http.post(ep.rest + V2, json=GOOD) as r:
        assert r.status == 200 and (await r.json())["outputs"][0]["data"] == [0]


@pytest.mark.parametrize(("case", "datatype", "shape", "count", "reason"), TENSORS, ids=IDS)
async def test_rest_json(ep: Endpoints, case: str, datatype: Any, shape: list[int], count: int,
                         reason: str) -> None:
    doc = {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": [1.0] * count}]}
    status, body = await _post(ep, json.dumps(doc).encode(), {"Content-Type": "application/json"})
    assert (status, reason in body["error"]) == (400, True), body
    await _still_serves(ep)


@pytest.mark.parametrize(("case", "datatype", "shape", "count", "reason"), TENSORS, ids=IDS)
async def test_rest_binary(ep: Endpoints, case: str, datatype: Any, shape: list[int], count: int,
                           reason: str) -> None:
    header = json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": datatype,
                                     "parameters": {"binary_data_size": 4 * count}}]}).encode()
    status, body = await _post(ep, header + b"\0" * (4 * count),
                               {HDR: str(len(header)), "Content-Type": "application/octet-stream"})
    assert (status, reason in body["error"]) == (400, True), body
    await _still_serves(ep)


@pytest.mark.parametrize(("value", "reason"), [
    ("9" * 5000, f"{HDR} is 5000 digits long but the body holds 2 bytes"),
    ("9" * 30, f"{HDR} is 30 digits long but the body holds 2 bytes"),
])
async def test_rest_binary_header_length_of_many_digits(ep: Endpoints, value: str, reason: str) -> None:
    status, body = await _post(ep, b"{}", {HDR: value, "Content-Type": "application/octet-stream"})
    assert (status, reason in body["error"]) == (400, True), body
    await _still_serves(ep)


@pytest.mark.parametrize("typed", [False, True], ids=["raw", "typed"])
@pytest.mark.parametrize(("case", "datatype", "shape", "count", "reason"), GRPC_TENSORS,
                         ids=[t[0] for t in GRPC_TENSORS])
async def test_grpc(ep: Endpoints, case: str, datatype: str, shape: list[int], count: int, reason: str,
                    typed: bool) -> None:
    if typed:
        tensor = Tensor(name="x", datatype=datatype, shape=shape,
                        contents=pb.InferTensorContents(fp32_contents=[1.0] * count))
        request = pb.ModelInferRequest(model_name=NAME, inputs=[tensor])
    else:
        tensor = Tensor(name="x", datatype=datatype, shape=shape)
        raw = [b"\0" * (4 * count)]
        request = pb.ModelInferRequest(model_name=NAME, inputs=[tensor], raw_input_contents=raw)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ep.stub.ModelInfer(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
    assert reason in (err.value.details() or ""), err.value
    await _still_serves(ep)


@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x12\x80"],
                         ids=["bad-tag", "string-cut-short", "length-cut-short"])
async def test_grpc_malformed_protobuf_is_invalid_argument(ep: Endpoints, trained: TrainResult,
                                                           payload: bytes) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ep.grpc_port}") as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")  # bytes in, bytes out
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(payload)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value
    assert "not a ModelInferRequest" in (err.value.details() or ""), err.value
    await _still_serves(ep)
