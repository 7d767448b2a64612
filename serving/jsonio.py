"""HTTP plumbing shared by the V1 and V2 routes: JSON in and out, and input validation.

Every client mistake raises :class:`RequestError` (status + a message saying what was wrong);
the app's middleware turns it into ``{"error": "..."}`` with that status. Validation is strict
and cheap: numpy infers the dtype of the nested lists once, and anything that is not an
integer or float array of the right shape is refused before it reaches a model.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
from aiohttp import web

F32 = npt.NDArray[np.float32]
# curl's default for `-d @body.json`, which KServe's own docs use without a Content-Type header.
JSON_TYPES = ("application/json", "application/x-www-form-urlencoded")


class RequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
    length = request.content_length
    if length is not None and length > max_body_bytes:
        raise RequestError(413, f"request body of {length} bytes is over the {max_body_bytes} byte limit")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise RequestError(413, f"request body is over the {max_body_bytes} byte limit") from exc
    if not raw:
        raise RequestError(400, "empty request body: expected a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"malformed JSON: {exc}") from exc


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
