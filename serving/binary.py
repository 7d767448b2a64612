"""The binary tensor data extension of the Open Inference Protocol over REST (Triton's, KServe's).

What KServe's SDK (``InferenceRESTClient`` with ``InferInput.set_data_from_numpy``, its
default) and ``tritonclient.http`` send: a body made of a JSON inference request of
``Inference-Header-Content-Length`` bytes, followed by the raw bytes of the inputs that carry
``"parameters": {"binary_data_size": n}`` (instead of ``data``), in input order. The content
type does not matter (the SDK says ``application/octet-stream``); the header decides.

Responses go binary when asked: ``"parameters": {"binary_data_output": true}`` on the request
makes every output binary, ``"parameters": {"binary_data": true|false}`` on a requested output
decides for that one. A binary output's JSON lists ``"parameters": {"binary_data_size": n}``
and no ``data``; its bytes follow the JSON header, whose length the response's
``Inference-Header-Content-Length`` gives. With no binary output the answer is plain JSON.

The body is checked before anything is decoded: the header length must be a decimal integer
within the body, the sizes must be non-negative integers that add up to exactly the bytes after
the header, and no input may carry both ``data`` and ``binary_data_size``. Anything else is a
400 with the reason; :mod:`serving.tensors` then checks each input's size against its shape.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from serving import jsonio
from serving.jsonio import RequestError

HEADER = "Inference-Header-Content-Length"
OCTET_STREAM = "application/octet-stream"
# Digits of the longest header length worth parsing: 2**63 has 19, no body comes near.
_MAX_DIGITS = 20


async def read_body(request: web.Request, *, max_body_bytes: int) -> bytes:
    """The raw request body: :func:`serving.jsonio.read_body` (413 over the limit, whether
    declared or found while reading; the body timeout and budget; 400 for a bad encoding)."""
    return await jsonio.read_body(request, max_body_bytes=max_body_bytes)


def split(body: bytes, header_length: str) -> tuple[Any, memoryview]:
    """The JSON inference header and the binary bytes after it."""
    value = header_length.strip()
    if not (value.isascii() and value.isdigit()):
        raise RequestError(400, f"{HEADER} must be a decimal byte count, got {header_length[:40]!r}")
    digits = value.lstrip("0") or "0"
    if len(digits) > _MAX_DIGITS:  # before int(), which refuses over 4,300 digits with a ValueError
        raise RequestError(400, f"{HEADER} is {len(digits)} digits long but the body holds {len(body)} bytes")
    n = int(digits)
    if n == 0 or n > len(body):
        raise RequestError(400, f"{HEADER} is {n} but the body holds {len(body)} bytes: the JSON header "
                                "must be non-empty and within the body")
    try:
        doc = json.loads(body[:n])
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"malformed JSON in the first {n} bytes ({HEADER}): {exc}") from exc
    except RecursionError as exc:
        raise RequestError(400, f"malformed JSON in the first {n} bytes ({HEADER}): "
                                "nested too deeply") from exc
    return doc, memoryview(body)[n:]


def _size(tensor: dict[str, Any], what: str) -> int | None:
    params = tensor.get("parameters")
    if params is None:
        return None
    if not isinstance(params, dict):
        raise RequestError(400, f"{what}: parameters must be an object")
    size = params.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RequestError(400, f"{what}: binary_data_size must be a non-negative integer, got {size!r}")
    if "data" in tensor:
        raise RequestError(400, f"{what}: has both data and binary_data_size; send one")
    return size


def slice_inputs(inputs: Sequence[dict[str, Any]], rest: memoryview) -> list[memoryview | None]:
    """Each input's binary bytes (None for JSON ``data``), checked to account for every byte."""
    out: list[memoryview | None] = []
    offset = 0
    for i, tensor in enumerate(inputs):
        what = f"input {tensor.get('name', i)!r}"
        size = _size(tensor, what)
        if size is None:
            out.append(None)
            continue
        if offset + size > len(rest):
            raise RequestError(400, f"{what}: binary_data_size is {size} but only {len(rest) - offset} "
                                    "bytes remain after the JSON header and the inputs before it")
        out.append(rest[offset:offset + size])
        offset += size
    if offset != len(rest):
        raise RequestError(400, f"{len(rest)} bytes follow the JSON header but the inputs' binary_data_size "
                                f"values add up to {offset}")
    return out


def _flag(params: Any, key: str, what: str) -> bool | None:
    if params is None:
        return None
    if not isinstance(params, dict):
        raise RequestError(400, f"{what}: parameters must be an object")
    value = params.get(key)
    if value is not None and not isinstance(value, bool):
        raise RequestError(400, f"{what}: parameter {key} must be true or false, got {value!r}")
    return value


def binary_outputs(request_params: Any, requested: Sequence[dict[str, Any]],
                   names: Sequence[str]) -> list[bool]:
    """Whether each output in ``names`` goes binary (per-output ``binary_data`` beats the request's
    ``binary_data_output``); ``requested`` is the request's ``outputs`` list, maybe empty."""
    default = bool(_flag(request_params, "binary_data_output", "request"))
    per_name = {o["name"]: _flag(o.get("parameters"), "binary_data", f"output {o['name']!r}")
                for o in requested}
    flags = []
    for name in names:
        own = per_name.get(name)
        flags.append(default if own is None else own)
    return flags


def response(doc: dict[str, Any], blobs: Sequence[bytes]) -> web.Response:
    """A binary-extension response: the JSON header, then the outputs' bytes in order."""
    header = json.dumps(doc, separators=(",", ":")).encode()
    resp = web.Response(body=b"".join([header, *blobs]), content_type=OCTET_STREAM)
    resp.headers[HEADER] = str(len(header))
    return resp
