"""List-then-watch, a keyed work queue, and a run loop: the plumbing every controller shares.

The shape is client-go's (and kopf's): an :class:`Informer` lists a resource once, remembers
the list's ``resourceVersion``, then watches from it, keeping a cache of raw JSON objects
(dicts, never the generated models) and calling back on every change. When the watch breaks
it resumes from the last ``resourceVersion`` it saw; when the server answers 410 Gone (the
version fell out of its watch window) it relists, and objects that vanished in between are
reported as deletions. Other errors (the server restarting, a 500 from a fault hook) are
retried with a capped backoff — a controller never dies of one bad answer.

A :class:`KeyQueue` holds the keys that need reconciling; a key queued while it is being
reconciled is reconciled again afterwards (never twice at once), which is what makes the
controllers level-triggered: they read the current state and converge on it, whatever
events led there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.watch import Watch

log = structlog.get_logger("sandbox.controllers")

Obj = dict[str, Any]
Key = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped objects."""

ListFn = Callable[..., Awaitable[Any]]
OnChange = Callable[[str, Obj], Awaitable[None] | None]

# kubernetes_asyncio's typed signatures omit its `_content_type` override: pass it as **kwargs.
MERGE_KW: dict[str, Any] = {"_content_type": "application/merge-patch+json"}

WATCH_SECONDS = 30
BACKOFF_MAX = 2.0


def key_of(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


async def read_json(list_fn: ListFn, *args: Any, **kwargs: Any) -> Obj:
    """Call a kubernetes_asyncio list/get method and return the raw JSON body as a dict."""
    resp = await list_fn(*args, _preload_content=False, **kwargs)
    return await response_json(resp)


async def response_json(resp: Any) -> Obj:
    """The JSON body of a raw (``_preload_content=False``) response; raises ApiException on an error.

    kubernetes_asyncio checks the status only when it preloads the body: without that, a 404
    would come back as a ``Status`` dict — checked here, as the generated methods would.
    """
    try:
        body = await resp.read()
    finally:
        resp.release()
    if not 200 <= resp.status <= 299:
        raise ApiException(status=resp.status, reason=resp.reason)
    data: Obj = json.loads(body)
    return data


def retryable(exc: BaseException) -> bool:
    """Errors a controller retries (server restarts, fault hooks, timeouts) rather than dies of."""
    return isinstance(exc, ApiException | aiohttp.ClientError | TimeoutError | ConnectionError)


class Informer:
    """A cache of one resource kept current by list+watch; calls ``on_change(type, obj)``.

    ``type`` is ``ADDED``, ``MODIFIED`` or ``DELETED``. ``list_fn`` is a kubernetes_asyncio
    list method (``list_pod_for_all_namespaces``, ``list_cluster_custom_object`` ...), with
    its positional ``args`` and keyword ``kwargs`` (selectors).
    """

    def __init__(self, list_fn: ListFn, *args: Any, on_change: OnChange, name: str, **kwargs: Any) -> None:
        self._list_fn = list_fn
        self._args = args
        self._kwargs = kwargs
        self._on_change = on_change
        self.name = name
        self.cache: dict[Key, Obj] = {}
        self.synced = asyncio.Event()
        self.relists = 0

    async def _emit(self, kind: str, obj: Obj) -> None:
        result = self._on_change(kind, obj)
        if result is not None:
            await result

    async def _relist(self) -> str:
        body = await read_json(self._list_fn, *self._args, **self._kwargs)
        items = {key_of(o): o for o in body.get("items") or []}
        self.relists += 1
        gone = [k for k in self.cache if k not in items]
        for k in gone:
            await self._emit("DELETED", self.cache.pop(k))
        for k, o in items.items():
            kind = "MODIFIED" if k in self.cache else "ADDED"
            self.cache[k] = o
            await self._emit(kind, o)
        self.synced.set()
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    async def run(self) -> None:
        rv: str | None = None
        backoff = 0.05
        while True:
            try:
                if rv is None:
                    rv = await self._relist()
                # "object": events stay raw dicts; the generated models would refuse objects
                # missing fields they require (and cost a deserialization per event).
                w = Watch(return_type="object")
                try:
                    stream = w.stream(
                        self._list_fn,
                        *self._args,
                        resource_version=rv,
                        timeout_seconds=WATCH_SECONDS,
                        **self._kwargs,
                    )
                    async for event in stream:
                        obj: Obj = event["raw_object"]
                        kind = str(event["type"])
                        rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                        if kind == "BOOKMARK":
                            continue
                        k = key_of(obj)
                        if kind == "DELETED":
                            self.cache.pop(k, None)
                        else:
                            self.cache[k] = obj
                        await self._emit(kind, obj)
                finally:
                    await w.close()
                backoff = 0.05
            except ApiException as exc:
                if exc.status == 410:
                    log.debug("informer.relist", informer=self.name, reason="410 Gone")
                    rv = None
                    continue
                await self._pause(exc, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            except (aiohttp.ClientError, TimeoutError, ConnectionError, ValueError) as exc:
                await self._pause(exc, backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _pause(self, exc: BaseException, delay: float) -> None:
        log.debug("informer.retry", informer=self.name, error=type(exc).__name__, delay=delay)
        await asyncio.sleep(delay)


Reconcile = Callable[[Key], Awaitable[float | None]]
"""Reconcile one key; return seconds after which to look again (a retry), or None."""


class KeyQueue:
    """Keys to reconcile: de-duplicated, one worker per key, requeue-after supported."""

    def __init__(self) -> None:
        self._pending: set[Key] = set()
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._timers: dict[Key, asyncio.TimerHandle] = {}

    def add(self, key: Key) -> None:
        if key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: Key, delay: float) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> Key:
        key = await self._queue.get()
        self._pending.discard(key)
        return key

    def close(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()


async def work(queue: KeyQueue, reconcile: Reconcile, *, name: str) -> None:
    """The worker loop: reconcile keys one at a time; errors are logged and retried."""
    try:
        while True:
            key = await queue.get()
            try:
                again = await reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A sandbox controller must keep going (the apiserver's fault hooks make
                # requests fail on purpose); a real bug still shows in the log.
                log.warning(
                    "controller.reconcile_failed",
                    controller=name,
                    key="/".join(key),
                    error=_describe(exc),
                )
                again = 0.2
            if again is not None:
                queue.add_after(key, again)
    finally:
        queue.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiException):  # its str() carries every response header
        return f"ApiException: {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


async def run_all(*coros: Awaitable[None]) -> None:
    """Run a controller's informers and worker together; cancelling cancels them all."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)


def merge_patch(old: Obj, new: Obj) -> Obj:
    """An RFC 7386 merge patch turning ``old`` into ``new`` (keys gone from ``new`` → null)."""
    out: Obj = {}
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(old.get(k), dict):
            sub = merge_patch(old[k], v)
            if sub:
                out[k] = sub
        elif old.get(k) != v or k not in old:
            out[k] = v
    for k in old:
        if k not in new:
            out[k] = None
    return out
