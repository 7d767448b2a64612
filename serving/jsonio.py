"""HTTP plumbing shared by the V1 and V2 routes: JSON in and out, and input validation.

Every client mistake raises :class:`RequestError` (status + a message saying what was wrong);
the app's middleware turns it into ``{"error": "..."}`` with that status. Validation is strict
and cheap: numpy infers the dtype of the nested lists once, and anything that is not an
integer or float array of the right shape is refused before it reaches a model.

Reading a body (:func:`read_body`) is where a client can hurt the server, so every way it can
fail is a 4xx/5xx of its own, never a 500 with a traceback: over the size limit (413, checked
on the declared length and again on the decoded bytes, so a gzip bomb stops at the limit), a
``Content-Encoding`` the bytes do not match or broken chunked framing (400), a body slower than
``--body-timeout`` in all or than ``--body-min-rate`` on its way (408), a wait for the body
budget longer than a body timeout (503 with ``Retry-After``), the client gone
mid-body (400, which nobody reads). After a 400, 408 or 413 the rest of the body is abandoned
and the connection closes; after a 503 aiohttp reads and drops it, so the client sees the
answer. JSON nested deeper than the parser's recursion limit (~1,000 levels; numpy refuses more
than 64 dimensions anyway) is a 400 too. The budget and the timeout only apply to bodies that
are large or still on their way (:mod:`serving.limits`): a small body already in memory is read
with no await at all.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from aiohttp import web

from serving import limits

F32 = npt.NDArray[np.float32]
# curl's default for `-d @body.json`, which KServe's own docs use without a Content-Type header.
JSON_TYPES = ("application/json", "application/x-www-form-urlencoded")


class RequestError(Exception):
    """A client's mistake, or the server too busy for it: ``status`` and what to tell it (and
    when to retry: ``retry_after`` seconds, sent as ``Retry-After``)."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def json_response(obj: Any, status: int = 200) -> web.Response:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, content_type="application/json")


