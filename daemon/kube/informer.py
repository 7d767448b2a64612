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
holds a credential. Objects in namespaces the daemon does not care about are dropped on arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from daemon.core.backoff import retry_delay
from daemon.core.errors import GoneError, KubeError, NotFoundError, UnavailableError
from daemon.core.logs import get_logger
from daemon.core.objects import ObjectRef
from daemon.core.resources import Resource, resource_for
from daemon.core.world import WATCHED_KINDS, World, hash_secret
from daemon.kube.effects import Kube

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


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Informer:
    """Caches of the watched kinds, kept current by watches; see the module docstring."""

    def __init__(self, kube: Kube, *, kinds: Iterable[tuple[str, str]] = WATCHED_KINDS,
                 namespaces: Iterable[str] | None = None, watch_timeout_seconds: int = 300,
                 rng: random.Random | None = None) -> None:
        self.kube = kube
        self.resources: tuple[Resource, ...] = tuple(resource_for(av, k) for av, k in kinds)
        self.namespaces = frozenset(namespaces) if namespaces is not None else None
        self.watch_timeout_seconds = watch_timeout_seconds
        self.rng = rng or random.Random()
        self.stats = InformerStats()
        self._caches: dict[str, dict[str, dict[str, Any]]] = {r.kind: {} for r in self.resources}
        self._synced: dict[str, asyncio.Event] = {r.kind: asyncio.Event() for r in self.resources}
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
        """List every kind once and fill the caches, without watching (``check``)."""
        listed = await asyncio.gather(*(self.kube.list_objects(r) for r in self.resources),
                                      return_exceptions=True)
        for res, result in zip(self.resources, listed, strict=True):
            if isinstance(result, NotFoundError):
                result_items: list[dict[str, Any]] = []  # the kind is not served here: none of it
            elif isinstance(result, BaseException):
                raise result
            else:
                result_items = result.items
            self.stats.lists += 1
            self._replace(res, result_items)
            self._synced[res.kind].set()

    async def run(self) -> None:
        """Keep every cache current until cancelled."""
        async with asyncio.TaskGroup() as tg:
            for res in self.resources:
                tg.create_task(self._run_kind(res), name=f"informer-{res.plural}")

    def _wanted(self, obj: Mapping[str, Any], res: Resource) -> bool:
        if not res.namespaced or self.namespaces is None:
            return True
        return (obj.get("metadata") or {}).get("namespace") in self.namespaces

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

    def _replace(self, res: Resource, items: list[dict[str, Any]]) -> None:
        """A (re)list: swap the cache, notify what differs from before."""
        cache = self._caches[res.kind]
        fresh = {_key(o): self._store(res, o) for o in items if self._wanted(o, res)}
        old = dict(cache)
        cache.clear()
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

    def _apply(self, res: Resource, etype: str, obj: dict[str, Any]) -> None:
        if not self._wanted(obj, res):
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

    async def _run_kind(self, res: Resource) -> None:
        rv: str | None = None
        failures = 0
        while True:
            try:
                if rv is None:
                    listed = await self.kube.list_objects(res)
                    self.stats.lists += 1
                    self.stats.by_kind_lists[res.kind] = self.stats.by_kind_lists.get(res.kind, 0) + 1
                    self._replace(res, listed.items)
                    rv = listed.resource_version
                    self._synced[res.kind].set()
                self.stats.watches += 1
                loop = asyncio.get_running_loop()
                opened, seen = loop.time(), 0
                async for ev in self.kube.watch(res, resource_version=rv,
                                                timeout_seconds=self.watch_timeout_seconds):
                    if ev.resource_version:
                        rv = ev.resource_version
                    if ev.type != "BOOKMARK":
                        self.stats.events += 1
                        self._apply(res, ev.type, ev.object)
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
            except KubeError as err:
                self.stats.errors += 1
                failures += 1
                if isinstance(err, NotFoundError) and rv is None and not self._synced[res.kind].is_set():
                    # The resource type is not served (e.g. no Istio CRDs in this cluster): an
                    # empty cache is the truth; look again later rather than never being ready.
                    log.warning("resource not served; treating as empty", kind=res.kind,
                                api_version=res.api_version)
                    self._replace(res, [])
                    self._synced[res.kind].set()
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
