"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``), with grpc.aio.

Same process, same event loop, same model as the REST server: :func:`lifecycle` is an aiohttp
``cleanup_ctx`` that starts a ``grpc.aio`` server on the app's loop when the app starts and
stops it (with a short grace period) when the app stops. Inference goes through the model
slot's shared :class:`serving.batcher.MicroBatcher`, so gRPC and REST requests arriving in the
same loop iteration share one model call; a model loaded later (``--wait-for-model``) serves
both at once.

Served methods: ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata,
ModelInfer; anything else answers UNIMPLEMENTED. Methods are registered with a generic
handler over the generated messages (``serving/grpc_gen``), not the generated servicer base
class, which is untyped.

Memory: every method is registered with a raw request deserializer, so a call reaches
:func:`_handler` as the message's bytes (grpc.aio has received all of them by then) and its
size is known before protobuf parses anything. A message over
:data:`serving.limits.LARGE_BODY_BYTES` takes its size from the body budget the REST bodies
use (``--max-inflight-body-bytes``), and gives it back when the call returns; over the budget
the call gets RESOURCE_EXHAUSTED at once, with a ``grpc-retry-pushback-ms`` trailer (gRPC's
Retry-After), because waiting would hold the received bytes. The receive limit
(``grpc.max_receive_message_length``) is the REST body cap (``--max-body-bytes``). Per call the
message is in memory once, as the bytes grpc.aio hands over: protobuf's upb parser aliases them,
and a large message's raw input tensors are read as views of them (:class:`InferCall`), where
reading ``raw_input_contents`` would copy each. What grpc's C core buffers while it receives a
message is out of reach: it reads every call's message whether or not the application has
asked for it (grpc/grpc#29836), cannot tell a message's size before reading it (#34498), and
Python cannot set its memory quota; bench/README.md has what that costs.

Logs: a call that fails on our side (INTERNAL) logs one rate-limited line per kind of error,
with its type and frames and never its message or the request (:func:`serving.logs.log_error`,
the REST path's limiter); a client's mistake logs nothing.

Tensors: an input arrives either in ``raw_input_contents`` (what KServe's SDK and tritonclient
send: viewed with ``numpy.frombuffer``, no copy) or as typed ``contents``; outputs go back raw
when the inputs came raw (KServe's rule, and the only form tritonclient reads), typed
otherwise. Errors map to status codes the way KServe's and Triton's servers do: a bad request
is INVALID_ARGUMENT (malformed protobuf bytes too: requests are parsed inside the handler, since
grpc answers UNKNOWN when a deserializer raises), an unknown model NOT_FOUND, a model not loaded
yet UNAVAILABLE; details carry the same message the REST endpoint gives.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from aiohttp import web
from google.protobuf.message import DecodeError, Message
from grpc import aio

from serving import limits, oip, tensors, wire
from serving.grpc_gen import grpc_predict_v2_pb2 as pb
from serving.jsonio import RequestError
from serving.logs import get_logger, log_error
from serving.state import ModelSlot
from serving.tensors import Array

SERVICE = "inference.GRPCInferenceService"
GRACE_SECONDS = 2.0
log = get_logger("serving.grpc")

# HTTP status of a RequestError -> gRPC status (and back, for the shared request metrics).
STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}
# Which typed field of InferTensorContents carries each datatype (FP16/BF16: raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

Req = TypeVar("Req")
Resp = TypeVar("Resp", bound=Message)
Context = aio.ServicerContext[Any, Any]
# Told to a call over the body budget in its trailers: when to retry (gRPC's retry pushback).
PUSHBACK = (("grpc-retry-pushback-ms", str(limits.RETRY_AFTER_SECONDS * 1000)),)


def decode_input(request: pb.ModelInferRequest, n_features: int | None, *,
                 raw_contents: Sequence[bytes | memoryview] | None = None) -> Any:
    """The request's one input tensor as the model's float32 matrix, or RequestError;
    ``raw_contents`` stands for ``request.raw_input_contents`` (views: see :class:`InferCall`)."""
    inputs = request.inputs
    if len(inputs) != 1:
        raise RequestError(400, f"inputs must hold exactly one tensor object, got {len(inputs)}")
    t = inputs[0]
    what = f"input {t.name!r}"
    shape = tuple(t.shape)  # int64 on the wire: only the sign can be wrong
    if any(d < 0 for d in shape):
        raise RequestError(400, f"{what}: shape must be a list of non-negative integers, got {list(shape)}")
    raw = request.raw_input_contents if raw_contents is None else raw_contents
    if raw:
        if len(raw) != len(inputs):
            raise RequestError(400, f"raw_input_contents holds {len(raw)} entries for {len(inputs)} input(s)")
        if t.HasField("contents"):
            raise RequestError(400, f"{what}: has both contents and raw_input_contents; send one")
        arr = tensors.from_raw(t.datatype, shape, raw[0], what=what)
    else:
        field = CONTENTS_FIELD.get(t.datatype)
        if field is None or t.datatype not in tensors.DTYPES:
            if t.datatype in ("FP16", *tensors.RAW_ONLY):
                raise RequestError(400, f"{what}: {t.datatype} has no typed contents field; send it in "
                                        "raw_input_contents")
            raise tensors.unsupported(what, t.datatype)
        arr = tensors.from_values(t.datatype, shape, getattr(t.contents, field), what=what)
    return oip.features(arr, what=what, n_features=n_features)


def encode_outputs(response: pb.ModelInferResponse, names: list[str], arrays: list[Array], *,
                   raw: bool) -> None:
    """Outputs into ``response``: raw bytes if ``raw`` (or a datatype has no typed field), else typed."""
    datatypes = [tensors.datatype_of(a) for a in arrays]
    raw = raw or any(d not in CONTENTS_FIELD for d in datatypes)  # e.g. FP16: raw is its only form
    for name, arr, datatype in zip(names, arrays, datatypes, strict=True):
        out = response.outputs.add(name=name, datatype=datatype, shape=arr.shape)
        if raw:
            response.raw_output_contents.append(tensors.to_raw(arr, datatype))
        elif datatype == "BYTES":
            out.contents.bytes_contents.extend(
                v if isinstance(v, bytes) else str(v).encode() for v in arr.reshape(-1).tolist())
        else:
            getattr(out.contents, CONTENTS_FIELD[datatype]).extend(arr.reshape(-1).tolist())


@dataclass(frozen=True)
class InferCall:
    """A parsed ``ModelInferRequest`` and its raw input tensors: for a large message, views of
    the received bytes (:mod:`serving.wire`), so that no tensor is copied out of it; for a small
    one, protobuf's own field (a copy is cheaper than the scan)."""

    request: pb.ModelInferRequest
    raw_contents: Sequence[bytes | memoryview]


def parse_infer(message: bytes) -> InferCall:
    """``ModelInferRequest.FromString`` (DecodeError for malformed bytes), with the raw inputs
    as views of ``message`` when it is large."""
    request = pb.ModelInferRequest.FromString(message)
    if len(message) <= limits.LARGE_BODY_BYTES:
        return InferCall(request, request.raw_input_contents)
    try:
        views = wire.length_delimited(message, wire.RAW_INPUT_CONTENTS)
    except wire.WireError as exc:  # protobuf parsed it: not expected, but never a 500
        raise RequestError(400, f"malformed ModelInferRequest message: {exc}") from exc
    return InferCall(request, views)


class InferenceService:
    """The servicer: one method per RPC, each taking the request message and the call context."""

    def __init__(self, slot: ModelSlot) -> None:
        self.slot = slot

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.slot.ready)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        if request.name != self.slot.name:
            raise RequestError(404, f"model {request.name!r} not found; "
                                    f"this server serves {self.slot.name!r}")
        return pb.ModelReadyResponse(ready=self.slot.ready)

    async def ServerMetadata(self, request: pb.ServerMetadataRequest,
                             context: Context) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=oip.SERVER_NAME, version=oip.SERVER_VERSION,
                                         extensions=oip.EXTENSIONS)

    async def ModelMetadata(self, request: pb.ModelMetadataRequest,
                            context: Context) -> pb.ModelMetadataResponse:
        model, _ = self.slot.require(request.name)
        meta = oip.model_metadata(self.slot.name, model)
        tm = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=meta.name, platform=meta.platform,
            inputs=[tm(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.inputs],
            outputs=[tm(name=t.name, datatype=t.datatype, shape=t.shape) for t in meta.outputs])

    async def ModelInfer(self, call: InferCall, context: Context) -> pb.ModelInferResponse:
        request = call.request
        model, batcher = self.slot.require(request.model_name)
        x = decode_input(request, model.predictor.n_features, raw_contents=call.raw_contents)
        names = oip.output_names([o.name for o in request.outputs], has_proba=model.predictor.has_proba)
        arrays = await oip.infer(batcher, x, names)
        response = pb.ModelInferResponse(model_name=self.slot.name, id=request.id or str(uuid.uuid4()))
        encode_outputs(response, names, arrays, raw=bool(request.raw_input_contents))
        return response