def error_response(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


def _is_json(content_type: str) -> bool:
    return content_type in JSON_TYPES or content_type.endswith("+json")


async def read_json(request: web.Request, *, max_body_bytes: int) -> Any:
    """The request body as JSON; 415 for a non-JSON content type, 413 over the limit, 400 if malformed.

    A request without a Content-Type header, or with curl's default form type (KServe's
    documented ``curl -d @input.json`` sends that), is read as JSON; any other declared type
    (text/plain, multipart, octet-stream, ...) is refused.
    """
    if "Content-Type" in request.headers and not _is_json(request.content_type):
        raise RequestError(415, f"unsupported content type {request.content_type!r}: send application/json")
    raw = _buffered_body(request, max_body_bytes)
    if raw is None:
        raw = await read_body(request, max_body_bytes=max_body_bytes)
    if not raw:
        raise RequestError(400, "empty request body: expected a JSON object")
    return parse_json(raw)


def parse_json(raw: bytes | bytearray | memoryview, *, what: str = "JSON") -> Any:
    """``json.loads`` with every failure a 400 (the parser's recursion limit included)."""
    try:
        return json.loads(raw if not isinstance(raw, memoryview) else raw.tobytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"malformed {what}: {exc}") from exc
    except RecursionError as exc:
        raise RequestError(400, f"malformed {what}: nested too deeply") from exc


async def read_body(request: web.Request, *, max_body_bytes: int) -> bytes:
    """The request body, decoded per ``Content-Encoding``; every failure a :class:`RequestError`."""
    raw = _buffered_body(request, max_body_bytes)
    if raw is not None:
        return raw
    length = request.content_length
    body = request.app.get(limits.BODY_LIMITS) or _default_body_limits()
    loop = asyncio.get_running_loop()
    waiting_for_budget = False
    try:
        async with asyncio.timeout(body.timeout) as deadline:

            async def take_budget(nbytes: int) -> None:
                # The wait for the budget gets a body timeout of its own (503 after it), and then
                # the client gets a whole one to send: our queue is not the client's slowness.
                nonlocal waiting_for_budget
                waiting_for_budget = True
                deadline.reschedule(loop.time() + body.timeout)
                lease = await body.budget.acquire(nbytes)
                waiting_for_budget = False
                deadline.reschedule(loop.time() + body.timeout)
                limits.current_lease.set(lease)  # the app's middleware releases it after the handler

            if length is not None and length > limits.LARGE_BODY_BYTES:
                await take_budget(length)
            # A body of unknown length (chunked, compressed) takes the budget once it turns out large.
            return await _drain(request, max_body_bytes, lambda: take_budget(max_body_bytes))
    except limits.BodyTooSlow as exc:  # the connection's rate clock (serving.limits) set it
        _abandon(request)
        raise RequestError(408, f"request body not received in time: {exc}") from exc
    except TimeoutError as exc:
        if waiting_for_budget:
            # Not abandoned: aiohttp reads and drops the unread body after the answer (for up to
            # 10 s), so that a client still sending reads the 503 instead of a connection reset.
            raise RequestError(503, "server busy: too many large request bodies in flight; "
                                    "retry later", retry_after=limits.RETRY_AFTER_SECONDS) from exc
        _abandon(request)
        raise RequestError(408, f"request body not received within {body.timeout:g} s") from exc


def _buffered_body(request: web.Request, max_body_bytes: int) -> bytes | None:
    """The body when it is small and has all arrived (the common case: no await, no timeout, no
    budget), else None; 413 when the declared length is over the limit."""
    length = request.content_length
    if length is not None and length > max_body_bytes:
        raise RequestError(413, f"request body of {length} bytes is over the {max_body_bytes} byte limit")
    content = request.content
    if length is None or length > limits.LARGE_BODY_BYTES or not content.is_eof():
        return None
    try:
        raw = content.read_nowait(-1)
    except (web.RequestPayloadError, ConnectionError) as exc:
        raise _read_error(request, exc) from exc
    if len(raw) > max_body_bytes:  # decompressed
        _abandon(request)
        raise RequestError(413, f"request body is over the {max_body_bytes} byte limit")
    return raw


_DEFAULT_BODY_LIMITS: list[limits.BodyLimits] = []


def _default_body_limits() -> limits.BodyLimits:
    """For apps not made by :func:`serving.app.build_app` (which puts its own on the app)."""
    if not _DEFAULT_BODY_LIMITS:
        d = limits.Limits()
        budget = limits.ByteBudget(d.max_inflight_body_bytes)
        _DEFAULT_BODY_LIMITS.append(limits.BodyLimits(timeout=d.body_timeout, budget=budget))
    return _DEFAULT_BODY_LIMITS[0]


async def _drain(request: web.Request, max_body_bytes: int,
                 when_large: Callable[[], Awaitable[None]]) -> bytes:
    content = request.content
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await content.readany():
            size += len(chunk)
            if size > max_body_bytes:
                _abandon(request)  # a decompression bomb stops here, not after 10 s of lingering
                raise RequestError(413, f"request body is over the {max_body_bytes} byte limit")
            if size > limits.LARGE_BODY_BYTES and limits.current_lease.get() is None:
                await when_large()
            chunks.append(chunk)
    except (web.RequestPayloadError, ConnectionError) as exc:
        raise _read_error(request, exc) from exc
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _read_error(request: web.Request, exc: Exception) -> RequestError:
    if isinstance(exc, ConnectionError):
        return RequestError(400, "the client closed the connection before sending the whole body")
    _abandon(request)
    encoding = request.headers.get("Content-Encoding")
    if encoding:
        return RequestError(400, f"request body does not decode as its Content-Encoding {encoding[:40]!r}")
    return RequestError(400, "malformed request body (broken chunked transfer encoding)")


def _abandon(request: web.Request) -> None:
    """Give up on the rest of the body and close the connection once the answer is written.

    aiohttp reads an unread body for up to 10 s after the handler ("lingering"), and logs a
    traceback when that read fails (a bad ``Content-Encoding``). A ``TimeoutError`` set on the
    stream ends that read at once, and aiohttp then closes the connection: its lingering loop
    treats it as its own timeout.
    """
    request.content.set_exception(TimeoutError("request body abandoned"))


def to_array(data: Any, *, what: str) -> npt.NDArray[Any]:
    """Nested lists of numbers -> a numeric array; anything else -> 400."""
    if not isinstance(data, list):
        raise RequestError(400, f"{what} must be a list, got {type(data).__name__}")
    try:
        arr = np.array(data)
    except (ValueError, TypeError, OverflowError) as exc:
        raise RequestError(400, f"{what} is not a regular array of numbers (ragged rows?): {exc}") from exc
    if arr.dtype.kind not in "iuf":
        if arr.dtype.kind == "O":
            raise RequestError(400, f"{what} holds non-numeric values or rows of different lengths")
        raise RequestError(400, f"{what} holds non-numeric values (strings or booleans)")
    return arr


def to_features(arr: npt.NDArray[Any], *, what: str, n_features: int | None) -> F32:
    """A (rows, features) float32 matrix of finite values, or 400 saying why not."""
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise RequestError(400, f"{what} must be a non-empty list of rows (shape [N, features]), "
                                f"got shape {list(arr.shape)}")
    if n_features is not None and arr.shape[1] != n_features:
        raise RequestError(400, f"{what}: the model takes {n_features} features per row, got {arr.shape[1]}")
    with np.errstate(over="ignore", invalid="ignore"):
        x = arr.astype(np.float32)
    if not np.isfinite(x).all():
        raise RequestError(400, f"{what} holds NaN, infinity or values beyond float32 range; "
                                "the model takes finite numbers only")
    return x
