"""Fault hooks for tests: fail the next requests, compact the history, drop open watches.

``fail_next(n, ...)`` queues a rule consumed by the next ``n`` resource requests that match its
``verb`` (Kubernetes verb names: get, list, watch, create, update, patch, delete) and
``resource`` (the plural, or ``plural/subresource``); discovery and ``/version`` are never
failed, so a client can always find the API. A failing request answers a Status with the real
reason for its code (``InternalError`` for 500, ``TooManyRequests`` plus a ``Retry-After``
header for 429, ...) or, with ``reset=True``, gets its TCP connection reset (RST, no answer).

Note that aiohttp (so kubernetes_asyncio) retries an idempotent request (GET, PUT, DELETE) once
when a *pooled* connection is reset before any answer: use ``n=2`` to make such a reset reach
the caller; a PATCH or POST sees the first one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def reason_for(code: int) -> str:
    return _REASONS.get(code, "InternalError" if code >= 500 else "BadRequest")


@dataclass(kw_only=True)
class FaultRule:
    remaining: int
    status: int
    retry_after: float | None
    reset: bool
    verb: str | None
    resource: str | None

    def matches(self, verb: str, resource: str) -> bool:
        if self.verb is not None and self.verb != verb:
            return False
        if self.resource is None:
            return True
        return self.resource == resource or self.resource == resource.split("/", 1)[0]


class Faults:
    def __init__(
        self, *, on_compact: Callable[[], None], on_drop_watches: Callable[[], Awaitable[None]]
    ) -> None:
        self._rules: list[FaultRule] = []
        self._on_compact = on_compact
        self._on_drop_watches = on_drop_watches
        self.injected = 0  # how many requests were failed so far

    def fail_next(
        self,
        n: int,
        *,
        status: int = 500,
        retry_after: float | None = None,
        reset: bool = False,
        verb: str | None = None,
        resource: str | None = None,
    ) -> None:
        if n <= 0:
            raise ValueError("n must be positive")
        self._rules.append(
            FaultRule(
                remaining=n, status=status, retry_after=retry_after, reset=reset, verb=verb, resource=resource
            )
        )

    def clear(self) -> None:
        self._rules.clear()

    def take(self, verb: str, resource: str) -> FaultRule | None:
        """The rule this request falls under (consuming one of its uses), or None."""
        for rule in self._rules:
            if rule.matches(verb, resource):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._rules.remove(rule)
                self.injected += 1
                return rule
        return None

    def compact(self) -> None:
        self._on_compact()

    async def drop_watches(self) -> None:
        await self._on_drop_watches()