def _handler(slot: ModelSlot, method: str, fn: Callable[[Req, Context], Awaitable[Resp]],
             parse: Callable[[bytes], Req],
             budget: limits.ByteBudget | None) -> Callable[[bytes, Context], Awaitable[Resp]]:
    """Wrap one RPC: the raw message takes its size from the body budget (RESOURCE_EXHAUSTED
    over it), is parsed (malformed bytes -> INVALID_ARGUMENT), and handled; RequestError -> its
    status code, anything else -> INTERNAL and one rate-limited log line; every call lands in the
    shared request metrics as ``grpc_<method>``."""
    endpoint = f"grpc_{method}"
    metrics = slot.metrics

    async def call(raw: bytes, context: Context) -> Resp:
        t0 = time.perf_counter()
        lease = None
        if budget is not None and len(raw) > limits.LARGE_BODY_BYTES:
            lease = budget.try_acquire(len(raw))
            if lease is None:
                metrics.observe(endpoint, 503, time.perf_counter() - t0)  # REST's status for it
                context.set_trailing_metadata(PUSHBACK)
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    "server busy: too many large request messages in flight "
                                    f"(--max-inflight-body-bytes {budget.capacity}); retry later")
        try:
            try:
                request = parse(raw)
            except DecodeError as exc:
                raise RequestError(400, f"malformed request: not a {method}Request protobuf "
                                        f"message ({exc})") from exc
            response = await fn(request, context)
        except RequestError as exc:
            # Counted before abort(): abort sends the status to the client before it raises,
            # so a client that reads the metrics right after its error must find it there.
            metrics.observe(endpoint, exc.status, time.perf_counter() - t0)
            await context.abort(STATUS.get(exc.status, grpc.StatusCode.INVALID_ARGUMENT), exc.message)
        except aio.AbortError:
            metrics.observe(endpoint, 500, time.perf_counter() - t0)
            raise
        except Exception as exc:
            log_error(log, "grpc call failed", exc, kind=method, method=method)
            metrics.observe(endpoint, 500, time.perf_counter() - t0)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if lease is not None:
                lease.release()
        metrics.observe(endpoint, 200, time.perf_counter() - t0)
        return response

    return call


