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

So in steady state there are no polling lists at all: ``stats.lists`` grows only at start and
after a 410. Secrets are stored *hashed* (:func:`daemon.core.world.hash_secret`): the cache never
holds a credential.

**Scope is applied by the API server, not after the fact** (least privilege, issue 13 item 9).
Each kind is read through one or more *streams* (:class:`Stream`), each its own list+watch:

* ``namespaces=None``: one cluster-wide stream per namespaced kind (needs a ClusterRole read);
  a namespace list: one stream per kind *per namespace* (a Role per namespace is enough —
  chosen over a cluster-wide watch filtered here, which would need cluster-wide read);
* Secrets never follow the cluster-wide default: only ``secret_namespaces`` (per-namespace
  streams), cluster-wide only when that list holds ``"*"``; nothing else ever lists them;
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
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from daemon.core.backoff import retry_delay
from daemon.core.errors import GoneError, InvalidError, KubeError, NotFoundError, UnavailableError
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
                 by_name: Mapping[str, tuple[str, str]] | None = None) -> tuple[Stream, ...]:
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
                 watch_timeout_seconds: int = 300, rng: random.Random | None = None) -> None:
        """``namespaces``: read namespaced kinds only there (``None``: everywhere).
        ``secret_namespaces``: where Secrets are read (``None``: as ``namespaces``; ``"*"``:
        everywhere). ``selector``: label selector on InferenceServices. ``by_name``: kind →
        (namespace, name) read alone by field selector."""
        self.kube = kube
        self.resources: tuple[Resource, ...] = tuple(resource_for(av, k) for av, k in kinds)
        self.namespaces = frozenset(namespaces) if namespaces is not None else None
        self.streams = plan_streams(self.resources, namespaces=self.namespaces,
                                    secret_namespaces=secret_namespaces, selector=selector, by_name=by_name)
        self.watch_timeout_seconds = watch_timeout_seconds
        self.rng = rng or random.Random()
        self.stats = InformerStats()
        self._caches: dict[str, dict[str, dict[str, Any]]] = {r.kind: {} for r in self.resources}
        self._synced: dict[Stream, asyncio.Event] = {s: asyncio.Event() for s in self.streams}
        self._subscribers: list[Subscriber] = []

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

    async def sync_once(self) -> None:
        """List every stream once and fill the caches, without watching (``check``)."""
        listed = await asyncio.gather(*(self._list(s) for s in self.streams), return_exceptions=True)
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
        while True:
            try:
                if rv is None:
                    listed = await self._list(stream)
                    self.stats.lists += 1
                    self.stats.by_kind_lists[res.kind] = self.stats.by_kind_lists.get(res.kind, 0) + 1
                    self._replace(stream, listed.items)
                    rv = listed.resource_version
                    self._synced[stream].set()
                self.stats.watches += 1
                loop = asyncio.get_running_loop()
                opened, seen = loop.time(), 0
                async for ev in self.kube.watch(res, resource_version=rv, namespace=stream.namespace,
                                                label_selector=stream.label_selector,
                                                field_selector=stream.field_selector,
                                                timeout_seconds=self.watch_timeout_seconds):
                    if ev.resource_version:
                        rv = ev.resource_version
                    if ev.type != "BOOKMARK":
                        self.stats.events += 1
                        self._apply(stream, ev.type, ev.object)
                    seen += 1
                    failures = 0
                if seen or loop.time() - opened >= 1.0:
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
                failures += 1
                if isinstance(err, NotFoundError) and rv is None and not self._synced[stream].is_set():
                    # The resource type is not served (e.g. no Istio CRDs in this cluster): an
                    # empty cache is the truth; look again later rather than never being ready.
                    log.warning("resource not served; treating as empty", kind=res.kind,
                                api_version=res.api_version)
                    self._replace(stream, [])
                    self._synced[stream].set()
                if isinstance(err, GoneError):
                    self.stats.relists += 1
                    log.info("watch expired, relisting", kind=res.kind, resource_version=rv)
                    rv = None
                else:
                    log.warning("watch failed", kind=res.kind, error=str(err), status=err.status,
                                failures=failures)
                delay = retry_delay(error=err, failures=failures, rng=self.rng) or 0.0
                if delay:
                    await asyncio.sleep(delay)


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
