"""The server over real HTTP on a free loopback port: V1, V2, bad input, readiness, metrics, batching."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import xgboost as xgb
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from serving.app import build_app
from serving.train import TrainResult, train
from tests.conftest import find_tool, free_port

SETOSA = [5.1, 3.5, 1.4, 0.2]
NAME = "iris"
MAX_BODY = 64 * 1024
V1 = f"/v1/models/{NAME}:predict"
V2 = f"/v2/models/{NAME}/infer"
J = "application/json"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(out=tmp_path_factory.mktemp("model"), seed=42)


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path) as r:
            return r.status, await r.json(content_type=None)

    async def post(self, path: str, body: Any = None, *, raw: bytes | None = None,
                   content_type: str = "application/json") -> tuple[int, Any]:
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"Content-Type": content_type}
        async with self.session.post(self.base + path, data=data, headers=headers) as r:
            return r.status, await r.json(content_type=None)

    async def text(self, path: str) -> tuple[int, str, str]:
        async with self.session.get(self.base + path) as r:
            return r.status, r.headers["Content-Type"], await r.text()


async def _serve(**kwargs: Any) -> AsyncIterator[Client]:
    server = TestServer(build_app(**kwargs), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Client(session, f"http://127.0.0.1:{server.port}")
    finally:
        await server.close()


@pytest.fixture
async def client(trained: TrainResult) -> AsyncIterator[Client]:
    async for c in _serve(model_name=NAME, model_dir=trained.model_path.parent, max_body_bytes=MAX_BODY,
                          registry=CollectorRegistry()):
        yield c


async def test_v1_setosa_and_model_status(client: Client) -> None:
    assert await client.get(f"/v1/models/{NAME}") == (200, {"name": NAME, "ready": True})
    assert await client.get("/v1/models") == (200, {"models": [NAME]})
    assert await client.get("/") == (200, {"models": [NAME]})
    status, body = await client.post(V1, {"instances": [SETOSA, [6.7, 3.0, 5.2, 2.3]]})
    assert (status, body) == (200, {"predictions": [0, 2]})


async def test_v1_probabilities(client: Client, trained: TrainResult) -> None:
    status, body = await client.post(f"/v1/models/{NAME}:predict_proba", {"instances": [SETOSA]})
    assert status == 200
    booster = xgb.Booster(model_file=str(trained.model_path))
    ref = booster.inplace_predict(np.array([SETOSA], dtype=np.float32))
    assert body["predictions"] == ref.tolist()
    assert np.argmax(body["predictions"][0]) == 0


async def test_v1_predict_proba_switch(trained: TrainResult) -> None:
    async for c in _serve(model_name=NAME, model_dir=trained.model_path.parent, predict_proba=True):
        status, body = await c.post(f"/v1/models/{NAME}:predict", {"instances": [SETOSA]})
        assert status == 200 and len(body["predictions"][0]) == 3


@pytest.mark.parametrize("data", [[*SETOSA, 6.7, 3.0, 5.2, 2.3], [SETOSA, [6.7, 3.0, 5.2, 2.3]]],
                         ids=["flat", "nested"])
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
async def test_v2_infer(client: Client, data: list[Any], datatype: str) -> None:
    tensor = {"name": "input-0", "shape": [2, 4], "datatype": datatype, "data": data}
    req = {"id": "req-1", "inputs": [tensor]}
    status, body = await client.post(f"/v2/models/{NAME}/infer", req)
    assert status == 200, body
    assert body == {"model_name": NAME, "id": "req-1",
                    "outputs": [{"name": "predict", "shape": [2], "datatype": "INT64", "data": [0, 2]}]}


async def test_v2_infer_with_probabilities(client: Client) -> None:
    req = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": SETOSA}],
           "outputs": [{"name": "predict_proba"}, {"name": "predict"}]}
    status, body = await client.post(f"/v2/models/{NAME}/infer", req)
    assert status == 200 and isinstance(body["id"], str) and body["id"]
    proba, pred = body["outputs"]
    assert proba["name"] == "predict_proba" and proba["shape"] == [1, 3] and proba["datatype"] == "FP32"
    assert abs(sum(proba["data"]) - 1) < 1e-5 and pred["data"] == [0]


async def test_v2_health_and_metadata(client: Client) -> None:
    assert await client.get("/v2/health/live") == (200, {"live": True})
    assert await client.get("/v2/health/ready") == (200, {"ready": True})
    assert await client.get(f"/v2/models/{NAME}/ready") == (200, {"name": NAME, "ready": True})
    status, server = await client.get("/v2")
    assert status == 200 and server["name"] and "version" in server
    assert server["extensions"] == ["binary_tensor_data"]
    status, meta = await client.get(f"/v2/models/{NAME}")
    assert status == 200 and meta["name"] == NAME and meta["inputs"][0]["shape"] == [-1, 4]
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba"]


def _v2(**tensor: Any) -> dict[str, Any]:
    t = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": SETOSA}
    t.update(tensor)
    return {"inputs": [t]}


BAD = [
    ("malformed json", V1, b'{"instances": [[5.1, 3.5', J, 400, "malformed JSON"),
    ("empty body", V1, b"", J, 400, "empty request body"),
    ("not an object", V1, b"[1, 2]", J, 400, 'missing "instances"'),
    ("missing instances", V1, b'{"inputs": [[1, 2, 3, 4]]}', J, 400, 'missing "instances"'),
    ("wrong width", V1, b'{"instances": [[5.1, 3.5, 1.4]]}', J, 400, "4 features per row, got 3"),
    ("flat instances", V1, b'{"instances": [5.1, 3.5, 1.4, 0.2]}', J, 400, "shape [N, features]"),
    ("ragged", V1, b'{"instances": [[5.1, 3.5, 1.4, 0.2], [1]]}', J, 400, "regular array"),
    ("string value", V1, b'{"instances": [[5.1, "3.5", 1.4, 0.2]]}', J, 400, "non-numeric"),
    ("null value", V1, b'{"instances": [[5.1, null, 1.4, 0.2]]}', J, 400, "non-numeric"),
    ("NaN", V1, b'{"instances": [[5.1, NaN, 1.4, 0.2]]}', J, 400, "NaN"),
    ("Infinity", V1, b'{"instances": [[5.1, Infinity, 1.4, 0.2]]}', J, 400, "NaN"),
    ("text/plain", V1, b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}', "text/plain", 415,
     "unsupported content type"),
    ("octet-stream", V1, b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}', "application/octet-stream", 415,
     "unsupported content type"),
    ("unknown model v1", "/v1/models/nope:predict", b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}', J, 404,
     "model 'nope' not found"),
    ("unknown model v2", "/v2/models/nope/infer", json.dumps(_v2()).encode(), J, 404,
     "model 'nope' not found"),
    ("v2 missing inputs", V2, b'{"instances": []}', J, 400, 'missing "inputs"'),
    ("v2 two inputs", V2, json.dumps({"inputs": [_v2()["inputs"][0]] * 2}).encode(), J, 400,
     "exactly one tensor"),
    ("v2 missing shape", V2, b'{"inputs": [{"name": "x", "datatype": "FP32", "data": [1, 2, 3, 4]}]}',
     J, 400, "lacks shape"),
    ("v2 bad datatype", V2, json.dumps(_v2(datatype="BYTES")).encode(), J, 400,
     "datatype 'BYTES' not supported"),
    ("v2 shape/data mismatch", V2, json.dumps(_v2(shape=[2, 4])).encode(), J, 400,
     "holds 4 values; shape [2, 4] needs 8"),
    ("v2 wrong width", V2, json.dumps(_v2(shape=[2, 2])).encode(), J, 400, "4 features per row"),
    ("v2 3-d shape", V2, json.dumps(_v2(shape=[1, 1, 4])).encode(), J, 400, "[N, features]"),
    ("v2 NaN", V2, b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", '
     b'"data": [1, NaN, 3, 4]}]}',
     J, 400, "NaN"),
    ("v2 strings", V2, json.dumps(_v2(data=["a", "b", "c", "d"])).encode(), J, 400, "non-numeric"),
    ("v2 unknown output", V2, json.dumps({**_v2(), "outputs": [{"name": "logits"}]}).encode(), J, 400,
     "unknown output"),
    ("no such endpoint", "/v1/models/iris:explain", b"{}", J, 404, "no such endpoint"),
]


@pytest.mark.parametrize(("path", "raw", "ctype", "status", "fragment"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
async def test_bad_input_is_a_clear_4xx_and_server_keeps_serving(
        client: Client, path: str, raw: bytes, ctype: str, status: int, fragment: str) -> None:
    got, body = await client.post(path, raw=raw, content_type=ctype)
    assert got == status, body
    assert set(body) == {"error"} and fragment in body["error"], body
    assert await client.post(V1, {"instances": [SETOSA]}) == (200, {"predictions": [0]})


async def test_oversized_body_is_413(client: Client) -> None:
    big = json.dumps({"instances": [SETOSA] * 5000}).encode()
    assert len(big) > MAX_BODY
    status, body = await client.post(V1, raw=big)
    assert status == 413 and "byte limit" in body["error"]
    # Chunked upload (no Content-Length): aiohttp's own limit applies while reading.
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]
    async with client.session.post(client.base + V1, data=chunks(),
                                   headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413 and "byte limit" in (await r.json())["error"]
    assert await client.post(V1, {"instances": [SETOSA]}) == (200, {"predictions": [0]})


async def test_wrong_method_is_405_json(client: Client) -> None:
    async with client.session.delete(client.base + f"/v1/models/{NAME}") as r:
        assert r.status == 405 and "not allowed" in (await r.json())["error"]


async def test_concurrent_requests_each_get_their_own_answer(client: Client, trained: TrainResult) -> None:
    rng = np.random.default_rng(5)
    rows = rng.uniform([4, 2, 1, 0.1], [8, 4.5, 7, 2.5], size=(200, 4)).astype(np.float32)
    booster = xgb.Booster(model_file=str(trained.model_path))
    expected_proba = booster.inplace_predict(rows)
    expected = expected_proba.argmax(axis=1).tolist()
    assert len(set(expected)) == 3  # the sample exercises every class

    async def one(i: int) -> tuple[int, Any]:
        if i % 3 == 0:
            req = _v2(data=rows[i].tolist()) | {"outputs": [{"name": "predict_proba"}]}
            return await client.post(V2, req)
        return await client.post(V1, {"instances": [rows[i].tolist()]})

    results = await asyncio.gather(*(one(i) for i in range(len(rows))))
    for i, (status, body) in enumerate(results):
        assert status == 200
        if i % 3 == 0:
            assert body["outputs"][0]["data"] == expected_proba[i].tolist()
        else:
            assert body["predictions"] == [expected[i]]
    status, _, text = await client.text("/metrics")
    # Some model calls served several requests (the point of micro-batching).
    count = _sample(text, "serving_batch_requests_count")
    total = _sample(text, "serving_batch_requests_sum")
    assert total >= len(rows) and count < total


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


async def test_metrics_exposition_passes_promtool(client: Client, trained: TrainResult) -> None:
    await client.post(V1, {"instances": [SETOSA]})
    await client.post(V1, raw=b"{", content_type="application/json")
    await client.get("/nowhere")
    status, ctype, text = await client.text("/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    assert 'serving_requests_total{endpoint="v1_predict",status="200"}' in text
    assert 'serving_requests_total{endpoint="v1_predict",status="400"}' in text
    assert 'serving_requests_total{endpoint="unmatched",status="404"}' in text
    assert "serving_request_duration_seconds_bucket" in text
    assert f'sha256="{trained.sha256}"' in text and f'xgboost_version="{xgb.__version__}"' in text
    assert "serving_model_load_duration_seconds " in text and "serving_model_ready 1.0" in text
    proc = await asyncio.create_subprocess_exec(find_tool("promtool"), "check", "metrics",
                                                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(text.encode()), 30)
    assert proc.returncode == 0, out.decode() + err.decode()


async def test_wait_for_model_stays_unready_then_serves_the_real_model(trained: TrainResult,
                                                                       tmp_path: Path) -> None:
    (tmp_path / "model").write_bytes(b"not a model yet")
    async for c in _serve(model_name=NAME, model_dir=tmp_path, wait_for_model=True, poll_seconds=0.05):
        assert await c.get(f"/v1/models/{NAME}") == (503, {"name": NAME, "ready": False})
        assert await c.get("/v2/health/ready") == (503, {"ready": False})
        assert await c.get("/v2/health/live") == (200, {"live": True})
        status, body = await c.post(V1, {"instances": [SETOSA]})
        assert status == 503 and "not loaded" in body["error"]
        _, _, text = await c.text("/metrics")
        assert "serving_model_ready 0.0" in text
        shutil.copy(trained.model_path, tmp_path / "model")
        for _ in range(200):
            if (await c.get(f"/v1/models/{NAME}"))[0] == 200:
                break
            await asyncio.sleep(0.02)
        assert await c.get(f"/v1/models/{NAME}") == (200, {"name": NAME, "ready": True})
        assert await c.post(V1, {"instances": [SETOSA]}) == (200, {"predictions": [0]})


async def test_predict_proba_env_switch_like_kserve_sklearnserver(trained: TrainResult,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREDICT_PROBA", "true")
    async for c in _serve(model_name=NAME, model_dir=trained.model_path.parent):
        status, body = await c.post(V1, {"instances": [SETOSA]})
        assert status == 200 and len(body["predictions"][0]) == 3


async def test_pickled_sklearn_estimator_over_v1_and_v2(tmp_path: Path) -> None:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), tmp_path / "model")  # extensionless pickle
    async for c in _serve(model_name=NAME, model_dir=tmp_path):
        assert await c.post(V1, {"instances": [SETOSA]}) == (200, {"predictions": [0]})
        status, body = await c.post(V2, _v2() | {"outputs": [{"name": "predict"}, {"name": "predict_proba"}]})
        assert status == 200
        pred, proba = body["outputs"]
        assert pred["data"] == [0] and proba["shape"] == [1, 3] and proba["datatype"] == "FP32"
        status, meta = await c.get(f"/v2/models/{NAME}")
        assert meta["platform"] == "estimator:sklearn.LogisticRegression"
