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

**Kinds the cluster does not serve, or RBAC does not grant** (issue 23). Before anything is
listed, discovery (:meth:`~daemon.kube.effects.Kube.served`) says which of the watched kinds
the API serves: a kind it does not (no Istio, so no PeerAuthentication CRD) is *not observed*,
said once at INFO, never listed, and its cache is empty — the truth for a kind that cannot
exist. A stream answered 403 is not observed either (its cache is empty, but that is not the
truth: :meth:`Informer.unobserved` tells the diagnosis, which says "not checked"). Neither ever
counts against readiness, nor repeats a warning. Both are looked at again on a slow period
(``rediscover_seconds``): discovery for the kinds not served (one request per group version, no
list), a list for the forbidden streams; a kind that appears is then listed and watched like
the others. A kind that disappears while watched (its CRD deleted) answers 404 to the next list
and becomes not served. ``GET /api/`` answered by something that is not a Kubernetes API (a
proxy or web server answering 404) raises :class:`~daemon.core.errors.NotKubernetesError`:
such a server would otherwise look like an empty cluster.

**After an outage** a stream's back-off may have grown to its cap (30 s). While any stream
waits out a back-off for a transient error, one small discovery request (``GET /api/``) asks
every ``outage_probe_seconds`` whether the API answers again; when it does, every stream
waiting on a transient error retries at once, so the watches are back within a probe period
of the API's return (a 429's ``Retry-After`` is still honoured to the letter).

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
import functools
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeVar

from daemon.core.backoff import retry_delay
from daemon.core.errors import (
    ForbiddenError,
    GoneError,
    InvalidError,
    KubeError,
    NotFoundError,
    NotKubernetesError,
    ResourceVersionTooLargeError,
    ServerError,
    TooManyRequestsError,
    UnavailableError,
)
from daemon.core.logs import get_logger
from daemon.core.objects import ObjectRef
from daemon.core.resources import Resource, resource_for
from daemon.core.world import FORBIDDEN, NOT_SERVED, WATCHED_KINDS, World, hash_secret
from daemon.kube.effects import Kube, ListResult

log = get_logger("informer")

