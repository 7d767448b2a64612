"""Open Inference Protocol (KServe V2) over REST.

``GET /v2`` (server metadata), ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/NAME``
(model metadata), ``/v2/models/NAME/ready``, ``POST /v2/models/NAME/infer``.

An infer request carries one input tensor: ``datatype`` FP32 or FP64 (INT32/INT64 accepted
too), ``shape`` ``[N, features]``, ``data`` row-major, flat or nested. The response follows the
spec: ``model_name``, ``id`` (the request's, else a fresh one), ``outputs`` of
``{name, shape, datatype, data}``. Outputs follow MLServer's scikit-learn runtime convention:
``predict`` (class ids) by default; ask for ``predict_proba`` (or both) with
``"outputs": [{"name": "predict_proba"}]``.
"""

from __future__ import annotations

import uuid
from math import prod
from typing import Any

import numpy as np
import numpy.typing as npt
from aiohttp import web

from serving.jsonio import RequestError, json_response, read_json, to_array, to_features
from serving.state import ModelSlot

SERVER_NAME = "kserve-warden-serving"
SERVER_VERSION = "0.1.0"
INPUT_TYPES = ("FP32", "FP64", "INT32", "INT64")
OUTPUTS = ("predict", "predict_proba")


def _datatype(arr: npt.NDArray[Any]) -> str:
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind in "iu":
        return "INT64" if size > 4 or kind == "u" else "INT32"
    if kind == "f":
        return "FP32" if size == 4 else "FP64"
    if kind == "b":
        return "BOOL"
    return "BYTES"


def _tensor(name: str, arr: npt.NDArray[Any]) -> dict[str, Any]:
    dt = _datatype(arr)
    data = arr.reshape(-1).tolist() if dt != "BYTES" else [str(v) for v in arr.reshape(-1)]
    return {"name": name, "shape": list(arr.shape), "datatype": dt, "data": data}


class V2Routes:
    def __init__(self, slot: ModelSlot, *, max_body_bytes: int) -> None:
        self.slot = slot
        self.max_body_bytes = max_body_bytes

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v2", self.server_metadata, name="v2_server")
        router.add_get("/v2/health/live", self.live, name="v2_live")
        router.add_get("/v2/health/ready", self.ready, name="v2_ready")
        router.add_get("/v2/models/{name}", self.model_metadata, name="v2_model")
        router.add_get("/v2/models/{name}/ready", self.model_ready, name="v2_model_ready")
        router.add_post("/v2/models/{name}/infer", self.infer, name="v2_infer")

    async def server_metadata(self, request: web.Request) -> web.Response:
        return json_response({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": []})

    async def live(self, request: web.Request) -> web.Response:
        return json_response({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        ready = self.slot.ready
        return json_response({"ready": ready}, 200 if ready else 503)

    def _known(self, request: web.Request) -> str:
        name = request.match_info["name"]
        if name != self.slot.name:
            raise RequestError(404, f"model {name!r} not found; this server serves {self.slot.name!r}")
        return name

    async def model_ready(self, request: web.Request) -> web.Response:
        name = self._known(request)
        ready = self.slot.ready
        return json_response({"name": name, "ready": ready}, 200 if ready else 503)

    async def model_metadata(self, request: web.Request) -> web.Response:
        model, _ = self.slot.require(request.match_info["name"])
        n = model.predictor.n_features if model.predictor.n_features is not None else -1
        outputs = [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
        if model.predictor.has_proba:
            outputs.append({"name": "predict_proba", "datatype": "FP32", "shape": [-1, -1]})
        return json_response({
            "name": self.slot.name,
            "versions": [],
            "platform": model.predictor.kind,
            "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, n]}],
            "outputs": outputs,
        })

    async def infer(self, request: web.Request) -> web.Response:
        model, batcher = self.slot.require(request.match_info["name"])
        body = await read_json(request, max_body_bytes=self.max_body_bytes)
        if not isinstance(body, dict) or "inputs" not in body:
            raise RequestError(400, 'missing "inputs": expected {"inputs": [{"name": ..., "shape": ..., '
                                    '"datatype": ..., "data": ...}]}')
        x = self._input(body["inputs"], model.predictor.n_features)
        wanted = self._outputs(body.get("outputs"), has_proba=model.predictor.has_proba)
        out = await batcher.submit(x, want_proba="predict_proba" in wanted)
        tensors = []
        for name in wanted:
            arr = out.predict if name == "predict" else out.predict_proba
            assert arr is not None
            tensors.append(_tensor(name, arr))
        rid = body.get("id")
        return json_response({
            "model_name": self.slot.name,
            "id": rid if isinstance(rid, str) and rid else str(uuid.uuid4()),
            "outputs": tensors,
        })

    @staticmethod
    def _input(inputs: Any, n_features: int | None) -> npt.NDArray[np.float32]:
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise RequestError(400, '"inputs" must be a list holding exactly one tensor object')
        t = inputs[0]
        missing = [k for k in ("name", "shape", "datatype", "data") if k not in t]
        if missing:
            raise RequestError(400, f"input tensor lacks {', '.join(missing)}")
        if t["datatype"] not in INPUT_TYPES:
            raise RequestError(400, f"input datatype {t['datatype']!r} not supported: use one of "
                                    f"{', '.join(INPUT_TYPES)}")
        shape = t["shape"]
        if (not isinstance(shape, list) or len(shape) != 2
                or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
            raise RequestError(400, f"input shape must be [N, features], positive integers; got {shape!r}")
        arr = to_array(t["data"], what="input data")
        if arr.size != prod(shape):
            raise RequestError(400, f"input data holds {arr.size} values; shape {shape} needs {prod(shape)}")
        if t["datatype"].startswith("INT") and arr.dtype.kind == "f":
            raise RequestError(400, f"input datatype {t['datatype']} but data holds non-integer numbers")
        return to_features(arr.reshape(shape), what="input", n_features=n_features)

    @staticmethod
    def _outputs(requested: Any, *, has_proba: bool) -> list[str]:
        if requested is None:
            return ["predict"]
        if not isinstance(requested, list) or not all(isinstance(o, dict) and "name" in o for o in requested):
            raise RequestError(400, '"outputs" must be a list of {"name": ...} objects')
        names = [o["name"] for o in requested]
        unknown = [n for n in names if n not in OUTPUTS]
        if unknown:
            raise RequestError(400, f"unknown output(s) {unknown}: this model offers {', '.join(OUTPUTS)}")
        if "predict_proba" in names and not has_proba:
            raise RequestError(400, "this model has no predict_proba output (not a classifier)")
        return names or ["predict"]
