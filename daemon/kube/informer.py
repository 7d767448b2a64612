"""Watch caches: one list, then a watch per kind, and subscribers told of every change.

The shape is client-go's reflector + store, reduced to what the daemon needs:

* for each kind in ``WATCHED_KINDS``: **list once** (all namespaces), remember the list's
  resourceVersion, then **watch from it**; each event updates the cache and calls every
  subscriber with the changed object's :class:`ObjectRef` at once (no batching delay — the
  work queue downstream dedupes bursts);
* a watch the server ends normally (``timeoutSeconds``) is resumed from the last
  resourceVersion seen — no list;
* **410 Gone** (the RV fell out of the server's window) → relist, and the differences between
  the old cache and the new list are notified as changes/deletions, so nothing is lost;
* a dropped connection / 5xx → resume the watch from the last RV after a jittered back-off;
  **429** → wait the server's ``Retry-After``. Delays come from :func:`daemon.core.backoff.retry_delay`.
  Before it resumes (and after a watch the server ended before its ``timeoutSeconds``), a
  one-item list "not older than" that RV checks the server still has our history
  (:meth:`~daemon.kube.effects.Kube.check_reached`; below).

**Another history.** When the API's state is replaced (an etcd restore; a test API wiped and
restarted on the same port), the resourceVersions the caches hold belong to a history the
server no longer has. Every sign of it makes *every* stream relist at once (client-go's
reflector does the same on each): a 410, the watch cache's ``504 ResourceVersionTooLarge``
(:class:`~daemon.core.errors.ResourceVersionTooLargeError`), a list whose resourceVersion is
lower than one seen before, an object whose uid changed in a ``MODIFIED`` event. kube-apiserver
answers that 504 to a *list* only: a watch from a resourceVersion it never had is held open and
hears nothing (events and bookmarks up to that number are dropped). Such a history is always
met across a restart of the API server, so the informer asks with a one-item list before it
resumes any watch that failed; client-go's reflector does not, and serves the old cache until
the new history passes its resourceVersion. A stream
idle in its watch is interrupted for it, not left until its watch times out. A watch that has
heard nothing at all, not even a bookmark, for ``silent_watch_seconds`` asks the same question
once (the restart may fall between a list and its watch).

**Freshness** (what ``/readyz`` reports): each stream records when it last heard from the
server (a list, a watch accepted, an event or bookmark) and whether its watch is connected;
:meth:`Informer.stale` names the streams that have been without a watch for longer than a
bound (the API unreachable), with the last error.

So in steady state there are no polling lists at all: ``stats.lists`` grows only at start and
after a 410. Secrets are stored *hashed* (:func:`daemon.core.world.hash_secret`): the cache never
holds a credential.

**Scope is applied by the API server, not after the fact** (least privilege, issue 13 item 9).
Each kind is read through one or more *streams* (:class:`Stream`), each its own list+watch:

* ``namespaces=None``: one cluster-wide stream per namespaced kind (needs a ClusterRole read);
  a namespace list: one stream per kind *per namespace* (a Role per namespace is enough —
  chosen over a cluster-wide watch filtered here, which would need cluster-wide read);
* Secrets never follow the cluster-wide default: only ``secret_namespaces`` (per-namespace
  streams), cluster-wide only when that list holds ``"*"``; a single Secret needed outside
  them (``secret_names``: a derived secret, its source) is read alone by
  ``fieldSelector=metadata.name=``; nothing else ever lists them;
* ``selector`` is sent as ``labelSelector`` on the InferenceService streams;
* ``by_name`` reads one object of a kind by ``fieldSelector=metadata.name=`` in its namespace
  (KServe's ConfigMap), which RBAC can grant with ``resourceNames``.

New InferenceServices (and objects in new namespaces, with the cluster-wide default) arrive on
the watches: nothing is restarted. A 400 on the first list of a stream (a label selector the
server refuses) is fatal: the informer raises :class:`InvalidError` rather than retrying.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from daemon.core.backoff import retry_delay
from daemon.core.errors import (
    GoneError,
    InvalidError,
    KubeError,
    NotFoundError,
    ResourceVersionTooLargeError,
    ServerError,
    TooManyRequestsError,
    UnavailableError,
)
from daemon.core.logs import get_logger
from daemon.core.objects import ObjectRef
from daemon.core.resources import Resource, resource_for
from daemon.core.world import WATCHED_KINDS, World, hash_secret
from daemon.kube.effects import Kube, ListResult

log = get_logger("informer")


class Subscriber(Protocol):
    def __call__(self, ref: ObjectRef, event: str) -> None: ...


@dataclass
class InformerStats:
    lists: int = 0
    relists: int = 0
    watches: int = 0
    events: int = 0
    errors: int = 0
    freshness_checks: int = 0
    """One-item lists that ask whether the server's history reached ours, after a failed watch."""
    by_kind_lists: dict[str, int] = field(default_factory=dict)