_T = TypeVar("_T")


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
                 rediscover_seconds: float = 300.0, outage_probe_seconds: float = 1.0,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``namespaces``: read namespaced kinds only there (``None``: everywhere).
        ``secret_namespaces``: where Secrets are read (``None``: as ``namespaces``; ``"*"``:
        everywhere). ``selector``: label selector on InferenceServices. ``by_name``: kind →
        (namespace, name) read alone by field selector. ``secret_names``: single Secrets read by
        name outside ``secret_namespaces``. ``silent_watch_seconds``: a watch that has heard
        nothing, not even a bookmark, for this long asks once whether the server's history
        reached its resourceVersion (kube-apiserver sends a bookmark about every minute).
        ``rediscover_seconds``: how often kinds not observed (not served, forbidden) are looked
        at again. ``outage_probe_seconds``: during an outage, how often ``GET /api/`` asks
        whether the API is back (see the module docstring)."""
        self.kube = kube
        self.resources: tuple[Resource, ...] = tuple(resource_for(av, k) for av, k in kinds)
        self.namespaces = frozenset(namespaces) if namespaces is not None else None
        self.streams = plan_streams(self.resources, namespaces=self.namespaces,
                                    secret_namespaces=secret_namespaces, selector=selector, by_name=by_name,
                                    secret_names=secret_names)
        self.watch_timeout_seconds = watch_timeout_seconds
        self.silent_watch_seconds = silent_watch_seconds
        self.rediscover_seconds = rediscover_seconds
        self.outage_probe_seconds = outage_probe_seconds
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
        self._unread: dict[Stream, str] = {}
        """Streams not observed now, and why (:data:`NOT_SERVED`, :data:`FORBIDDEN`)."""
        self._said: dict[str, str] = {}
        """Kind → the reason last logged for it (so each change is said once, not each retry)."""
        self._tg: asyncio.TaskGroup | None = None
        self._api_back = asyncio.Event()
        """Set (and replaced) when the API answers again after streams backed off."""
        self._outage_probe: asyncio.Task[None] | None = None

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
            if st in self._unread:
                continue  # not observed by design (not served, forbidden): nothing to wait for
            age = now - self._contact[st]
            if not self._connected[st] and age > bound:
                err = self._errors.get(st)
                out.append(f"{st.name}: no watch for {age:.0f} s" + (f" ({err})" if err else ""))
        return out

    @property
    def watching(self) -> bool:
        """Every observed stream's watch is connected right now."""
        return all(c for st, c in self._connected.items() if st not in self._unread)

    def unobserved(self) -> dict[str, str]:
        """Kind → why it is not observed (:data:`NOT_SERVED`, or :data:`FORBIDDEN` with the
        namespaces where): its cache is empty, and for a forbidden kind that is not the truth."""
        out: dict[str, list[str]] = {}
        for st, why in self._unread.items():
            out.setdefault(st.resource.kind, []).append(
                why if why == NOT_SERVED or st.namespace is None else f"{why} in {st.namespace}")
        return {k: ", ".join(sorted(set(v))) for k, v in sorted(out.items())}

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
        """A frozen snapshot of every cache (secrets already hashed), with the kinds not observed."""
        return World.build(self.objects(), unobserved=self.unobserved())

    # -- running --------------------------------------------------------------------------

    async def sync_once(self, *, retry_seconds: float = 10.0) -> None:
        """Discover, then list every observed stream once and fill the caches, without watching
        (``check``).

        A request the server asks us to repeat — 429 (a CRD whose storage is still initialising
        answers so on a real kube-apiserver; priority-and-fairness throttling), a 5xx — is
        retried after its ``Retry-After`` / back-off for up to ``retry_seconds``; other errors,
        and one still failing then, are raised. A kind not served, or a stream forbidden, is not
        observed (see the module docstring) — except InferenceServices: without them there is
        nothing to diagnose, so a 403 there is raised.
        """
        deadline = time.monotonic() + retry_seconds
        served = await self._retrying(self._discover, deadline)
        observed = [s for s in self.streams if self._is_served(s, served)]
        for s in self.streams:
            if s not in observed:
                self._not_observed(s, NOT_SERVED)
        listed = await asyncio.gather(*(self._retrying(functools.partial(self._list, s), deadline)
                                        for s in observed), return_exceptions=True)
        for stream, result in zip(observed, listed, strict=True):
            if isinstance(result, NotFoundError):
                self._not_observed(stream, NOT_SERVED)  # gone between discovery and the list
                continue
            if _forbidden(result) and stream.resource.kind != "InferenceService":
                self._not_observed(stream, FORBIDDEN, detail=str(result))
                continue
            if isinstance(result, BaseException):
                raise result
            self.stats.lists += 1
            self._replace(stream, result.items)
            self._synced[stream].set()

    async def run(self) -> None:
        """Keep every cache current until cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                served = await self._discover_until_answered()
                for stream in self.streams:
                    if self._is_served(stream, served):
                        self._start(stream)
                    else:
                        self._not_observed(stream, NOT_SERVED)
                tg.create_task(self._rediscover(), name="informer-rediscover")
        except* (InvalidError, NotKubernetesError) as group:
            raise group.exceptions[0] from None
        finally:
            self._tg = None

    def _start(self, stream: Stream) -> None:
        assert self._tg is not None
        self._tg.create_task(self._run_stream(stream), name=f"informer-{stream.name}")

    # -- discovery: which kinds are observed ------------------------------------------------

    def _discover(self) -> Awaitable[dict[str, frozenset[str]]]:
        return self.kube.served(sorted({r.api_version for r in self.resources}))

    @staticmethod
    def _is_served(stream: Stream, served: Mapping[str, frozenset[str]]) -> bool:
        return stream.resource.plural in served.get(stream.resource.api_version, frozenset())

    async def _discover_until_answered(self) -> dict[str, frozenset[str]]:
        """Discovery, retried with back-off until the API answers (the daemon waits, not ready,
        through an outage at start-up); a server that is not a Kubernetes API is raised."""
        failures = 0
        while True:
            try:
                return await self._discover()
            except NotKubernetesError:
                raise
            except KubeError as err:
                failures += 1
                self.stats.errors += 1
                for st in self.streams:
                    self._errors[st] = str(err)
                log.warning("discovery failed", error=str(err), status=err.status, failures=failures)
                await self._backoff(err, retry_delay(error=err, failures=failures, rng=self.rng) or 0.0)

    async def _rediscover(self) -> None:
        """Every ``rediscover_seconds``: are the kinds not served served now? (One discovery
        request per group version, and only while some kind is not served; no list.)"""
        while True:
            await asyncio.sleep(self.rediscover_seconds)
            waiting = [s for s, why in self._unread.items() if why == NOT_SERVED]
            if not waiting:
                continue
            try:
                served = await self.kube.served(sorted({s.resource.api_version for s in waiting}))
            except KubeError as err:
                log.info("rediscovery failed; trying again later", error=str(err))
                continue
            for s in waiting:
                if self._is_served(s, served):
                    del self._unread[s]
                    self._say(s.resource.kind, "")
                    self._start(s)

    def _not_observed(self, stream: Stream, why: str, *, detail: str = "") -> None:
        """``stream`` is not observed: an empty cache, synced (nothing to wait for), said once."""
        self._unread[stream] = why
        self._connected[stream] = False
        self._errors.pop(stream, None)
        self._replace(stream, [])
        self._synced[stream].set()
        self._say(stream.resource.kind, why, detail=detail)

    def _say(self, kind: str, why: str, *, detail: str = "") -> None:
        """One log line per change of a kind's state, not per stream or retry."""
        if self._said.get(kind, "") == why:
            return
        self._said[kind] = why
        res = next(r for r in self.resources if r.kind == kind)
        if why == NOT_SERVED:
            log.info("resource not served by this cluster; not checked", kind=kind,
                     api_version=res.api_version, recheck_seconds=self.rediscover_seconds)
        elif why == FORBIDDEN:
            log.info("resource not readable (forbidden); not checked", kind=kind,
                     api_version=res.api_version, error=detail, recheck_seconds=self.rediscover_seconds)
        else:
            log.info("resource observed now", kind=kind, api_version=res.api_version)

    # -- back-off that ends when the API is back -------------------------------------------

    async def _backoff(self, err: KubeError, delay: float) -> None:
        """Wait ``delay`` after ``err``; for a transient error (no answer, 5xx) less, if the API
        answers again meanwhile (see the module docstring). A 429 waits its ``Retry-After``."""
        if delay <= 0:
            return
        if not err.transient or isinstance(err, TooManyRequestsError):
            await asyncio.sleep(delay)
            return
        back = self._api_back
        if (self._outage_probe is None or self._outage_probe.done()) and self._tg is not None:
            self._outage_probe = self._tg.create_task(self._probe_until_back(), name="informer-outage-probe")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await back.wait()

    async def _probe_until_back(self) -> None:
        """``GET /api/`` every ``outage_probe_seconds`` until it answers, then wake every stream
        waiting out a transient error's back-off."""
        while True:
            await asyncio.sleep(self.outage_probe_seconds)
            try:
                await self.kube.served(())
            except KubeError:
                continue
            back, self._api_back = self._api_back, asyncio.Event()
            back.set()
            return

    async def _retrying(self, request: Callable[[], Awaitable[_T]], deadline: float) -> _T:
        """``request()``, repeated after 429/5xx back-off until ``deadline`` (``check``)."""
        failures = 0
        while True:
            try:
                return await request()
            except (TooManyRequestsError, ServerError) as err:
                failures += 1
                delay = retry_delay(error=err, failures=failures, rng=self.rng) or 0.0
                if time.monotonic() + delay > deadline:
                    raise
                log.info("request retried", status=err.status, after_seconds=round(delay, 3))
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
                    if self._unread.pop(stream, None) is not None:
                        self._say(res.kind, "")  # readable again (RBAC granted since)
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
                if box.opened:
                    failures = 0  # the server accepted a watch: the next failure starts afresh
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
            except NotFoundError:
                if rv is None:
                    # The list itself: the kind is not served any more (its CRD deleted). Not
                    # observed from now on; rediscovery starts this stream again if it returns.
                    self._not_observed(stream, NOT_SERVED)
                    return
                rv = None  # the watch or its check: list again to tell which
                continue
            except KubeError as err:
                if rv is None and _forbidden(err):
                    # RBAC does not grant this list: not observed, said once, asked again on
                    # the slow period (discovery cannot tell what RBAC allows).
                    self._not_observed(stream, FORBIDDEN, detail=str(err))
                    await asyncio.sleep(self.rediscover_seconds)
                    continue
                self.stats.errors += 1
                self._errors[stream] = str(err)
                failures += 1
                verify = True
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
                await self._backoff(err, retry_delay(error=err, failures=failures, rng=self.rng) or 0.0)

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
            box.opened = True
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
    opened: bool = False
    """The server accepted the watch."""


def _forbidden(err: object) -> bool:
    """RBAC's 403 (a 401 is a credential problem: raised, never "not observed")."""
    return isinstance(err, ForbiddenError) and err.status == 403


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
