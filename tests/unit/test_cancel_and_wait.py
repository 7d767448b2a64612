"""cancel_and_wait ends tasks that swallow a cancel, and never lets one hold shutdown forever."""

from __future__ import annotations

import asyncio

from daemon.process.tasks import cancel_and_wait


async def _swallows_once(started: asyncio.Event) -> None:
    """What Python 3.11's wait_for does when the cancel lands as its work finishes."""
    started.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass  # swallowed: the task goes on as if nothing happened
    await asyncio.Event().wait()  # ... until cancelled again


async def _ignores_cancels(started: asyncio.Event, release: asyncio.Event) -> None:
    """Swallows every cancel until ``release`` is set (so the test can still end it)."""
    started.set()
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue


async def _fails() -> None:
    raise RuntimeError("a task that already failed")


async def test_a_task_that_swallowed_its_cancel_is_cancelled_again() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_swallows_once(started))
    await started.wait()
    assert await cancel_and_wait(task, None, deadline=5.0) == []
    assert task.cancelled()


async def test_a_task_that_never_stops_is_left_behind_after_the_deadline() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    stuck = asyncio.create_task(_ignores_cancels(started, release), name="stuck")
    plain = asyncio.create_task(asyncio.Event().wait(), name="plain")
    await started.wait()
    left = await cancel_and_wait(stuck, plain, deadline=0.2)
    assert left == [stuck] and plain.cancelled() and not stuck.done()
    release.set()
    await stuck


async def test_finished_and_failed_tasks_are_consumed_quietly() -> None:
    failed = asyncio.create_task(_fails())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.wait({failed, finished})
    assert await cancel_and_wait(failed, finished) == []
    assert isinstance(failed.exception(), RuntimeError) and finished.result() is None