ALL_NAMESPACES: Final = "*"
"""In ``secret_namespaces``: read Secrets cluster-wide (an explicit opt-in)."""


@dataclass(frozen=True, kw_only=True)
class Stream:
    """One list+watch: a kind, in one namespace or all, optionally narrowed by the server."""

    resource: Resource
    namespace: str | None = None
    """``None``: every namespace (or a cluster-scoped kind)."""
    label_selector: str | None = None
    field_selector: str | None = None

    @property
    def name(self) -> str:
        where = self.namespace or "*"
        return f"{self.resource.plural}@{where}"

    def owns(self, obj: Mapping[str, Any]) -> bool:
        """Whether a cached object came from this stream (what a relist of it may replace)."""
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.field_selector and self.field_selector.startswith("metadata.name="):
            return meta.get("name") == self.field_selector.removeprefix("metadata.name=")
        return True


def plan_streams(resources: Iterable[Resource], *, namespaces: Iterable[str] | None,
                 secret_namespaces: Iterable[str] | None, selector: str | None = None,
                 by_name: Mapping[str, tuple[str, str]] | None = None,
                 secret_names: Iterable[tuple[str, str]] = ()) -> tuple[Stream, ...]:
    """The streams that read ``resources`` within the scope (see the module docstring)."""
    ns = sorted(set(namespaces)) if namespaces is not None else None
    secret_ns = sorted(set(secret_namespaces)) if secret_namespaces is not None else ns
    out: list[Stream] = []
    for res in resources:
        labels = selector if res.kind == "InferenceService" else None
        if by_name and res.kind in by_name:
            where, name = by_name[res.kind]
            out.append(Stream(resource=res, namespace=where, field_selector=f"metadata.name={name}"))
        elif not res.namespaced:
            out.append(Stream(resource=res))
        elif res.kind == "Secret":
            if secret_ns is None or ALL_NAMESPACES in secret_ns:
                out.append(Stream(resource=res))
            else:
                out.extend(Stream(resource=res, namespace=n) for n in secret_ns)
                out.extend(Stream(resource=res, namespace=n, field_selector=f"metadata.name={name}")
                           for n, name in sorted(set(secret_names)) if n not in secret_ns)
        elif ns is None:
            out.append(Stream(resource=res, label_selector=labels))
        else:
            out.extend(Stream(resource=res, namespace=n, label_selector=labels) for n in ns)
    return tuple(out)


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Informer:
    """Caches of the watched kinds, kept current by watches; see the module docstring."""

    def __init__(self, kube: Kube, *, kinds: Iterable[tuple[str, str]] = WATCHED_KINDS,
                 namespaces: Iterable[str] | None = None, secret_namespaces: Iterable[str] | None = None,
                 selector: str | None = None, by_name: Mapping[str, tuple[str, str]] | None = None,
                 secret_names: Iterable[tuple[str, str]] = (),
                 watch_timeout_seconds: int = 300, silent_watch_seconds: float = 75.0,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``namespaces``: read namespaced kinds only there (``None``: everywhere).
        ``secret_namespaces``: where Secrets are read (``None``: as ``namespaces``; ``"*"``:
        everywhere). ``selector``: label selector on InferenceServices. ``by_name``: kind →
        (namespace, name) read alone by field selector. ``secret_names``: single Secrets read by
        name outside ``secret_namespaces``. ``silent_watch_seconds``: a watch that has heard
        nothing, not even a bookmark, for this long asks once whether the server's history
        reached its resourceVersion (kube-apiserver sends a bookmark about every minute)."""
        self.kube = kube
        self.resources: tuple[Resource, ...] = tuple(resource_for(av, k) for av, k in kinds)
        self.namespaces = frozenset(namespaces) if namespaces is not None else None
        self.streams = plan_streams(self.resources, namespaces=self.namespaces,
                                    secret_namespaces=secret_namespaces, selector=selector, by_name=by_name,
                                    secret_names=secret_names)
        self.watch_timeout_seconds = watch_timeout_seconds
        self.silent_watch_seconds = silent_watch_seconds
        self.rng = rng or random.Random()
        self.stats = InformerStats()
        self._caches: dict[str, dict[str, dict[str, Any]]] = {r.kind: {} for r in self.resources}
        self._synced: dict[Stream, asyncio.Event] = {s: asyncio.Event() for s in self.streams}
        self._subscribers: list[Subscriber] = []
        self.clock = clock
        born = clock()
        self._contact: dict[Stream, float] = dict.fromkeys(self.streams, born)
        """When each stream last heard from the server (list, watch accepted, event, bookmark)."""
        self._connected: dict[Stream, bool] = dict.fromkeys(self.streams, False)
        self._errors: dict[Stream, str] = {}
        self._relist: dict[Stream, asyncio.Event] = {s: asyncio.Event() for s in self.streams}
        self._highest_rv = 0
        """The highest resourceVersion any list or event carried (a list below it: another history)."""

    # -- reading the caches ---------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> None:
        """``callback(ref, event)`` on every change; ``event`` is ADDED/MODIFIED/DELETED."""
        self._subscribers.append(callback)

    @property
    def has_synced(self) -> bool:
        return all(e.is_set() for e in self._synced.values())

    async def wait_synced(self) -> None:
        for e in self._synced.values():
            await e.wait()

    def stale(self, bound: float) -> list[str]:
        """The streams whose caches are not current: no watch connected and nothing heard from
        the server for more than ``bound`` seconds; each with how long and the last error."""
        now = self.clock()
        out = []
        for st in self.streams:
            age = now - self._contact[st]
            if not self._connected[st] and age > bound:
                err = self._errors.get(st)
                out.append(f"{st.name}: no watch for {age:.0f} s" + (f" ({err})" if err else ""))
        return out

    @property
    def watching(self) -> bool:
        """Every stream's watch is connected right now."""
        return all(self._connected.values())

    @property
    def last_error(self) -> str | None:
        """The most recent error of any stream (what ``run --once`` reports when it gives up)."""
        return next(reversed(self._errors.values()), None)

    def _heard(self, stream: Stream) -> None:
        self._contact[stream] = self.clock()
        self._errors.pop(stream, None)

    def _saw_rv(self, rv: str) -> None:
        if rv.isdigit():
            self._highest_rv = max(self._highest_rv, int(rv))

    def _history_replaced(self, why: str) -> None:
        """Our resourceVersions come from another history: every stream relists."""
        log.warning("the API's history was replaced; relisting every kind", why=why)
        self.stats.relists += 1
        self._highest_rv = 0
        for ev in self._relist.values():
            ev.set()

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._caches.get(kind, {}).get(f"{namespace}/{name}" if namespace else name)

    def list_kind(self, kind: str) -> list[dict[str, Any]]:
        return list(self._caches.get(kind, {}).values())

    def objects(self) -> list[dict[str, Any]]:
        return [o for cache in self._caches.values() for o in cache.values()]

    def world(self) -> World:
        """A frozen snapshot of every cache (secrets already hashed)."""
        return World.build(self.objects())

    # -- running --------------------------------------------------------------------------

    async def sync_once(self, *, retry_seconds: float = 10.0) -> None:
        """List every stream once and fill the caches, without watching (``check``).

        A list the server asks us to repeat — 429 (a CRD whose storage is still initialising
        answers so on a real kube-apiserver; priority-and-fairness throttling), a 5xx — is
        retried after its ``Retry-After`` / back-off for up to ``retry_seconds``; other errors,
        and one still failing then, are raised.
        """
        listed = await asyncio.gather(*(self._list_retrying(s, retry_seconds) for s in self.streams),
                                      return_exceptions=True)
        for stream, result in zip(self.streams, listed, strict=True):
            if isinstance(result, NotFoundError):
                result_items: list[dict[str, Any]] = []  # the kind is not served here: none of it
            elif isinstance(result, BaseException):
                raise result
            else:
                result_items = result.items
            self.stats.lists += 1
            self._replace(stream, result_items)
            self._synced[stream].set()

    async def run(self) -> None:
        """Keep every cache current until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                for stream in self.streams:
                    tg.create_task(self._run_stream(stream), name=f"informer-{stream.name}")
        except* InvalidError as group:
            raise group.exceptions[0] from None

    async def _list_retrying(self, s: Stream, retry_seconds: float) -> ListResult:
        deadline = time.monotonic() + retry_seconds
        failures = 0
        while True:
            try:
                return await self._list(s)
            except (TooManyRequestsError, ServerError) as err:
                failures += 1
                delay = retry_delay(error=err, failures=failures, rng=self.rng) or 0.0
                if time.monotonic() + delay > deadline:
                    raise
                log.info("list retried", stream=s.name, status=err.status, after_seconds=round(delay, 3))
                await asyncio.sleep(delay)

    def _check_reached(self, s: Stream, rv: str) -> Awaitable[str]:
        """Has the server's history reached ``rv`` (:meth:`Kube.check_reached`; 504 if not)?"""
        self.stats.freshness_checks += 1
        return self.kube.check_reached(s.resource, resource_version=rv, namespace=s.namespace,
                                       label_selector=s.label_selector, field_selector=s.field_selector)

    def _list(self, s: Stream) -> Awaitable[ListResult]:
        return self.kube.list_objects(s.resource, namespace=s.namespace, label_selector=s.label_selector,
                                      field_selector=s.field_selector)

    def _notify(self, res: Resource, obj: Mapping[str, Any], event: str) -> None:
        meta = obj.get("metadata") or {}
        ref = ObjectRef(api_version=res.api_version, kind=res.kind,
                        namespace=meta.get("namespace") if res.namespaced else None,
                        name=str(meta.get("name", "")))
        for cb in self._subscribers:
            try:
                cb(ref, event)
            except Exception:  # a subscriber's bug must not stop the watch
                log.exception("informer subscriber failed", kind=res.kind, key=ref.key)

    def _store(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        return hash_secret(obj) if res.kind == "Secret" else obj

    def _replace(self, stream: Stream, items: list[dict[str, Any]]) -> None:
        """A (re)list of one stream: swap its part of the cache, notify what differs."""
        res = stream.resource
        cache = self._caches[res.kind]
        fresh = {_key(o): self._store(res, o) for o in items if stream.owns(o)}
        old = {k: o for k, o in cache.items() if stream.owns(o)}
        for k in old:
            del cache[k]
        cache.update(fresh)
        for k, o in fresh.items():
            before = old.get(k)
            if before is None:
                self._notify(res, o, "ADDED")
            elif _rv(before) != _rv(o):
                self._notify(res, o, "MODIFIED")
        for k, o in old.items():
            if k not in fresh:
                self._notify(res, o, "DELETED")

    def _uid_changed(self, stream: Stream, etype: str, obj: Mapping[str, Any]) -> bool:
        """A ``MODIFIED`` object whose uid is not the cached one: the same name in another
        history (a real delete + create arrives as DELETED then ADDED)."""
        if etype != "MODIFIED":
            return False
        before = self._caches[stream.resource.kind].get(_key(obj))
        old = str(((before or {}).get("metadata") or {}).get("uid") or "")
        new = str((obj.get("metadata") or {}).get("uid") or "")
        return bool(old and new and old != new)

    def _apply(self, stream: Stream, etype: str, obj: dict[str, Any]) -> None:
        res = stream.resource
        if not stream.owns(obj):
            return
        cache = self._caches[res.kind]
        k = _key(obj)
        if etype == "DELETED":
            gone = cache.pop(k, None)
            self._notify(res, gone or obj, "DELETED")
            return
        before = cache.get(k)
        if before is not None and _rv(before) == _rv(obj):
            return  # a replayed event (resume after a drop): nothing changed
        cache[k] = self._store(res, obj)
        self._notify(res, cache[k], "ADDED" if before is None else "MODIFIED")

    async def _run_stream(self, stream: Stream) -> None:
        res = stream.resource
        rv: str | None = None
        failures = 0
        relist = self._relist[stream]
        # After a watch that failed (dropped connection, 5xx, 429) or that the server ended
        # early, the server may be another one: an API server restarted over a restored etcd.
        # Resuming the watch cannot tell (see Kube.check_reached), so a one-item list first
        # asks whether its history reached ours.
        verify = False
        while True:
            try:
                if relist.is_set():
                    relist.clear()
                    rv = None
                if rv is not None and verify:
                    await self._check_reached(stream, rv)
                    self._heard(stream)
                verify = False
                if rv is None:
                    listed = await self._list(stream)
                    self._heard(stream)
                    self.stats.lists += 1
                    self.stats.by_kind_lists[res.kind] = self.stats.by_kind_lists.get(res.kind, 0) + 1
                    rv = listed.resource_version
                    if rv.isdigit() and int(rv) < self._highest_rv:
                        # Lower than what we saw before: the caches of every kind are from
                        # another history (etcd restored, API replaced).
                        self._history_replaced(f"{stream.name} listed at resourceVersion {rv}, "
                                               f"below {self._highest_rv} seen before")
                        relist.clear()  # this stream's list is the new history already
                    self._saw_rv(rv)
                    self._replace(stream, listed.items)
                    self._synced[stream].set()
                self.stats.watches += 1
                loop = asyncio.get_running_loop()
                opened = loop.time()
                box = _Cursor(rv=rv)
                consume = asyncio.create_task(self._consume(stream, box), name=f"watch-{stream.name}")
                interrupt = asyncio.create_task(relist.wait())
                silent = asyncio.create_task(self._silent_watch(stream, box))
                try:
                    await asyncio.wait({consume, interrupt}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if self._connected[stream]:
                        # Current until this moment: the bound counts from the drop, not from
                        # the last event of a quiet watch.
                        self._contact[stream] = self.clock()
                    self._connected[stream] = False
                    helpers = [t for t in (consume, interrupt, silent) if not t.done()]
                    for t in helpers:
                        t.cancel()
                    if helpers:
                        # wait(), not ``await t`` under suppress(CancelledError): that would also
                        # swallow a cancel of this stream itself arriving meanwhile, and the
                        # stream would go on retrying a server that is gone.
                        await asyncio.wait(helpers)
                rv = box.rv
                if not consume.done() or consume.cancelled():
                    continue  # interrupted: another stream saw the history change; relist
                consume.result()  # re-raises the watch's error
                # Ended by the server before its timeoutSeconds: it closed the stream (a restart,
                # a shutdown), so the next server may hold another history.
                verify = loop.time() - opened < self.watch_timeout_seconds - 1
                if box.seen or loop.time() - opened >= 1.0:
                    failures = 0
                else:
                    # Closed at once with nothing in it: resume, but never in a tight loop.
                    failures += 1
                    await asyncio.sleep(retry_delay(error=UnavailableError("watch closed at once"),
                                                    failures=failures, rng=self.rng) or 0.0)
            except asyncio.CancelledError:
                raise
            except InvalidError:
                raise  # the server refuses the request itself (a bad selector): not transient
            except KubeError as err:
                self.stats.errors += 1
                self._errors[stream] = str(err)
                failures += 1
                verify = True
                if isinstance(err, NotFoundError) and rv is None and not self._synced[stream].is_set():
                    # The resource type is not served (e.g. no Istio CRDs in this cluster): an
                    # empty cache is the truth; look again later rather than never being ready.
                    log.warning("resource not served; treating as empty", kind=res.kind,
                                api_version=res.api_version)
                    self._replace(stream, [])
                    self._synced[stream].set()
                if isinstance(err, ResourceVersionTooLargeError):
                    # The server never reached our resourceVersion: its history is not ours.
                    self._history_replaced(f"{stream.name}: {err}")
                    rv = None
                elif isinstance(err, GoneError):
                    self.stats.relists += 1
                    log.info("watch expired, relisting", kind=res.kind, resource_version=rv)
                    rv = None
                else:
                    log.warning("watch failed", kind=res.kind, error=str(err), status=err.status,
                                failures=failures)
                delay = retry_delay(error=err, failures=failures, rng=self.rng) or 0.0
                if delay:
                    await asyncio.sleep(delay)

    async def _silent_watch(self, stream: Stream, box: _Cursor) -> None:
        """Once, when the watch from ``box.rv`` has heard nothing at all for
        ``silent_watch_seconds``: is the server's history past that resourceVersion? A watch
        that reached a server of another history right after our list (the restart fell between
        the two) is held there and hears nothing, bookmarks included; a 504 here relists."""
        await asyncio.sleep(self.silent_watch_seconds)
        if box.seen:
            return
        try:
            await self._check_reached(stream, box.rv)
        except ResourceVersionTooLargeError as err:
            self._history_replaced(f"{stream.name}: {err}")
        except KubeError as err:
            # The watch itself reports a server that is gone; this check only looks for history.
            log.info("silent watch check failed", stream=stream.name, error=str(err))

    async def _consume(self, stream: Stream, box: _Cursor) -> None:
        """One watch of ``stream`` from ``box.rv`` until the server ends it; ``box`` follows."""

        def opened() -> None:
            self._connected[stream] = True
            self._heard(stream)

        async for ev in self.kube.watch(stream.resource, resource_version=box.rv,
                                        namespace=stream.namespace,
                                        label_selector=stream.label_selector,
                                        field_selector=stream.field_selector,
                                        timeout_seconds=self.watch_timeout_seconds, on_open=opened):
            self._heard(stream)
            if ev.type != "BOOKMARK" and self._uid_changed(stream, ev.type, ev.object):
                self._history_replaced(f"{stream.name}: {_key(ev.object)} changed uid in a MODIFIED event")
                return
            if ev.resource_version:
                box.rv = ev.resource_version
                self._saw_rv(box.rv)
            if ev.type != "BOOKMARK":
                self.stats.events += 1
                self._apply(stream, ev.type, ev.object)
            box.seen += 1


@dataclass
class _Cursor:
    """Where a watch is: the last resourceVersion and how many events it brought."""

    rv: str
    seen: int = 0


async def run_until_synced(informer: Informer) -> asyncio.Task[None]:
    """Start ``informer.run()`` as a task and return it once every cache has synced."""
    task = asyncio.create_task(informer.run(), name="informer")
    waiter = asyncio.create_task(informer.wait_synced())
    done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if waiter not in done:
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        task.result()  # re-raises what stopped the informer
    return task
