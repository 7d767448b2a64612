"""From what the client libraries raise to the typed errors of :mod:`daemon.core.errors`.

``kubernetes_asyncio`` raises ``ApiException`` for an HTTP error answer and lets aiohttp's own
exceptions (and timeouts, dropped connections) through; this is the one place that knows both.
"""

from __future__ import annotations

import asyncio

import aiohttp

from daemon.core.errors import KubeError, UnavailableError, from_status


def from_exception(exc: BaseException) -> KubeError | None:
    """Map a raised client exception to a typed error; None if it is not an API/network error."""
    if isinstance(exc, KubeError):
        return exc
    from kubernetes_asyncio.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        if not exc.status:
            return UnavailableError(str(exc.reason or exc))
        headers = dict(exc.headers or {}) if exc.headers else {}
        return from_status(int(exc.status), body=exc.body, headers=headers)
    if isinstance(exc, aiohttp.ClientResponseError):
        return from_status(exc.status, body=exc.message)
    if isinstance(exc, aiohttp.ClientError | TimeoutError | ConnectionError | asyncio.IncompleteReadError):
        return UnavailableError(f"{type(exc).__name__}: {exc}".rstrip(": "))
    return None


def translate(exc: BaseException) -> BaseException:
    """``raise translate(e) from e``: the typed error, or the exception itself if not ours."""
    return from_exception(exc) or exc