def generic_handler(slot: ModelSlot, budget: limits.ByteBudget | None = None) -> grpc.GenericRpcHandler:
    service = InferenceService(slot)
    methods: dict[str, tuple[Callable[..., Awaitable[Any]], Callable[[bytes], Any]]] = {
        "ServerLive": (service.ServerLive, pb.ServerLiveRequest.FromString),
        "ServerReady": (service.ServerReady, pb.ServerReadyRequest.FromString),
        "ModelReady": (service.ModelReady, pb.ModelReadyRequest.FromString),
        "ServerMetadata": (service.ServerMetadata, pb.ServerMetadataRequest.FromString),
        "ModelMetadata": (service.ModelMetadata, pb.ModelMetadataRequest.FromString),
        "ModelInfer": (service.ModelInfer, parse_infer),
    }
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        name: grpc.unary_unary_rpc_method_handler(
            _handler(slot, name, fn, parse, budget),
            request_deserializer=None,  # the raw bytes: _handler budgets, then parses them
            response_serializer=lambda m: m.SerializeToString(),
        )
        for name, (fn, parse) in methods.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


async def start(slot: ModelSlot, *, host: str, port: int, max_message_bytes: int,
                budget: limits.ByteBudget | None = None, reuse_port: bool = False) -> aio.Server:
    """A started grpc.aio server on ``host:port`` for ``slot``, on the running event loop; large
    messages share ``budget`` (the REST bodies' one, from :func:`serving.app.build_app`)."""
    server = aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
        # gRPC sets SO_REUSEPORT by default, which would let a second server share a busy port
        # silently; only --workers (which shares the HTTP port the same way) wants that.
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ])
    server.add_generic_rpc_handlers((generic_handler(slot, budget),))
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"cannot listen for gRPC on {address}: {exc}") from exc
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {address}")
    await server.start()
    log.info("grpc serving", address=address)
    return server


def lifecycle(slot: ModelSlot, *, host: str, port: int, max_message_bytes: int,
              budget: limits.ByteBudget | None = None,
              reuse_port: bool = False) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp ``cleanup_ctx`` entry running the gRPC server for as long as the app runs."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        server = await start(slot, host=host, port=port, max_message_bytes=max_message_bytes,
                             budget=budget, reuse_port=reuse_port)
        yield
        await server.stop(GRACE_SECONDS)

    return ctx
