"""Objects, the global resourceVersion, and the bounded event history that watches read.

One counter (``revision``) plays etcd's revision: every real change bumps it, and the new value
is the object's ``metadata.resourceVersion``. Each group resource keeps:

- its objects by ``(namespace, name)`` (``""`` namespace for cluster-scoped kinds); stored
  objects are never mutated in place, only replaced, so readers may hold them freely;
- a ring of its most recent events (``watch_history`` of them), like the apiserver's watch
  cache; ``window_start`` is the oldest revision a watch can resume *from*: a watch asking for
  anything older gets 410 Expired. The window starts at the revision current when
  :meth:`Store.mark_seeded` is called, slides as the ring overflows, and :meth:`Store.compact`
  pulls it up to now;
- its live watchers, each an unbounded queue fed synchronously on every change.

Everything here is synchronous and runs on the server's event loop, so "replay history, then
subscribe" is atomic: no event can slip between the two.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str]


def key_order(key: Key) -> str:
    """The etcd key suffix an object is stored (and listed) under."""
    return f"{key[0]}/{key[1]}"


@dataclass(frozen=True, slots=True)
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None  # the previous state (MODIFIED/DELETED), to turn selector moves into ADDED/DELETED


@dataclass(eq=False)
class Watcher:
    """One open watch: its queue; ``None`` in the queue means 'stream ends now'."""

    group_resource: str
    namespace: str | None
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)

    def close(self) -> None:
        self.queue.put_nowait(None)


@dataclass
class _Resource:
    objects: dict[Key, Obj] = field(default_factory=dict)
    history: deque[Event] = field(default_factory=deque)
    window_start: int = 0
    watchers: set[Watcher] = field(default_factory=set)


class TooOld(Exception):
    """A watch asked to resume from before the history window."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested = requested
        self.oldest = oldest


class Store:
    def __init__(self, *, watch_history: int = 1000) -> None:
        self.revision = 0
        self._history_size = max(1, watch_history)
        self._resources: dict[str, _Resource] = {}
        self._seeded_at = 0
        # Called after every change (e.g. the CRD registry hook, namespace finalisation).
        self.listeners: list[Callable[[str, Event], None]] = []
        # owner uid -> dependents (group resource, key), from metadata.ownerReferences: the
        # garbage collector's graph, kept up to date on every write.
        self._dependents: dict[str, set[tuple[str, Key]]] = {}

    def _res(self, gr: str) -> _Resource:
        res = self._resources.get(gr)
        if res is None:
            res = _Resource(window_start=self._seeded_at)
            self._resources[gr] = res
        return res

    # --- reads ---------------------------------------------------------------------------------

    def get(self, gr: str, namespace: str, name: str) -> Obj | None:
        return self._res(gr).objects.get((namespace, name))

    def items(self, gr: str, namespace: str | None = None) -> list[Obj]:
        """Objects in etcd's key order: by the string ``namespace/name`` (so ``a-b/x`` comes
        before ``a/x``: ``-`` sorts before ``/``), not by the (namespace, name) pair."""
        objs = self._res(gr).objects
        keys = sorted((k for k in objs if namespace is None or k[0] == namespace), key=key_order)
        return [objs[k] for k in keys]

    def namespaced_keys(self, namespace: str) -> Iterator[tuple[str, Key]]:
        for gr, res in self._resources.items():
            for key in list(res.objects):
                if key[0] == namespace:
                    yield gr, key

    def count(self, gr: str) -> int:
        return len(self._res(gr).objects)

    # --- writes --------------------------------------------------------------------------------

    def next_revision(self) -> int:
        self.revision += 1
        return self.revision

    def put(self, gr: str, key: Key, obj: Obj, *, rv: int, created: bool, old: Obj | None) -> None:
        res = self._res(gr)
        res.objects[key] = obj
        self._index_owners(gr, key, old, obj)
        self._record(gr, res, Event(rv, "ADDED" if created else "MODIFIED", obj, old))

    def delete(self, gr: str, key: Key, obj: Obj, *, rv: int) -> None:
        res = self._res(gr)
        old = res.objects.pop(key, None)
        self._index_owners(gr, key, old, None)
        self._record(gr, res, Event(rv, "DELETED", obj, old))

    @staticmethod
    def _owner_uids(obj: Obj | None) -> set[str]:
        refs = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
        return {str(r["uid"]) for r in refs if isinstance(r, dict) and r.get("uid")}

    def _index_owners(self, gr: str, key: Key, old: Obj | None, new: Obj | None) -> None:
        before, after = self._owner_uids(old), self._owner_uids(new)
        for uid in before - after:
            deps = self._dependents.get(uid)
            if deps is not None:
                deps.discard((gr, key))
                if not deps:
                    del self._dependents[uid]
        for uid in after - before:
            self._dependents.setdefault(uid, set()).add((gr, key))

    def dependents(self, uid: str) -> list[tuple[str, Key]]:
        """Objects whose ownerReferences name ``uid``, in a stable order."""
        return sorted(self._dependents.get(uid, ()))

    def _record(self, gr: str, res: _Resource, ev: Event) -> None:
        res.history.append(ev)
        while len(res.history) > self._history_size:
            dropped = res.history.popleft()
            res.window_start = max(res.window_start, dropped.rv)
        for w in list(res.watchers):
            w.queue.put_nowait(ev)
        for listener in self.listeners:
            listener(gr, ev)

    # --- history window ------------------------------------------------------------------------

    def mark_seeded(self) -> None:
        """The history window starts here: resuming from an earlier revision answers 410."""
        self._seeded_at = self.revision
        for res in self._resources.values():
            self._trim(res, self.revision)

    def compact(self) -> None:
        """Forget all history: every resourceVersion before now is too old to watch from."""
        for res in self._resources.values():
            self._trim(res, self.revision)
        self._seeded_at = max(self._seeded_at, self.revision)

    @staticmethod
    def _trim(res: _Resource, upto: int) -> None:
        res.window_start = max(res.window_start, upto)
        while res.history and res.history[0].rv <= upto:
            res.history.popleft()

    # --- watching ------------------------------------------------------------------------------

    def subscribe(self, gr: str, *, namespace: str | None, since: int | None) -> tuple[Watcher, list[Event]]:
        """Register a watcher; return it with the events after ``since`` it must see first.

        ``since`` None means 'from now' (the caller sends ADDED for current objects itself).
        """
        res = self._res(gr)
        backlog: list[Event] = []
        if since is not None:
            if since < res.window_start:
                raise TooOld(since, res.window_start + 1)
            backlog = [ev for ev in res.history if ev.rv > since]
        w = Watcher(group_resource=gr, namespace=namespace)
        res.watchers.add(w)
        return w, backlog

    def unsubscribe(self, w: Watcher) -> None:
        self._res(w.group_resource).watchers.discard(w)

    def end_watches(self, gr: str) -> None:
        """End every open watch of ``gr`` (after its events so far): a deleted CRD's storage is
        torn down, and kube-apiserver ends its watches so; a new watch then gets 404."""
        for w in list(self._res(gr).watchers):
            w.close()

    def watchers(self) -> list[Watcher]:
        return [w for res in self._resources.values() for w in res.watchers]
