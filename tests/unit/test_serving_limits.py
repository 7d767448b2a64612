"""The pieces of the model server's abuse limits that are plain logic: the log rate limiter, the
body budget, the minimum body rate's deadline (the sockets side is
tests/integration/test_serving_abuse.py)."""

from __future__ import annotations

import asyncio

import pytest

from serving.limits import ByteBudget, Limits, body_due, check
from serving.logs import RateLimiter, where


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_lets_a_burst_through_then_one_per_interval_and_counts_the_rest() -> None:
    clock = Clock()
    rl = RateLimiter(burst=3, interval=10.0, clock=clock)
    assert [rl.check("a") for _ in range(5)] == [0, 0, 0, None, None]
    assert rl.check("b") == 0  # kinds are limited separately
    clock.now = 9.0
    assert rl.check("a") is None
    clock.now = 10.0
    assert rl.check("a") == 3  # one token back after an interval; three lines were dropped
    assert rl.check("a") is None
    clock.now = 1000.0
    assert [rl.check("a") for _ in range(4)] == [1, 0, 0, None]  # refills up to the burst only


def test_rate_limiter_forgets_the_oldest_kind_beyond_max_keys() -> None:
    rl = RateLimiter(burst=1, interval=10.0, max_keys=2, clock=Clock())
    assert rl.check("a") == 0 and rl.check("b") == 0 and rl.check("c") == 0
    assert rl.check("a") == 0  # "a" was forgotten: a fresh bucket
    assert rl.check("c") is None


def test_where_names_frames_not_the_message() -> None:
    try:
        raise ValueError("secret request bytes")
    except ValueError as exc:
        frames = where(exc)
    assert frames and frames[-1].endswith("test_where_names_frames_not_the_message")
    assert "secret" not in " ".join(frames)


async def test_byte_budget_is_fifo_and_a_large_request_waits_until_alone() -> None:
    budget = ByteBudget(100)
    first = await budget.acquire(60)
    order: list[str] = []

    async def take(name: str, n: int) -> None:
        lease = await budget.acquire(n)
        order.append(name)
        lease.release()

    big = asyncio.create_task(take("big", 500))  # capped at the whole budget
    small = asyncio.create_task(take("small", 10))  # fits, but must not overtake "big"
    await asyncio.sleep(0)
    assert budget.waiting == 2 and order == []
    first.release()
    first.release()  # idempotent
    await asyncio.gather(big, small)
    assert order == ["big", "small"] and budget.used == 0


async def test_byte_budget_cancelled_waiter_leaves_no_trace() -> None:
    budget = ByteBudget(100)
    held = await budget.acquire(100)
    waiter = asyncio.create_task(budget.acquire(50))
    await asyncio.sleep(0)
    waiter.cancel()
    held.release()  # wakes nobody: the waiter is cancelled
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert budget.used == 0 and budget.waiting == 0
    assert (await budget.acquire(100)).nbytes == 100


async def test_byte_budget_try_acquire_takes_what_fits_now_and_never_overtakes_a_waiter() -> None:
    budget = ByteBudget(100)
    first = budget.try_acquire(60)
    assert first is not None and budget.used == 60
    assert budget.try_acquire(41) is None and budget.used == 60  # does not fit: nothing taken
    second = budget.try_acquire(40)
    assert second is not None and budget.used == 100
    second.release()
    waiter = asyncio.create_task(budget.acquire(100))  # waits for "first"
    await asyncio.sleep(0)
    assert budget.waiting == 1
    assert budget.try_acquire(10) is None  # 40 bytes free, but the waiter is first in line
    first.release()
    (await waiter).release()
    alone = budget.try_acquire(10**9)  # larger than the whole budget: taken when alone
    assert alone is not None and alone.nbytes == 100
    alone.release()
    assert budget.used == 0


@pytest.mark.parametrize(("started", "received", "grace", "min_rate", "due"), [
    (0.0, 0, 5.0, 500.0, 5.0),  # nothing yet: the grace alone
    (0.0, 1, 5.0, 500.0, 5.002),  # a byte buys 1/500 s: a trickle cannot keep a body alive
    (10.0, 1000, 5.0, 500.0, 17.0),  # 1 kB at the minimum rate: 2 s past the grace
    (0.0, 8_000_000, 5.0, 500.0, 16_005.0),  # a fast 8 MB body is never near its deadline
    (0.0, 250, 0.5, 100.0, 3.0),
])
def test_body_due_is_the_grace_plus_a_second_per_min_rate_bytes(
        started: float, received: int, grace: float, min_rate: float, due: float) -> None:
    assert body_due(started=started, received=received, grace=grace, min_rate=min_rate) == pytest.approx(due)


@pytest.mark.parametrize(("limits", "problem"), [
    (Limits(), None),
    (Limits(header_timeout=0), "--header-timeout"),
    (Limits(body_timeout=-1), "--body-timeout"),
    (Limits(body_grace=0), "--body-grace"),
    (Limits(body_min_rate=0), "--body-min-rate"),
    (Limits(body_min_rate=float("nan")), "--body-min-rate"),
    (Limits(max_connections=0), "--max-connections"),
    (Limits(max_inflight_body_bytes=0), "--max-inflight-body-bytes"),
])
def test_check_names_the_bad_flag(limits: Limits, problem: str | None) -> None:
    found = check(limits)
    assert found is None if problem is None else (found is not None and problem in found)
