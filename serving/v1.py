"""KServe V1 protocol (what the seed's clients and KServe's docs use).

``GET /`` and ``GET /v1/models`` list the served models; ``GET /v1/models/NAME`` answers
``{"name": NAME, "ready": true}`` (503 and ``"ready": false`` until a model is loaded);
``POST /v1/models/NAME:predict`` takes ``{"instances": [[f1, f2, f3, f4], ...]}`` and answers
``{"predictions": [class ids]}``.

Probabilities follow KServe's sklearnserver: with ``PREDICT_PROBA=true`` in the environment
(or ``--predict-proba``) ``:predict`` answers ``predict_proba`` rows instead of class ids.
``POST /v1/models/NAME:predict_proba`` answers probabilities regardless of that switch.
"""

from __future__ import annotations

from aiohttp import web

from serving.jsonio import RequestError, json_response, read_json, to_array, to_features
from serving.state import ModelSlot


class V1Routes:
    def __init__(self, slot: ModelSlot, *, max_body_bytes: int, predict_proba: bool) -> None:
        self.slot = slot
        self.max_body_bytes = max_body_bytes
        self.predict_proba = predict_proba

    def add_to(self, router: web.UrlDispatcher) -> None:
        router.add_get("/", self.list_models, name="v1_root")
        router.add_get("/v1/models", self.list_models, name="v1_models")
        # `:` excluded so that `/v1/models/NAME:verb` never reads as a model called "NAME:verb".
        router.add_get("/v1/models/{name:[^/:]+}", self.model_ready, name="v1_model")
        router.add_post("/v1/models/{name}:predict", self.predict, name="v1_predict")
        router.add_post("/v1/models/{name}:predict_proba", self.predict_proba_route, name="v1_predict_proba")

    async def list_models(self, request: web.Request) -> web.Response:
        return json_response({"models": [self.slot.name]})

    async def model_ready(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name != self.slot.name:
            raise RequestError(404, f"model {name!r} not found; this server serves {self.slot.name!r}")
        ready = self.slot.ready
        return json_response({"name": name, "ready": ready}, 200 if ready else 503)

    async def predict(self, request: web.Request) -> web.Response:
        return await self._predict(request, proba=self.predict_proba)

    async def predict_proba_route(self, request: web.Request) -> web.Response:
        return await self._predict(request, proba=True)

    async def _predict(self, request: web.Request, *, proba: bool) -> web.Response:
        model, batcher = self.slot.require(request.match_info["name"])
        body = await read_json(request, max_body_bytes=self.max_body_bytes)
        if not isinstance(body, dict) or "instances" not in body:
            raise RequestError(400, 'missing "instances": expected {"instances": [[f1, f2, ...], ...]}')
        x = to_features(to_array(body["instances"], what="instances"), what="instances",
                        n_features=model.predictor.n_features)
        if proba and not model.predictor.has_proba:
            raise RequestError(400, "this model has no predict_proba (not a classifier)")
        # The decoded JSON (~10x the body in Python objects for a large one) must not outlive
        # decoding: holding it while the model runs is what took 16 large bodies past 1 GB.
        del body
        out = await batcher.submit(x, want_proba=proba)
        result = out.predict_proba if proba else out.predict
        assert result is not None
        return json_response({"predictions": result.tolist()})
