"""Open Inference Protocol tensors: datatypes, decoding and encoding, for every transport.

A tensor reaches the server in one of three forms — JSON ``data`` (REST), raw little-endian
bytes (REST's binary tensor extension, gRPC's ``raw_input_contents``) or typed protobuf
contents (gRPC) — and each decoder here returns a numpy array of the tensor's declared
datatype and shape. :func:`serving.jsonio.to_features` then makes the float32 matrix the model
takes, with the same checks whichever way the tensor came. Every mistake is a
:class:`RequestError` (400) saying which tensor, what was expected and what arrived: a datatype
that is not a string, and a shape no array can have (over 64 dimensions, a dimension past
int64, an element count numpy cannot address even when a zero makes the array empty) included,
which numpy would otherwise refuse with an exception of its own, a 500.

No Python loop runs per element: raw bytes are *viewed* with ``numpy.frombuffer`` (zero copy)
and checked with vectorised comparisons; JSON lists and protobuf repeated fields are converted
by numpy in C. Datatypes: those of the V2 specification a tree model can take — BOOL,
INT8-64, UINT8-64, FP16, FP32, FP64 — plus Triton's BF16 (raw only: its bits widen exactly to
float32). BYTES is refused as an input (a tree model takes numbers) but is produced as an
output when a scikit-learn estimator predicts string labels.

Output datatypes follow the array's dtype exactly (``int64`` -> INT64, ``float32`` -> FP32,
...), so a tensor's bytes always have the width its datatype declares.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from math import prod
from typing import Any

import numpy as np
import numpy.typing as npt

from serving.jsonio import RequestError

Array = npt.NDArray[Any]

# Little-endian numpy dtypes of the numeric V2 datatypes (the wire is little-endian everywhere).
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
# Raw-only datatypes: their element width, and how the bytes become an array.
RAW_ONLY = {"BF16": 2}
INPUT_TYPES = (*DTYPES, *RAW_ONLY)
_BY_DTYPE = {dt: name for name, dt in DTYPES.items()}


def unsupported(what: str, datatype: Any) -> RequestError:
    if datatype == "BYTES":
        return RequestError(400, f"{what}: datatype 'BYTES' not supported: the model takes numbers "
                                 f"({', '.join(INPUT_TYPES)})")
    return RequestError(400, f"{what}: datatype {datatype!r} not supported: "
                             f"use one of {', '.join(INPUT_TYPES)}")


# numpy's limit (NPY_MAXDIMS); the V2 protocol sets none, but no array past it can be built.
MAX_DIMS = 64
# gRPC carries each dimension as an int64; REST's JSON integers get the same bound.
MAX_DIM = 2**63 - 1
# Elements times the widest itemsize (8) must stay below numpy's byte limit (intp): past it numpy
# refuses even an empty array (shape [0, 2**62, 2**62]) with its own ValueError.
_MAX_ELEMENTS = MAX_DIM // 8


def check_shape(shape: Any, *, what: str) -> tuple[int, ...]:
    """A tensor's declared shape: a list of non-negative integers (not booleans). Whether an
    array of it can exist is :func:`check_extent`'s, which every decoder runs."""
    if type(shape) is list and all(type(d) is int and d >= 0 for d in shape):
        return tuple(shape)  # the usual JSON shape, checked without the ABC machinery below
    if (not isinstance(shape, Sequence) or isinstance(shape, str | bytes)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise RequestError(400, f"{what}: shape must be a list of non-negative integers, got {shape!r}")
    return tuple(int(d) for d in shape)


def check_extent(shape: Sequence[int], *, what: str) -> None:
    """400 unless an array of ``shape`` can exist: at most :data:`MAX_DIMS` dimensions, each at
    most :data:`MAX_DIM`, and an element count numpy can address even when a zero dimension
    makes the array empty. Every decoder runs it, so REST (JSON, binary) and gRPC agree."""
    if len(shape) > MAX_DIMS:
        raise RequestError(400, f"{what}: shape has {len(shape)} dimensions; at most {MAX_DIMS}")
    count = 1
    for i, d in enumerate(shape):
        if d > MAX_DIM:
            raise RequestError(400, f"{what}: shape dimension {i} is {d}, over the largest (2**63 - 1)")
        count *= d or 1
    if count > _MAX_ELEMENTS:
        raise RequestError(400, f"{what}: shape {list(shape)} describes more elements than any array "
                                "can hold")


def check_datatype(datatype: Any, *, what: str) -> None:
    """400 unless the datatype is a string (JSON may carry anything there)."""
    if not isinstance(datatype, str):
        raise RequestError(400, f"{what}: datatype must be a string such as 'FP32', got {datatype!r:.100}")


def from_raw(datatype: Any, shape: tuple[int, ...], raw: bytes | memoryview, *, what: str) -> Array:
    """Raw little-endian bytes -> an array of ``shape`` (a view of ``raw`` where the dtype allows)."""
    check_datatype(datatype, what=what)
    if datatype in DTYPES:
        dtype = DTYPES[datatype]
        width = dtype.itemsize
    elif datatype in RAW_ONLY:
        dtype, width = np.dtype("<u2"), RAW_ONLY[datatype]
    else:
        raise unsupported(what, datatype)
    need = prod(shape) * width
    if len(raw) != need:
        raise RequestError(400, f"{what}: binary data holds {len(raw)} bytes; shape {list(shape)} of "
                                f"{datatype} needs {need} ({width} per element)")
    check_extent(shape, what=what)  # the bytes fit; an empty array of such a shape still cannot exist
    if datatype == "BOOL":
        octets = np.frombuffer(raw, dtype=np.uint8)
        if octets.size and int(octets.max()) > 1:
            raise RequestError(400, f"{what}: BOOL bytes must be 0 or 1")
        return octets.view(np.bool_).reshape(shape)
    arr = np.frombuffer(raw, dtype=dtype)
    if datatype == "BF16":
        # bfloat16 is the top half of a float32: shifting its bits up is the exact conversion.
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.reshape(shape)


def _check_range(arr: Array, dtype: np.dtype[Any], *, datatype: str, what: str) -> None:
    info = np.iinfo(dtype)
    if arr.size and (int(arr.min()) < info.min or int(arr.max()) > info.max):
        raise RequestError(400, f"{what}: values outside the range of {datatype} ({info.min}..{info.max})")


def from_json(datatype: Any, shape: tuple[int, ...], data: Any, *, what: str) -> Array:
    """JSON ``data`` (flat or nested, row-major) -> an array of ``datatype`` and ``shape``."""
    check_datatype(datatype, what=what)
    check_extent(shape, what=what)
    if datatype not in DTYPES:
        if datatype in RAW_ONLY:
            raise RequestError(400, f"{what}: {datatype} data must be sent as binary (the binary tensor "
                                    "extension or raw_input_contents), not as JSON numbers")
        raise unsupported(what, datatype)
    dtype = DTYPES[datatype]
    if not isinstance(data, list):
        raise RequestError(400, f"{what}: data must be a list, got {type(data).__name__}")
    try:
        arr = np.array(data)
    except (ValueError, TypeError, OverflowError) as exc:
        raise RequestError(400, f"{what}: data is not a regular array (ragged rows?): {exc}") from exc
    if arr.size != prod(shape):
        raise RequestError(400, f"{what}: data holds {arr.size} values; "
                                f"shape {list(shape)} needs {prod(shape)}")
    kind = arr.dtype.kind
    if arr.size == 0:
        return np.zeros(shape, dtype=dtype)
    if datatype == "BOOL":
        if kind != "b":
            raise RequestError(400, f"{what}: datatype BOOL takes true/false values")
    elif kind not in "iuf":
        if kind == "O":
            raise RequestError(400, f"{what}: data holds non-numeric values or rows of different lengths")
        raise RequestError(400, f"{what}: data holds non-numeric values (strings or booleans)")
    elif dtype.kind in "iu":
        if kind == "f":
            raise RequestError(400, f"{what}: datatype {datatype} but data holds non-integer numbers")
        _check_range(arr, dtype, datatype=datatype, what=what)
    with np.errstate(over="ignore", invalid="ignore"):
        return arr.astype(dtype).reshape(shape)


def from_values(datatype: str, shape: tuple[int, ...], values: Any, *, what: str) -> Array:
    """A protobuf repeated field (gRPC typed contents) -> an array; numpy iterates in C."""
    check_extent(shape, what=what)
    dtype = DTYPES[datatype]
    n = len(values)
    if n != prod(shape):
        raise RequestError(400, f"{what}: contents hold {n} values; shape {list(shape)} needs {prod(shape)}")
    if dtype.kind in "iu" and dtype.itemsize < 4:
        wide = np.fromiter(values, dtype=np.int64, count=n)
        _check_range(wide, dtype, datatype=datatype, what=what)
        return wide.astype(dtype).reshape(shape)
    return np.fromiter(values, dtype=dtype, count=n).reshape(shape)


def datatype_of(arr: Array) -> str:
    """The V2 datatype whose width matches ``arr``'s dtype; BYTES for anything non-numeric."""
    return _BY_DTYPE.get(arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype, "BYTES")


def as_wire(arr: Array, datatype: str) -> Array:
    """``arr`` in the little-endian layout of ``datatype`` (a no-op on this platform's arrays)."""
    return np.ascontiguousarray(arr, dtype=DTYPES[datatype])


def to_raw(arr: Array, datatype: str) -> bytes:
    """An output's raw bytes: little-endian, row-major; BYTES as 4-byte length + UTF-8 each."""
    if datatype == "BYTES":
        parts: list[bytes] = []
        for v in arr.reshape(-1).tolist():  # string labels only: a few per request
            b = v if isinstance(v, bytes) else str(v).encode()
            parts += [struct.pack("<I", len(b)), b]
        return b"".join(parts)
    return as_wire(arr, datatype).tobytes()


def to_json_data(arr: Array, datatype: str) -> list[Any]:
    """An output's JSON ``data``: flat, row-major."""
    if datatype == "BYTES":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in arr.reshape(-1).tolist()]
    flat: list[Any] = arr.reshape(-1).tolist()
    return flat
