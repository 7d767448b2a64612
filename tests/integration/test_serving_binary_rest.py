"""The REST binary tensor data extension over a real socket, with bodies built byte by byte.

Every datatype in binary answers exactly what the same tensor in JSON answers; outputs go
binary when asked; every malformed framing is a 400 with its reason and the server keeps
serving. (KServe's SDK and tritonclient drive the same endpoint in test_serving_peer_clients.)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from serving.app import build_app
from serving.tensors import DTYPES
from serving.train import TrainResult, train
from tests.conftest import free_port

NAME = "iris"
V2 = f"/v2/models/{NAME}/infer"
HDR = "Inference-Header-Content-Length"
OCTET = "application/octet-stream"
MAX_BODY = 64 * 1024
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
SETOSA = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ROWS[0]}]}


def values(datatype: str) -> np.ndarray[Any, Any]:
    if datatype == "BOOL":
        return np.array([[True, False, True, False], [False, True, True, True], [True, True, False, False]])
    dtype = DTYPES[datatype]
    return np.array(ROWS if dtype.kind == "f" else np.floor(ROWS), dtype=dtype)


def binary_body(header: dict[str, Any], *blobs: bytes) -> tuple[bytes, dict[str, str]]:
    h = json.dumps(header).encode()
    return h + b"".join(blobs), {HDR: str(len(h)), "Content-Type": OCTET}


def parse_binary(raw: bytes, header_length: str) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    n = int(header_length)
    doc = json.loads(raw[:n])
    arrays, offset = {}, n
    for o in doc["outputs"]:
        size = o.get("parameters", {}).get("binary_data_size")
        if size is not None:
            arrays[o["name"]] = np.frombuffer(raw[offset:offset + size], dtype=DTYPES[o["datatype"]])
            offset += size
    assert offset == len(raw)
    return doc, arrays


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        async with self.session.post(self.base + V2, data=body, headers=headers) as r:
            return r.status, r.headers, await r.read()

    async def post_json(self, doc: Any) -> tuple[int, Any]:
        async with self.session.post(self.base + V2, json=doc) as r:
            return r.status, await r.json()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(out=tmp_path_factory.mktemp("model"), seed=42)


@pytest.fixture
async def client(trained: TrainResult) -> AsyncIterator[Client]:
    app = build_app(model_name=NAME, model_dir=trained.model_path.parent, max_body_bytes=MAX_BODY,
                    registry=CollectorRegistry())
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Client(session, f"http://127.0.0.1:{server.port}")
    finally:
        await server.close()


def _outputs(binary: bool | None = None) -> list[dict[str, Any]]:
    params = {} if binary is None else {"parameters": {"binary_data": binary}}
    return [{"name": "predict", **params}, {"name": "predict_proba", **params}]


@pytest.mark.parametrize("datatype", list(DTYPES))
async def test_binary_input_answers_like_json(client: Client, datatype: str) -> None:
    arr = values(datatype)
    tensor = {"name": "x", "shape": list(arr.shape), "datatype": datatype}
    status, ref = await client.post_json({"id": "j", "inputs": [tensor | {"data": arr.tolist()}],
                                          "outputs": _outputs()})
    assert status == 200, ref
    sized = tensor | {"parameters": {"binary_data_size": arr.nbytes}}
    body, headers = binary_body({"id": "b", "inputs": [sized], "outputs": _outputs()}, arr.tobytes())
    status, resp_headers, raw = await client.post(body, headers)
    assert status == 200, raw
    assert resp_headers["Content-Type"].startswith("application/json") and HDR not in resp_headers
    doc = json.loads(raw)
    assert doc["outputs"] == ref["outputs"] and doc["id"] == "b"


async def test_binary_outputs_when_asked(client: Client) -> None:
    arr = values("FP32")
    status, ref = await client.post_json({"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32",
                                                      "data": arr.tolist()}], "outputs": _outputs()})
    ref_by_name = {o["name"]: o for o in ref["outputs"]}
    tensor = {"name": "x", "shape": [3, 4], "datatype": "FP32",
              "parameters": {"binary_data_size": arr.nbytes}}
    for outputs, params, expect_binary in [
        (_outputs(True), None, {"predict", "predict_proba"}),
        (None, {"binary_data_output": True}, {"predict"}),
        ([{"name": "predict_proba", "parameters": {"binary_data": True}}, {"name": "predict"}], None,
         {"predict_proba"}),
        (_outputs(False), {"binary_data_output": True}, set()),
    ]:
        header: dict[str, Any] = {"inputs": [tensor]}
        if outputs is not None:
            header["outputs"] = outputs
        if params is not None:
            header["parameters"] = params
        status, resp_headers, raw = await client.post(*binary_body(header, arr.tobytes()))
        assert status == 200, raw
        if not expect_binary:
            assert HDR not in resp_headers and all("data" in o for o in json.loads(raw)["outputs"])
            continue
        assert resp_headers["Content-Type"] == "application/octet-stream"
        doc, arrays = parse_binary(raw, resp_headers[HDR])
        assert set(arrays) == expect_binary
        for o in doc["outputs"]:
            ref_o = ref_by_name[o["name"]]
            assert (o["datatype"], o["shape"]) == (ref_o["datatype"], ref_o["shape"])
            data = arrays[o["name"]].tolist() if o["name"] in arrays else o["data"]
            assert data == ref_o["data"]  # exact: the probabilities' float32 bits survive


@pytest.mark.parametrize("content_type", [None, "application/octet-stream", "application/json", "text/plain",
                                          "application/vnd.triton.binary"])
async def test_the_header_decides_not_the_content_type(client: Client, content_type: str | None) -> None:
    arr = values("FP64")[:1]
    body, headers = binary_body({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",
                                             "parameters": {"binary_data_size": arr.nbytes}}]}, arr.tobytes())
    if content_type is None:
        del headers["Content-Type"]
    else:
        headers["Content-Type"] = content_type
    status, _, raw = await client.post(body, headers)
    assert status == 200 and json.loads(raw)["outputs"][0]["data"] == [0]


def _fp32(size: int | None = 16, **extra: Any) -> dict[str, Any]:
    t: dict[str, Any] = {"name": "x", "shape": [1, 4], "datatype": "FP32", **extra}
    if size is not None:
        t["parameters"] = {"binary_data_size": size}
    return t


FOUR = np.array(ROWS[:1], dtype="<f4").tobytes()


def _h(**doc: Any) -> bytes:
    return json.dumps(doc).encode()


EMPTY = b'{"inputs": []}'
MALFORMED: list[tuple[str, bytes, bytes, str | None, str]] = [
    # (id, JSON header, binary bytes after it, Inference-Header-Content-Length (None: the
    #  header's true length), expected fragment of the error)
    ("header length not a number", EMPTY, b"", "twelve", "must be a decimal byte count"),
    ("header length negative", EMPTY, b"", "-1", "must be a decimal byte count"),
    ("header length zero", EMPTY, b"", "0", "must be non-empty"),
    ("header length beyond body", EMPTY, b"", "999", "is 999 but the body holds 14 bytes"),
    ("header cuts the JSON", EMPTY, b"", "10", "malformed JSON in the first 10 bytes"),
    ("bytes short of the size", _h(inputs=[_fp32()]), FOUR[:12], None, "only 12 bytes remain"),
    ("bytes beyond the sizes", _h(inputs=[_fp32()]), FOUR + b"!", None,
     "17 bytes follow the JSON header but the inputs' binary_data_size values add up to 16"),
    ("size disagrees with shape", _h(inputs=[_fp32(12)]), FOUR[:12], None,
     "binary data holds 12 bytes; shape [1, 4] of FP32 needs 16"),
    ("size not an integer", _h(inputs=[_fp32("16")]), FOUR, None,
     "binary_data_size must be a non-negative integer"),
    ("size negative", _h(inputs=[_fp32(-16)]), FOUR, None, "must be a non-negative integer, got -16"),
    ("both data and size", _h(inputs=[_fp32(data=ROWS[0])]), FOUR, None,
     "has both data and binary_data_size"),
    ("neither data nor size", _h(inputs=[_fp32(None)]), b"", None, "input tensor lacks data"),
    ("bool byte not 0 or 1", _h(inputs=[_fp32(4, datatype="BOOL")]), b"\x01\x00\x07\x00", None,
     "BOOL bytes must be 0 or 1"),
    ("BYTES input", _h(inputs=[_fp32(16, datatype="BYTES")]), FOUR, None, "datatype 'BYTES' not supported"),
    ("NaN in binary", _h(inputs=[_fp32()]), np.array([[1, np.nan, 2, 3]], "<f4").tobytes(), None, "NaN"),
    ("overflowing FP64", _h(inputs=[_fp32(32, datatype="FP64")]),
     np.array([[1, 1e300, 2, 3]], "<f8").tobytes(), None, "beyond float32 range"),
    ("huge shape", _h(inputs=[_fp32(16, shape=[2**40, 2**40])]), FOUR, None,
     "needs 4835703278458516698824704"),
    ("two inputs", _h(inputs=[_fp32(), _fp32()]), FOUR + FOUR, None, "exactly one tensor object, got 2"),
    ("binary output flag not a boolean", _h(inputs=[_fp32()], parameters={"binary_data_output": 1}), FOUR,
     None, "binary_data_output must be true or false"),
]


@pytest.mark.parametrize(("header", "blob", "header_length", "fragment"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
async def test_malformed_binary_is_400_and_server_keeps_serving(
        client: Client, header: bytes, blob: bytes, header_length: str | None, fragment: str) -> None:
    length = str(len(header)) if header_length is None else header_length
    status, _, raw = await client.post(header + blob, {HDR: length, "Content-Type": OCTET})
    assert status == 400, raw
    err = json.loads(raw)
    assert set(err) == {"error"} and fragment in err["error"], err
    status, ok = await client.post_json(SETOSA)
    assert status == 200 and ok["outputs"][0]["data"] == [0]


async def test_binary_body_over_the_limit_is_413(client: Client) -> None:
    arr = np.ones((MAX_BODY // 16 + 1, 4), dtype="<f4")
    body, headers = binary_body({"inputs": [{"name": "x", "shape": list(arr.shape), "datatype": "FP32",
                                             "parameters": {"binary_data_size": arr.nbytes}}]}, arr.tobytes())
    status, _, raw = await client.post(body, headers)
    assert status == 413 and "byte limit" in json.loads(raw)["error"]


async def test_json_without_the_header_still_refuses_octet_stream(client: Client) -> None:
    status, _, raw = await client.post(json.dumps(SETOSA).encode(), {"Content-Type": OCTET})
    assert status == 415 and "unsupported content type" in json.loads(raw)["error"]
