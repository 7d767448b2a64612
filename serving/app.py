"""The aiohttp application: routes, error handling and metrics for one served model.

``build_app`` creates everything the app needs (model slot, metrics registry, routes) and
holds no global state, so tests and the sandbox can run several apps in one process. Without
``wait_for_model`` it loads the model before returning and raises
:class:`serving.loader.ModelLoadError` when there is none; with it, the app starts unready
and a background task (started and cancelled with the app) polls the directory.

One middleware does five things per request: puts a body still on its way under its
connection's minimum-rate clock (:func:`serving.limits.track_body`), times the request for
``/metrics``, turns :class:`RequestError` (with its ``Retry-After``, if any) and aiohttp's own
HTTP errors (no route 404, 405, 413) into ``{"error": ...}`` JSON, turns anything unexpected
into a 500 JSON body and one rate-limited log line (the error's type and frames, never its
message or the request: see :mod:`serving.logs`) — the server keeps serving — and gives back
the body budget a large request took. The app carries its :class:`serving.limits.Limits`;
serve it with :func:`serving.limits.start` (or ``run_app``) for the connection limits to apply.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from serving import state
from serving.jsonio import RequestError, error_response
from serving.limits import (
    BODY_LIMITS,
    LIMITS,
    METRICS,
    BodyLimits,
    ByteBudget,
    Limits,
    current_lease,
    track_body,
)
from serving.logs import get_logger, log_error
from serving.metrics import ServingMetrics
from serving.state import ModelSlot
from serving.v1 import V1Routes
from serving.v2 import V2Routes

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
log = get_logger("serving.app")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _env_predict_proba() -> bool:
    # KServe's sklearnserver switches :predict to probabilities with PREDICT_PROBA=true.
    return os.environ.get("PREDICT_PROBA", "false").lower() == "true"


def _middleware(metrics: ServingMetrics, max_body_bytes: int) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        t0 = time.perf_counter()
        track_body(request)
        try:
            resp = await handler(request)
        except RequestError as exc:
            resp = error_response(exc.status, exc.message)
            if exc.retry_after is not None:
                resp.headers["Retry-After"] = str(exc.retry_after)
        except web.HTTPException as exc:
            if exc.status == 413:
                message = f"request body is over the {max_body_bytes} byte limit"
            elif exc.status == 404:
                message = f"no such endpoint: {request.method} {request.path}"
            elif exc.status == 405:
                message = f"method {request.method} not allowed on {request.path}"
            else:
                message = exc.reason
            resp = error_response(exc.status, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            endpoint = request.match_info.route.name or "unmatched"
            log_error(log, "request failed", exc, kind=endpoint, endpoint=endpoint)
            resp = error_response(500, f"internal error: {type(exc).__name__}: {str(exc)[:200]}")
        finally:
            lease = current_lease.get()
            if lease is not None:
                lease.release()
        name = request.match_info.route.name or "unmatched"
        metrics.observe(name, resp.status, time.perf_counter() - t0)
        return resp

    return observe


def build_app(
    *,
    model_name: str,
    model_dir: Path,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    wait_for_model: bool = False,
    registry: CollectorRegistry | None = None,
    predict_proba: bool | None = None,
    nthread: int = 1,
    poll_seconds: float = 1.0,
    limits: Limits | None = None,
    grpc_port: int = 0,
    grpc_host: str = "0.0.0.0",
    reuse_port: bool = False,
) -> web.Application:
    """The model server as an aiohttp app (see module docstring); with ``grpc_port`` (0 = none) it
    also serves gRPC from the same loop and model while the app runs (:mod:`serving.grpc_server`)."""
    metrics = ServingMetrics(registry if registry is not None else CollectorRegistry())
    slot = ModelSlot(name=model_name, model_dir=Path(model_dir), metrics=metrics, nthread=nthread)
    if not wait_for_model:
        slot.load()  # raises ModelLoadError: never start serving without a real model

    # client_max_size: aiohttp itself refuses bodies over the limit while reading (413).
    app = web.Application(client_max_size=max_body_bytes, middlewares=[_middleware(metrics, max_body_bytes)])
    lim = limits if limits is not None else Limits()
    budget = ByteBudget(lim.max_inflight_body_bytes)
    metrics.inflight_body_bytes.set_function(lambda: budget.used)
    metrics.body_budget_waiting.set_function(lambda: budget.waiting)
    app[LIMITS] = lim
    app[METRICS] = metrics
    app[BODY_LIMITS] = BodyLimits(timeout=lim.body_timeout, budget=budget)
    proba = _env_predict_proba() if predict_proba is None else predict_proba
    V1Routes(slot, max_body_bytes=max_body_bytes, predict_proba=proba).add_to(app.router)
    V2Routes(slot, max_body_bytes=max_body_bytes).add_to(app.router)

    async def metrics_handler(request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(metrics.registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    app.router.add_get("/metrics", metrics_handler, name="metrics")

    if grpc_port:
        from serving import grpc_server  # imports grpc: only for servers that speak it

        app.cleanup_ctx.append(grpc_server.lifecycle(slot, host=grpc_host, port=grpc_port,
                                                     max_message_bytes=max_body_bytes, budget=budget,
                                                     reuse_port=reuse_port))

    if wait_for_model:
        async def watcher(app: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(state.wait_for_model(slot, poll_seconds=poll_seconds))
            yield
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

        app.cleanup_ctx.append(watcher)
    return app

