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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from aiohttp import web
from google.protobuf.message import DecodeError, Message
from grpc import aio

from serving import oip, tensors
from serving.grpc_gen import grpc_predict_v2_pb2 as pb
from serving.jsonio import RequestError
from serving.logs import get_logger
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

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Context = aio.ServicerContext[Any, Any]


def decode_input(request: pb.ModelInferRequest, n_features: int | None) -> Any:
    """The request's one input tensor as the model's float32 matrix, or RequestError."""
    inputs = request.inputs
    if len(inputs) != 1:
        raise RequestError(400, f"inputs must hold exactly one tensor object, got {len(inputs)}")
    t = inputs[0]
    what = f"input {t.name!r}"
    shape = tuple(t.shape)  # int64 on the wire: only the sign can be wrong
    if any(d < 0 for d in shape):
        raise RequestError(400, f"{what}: shape must be a list of non-negative integers, got {list(shape)}")
    raw = request.raw_input_contents
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

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> pb.ModelInferResponse:
        model, batcher = self.slot.require(request.model_name)
        x = decode_input(request, model.predictor.n_features)
        names = oip.output_names([o.name for o in request.outputs], has_proba=model.predictor.has_proba)
        arrays = await oip.infer(batcher, x, names)
        response = pb.ModelInferResponse(model_name=self.slot.name, id=request.id or str(uuid.uuid4()))
        encode_outputs(response, names, arrays, raw=bool(request.raw_input_contents))
        return response


def _handler(slot: ModelSlot, method: str,
             fn: Callable[[Req, Context], Awaitable[Resp]]) -> Callable[[Req, Context], Awaitable[Resp]]:
    """Wrap one RPC: RequestError -> its status code, anything else -> INTERNAL and a logged
    traceback; every call lands in the shared request metrics as ``grpc_<method>``."""
    endpoint = f"grpc_{method}"
    metrics = slot.metrics

    async def call(request: Req, context: Context) -> Resp:
        t0 = time.perf_counter()
        try:
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
            log.exception("grpc call failed", method=method)
            metrics.observe(endpoint, 500, time.perf_counter() - t0)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
        metrics.observe(endpoint, 200, time.perf_counter() - t0)
        return response

    return call


def _parsed(req_type: type[Req], fn: Callable[[Req, Context], Awaitable[Resp]]) -> Callable[
        [bytes, Context], Awaitable[Resp]]:
    """``fn`` taking the request's bytes: malformed protobuf is the client's mistake (400, so
    INVALID_ARGUMENT), where a failing deserializer would make grpc answer UNKNOWN."""

    async def call(raw: bytes, context: Context) -> Resp:
        try:
            request = req_type.FromString(raw)
        except DecodeError as exc:
            raise RequestError(400, f"malformed request: not a {req_type.DESCRIPTOR.name} protobuf "
                                    f"message ({exc})") from exc
        return await fn(request, context)

    return call


def generic_handler(slot: ModelSlot) -> grpc.GenericRpcHandler:
    service = InferenceService(slot)
    methods: dict[str, tuple[Callable[..., Awaitable[Any]], type[Message]]] = {
        "ServerLive": (service.ServerLive, pb.ServerLiveRequest),
        "ServerReady": (service.ServerReady, pb.ServerReadyRequest),
        "ModelReady": (service.ModelReady, pb.ModelReadyRequest),
        "ServerMetadata": (service.ServerMetadata, pb.ServerMetadataRequest),
        "ModelMetadata": (service.ModelMetadata, pb.ModelMetadataRequest),
        "ModelInfer": (service.ModelInfer, pb.ModelInferRequest),
    }
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        name: grpc.unary_unary_rpc_method_handler(
            _handler(slot, name, _parsed(req_type, fn)),
            # bytes in: grpc answers UNKNOWN when a deserializer raises; _parsed makes that a 400
            request_deserializer=None,
            response_serializer=lambda m: m.SerializeToString(),
        )
        for name, (fn, req_type) in methods.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


async def start(slot: ModelSlot, *, host: str, port: int, max_message_bytes: int,
                reuse_port: bool = False) -> aio.Server:
    """A started grpc.aio server on ``host:port`` for ``slot``, on the running event loop."""
    server = aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", -1),
        # gRPC sets SO_REUSEPORT by default, which would let a second server share a busy port
        # silently; only --workers (which shares the HTTP port the same way) wants that.
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ])
    server.add_generic_rpc_handlers((generic_handler(slot),))
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
              reuse_port: bool = False) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp ``cleanup_ctx`` entry running the gRPC server for as long as the app runs."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        server = await start(slot, host=host, port=port, max_message_bytes=max_message_bytes,
                             reuse_port=reuse_port)
        yield
        await server.stop(GRACE_SECONDS)

    return ctx
