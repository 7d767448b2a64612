"""A work queue that dedupes keys and never hands out the same key twice at once.

client-go's ``workqueue`` semantics, in asyncio:

* ``add(key)`` while the key is already waiting does nothing (a burst of watch events for
  one object becomes one reconcile);
* ``add(key)`` while the key is being processed marks it *dirty*: it is queued again when
  the worker calls ``done(key)``, never handed to a second worker meanwhile — so one object
  is never reconciled twice concurrently, and no change is lost;
* ``add_after(key, delay)`` schedules an add (requeue with back-off, cooldown ends); only
  the earliest pending timer per key is kept;
* ``shut_down()`` wakes every waiting ``get()`` with :class:`QueueShutDown`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class QueueShutDown(Exception):
    """The queue was shut down: workers should exit."""


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._ready = asyncio.Event()
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}
        self._shutting_down = False
        self.adds = 0
        """How many ``add`` calls were made (deduped or not): for tests and benchmarks."""

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        """Something is queued, being processed, or scheduled."""
        return bool(self._queue or self._processing or self._timers)

    @property
    def active(self) -> bool:
        """Something is queued or being processed right now (timers not counted)."""
        return bool(self._queue or self._processing)

    def processing(self, key: K) -> bool:
        return key in self._processing

    def add(self, key: K) -> None:
        self.adds += 1
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake()

    def add_after(self, key: K, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        prev = self._timers.get(key)
        if prev is not None:
            if prev[0] <= when:
                return
            prev[1].cancel()
        self._timers[key] = (when, loop.call_at(when, self._fire, key))

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def _wake(self) -> None:
        self._ready.set()

    async def get(self) -> K:
        while True:
            if self._queue:
                key = self._queue.popleft()
                self._processing.add(key)
                self._dirty.discard(key)
                return key
            if self._shutting_down:
                raise QueueShutDown
            # No await between the check above and the clear: an add() cannot slip between.
            self._ready.clear()
            await self._ready.wait()

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._wake()

    def shut_down(self) -> None:
        """Stop handing out keys; waiting ``get()`` calls raise :class:`QueueShutDown`."""
        self._shutting_down = True
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._queue.clear()
        self._ready.set()
