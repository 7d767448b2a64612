"""Ending the daemon's own tasks at shutdown, even one that swallowed its cancel.

A task that catches a cancellation by accident (Python 3.11's ``asyncio.wait_for`` does so
when the cancel lands as the awaited work finishes) runs on, and a shutdown that awaits it never
ends: the pod is SIGKILLed after its grace period and the Lease is never released. So
:func:`cancel_and_wait` cancels again until each task is done, and after ``deadline`` seconds
gives up on the rest, names them in the log and returns them, so shutdown carries on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from daemon.core import logs

log = logs.get_logger("tasks")

# How often a task that ignored its cancel is cancelled again.
RECANCEL_SECONDS = 0.5


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None, deadline: float = 5.0) -> list[asyncio.Task[Any]]:
    """Cancel ``tasks`` (``None`` skipped) and wait until they end; the ones that did not, if any.

    Their results and exceptions are consumed here: a task being shut down has nothing left to
    report, and an unretrieved exception would only be printed to stderr at exit.
    """
    live = [t for t in tasks if t is not None]
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while live:
        for t in live:
            t.cancel()
        done, pending = await asyncio.wait(live, timeout=max(0.0, min(RECANCEL_SECONDS, end - loop.time())))
        for t in done:
            if not t.cancelled():
                t.exception()
        live = list(pending)
        if live and loop.time() >= end:
            log.error("tasks did not stop when cancelled; shutting down without them",
                      tasks=[t.get_name() for t in live], after_seconds=deadline)
            break
    return live
