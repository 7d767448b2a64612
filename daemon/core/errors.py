"""Typed errors for everything that can go wrong talking to the Kubernetes API.

``kubernetes_asyncio`` raises one ``ApiException`` for every HTTP status and lets aiohttp's own
exceptions through for broken connections. The rest of the daemon should not have to read status
codes or know aiohttp: it catches :class:`NotFoundError` to create, :class:`GoneError` to
relist (and :class:`ResourceVersionTooLargeError`, a resourceVersion from another history),
:class:`TooManyRequestsError` to wait ``retry_after``, and the transient family
(:class:`ServerError`, :class:`UnavailableError`) to back off with jitter. This module imports
neither the client nor aiohttp: it is part of the pure core.

:func:`from_status` builds the right class from a status code, the response headers and the
``metav1.Status`` body; :func:`daemon.kube.translate.translate` is the one ``except`` clause
that maps a raised ``ApiException`` / aiohttp error onto them. Messages are the API server's own
texts (they never carry a secret's value: the API does not echo object data in Status bodies).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any


class KubeError(Exception):
    """An error answer (or no answer) from the Kubernetes API."""

    transient = False
    """Worth retrying after a back-off (5xx, 429, dropped connections)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "",
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.details: Mapping[str, Any] = dict(details or {})

    def __str__(self) -> str:
        head = f"{self.status} {self.reason}".strip()
        return f"{head}: {self.message}" if head else self.message


class NotFoundError(KubeError):
    """404: the object (or its namespace, or the resource) does not exist."""


class ConflictError(KubeError):
    """409: a stale resourceVersion, an existing name, or a server-side-apply field conflict.

    For an apply conflict ``managers`` names the other field managers that own the fields
    (the daemon never forces over them) and ``fields`` the paths in dispute.
    """

    def __init__(self, message: str, *, status: int = 409, reason: str = "Conflict",
                 details: Mapping[str, Any] | None = None, managers: tuple[str, ...] = (),
                 fields: tuple[str, ...] = ()) -> None:
        super().__init__(message, status=status, reason=reason, details=details)
        self.managers = managers
        self.fields = fields

    @property
    def is_apply_conflict(self) -> bool:
        return bool(self.managers)


class AlreadyExistsError(ConflictError):
    """409 AlreadyExists: a create of a name that is taken."""


class GoneError(KubeError):
    """410: a watch or list resourceVersion older than the server keeps (relist)."""


class ResourceVersionTooLargeError(GoneError):
    """504 ``Timeout`` with the cause ``ResourceVersionTooLarge`` ("Too large resource version"):
    the server has never reached the resourceVersion we resume from. Our history is not the
    server's (an etcd restore, an API wiped and restarted): relist, like client-go's reflector.
    A :class:`GoneError`, so everything that relists on 410 relists on this too."""


class TooManyRequestsError(KubeError):
    """429: the API server asks us to slow down; ``retry_after`` seconds, from the header."""

    transient = True

    def __init__(self, message: str, *, status: int = 429, reason: str = "TooManyRequests",
                 details: Mapping[str, Any] | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message, status=status, reason=reason, details=details)
        self.retry_after = retry_after


class ServerError(KubeError):
    """5xx: the API server (or something in front of it) failed."""

    transient = True


class UnavailableError(KubeError):
    """No HTTP answer at all: connection refused/reset/dropped, or a client-side timeout."""

    transient = True


class InvalidError(KubeError):
    """400/415/422: the request itself is wrong (a bug here or a bad desired manifest)."""


class ForbiddenError(KubeError):
    """401/403: RBAC does not allow it (see ``daemon/kube/rbac.py``)."""


class NotKubernetesError(KubeError):
    """The server answered, but not as a Kubernetes API does: ``GET /api/`` was not an
    ``APIVersions`` document (a proxy, a web server, the wrong port). Every kind would look "not
    served" and the cluster empty, so nothing read from it may be diagnosed."""

    def __str__(self) -> str:
        return self.message


_MANAGER = re.compile(r'conflict with "([^"]+)"')
_FIELD = re.compile(r'conflict with "[^"]+"(?: using [^:]+)?: (\S+)')


def parse_retry_after(value: str | None, *, default: float = 1.0) -> float:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return default
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def _decode(body: bytes | str | None) -> dict[str, Any]:
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def from_status(status: int, *, body: bytes | str | None = None,
                headers: Mapping[str, str] | None = None) -> KubeError:
    """The typed error for an HTTP error answer (``body`` is the ``metav1.Status`` JSON)."""
    st = _decode(body)
    reason = str(st.get("reason") or "")
    message = str(st.get("message") or "") or (
        body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")).strip()[:500]
    details = st.get("details") if isinstance(st.get("details"), dict) else None
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    if status == 404:
        return NotFoundError(message or "not found", status=status, reason=reason or "NotFound",
                             details=details)
    if status == 409:
        texts = [message] + [str(c.get("message", "")) for c in (details or {}).get("causes") or []
                             if isinstance(c, dict)]
        managers = tuple(dict.fromkeys(m for t in texts for m in _MANAGER.findall(t)))
        fields = tuple(dict.fromkeys(
            [str(c.get("field")) for c in (details or {}).get("causes") or []
             if isinstance(c, dict) and c.get("field")] + [f for t in texts for f in _FIELD.findall(t)]))
        cls = AlreadyExistsError if reason == "AlreadyExists" else ConflictError
        return cls(message or "conflict", status=status, reason=reason or "Conflict", details=details,
                   managers=managers, fields=fields)
    if status == 410:
        return GoneError(message or "gone", status=status, reason=reason or "Expired", details=details)
    if status == 429:
        retry = parse_retry_after(hdrs.get("retry-after"),
                                  default=float((details or {}).get("retryAfterSeconds") or 1))
        return TooManyRequestsError(message or "too many requests", status=status,
                                    reason=reason or "TooManyRequests", details=details, retry_after=retry)
    causes = [c for c in (details or {}).get("causes") or [] if isinstance(c, dict)]
    if any(c.get("reason") == "ResourceVersionTooLarge" for c in causes) or (
            "too large resource version" in message.lower()):
        return ResourceVersionTooLargeError(message, status=status, reason=reason or "Timeout",
                                            details=details)
    if status >= 500:
        return ServerError(message or "server error", status=status, reason=reason or "InternalError",
                           details=details)
    if status in (401, 403):
        return ForbiddenError(message or "forbidden", status=status, reason=reason or "Forbidden",
                              details=details)
    return InvalidError(message or "bad request", status=status, reason=reason or "BadRequest",
                        details=details)
