"""Clients nobody here wrote — KServe's SDK and Triton's tritonclient — against the real server.

The server runs in this test's event loop (REST and gRPC from one app, the real iris model);
each client library runs in a subprocess of its own (``peer_clients/``: their generated gRPC
modules and ours cannot share a process). Every answer is compared with what the server's plain
JSON path answers for the same numbers: the same classes and bit-identical probabilities,
whichever client, transport, datatype or output encoding.

Both libraries are in the ``test`` extra; a missing one fails the test (ImportError in the
driver), it does not skip.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
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
DRIVERS = Path(__file__).parent / "peer_clients"
FLOAT_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
INT_ROWS = [[5, 3, 1, 0], [7, 3, 5, 2], [6, 3, 4, 1]]
BOOL_ROWS = [[True, False, True, False], [True, True, True, True], [False, False, False, True]]
BOTH = ["predict", "predict_proba"]


def rows_for(datatype: str) -> list[list[Any]]:
    if datatype == "BOOL":
        return BOOL_ROWS
    return FLOAT_ROWS if datatype.startswith("FP") else INT_ROWS


@dataclass
class Server:
    rest: str
    grpc: str
    session: aiohttp.ClientSession

    async def json_path(self, rows: list[list[Any]], datatype: str) -> dict[str, Any]:
        """predict and predict_proba from the plain JSON path, for the values ``datatype`` holds."""
        values = np.array(rows, dtype=DTYPES[datatype]).astype(np.float64)
        body = {"inputs": [{"name": "x", "shape": list(values.shape), "datatype": "FP64",
                            "data": values.tolist()}], "outputs": [{"name": n} for n in BOTH]}
        async with self.session.post(f"{self.rest}/v2/models/{NAME}/infer", json=body) as r:
            assert r.status == 200, await r.text()
            doc = await r.json()
        return {o["name"]: o for o in doc["outputs"]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(out=tmp_path_factory.mktemp("model"), seed=42)


@pytest.fixture
async def server(trained: TrainResult) -> AsyncIterator[Server]:
    grpc_port = free_port()
    app = build_app(model_name=NAME, model_dir=trained.model_path.parent, registry=CollectorRegistry(),
                    grpc_port=grpc_port, grpc_host="127.0.0.1")
    srv = TestServer(app, host="127.0.0.1", port=free_port())
    await srv.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Server(f"http://127.0.0.1:{srv.port}", f"127.0.0.1:{grpc_port}", session)
    finally:
        await srv.close()


async def drive(driver: str, server: Server, requests: list[dict[str, Any]]) -> dict[str, Any]:
    plan = {"rest": server.rest, "grpc": server.grpc, "model": NAME, "requests": requests}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(DRIVERS / driver), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(plan).encode()), 90)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, f"{driver} failed:\n{err.decode()[-3000:]}"
    report: dict[str, Any] = json.loads(out)
    return report


def datatype_requests(transport: str) -> list[dict[str, Any]]:
    return [{"id": f"{transport}-{dt}", "transport": transport, "datatype": dt, "data": rows_for(dt),
             "outputs": BOTH} for dt in DTYPES]


async def check_same_as_json_path(server: Server, request: dict[str, Any], got: dict[str, Any],
                                  *, binary: bool | None = None) -> None:
    assert "outputs" in got, (request["id"], got)
    ref = await server.json_path(request["data"], request["datatype"])
    names = request["outputs"] or ["predict"]
    assert sorted(got["outputs"]) == sorted(names), (request["id"], got)
    for name in names:
        out = got["outputs"][name]
        assert out["datatype"] == ref[name]["datatype"] and out["shape"] == ref[name]["shape"], request["id"]
        assert out["data"] == ref[name]["data"], (request["id"], name)  # exact, floats included
        if binary is not None:
            assert out["binary"] is binary, (request["id"], name)


async def test_kserve_sdk_rest_binary_and_grpc_every_datatype(server: Server) -> None:
    requests = [
        # The SDK's defaults: binary input, outputs as the server chooses (JSON).
        {"id": "rest-default", "transport": "rest", "datatype": "FP32", "data": FLOAT_ROWS, "outputs": None},
        {"id": "rest-binary-out", "transport": "rest", "datatype": "FP32", "data": FLOAT_ROWS,
         "outputs": BOTH, "binary_outputs": True},
        {"id": "rest-binary-data-output", "transport": "rest", "datatype": "FP64", "data": FLOAT_ROWS,
         "outputs": None, "binary_data_output": True},
        {"id": "rest-json-in", "transport": "rest", "datatype": "FP32", "data": FLOAT_ROWS,
         "outputs": BOTH, "binary_input": False},
        {"id": "rest-batch-32", "transport": "rest", "datatype": "FP32", "data": FLOAT_ROWS * 11,
         "outputs": BOTH, "binary_outputs": True},
        *datatype_requests("rest"),
        *datatype_requests("grpc"),
        {"id": "rest-too-few-features", "transport": "rest", "datatype": "FP32",
         "data": [r[:3] for r in FLOAT_ROWS], "outputs": None},
        {"id": "grpc-too-few-features", "transport": "grpc", "datatype": "FP32",
         "data": [r[:3] for r in FLOAT_ROWS], "outputs": None},
    ]
    report = await drive("kserve_sdk.py", server, requests)
    assert report["checks"] == {"rest_live": True, "rest_ready": True, "rest_model_ready": True,
                                "grpc_live": True, "grpc_ready": True, "grpc_model_ready": True}
    results = report["results"]
    expected_binary = {"rest-default": False, "rest-binary-out": True, "rest-binary-data-output": True,
                       "rest-json-in": False, "rest-batch-32": True}
    for r in requests:
        got = results[r["id"]]
        if "features" in r["id"]:
            continue
        await check_same_as_json_path(server, r, got, binary=expected_binary.get(r["id"]))
        assert got["id"] == r["id"]
    assert results["rest-too-few-features"]["error"]["status"] == 400
    assert "4 features per row, got 3" in results["rest-too-few-features"]["error"]["message"]
    assert results["grpc-too-few-features"]["error"] == {
        "status": "INVALID_ARGUMENT", "message": "input 'input-0': the model takes 4 features per row, got 3"}


async def test_tritonclient_http_and_grpc_every_datatype(server: Server) -> None:
    requests = [
        # No outputs named: tritonclient asks for every output in binary (binary_data_output).
        {"id": "rest-default", "transport": "rest", "datatype": "FP32", "data": FLOAT_ROWS, "outputs": None},
        {"id": "rest-json-out", "transport": "rest", "datatype": "FP32", "data": FLOAT_ROWS,
         "outputs": BOTH, "binary_outputs": False},
        {"id": "rest-json-in", "transport": "rest", "datatype": "FP64", "data": FLOAT_ROWS,
         "outputs": BOTH, "binary_input": False},
        {"id": "rest-gzip", "transport": "rest", "datatype": "FP32", "data": FLOAT_ROWS * 11,
         "outputs": BOTH, "compression": "gzip"},
        {"id": "rest-deflate", "transport": "rest", "datatype": "FP16", "data": FLOAT_ROWS,
         "outputs": BOTH, "compression": "deflate"},
        *datatype_requests("rest"),
        *datatype_requests("grpc"),
        {"id": "grpc-default", "transport": "grpc", "datatype": "FP32", "data": FLOAT_ROWS, "outputs": None},
        {"id": "rest-wrong-model-shape", "transport": "rest", "datatype": "FP32",
         "data": [[1.0] * 5], "outputs": None},
        {"id": "grpc-wrong-model-shape", "transport": "grpc", "datatype": "FP32",
         "data": [[1.0] * 5], "outputs": None},
    ]
    report = await drive("triton.py", server, requests)
    checks = report["checks"]
    assert checks["rest_live"] and checks["rest_ready"] and checks["rest_model_ready"]
    assert checks["grpc_live"] and checks["grpc_ready"] and checks["grpc_model_ready"]
    assert checks["rest_metadata_inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 4]}]
    assert checks["grpc_metadata_outputs"] == BOTH
    assert checks["grpc_server_extensions"] == ["binary_tensor_data"]
    results = report["results"]
    expected_binary = {"rest-default": True, "rest-json-out": False, "rest-json-in": True, "rest-gzip": True}
    for r in requests:
        if "wrong" in r["id"]:
            continue
        got = results[r["id"]]
        await check_same_as_json_path(server, r, got, binary=expected_binary.get(r["id"]))
        assert got["id"] == r["id"]
    rest_err = results["rest-wrong-model-shape"]["error"]
    assert rest_err["status"] == "400" and "4 features per row, got 5" in rest_err["message"]
    grpc_err = results["grpc-wrong-model-shape"]["error"]
    assert grpc_err["status"] == "StatusCode.INVALID_ARGUMENT" and "got 5" in grpc_err["message"]
