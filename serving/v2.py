"""Open Inference Protocol (KServe V2) over REST, JSON and binary tensors.

``GET /v2`` (server metadata), ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/NAME``
(model metadata), ``/v2/models/NAME/ready``, ``POST /v2/models/NAME/infer``.

An infer request carries one input tensor of shape ``[N, features]``, any numeric datatype of
the spec (:mod:`serving.tensors`), as JSON ``data`` (flat or nested, row-major) or as binary
bytes after the JSON header (:mod:`serving.binary`, what KServe's SDK and tritonclient send by
default). The response follows the spec — ``model_name``, ``id`` (the request's, else a fresh
one), ``outputs`` of ``{name, shape, datatype, data}`` — with binary outputs when the request
asks for them. Which outputs exist and how inference runs is :mod:`serving.oip`'s, shared with
gRPC.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from serving import binary, oip, tensors
from serving.jsonio import RequestError, json_response, read_json
from serving.state import ModelSlot
from serving.tensors import Array


def _meta(t: oip.TensorMeta) -> dict[str, Any]:
    return {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}


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
        return json_response({"name": oip.SERVER_NAME, "version": oip.SERVER_VERSION,
                              "extensions": list(oip.EXTENSIONS)})

    async def live(self, request: web.Request) -> web.Response:
        return json_response({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        ready = self.slot.ready
        return json_response({"ready": ready}, 200 if ready else 503)

    async def model_ready(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name != self.slot.name:
            raise RequestError(404, f"model {name!r} not found; this server serves {self.slot.name!r}")
        ready = self.slot.ready
        return json_response({"name": name, "ready": ready}, 200 if ready else 503)

    async def model_metadata(self, request: web.Request) -> web.Response:
        model, _ = self.slot.require(request.match_info["name"])
        meta = oip.model_metadata(self.slot.name, model)
        return json_response({
            "name": meta.name,
            "versions": [],
            "platform": meta.platform,
            "inputs": [_meta(t) for t in meta.inputs],
            "outputs": [_meta(t) for t in meta.outputs],
        })

    async def infer(self, request: web.Request) -> web.Response:
        model, batcher = self.slot.require(request.match_info["name"])
        header_length = request.headers.get(binary.HEADER)
        rest: memoryview | None = None
        if header_length is None:
            body = await read_json(request, max_body_bytes=self.max_body_bytes)
        else:
            body, rest = binary.split(await binary.read_body(request, max_body_bytes=self.max_body_bytes),
                                      header_length)
        if not isinstance(body, dict) or "inputs" not in body:
            raise RequestError(400, 'missing "inputs": expected {"inputs": [{"name": ..., "shape": ..., '
                                    '"datatype": ..., "data": ...}]}')
        inputs = body["inputs"]
        if not isinstance(inputs, list) or not all(isinstance(t, dict) for t in inputs):
            raise RequestError(400, '"inputs" must be a list holding exactly one tensor object')
        blobs = binary.slice_inputs(inputs, rest) if rest is not None else [None] * len(inputs)
        if len(inputs) != 1:
            raise RequestError(400, '"inputs" must be a list holding exactly one tensor object, '
                                    f"got {len(inputs)}")
        arr, what = self._decode(inputs[0], blobs[0])
        x = oip.features(arr, what=what, n_features=model.predictor.n_features)

        requested = body.get("outputs")
        if requested is None:
            requested = []
        if not isinstance(requested, list) or not all(isinstance(o, dict) and "name" in o for o in requested):
            raise RequestError(400, '"outputs" must be a list of {"name": ...} objects')
        names = oip.output_names([o["name"] for o in requested], has_proba=model.predictor.has_proba)
        as_binary = binary.binary_outputs(body.get("parameters"), requested, names)
        rid = body.get("id")
        # The decoded request (~10x a large JSON body in Python objects) must not outlive decoding:
        # holding it while the model runs is what took 16 large bodies past 1 GB.
        del body, inputs, blobs, arr
        rest = None
        arrays = await oip.infer(batcher, x, names)

        doc: dict[str, Any] = {"model_name": self.slot.name,
                               "id": rid if isinstance(rid, str) and rid else str(uuid.uuid4())}
        outputs: list[dict[str, Any]] = []
        blobs_out: list[bytes] = []
        for name, arr_out, raw_out in zip(names, arrays, as_binary, strict=True):
            outputs.append(self._output(name, arr_out, raw_out, blobs_out))
        doc["outputs"] = outputs
        return binary.response(doc, blobs_out) if blobs_out else json_response(doc)

    @staticmethod
    def _decode(t: dict[str, Any], blob: memoryview | None) -> tuple[Array, str]:
        what = f"input {t.get('name')!r}"
        required = ("name", "shape", "datatype") + (() if blob is not None else ("data",))
        missing = [k for k in required if k not in t]
        if missing:
            raise RequestError(400, f"input tensor lacks {', '.join(missing)}")
        shape = tensors.check_shape(t["shape"], what=what)
        if blob is not None:
            return tensors.from_raw(t["datatype"], shape, blob, what=what), what
        return tensors.from_json(t["datatype"], shape, t["data"], what=what), what

    @staticmethod
    def _output(name: str, arr: Array, raw: bool, blobs: list[bytes]) -> dict[str, Any]:
        datatype = tensors.datatype_of(arr)
        out: dict[str, Any] = {"name": name, "shape": list(arr.shape), "datatype": datatype}
        if raw:
            blob = tensors.to_raw(arr, datatype)
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = tensors.to_json_data(arr, datatype)
        return out
