"""``metav1.Status`` bodies and the one exception type that carries them.

Every error the stand-in API answers goes through :class:`ApiError`, so a client always gets a
JSON ``Status`` with the ``reason`` names kube-apiserver uses (``NotFound``, ``AlreadyExists``,
``Conflict``, ``Invalid`` ...), never an HTML page or a traceback. The message texts follow
``k8s.io/apimachinery/pkg/api/errors`` so that code matching on them behaves as against a real
server.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


class ApiError(Exception):
    """An error answer: HTTP code, Status ``reason``, message, optional ``details``."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: JSON | None = None,
        headers: dict[str, str] | None = None,
        plain: bool = False,
    ) -> None:
        super().__init__(message)
        self.plain = plain  # answered as text/plain (the real server's mux 404), not a Status
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> JSON:
        return status_body(code=self.code, reason=self.reason, message=self.message, details=self.details)


def status_body(*, code: int, reason: str, message: str, details: JSON | None = None) -> JSON:
    body: JSON = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    if code < 400 or not reason:
        # Success Status bodies (e.g. deleting a collection) carry no reason; nor does an
        # internal error the server did not classify (a bad watch resourceVersion).
        body.pop("reason")
    return body


def _qualified(group: str, resource: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(name: str, group: str, kind: str) -> JSON:
    d: JSON = {"name": name, "kind": kind}
    if group:
        d["group"] = group
    return d


def not_found(*, group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(group, resource)} "{name}" not found',
        details=_details(name, group, resource),
    )


def already_exists(*, group: str, resource: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(group, resource)} "{name}" already exists',
        details=_details(name, group, resource),
    )


def conflict(*, group: str, resource: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(group, resource)} "{name}": {why}',
        details=_details(name, group, resource),
    )


STALE = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(*, group: str, kind: str, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 ``Invalid``; ``causes`` are ``(field, message)`` pairs, as in field.ErrorList."""
    # field.ErrorList.ToAggregate(): one error as it is, several as "[a, b]".
    texts = [f"{f}: {m}" if f else m for f, m in causes]
    text = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    message = f'{kind}{"." + group if group else ""} "{name}" is invalid: {text}'
    return ApiError(
        422,
        "Invalid",
        message,
        details={
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes],
        },
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {content_type}",
    )


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "Forbidden", message)


def too_large_resource_version(requested: int, current: int, *, prefix: str = "") -> ApiError:
    """What kube-apiserver's watch cache answers a resourceVersion newer than any it has seen
    (``storage.NewTooLargeResourceVersionError``): after waiting (3 s there) for its cache to
    catch up, ``504 Timeout`` with the cause ``ResourceVersionTooLarge`` and a 1 s retry hint.
    Clients (client-go's reflector) relist from scratch on it: the history they resumed from is
    not this server's (an etcd restore, a wiped API)."""
    return ApiError(
        504,
        "Timeout",
        f"{prefix}Too large resource version: {requested}, current: {current}",
        details={
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1,
        },
        headers={"Retry-After": "1"},
    )
