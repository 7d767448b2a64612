"""The Open Inference Protocol's model, independent of transport (REST JSON, REST binary, gRPC).

REST (:mod:`serving.v2`) and gRPC (:mod:`serving.grpc_server`) differ only in how tensors
travel; what a request may ask and what it gets back is decided here, once:

* the server's and the model's metadata;
* which outputs a request wants (MLServer's scikit-learn convention: ``predict`` — class ids —
  by default, ``predict_proba`` on request, both in the order asked);
* the inference itself: one input tensor ``[N, features]`` goes to the slot's shared
  :class:`serving.batcher.MicroBatcher`, so REST and gRPC requests that arrive in the same
  event-loop iteration share one model call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from serving.batcher import MicroBatcher
from serving.jsonio import RequestError
from serving.loader import LoadedModel
from serving.tensors import Array

SERVER_NAME = "kserve-warden-serving"
SERVER_VERSION = "0.1.0"
# Triton's name for the REST binary tensor data extension (KServe's SDK and tritonclient use it).
EXTENSIONS = ("binary_tensor_data",)
OUTPUTS = ("predict", "predict_proba")


@dataclass(frozen=True)
class TensorMeta:
    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelMeta:
    name: str
    platform: str
    inputs: tuple[TensorMeta, ...]
    outputs: tuple[TensorMeta, ...]


def model_metadata(name: str, model: LoadedModel) -> ModelMeta:
    p = model.predictor
    n = p.n_features if p.n_features is not None else -1
    outputs = [TensorMeta("predict", "INT64", (-1,))]
    if p.has_proba:
        outputs.append(TensorMeta("predict_proba", "FP32", (-1, -1)))
    return ModelMeta(name=name, platform=p.kind, inputs=(TensorMeta("input-0", "FP32", (-1, n)),),
                     outputs=tuple(outputs))


def output_names(requested: Sequence[str], *, has_proba: bool) -> list[str]:
    """The outputs to compute, in the order asked; ``predict`` when none are named."""
    unknown = [n for n in requested if n not in OUTPUTS]
    if unknown:
        raise RequestError(400, f"unknown output(s) {unknown}: this model offers {', '.join(OUTPUTS)}")
    if "predict_proba" in requested and not has_proba:
        raise RequestError(400, "this model has no predict_proba output (not a classifier)")
    return list(requested) or ["predict"]


def features(arr: Array, *, what: str, n_features: int | None) -> npt.NDArray[np.float32]:
    """The model's float32 ``[N, features]`` matrix of finite values from a decoded input tensor,
    or 400 saying why not. An FP32 tensor is used as it is (for raw bytes: a view of the request,
    never written to); other datatypes are converted once."""
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise RequestError(400, f"{what}: shape must be [N, features] with N > 0, got {list(arr.shape)}")
    if n_features is not None and arr.shape[1] != n_features:
        raise RequestError(400, f"{what}: the model takes {n_features} features per row, got {arr.shape[1]}")
    if arr.dtype == np.float32:
        x: npt.NDArray[np.float32] = arr
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # FP64 beyond float32 range -> inf, refused below
            x = arr.astype(np.float32)
    if not np.isfinite(x).all():
        raise RequestError(400, f"{what} holds NaN, infinity or values beyond float32 range; "
                                "the model takes finite numbers only")
    return x


async def infer(batcher: MicroBatcher, x: npt.NDArray[np.float32], names: Sequence[str]) -> list[Array]:
    """Run ``x`` through the shared micro-batcher; one array per output name, in order."""
    out = await batcher.submit(x, want_proba="predict_proba" in names)
    arrays: list[Array] = []
    for name in names:
        arr: Any = out.predict if name == "predict" else out.predict_proba
        assert arr is not None  # output_names() refused predict_proba on a model without it
        arrays.append(arr)
    return arrays
