"""The gRPC Open Inference Protocol endpoint over a real socket, with grpc.aio and our stubs.

The app (REST + gRPC on one loop) runs in the test's loop. Checked here: health and metadata,
raw and typed tensors of every datatype answering exactly what the JSON path answers, the
status code of every mistake, one micro-batcher shared by both protocols, readiness while
waiting for a model, the message-size limit, a busy port, and a clean stop.
(KServe's and Triton's own gRPC clients drive it in test_serving_peer_clients.)
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from serving.app import build_app
from serving.grpc_gen import grpc_predict_v2_pb2 as pb
from serving.grpc_gen.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from serving.grpc_server import CONTENTS_FIELD
from serving.tensors import DTYPES
from serving.train import TrainResult, train
from tests.conftest import free_port

NAME = "iris"
MAX_BODY = 64 * 1024
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
Tensor = pb.ModelInferRequest.InferInputTensor
Output = pb.ModelInferRequest.InferRequestedOutputTensor
BOTH = [Output(name="predict"), Output(name="predict_proba")]


def values(datatype: str) -> np.ndarray[Any, Any]:
    if datatype == "BOOL":
        return np.array([[True, False, True, False], [False, True, True, True], [True, True, False, False]])
    dtype = DTYPES[datatype]
    return np.array(ROWS if dtype.kind == "f" else np.floor(ROWS), dtype=dtype)


@dataclass
class Endpoints:
    stub: GRPCInferenceServiceStub
    http: aiohttp.ClientSession
    rest: str
    grpc_port: int

    async def json_path(self, arr: np.ndarray[Any, Any]) -> dict[str, Any]:
        body = {"inputs": [{"name": "x", "shape": list(arr.shape), "datatype": "FP64",
                            "data": arr.astype(np.float64).tolist()}],
                "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}
        async with self.http.post(f"{self.rest}/v2/models/{NAME}/infer", json=body) as r:
            assert r.status == 200
            return {o["name"]: o for o in (await r.json())["outputs"]}

    async def metrics(self) -> str:
        async with self.http.get(f"{self.rest}/metrics") as r:
            return await r.text()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(out=tmp_path_factory.mktemp("model"), seed=42)


async def _serve(**kwargs: Any) -> AsyncIterator[Endpoints]:
    grpc_port = free_port()
    server = TestServer(build_app(registry=CollectorRegistry(), grpc_port=grpc_port, grpc_host="127.0.0.1",
                                  **kwargs), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel, \
                aiohttp.ClientSession() as http:
            yield Endpoints(GRPCInferenceServiceStub(channel), http, f"http://127.0.0.1:{server.port}",
                            grpc_port)
    finally:
        await server.close()


@pytest.fixture
async def ep(trained: TrainResult) -> AsyncIterator[Endpoints]:
    async for e in _serve(model_name=NAME, model_dir=trained.model_path.parent, max_body_bytes=MAX_BODY):
        yield e


async def test_health_and_metadata(ep: Endpoints) -> None:
    assert (await ep.stub.ServerLive(pb.ServerLiveRequest())).live
    assert (await ep.stub.ServerReady(pb.ServerReadyRequest())).ready
    assert (await ep.stub.ModelReady(pb.ModelReadyRequest(name=NAME))).ready
    server = await ep.stub.ServerMetadata(pb.ServerMetadataRequest())
    assert server.name == "kserve-warden-serving" and list(server.extensions) == ["binary_tensor_data"]
    meta = await ep.stub.ModelMetadata(pb.ModelMetadataRequest(name=NAME))
    assert meta.name == NAME and meta.platform == "xgboost+binned-tables"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("input-0", "FP32", [-1, 4])]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [
        ("predict", "INT64", [-1]), ("predict_proba", "FP32", [-1, -1])]


def _decoded(resp: pb.ModelInferResponse) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for i, o in enumerate(resp.outputs):
        if resp.raw_output_contents:
            out[o.name] = np.frombuffer(resp.raw_output_contents[i], dtype=DTYPES[o.datatype]).tolist()
        else:
            out[o.name] = list(getattr(o.contents, CONTENTS_FIELD[o.datatype]))
    return out


@pytest.mark.parametrize("datatype", list(DTYPES))
async def test_raw_and_typed_inputs_answer_like_json(ep: Endpoints, datatype: str) -> None:
    arr = values(datatype)
    ref = await ep.json_path(arr)
    tensor = Tensor(name="x", datatype=datatype, shape=arr.shape)
    raw = await ep.stub.ModelInfer(pb.ModelInferRequest(model_name=NAME, id="r1", inputs=[tensor],
                                                        outputs=BOTH, raw_input_contents=[arr.tobytes()]))
    assert raw.id == "r1" and raw.model_name == NAME and len(raw.raw_output_contents) == 2  # raw in, raw out
    assert [(o.name, o.datatype, list(o.shape)) for o in raw.outputs] == [
        (n, ref[n]["datatype"], ref[n]["shape"]) for n in ("predict", "predict_proba")]
    assert _decoded(raw) == {n: ref[n]["data"] for n in ("predict", "predict_proba")}
    if datatype == "FP16":
        return  # FP16 has no typed contents field: raw only (its own error test below)
    typed_tensor = Tensor(name="x", datatype=datatype, shape=arr.shape)
    getattr(typed_tensor.contents, CONTENTS_FIELD[datatype]).extend(arr.reshape(-1).tolist())
    typed = await ep.stub.ModelInfer(pb.ModelInferRequest(model_name=NAME, inputs=[typed_tensor],
                                                          outputs=BOTH))
    assert not typed.raw_output_contents and typed.id  # typed in, typed out; a fresh id
    assert _decoded(typed) == {n: ref[n]["data"] for n in ("predict", "predict_proba")}


async def test_default_output_is_predict(ep: Endpoints) -> None:
    arr = values("FP32")
    resp = await ep.stub.ModelInfer(pb.ModelInferRequest(
        model_name=NAME, inputs=[Tensor(name="x", datatype="FP32", shape=arr.shape)],
        raw_input_contents=[arr.tobytes()]))
    assert _decoded(resp) == {"predict": [0, 2, 1]}


def _raw(arr: np.ndarray[Any, Any], datatype: str = "FP32", **kw: Any) -> pb.ModelInferRequest:
    tensor = Tensor(name="x", datatype=datatype, shape=arr.shape)
    return pb.ModelInferRequest(model_name=NAME, inputs=[tensor], raw_input_contents=[arr.tobytes()], **kw)


F32 = values("FP32")
BAD: list[tuple[str, pb.ModelInferRequest, grpc.StatusCode, str]] = [
    ("unknown model", pb.ModelInferRequest(model_name="nope"), grpc.StatusCode.NOT_FOUND,
     "model 'nope' not found"),
    ("no inputs", pb.ModelInferRequest(model_name=NAME), grpc.StatusCode.INVALID_ARGUMENT,
     "exactly one tensor"),
    ("two inputs", pb.ModelInferRequest(model_name=NAME, inputs=[Tensor(name="a"), Tensor(name="b")]),
     grpc.StatusCode.INVALID_ARGUMENT, "got 2"),
    ("raw count mismatch", pb.ModelInferRequest(model_name=NAME, inputs=[Tensor(name="x", datatype="FP32",
                                                shape=[3, 4])], raw_input_contents=[F32.tobytes()] * 2),
     grpc.StatusCode.INVALID_ARGUMENT, "raw_input_contents holds 2 entries for 1 input(s)"),
    ("raw too short", pb.ModelInferRequest(model_name=NAME, inputs=[Tensor(name="x", datatype="FP32",
                                           shape=[3, 4])], raw_input_contents=[F32.tobytes()[:-1]]),
     grpc.StatusCode.INVALID_ARGUMENT, "binary data holds 47 bytes; shape [3, 4] of FP32 needs 48"),
    ("raw and typed", pb.ModelInferRequest(model_name=NAME, inputs=[Tensor(
        name="x", datatype="FP32", shape=[1, 4], contents=pb.InferTensorContents(fp32_contents=ROWS[0]))],
        raw_input_contents=[F32[:1].tobytes()]),
     grpc.StatusCode.INVALID_ARGUMENT, "has both contents and raw_input_contents"),
    ("typed count", pb.ModelInferRequest(model_name=NAME, inputs=[Tensor(
        name="x", datatype="FP32", shape=[2, 4], contents=pb.InferTensorContents(fp32_contents=ROWS[0]))]),
     grpc.StatusCode.INVALID_ARGUMENT, "contents hold 4 values; shape [2, 4] needs 8"),
    ("typed FP16", pb.ModelInferRequest(model_name=NAME, inputs=[Tensor(name="x", datatype="FP16",
                                                                        shape=[1, 4])]),
     grpc.StatusCode.INVALID_ARGUMENT, "FP16 has no typed contents field"),
    ("typed INT8 out of range", pb.ModelInferRequest(model_name=NAME, inputs=[Tensor(
        name="x", datatype="INT8", shape=[1, 4],
        contents=pb.InferTensorContents(int_contents=[1, 2, 3, 200]))]),
     grpc.StatusCode.INVALID_ARGUMENT, "outside the range of INT8"),
    ("BYTES", pb.ModelInferRequest(model_name=NAME, inputs=[Tensor(name="x", datatype="BYTES",
                                                                   shape=[1, 4])]),
     grpc.StatusCode.INVALID_ARGUMENT, "datatype 'BYTES' not supported"),
    ("negative dim", pb.ModelInferRequest(model_name=NAME, inputs=[Tensor(name="x", datatype="FP32",
                                                                          shape=[-1, 4])],
                                          raw_input_contents=[b""]),
     grpc.StatusCode.INVALID_ARGUMENT, "non-negative integers"),
    ("wrong width", _raw(F32[:, :3].copy()), grpc.StatusCode.INVALID_ARGUMENT, "4 features per row, got 3"),
    ("3-d", _raw(F32.reshape(3, 2, 2)), grpc.StatusCode.INVALID_ARGUMENT, "[N, features]"),
    ("zero rows", _raw(F32[:0]), grpc.StatusCode.INVALID_ARGUMENT, "N > 0"),
    ("NaN", _raw(np.array([[1, np.nan, 2, 3]], dtype=np.float32)), grpc.StatusCode.INVALID_ARGUMENT, "NaN"),
    ("unknown output", _raw(F32, outputs=[Output(name="logits")]), grpc.StatusCode.INVALID_ARGUMENT,
     "unknown output(s) ['logits']"),
]


@pytest.mark.parametrize(("request_", "code", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_mistakes_have_status_codes_and_server_keeps_serving(
        ep: Endpoints, request_: pb.ModelInferRequest, code: grpc.StatusCode, fragment: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await ep.stub.ModelInfer(request_)
    assert exc.value.code() == code and fragment in (exc.value.details() or ""), exc.value
    assert _decoded(await ep.stub.ModelInfer(_raw(F32))) == {"predict": [0, 2, 1]}


async def test_model_ready_for_another_name_is_not_found(ep: Endpoints) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await ep.stub.ModelReady(pb.ModelReadyRequest(name="nope"))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


async def test_message_over_the_body_limit_is_resource_exhausted(ep: Endpoints) -> None:
    big = np.ones((MAX_BODY // 16 + 1, 4), dtype=np.float32)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await ep.stub.ModelInfer(_raw(big))
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_rest_and_grpc_share_one_micro_batcher(ep: Endpoints) -> None:
    rng = np.random.default_rng(3)
    rows = rng.uniform([4, 2, 1, 0.1], [8, 4.5, 7, 2.5], size=(60, 4)).astype(np.float32)

    async def rest(i: int) -> list[int]:
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": rows[i].tolist()}]}
        async with ep.http.post(f"{ep.rest}/v2/models/{NAME}/infer", json=body) as r:
            return list((await r.json())["outputs"][0]["data"])

    async def rpc(i: int) -> list[int]:
        return _decoded(await ep.stub.ModelInfer(_raw(rows[i:i + 1])))["predict"]

    got = await asyncio.gather(*(rest(i) if i % 2 else rpc(i) for i in range(len(rows))))
    expected = await ep.json_path(rows)
    assert [g[0] for g in got] == expected["predict"]["data"]
    text = await ep.metrics()
    assert 'serving_requests_total{endpoint="grpc_ModelInfer",status="200"} 30.0' in text
    calls = _sample(text, "serving_batch_requests_count")
    requests = _sample(text, "serving_batch_requests_sum")
    assert requests >= len(rows) + 1 and calls < requests  # model calls were shared


def _sample(text: str, name: str) -> float:
    return float(next(ln for ln in text.splitlines() if ln.startswith(name + " ")).rsplit(" ", 1)[1])


async def test_errors_are_counted_with_their_http_equivalent(ep: Endpoints) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await ep.stub.ModelInfer(pb.ModelInferRequest(model_name="nope"))
    assert 'serving_requests_total{endpoint="grpc_ModelInfer",status="404"} 1.0' in await ep.metrics()


async def test_unready_until_a_model_arrives(trained: TrainResult, tmp_path: Path) -> None:
    async for ep in _serve(model_name=NAME, model_dir=tmp_path, wait_for_model=True, poll_seconds=0.05):
        assert (await ep.stub.ServerLive(pb.ServerLiveRequest())).live
        assert not (await ep.stub.ServerReady(pb.ServerReadyRequest())).ready
        assert not (await ep.stub.ModelReady(pb.ModelReadyRequest(name=NAME))).ready
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await ep.stub.ModelInfer(_raw(F32))
        assert exc.value.code() == grpc.StatusCode.UNAVAILABLE and "not loaded" in (exc.value.details() or "")
        shutil.copy(trained.model_path, tmp_path / "model")
        for _ in range(200):
            if (await ep.stub.ServerReady(pb.ServerReadyRequest())).ready:
                break
            await asyncio.sleep(0.02)
        assert _decoded(await ep.stub.ModelInfer(_raw(F32))) == {"predict": [0, 2, 1]}


async def test_busy_port_fails_start_up(trained: TrainResult) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        app = build_app(model_name=NAME, model_dir=trained.model_path.parent, registry=CollectorRegistry(),
                        grpc_port=port, grpc_host="127.0.0.1")
        server = TestServer(app, host="127.0.0.1", port=free_port())
        with pytest.raises(OSError, match=f"cannot listen for gRPC on 127.0.0.1:{port}"):
            await server.start_server()
        await server.close()


async def test_stopping_the_app_stops_grpc(trained: TrainResult) -> None:
    grpc_port = free_port()
    server = TestServer(build_app(model_name=NAME, model_dir=trained.model_path.parent,
                                  registry=CollectorRegistry(), grpc_port=grpc_port, grpc_host="127.0.0.1"),
                        host="127.0.0.1", port=free_port())
    await server.start_server()
    await server.close()
    with pytest.raises(ConnectionRefusedError):
        _, writer = await asyncio.open_connection("127.0.0.1", grpc_port)
        writer.close()
