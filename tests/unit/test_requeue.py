"""The one retry-delay function, table-driven; and the work queue's dedupe rules."""

from __future__ import annotations

import asyncio
import random

import pytest

from daemon.core.backoff import BASE_SECONDS, CAP_SECONDS, CONFLICT_SECONDS, result_for, retry_delay
from daemon.core.errors import (
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
    ResourceVersionTooLargeError,
    ServerError,
    TooManyRequestsError,
    UnavailableError,
    from_status,
)
from daemon.process.workqueue import QueueShutDown, WorkQueue


@pytest.mark.parametrize(("error", "failures", "low", "high"), [
    # 429: the server's Retry-After, never sooner, a little jitter above.
    (TooManyRequestsError("slow down", retry_after=2.0), 1, 2.0, 2.0 + 0.3),
    (TooManyRequestsError("slow down", retry_after=0.0), 7, 0.0, BASE_SECONDS),
    # 410: relist now.
    (GoneError("too old"), 3, 0.0, 0.0),
    # Optimistic-concurrency conflict: re-read soon.
    (ConflictError("the object has been modified"), 1, CONFLICT_SECONDS, CONFLICT_SECONDS),
    # SSA conflict with another manager: it will not fix itself; wait long.
    (ConflictError("Apply failed", managers=("helm",)), 1, CAP_SECONDS, CAP_SECONDS),
    # Transient: exponential with full jitter in [d/2, d].
    (ServerError("boom"), 1, BASE_SECONDS / 2, BASE_SECONDS),
    (ServerError("boom"), 2, BASE_SECONDS, 2 * BASE_SECONDS),
    (UnavailableError("reset"), 4, 4 * BASE_SECONDS, 8 * BASE_SECONDS),
    (UnavailableError("reset"), 40, CAP_SECONDS / 2, CAP_SECONDS),
    # Permanent API errors: the cap.
    (ForbiddenError("rbac"), 1, CAP_SECONDS, CAP_SECONDS),
    (InvalidError("bad manifest"), 1, CAP_SECONDS, CAP_SECONDS),
    (NotFoundError("gone"), 1, CAP_SECONDS, CAP_SECONDS),
    # A bug (not an API error): back off like a transient one, never spin.
    (RuntimeError("bug"), 3, 2 * BASE_SECONDS, 4 * BASE_SECONDS),
])
def test_retry_delay_for_errors(error: BaseException, failures: int, low: float, high: float) -> None:
    rng = random.Random(7)
    for _ in range(50):
        d = retry_delay(error=error, failures=failures, rng=rng)
        assert d is not None and low <= d <= high, (error, failures, d)


@pytest.mark.parametrize(("retry_at", "now", "want"), [
    (None, 100.0, None),      # nothing pending: wait for events
    (130.0, 100.0, 30.0),     # a back-off ends in 30 s
    (90.0, 100.0, 0.0),       # already due
])
def test_retry_delay_without_error(retry_at: float | None, now: float, want: float | None) -> None:
    assert retry_delay(error=None, failures=0, retry_at=retry_at, now=now) == want


def test_result_for_wraps_the_delay() -> None:
    assert not result_for(error=None, failures=0).requeue
    r = result_for(error=GoneError("x"), failures=1)
    assert r.requeue and r.requeue_after == 0.0 and isinstance(r.error, GoneError)


@pytest.mark.parametrize(("status", "body", "headers", "cls", "extra"), [
    (404, b'{"kind":"Status","reason":"NotFound","message":"x not found"}', {}, NotFoundError, {}),
    (409, b'{"reason":"Conflict","message":"Apply failed with 1 conflict: conflict with \\"helm\\" '
          b'using v1: .metadata.annotations.owner"}', {}, ConflictError,
     {"managers": ("helm",), "fields": (".metadata.annotations.owner",)}),
    (409, b'{"reason":"AlreadyExists","message":"exists"}', {}, ConflictError, {"managers": ()}),
    (410, b'{"reason":"Expired","message":"too old resource version"}', {}, GoneError, {}),
    (429, b'{"reason":"TooManyRequests"}', {"Retry-After": "3"}, TooManyRequestsError, {"retry_after": 3.0}),
    (429, b"", {}, TooManyRequestsError, {"retry_after": 1.0}),
    (503, b"<html>bad gateway</html>", {}, ServerError, {}),
    # The watch cache never reached our resourceVersion (another history): relist, like a 410.
    (504, b'{"reason":"Timeout","message":"Too large resource version: 900, current: 12","details":'
          b'{"causes":[{"reason":"ResourceVersionTooLarge","message":"Too large resource version"}]}}',
     {"Retry-After": "1"}, ResourceVersionTooLargeError, {}),
    (504, b'{"reason":"Timeout","message":"Timeout: Too large resource version: 9, current: 3"}', {},
     GoneError, {}),
    (504, b'{"reason":"Timeout","message":"request did not complete within 60s"}', {}, ServerError, {}),
    (403, b'{"reason":"Forbidden"}', {}, ForbiddenError, {}),
    (422, b'{"reason":"Invalid"}', {}, InvalidError, {}),
])
def test_errors_from_status(status: int, body: bytes, headers: dict[str, str], cls: type,
                            extra: dict[str, object]) -> None:
    err = from_status(status, body=body, headers=headers)
    assert type(err) is cls or isinstance(err, cls)
    for k, v in extra.items():
        assert getattr(err, k) == v


async def test_queue_dedupes_and_never_hands_out_a_key_twice() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    k = await q.get()
    assert k == "a"
    q.add("a")  # re-added while processing: dirty, not handed out again now
    assert await q.get() == "b"
    assert len(q) == 0
    q.done("a")  # … but queued again once done: the change is not lost
    assert await q.get() == "a"
    q.done("a")
    q.done("b")
    assert not q.active


async def test_queue_add_after_keeps_the_earliest_and_shutdown_wakes_workers() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("x", 10.0)
    q.add_after("x", 0.01)
    assert (await asyncio.wait_for(q.get(), 2)) == "x"
    q.done("x")
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shut_down()
    with pytest.raises(QueueShutDown):
        await waiter
