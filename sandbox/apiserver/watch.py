"""Watch streams: chunked JSON lines of ``{"type": ..., "object": ...}``.

Without a resourceVersion (or with ``"0"``) a watch first sends ``ADDED`` for every current
object, then changes. With one, it replays the history after it and goes on live; if the
history no longer reaches back that far, the stream is a single ``ERROR`` event carrying a 410
``Expired`` Status, then ends (HTTP 200, as the real watch cache answers). A resourceVersion
*newer* than the store's (the client's history is not this server's: an etcd restore, or the
sandbox wiped and restarted on the same port) is not refused, as kube-apiserver 1.36's watch
cache does not refuse it: the stream is held open and every event up to that number, bookmarks
included, is dropped; the first one after it is sent. (Only a *list* "not older than" such a
resourceVersion answers ``504 Timeout``, cause ``ResourceVersionTooLarge``, after waiting
``fresh_wait`` for the store to catch up; that is how a client finds out.) Selectors filter
events the way the real server does: an object that starts matching arrives as ``ADDED``, one
that stops matching leaves as ``DELETED``.

A stream ends at ``timeoutSeconds`` (default: 30 minutes, like ``--min-request-timeout``), when
the client goes away, or when the server closes it (``drop_watches``, ``stop``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from sandbox.apiserver.registry import ResourceKind
from sandbox.apiserver.selectors import FieldSelector, LabelSelector
from sandbox.apiserver.status import expired, too_large_resource_version
from sandbox.apiserver.store import Event, Obj, Store, TooOld, Watcher

DEFAULT_TIMEOUT = 1800.0
_POLL = 1.0  # how often an idle stream checks that its client is still there


@dataclass(frozen=True, kw_only=True)
class WatchRequest:
    kind: ResourceKind
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    since: int | None
    timeout: float
    bookmarks: bool


class WatchHub:
    """Open watch streams; closing them all is how ``drop_watches``/``stop`` end streams quickly."""

    def __init__(self, store: Store, *, out: Callable[[ResourceKind, Obj], Obj]) -> None:
        self.store = store
        self.out = out
        self.bookmark_interval = 60.0
        self.fresh_wait = 3.0
        """How long a watch from a future resourceVersion waits for the store to reach it."""
        self._open: dict[Watcher, asyncio.Event] = {}
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def open_count(self) -> int:
        return len(self._open)

    async def wait_open(self, count: int = 1) -> None:
        """Return once at least ``count`` watch streams are subscribed (tests: no sleeping loops)."""
        if len(self._open) >= count:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((count, fut))
        try:
            await fut
        finally:
            self._waiters = [(n, f) for n, f in self._waiters if f is not fut]

    def _opened(self) -> None:
        for n, fut in self._waiters:
            if len(self._open) >= n and not fut.done():
                fut.set_result(None)

    async def drop_all(self) -> None:
        waits = list(self._open.values())
        for w in list(self._open):
            w.close()
        if waits:
            await asyncio.wait([asyncio.ensure_future(e.wait()) for e in waits], timeout=5)

    def _matches(self, req: WatchRequest, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if (
            req.namespace is not None
            and req.kind.namespaced
            and obj["metadata"].get("namespace") != req.namespace
        ):
            return False
        return req.labels.matches(obj["metadata"].get("labels")) and req.fields.matches(obj)

    def _line(self, req: WatchRequest, ev: Event) -> bytes | None:
        if req.since is not None and ev.rv <= req.since:
            return None  # a watch from a future resourceVersion skips what it claims to have seen
        new = self._matches(req, ev.obj)
        if ev.type == "ADDED":
            kind = "ADDED" if new else None
        elif ev.type == "DELETED":
            kind = "DELETED" if (new or self._matches(req, ev.old)) else None
        else:
            old = self._matches(req, ev.old)
            kind = "MODIFIED" if (new and old) else "ADDED" if new else "DELETED" if old else None
        if kind is None:
            return None
        return (
            json.dumps({"type": kind, "object": self.out(req.kind, ev.obj)}, separators=(",", ":")).encode()
            + b"\n"
        )

    async def wait_fresh(self, since: int, *, prefix: str = "") -> None:
        """Block until the store has reached ``since`` or ``fresh_wait`` passed (then 504; a
        list's message starts with ``Timeout: `` on the real server, a watch's does not)."""
        deadline = time.monotonic() + self.fresh_wait
        while self.store.revision < since:
            if time.monotonic() >= deadline:
                raise too_large_resource_version(since, self.store.revision, prefix=prefix)
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    async def serve(self, request: web.Request, req: WatchRequest) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        gr = req.kind.group_resource
        try:
            watcher, backlog = self.store.subscribe(gr, namespace=req.namespace, since=req.since)
        except TooOld as exc:
            await resp.prepare(request)
            status = expired(f"too old resource version: {exc.requested} ({exc.oldest})").status()
            await resp.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
            await resp.write_eof()
            return resp
        finished = asyncio.Event()
        self._open[watcher] = finished
        self._opened()
        try:
            # Taken in the same synchronous step as subscribe(): nothing can happen in between.
            if req.since is None:
                current = self.store.items(gr, req.namespace if req.kind.namespaced else None)
                first = [Event(int(o["metadata"]["resourceVersion"]), "ADDED", o, None) for o in current]
            else:
                first = backlog
            await resp.prepare(request)
            chunk = b"".join(line for ev in first if (line := self._line(req, ev)) is not None)
            if chunk:
                await resp.write(chunk)
            await self._pump(request, resp, req, watcher)
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away
        finally:
            self.store.unsubscribe(watcher)
            self._open.pop(watcher, None)
            finished.set()
        try:
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError, RuntimeError):
            pass
        return resp

    async def _pump(
        self, request: web.Request, resp: web.StreamResponse, req: WatchRequest, w: Watcher
    ) -> None:
        deadline = time.monotonic() + req.timeout
        last_sent = time.monotonic()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                async with asyncio.timeout(min(remaining, _POLL)):
                    ev = await w.queue.get()
            except TimeoutError:
                transport = request.transport
                if transport is None or transport.is_closing():
                    return
                if (req.bookmarks and time.monotonic() - last_sent >= self.bookmark_interval
                        and (req.since is None or self.store.revision > req.since)):
                    # A bookmark at or below the watch's own resourceVersion is dropped like any
                    # event there (a watch from another history hears nothing at all).
                    await resp.write(self._bookmark(req))
                    last_sent = time.monotonic()
                continue
            if ev is None:
                return
            lines = []
            # Drain what is already queued into one write: bursts (a seeding, a resync) stay cheap.
            while ev is not None:
                line = self._line(req, ev)
                if line is not None:
                    lines.append(line)
                try:
                    ev = w.queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
            if lines:
                await resp.write(b"".join(lines))
                last_sent = time.monotonic()
            if ev is None:
                return

    def _bookmark(self, req: WatchRequest) -> bytes:
        obj = {
            "kind": req.kind.kind,
            "apiVersion": req.kind.api_version,
            "metadata": {"resourceVersion": str(self.store.revision)},
        }
        return json.dumps({"type": "BOOKMARK", "object": obj}).encode() + b"\n"
