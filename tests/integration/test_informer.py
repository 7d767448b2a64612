"""Watch caches (daemon.kube.informer) over real sockets: list once, watch, notify, secrets hashed
— on both tiers (the stand-in and the real kube-apiserver; ``tier``) — and, on the stand-in
only, surviving drops, 5xx, 429 and 410 (those need its fault hooks: a real server cannot be told
to drop a watch, fail the next request or compact its history now)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from daemon.core.logs import Redactor
from daemon.core.objects import ObjectRef
from daemon.core.resources import Resource
from daemon.kube.effects import Kube, ListResult
from daemon.kube.informer import Informer, run_until_synced
from sandbox.apiserver import ApiServer
from tests.integration.apiserver.tiers import Tier, tier
from tests.integration.daemon_fixtures import eventually, kube_for, stop_task
from tests.integration.informer_fixtures import server, writer_for

__all__ = ["server", "tier"]  # the fixtures, imported

NS = "user-example-com"
SECRET_VALUE = "informer-secret-value-123"


def cm(name: str, value: str, ns: str = NS) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": {"k": value}}


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.changed = asyncio.Event()

    def __call__(self, ref: ObjectRef, event: str) -> None:
        self.seen.append((ref.kind, ref.key, event))
        self.changed.set()

    def has(self, kind: str, key: str, event: str) -> bool:
        return (kind, key, event) in self.seen


class CountingKube(Kube):
    """The real client; counts its lists per plural (the stand-in's counters, on either tier)."""

    lists: list[str]

    async def list_objects(self, res: Resource, *, namespace: str | None = None,
                           label_selector: str | None = None,
                           field_selector: str | None = None) -> ListResult:
        self.lists.append(res.plural)
        return await super().list_objects(res, namespace=namespace, label_selector=label_selector,
                                          field_selector=field_selector)


@contextlib.asynccontextmanager
async def informing(tier: Tier, namespace: str) -> AsyncIterator[tuple[Informer, Recorder, CountingKube]]:
    api = tier.new_client()
    try:
        kube = CountingKube(api, redactor=Redactor())
        kube.lists = []
        inf = Informer(kube, namespaces={namespace}, watch_timeout_seconds=30)
        rec = Recorder()
        inf.subscribe(rec)
        task = await run_until_synced(inf)
        try:
            yield inf, rec, kube
        finally:
            await stop_task(task)
    finally:
        await api.close()


async def test_lists_once_then_watches_and_notifies(tier: Tier) -> None:
    ns, elsewhere = tier.ns, await tier.namespace("elsewhere")
    writer = Kube(tier.api, redactor=Redactor(), field_manager="tester")
    await writer.apply(cm("before", "1", ns), dry_run=False)
    async with informing(tier, ns) as (inf, rec, kube):
        assert inf.has_synced
        assert inf.get("ConfigMap", ns, "before") is not None
        assert rec.has("ConfigMap", f"{ns}/before", "ADDED")
        lists_after_sync = len(kube.lists)
        assert kube.lists.count("configmaps") == 1

        await writer.apply(cm("after", "1", ns), dry_run=False)
        await eventually(lambda: rec.has("ConfigMap", f"{ns}/after", "ADDED"), what="ADDED notification")
        await writer.apply(cm("after", "2", ns), dry_run=False)
        await eventually(lambda: rec.has("ConfigMap", f"{ns}/after", "MODIFIED"),
                         what="MODIFIED notification")
        assert (inf.get("ConfigMap", ns, "after") or {})["data"] == {"k": "2"}
        await writer.core.delete_namespaced_config_map("after", ns)
        await eventually(lambda: rec.has("ConfigMap", f"{ns}/after", "DELETED"), what="DELETED notification")
        assert inf.get("ConfigMap", ns, "after") is None

        # Other namespaces are not cached.
        await writer.apply(cm("far", "1", ns=elsewhere), dry_run=False)
        await writer.apply(cm("marker", "1", ns), dry_run=False)
        await eventually(lambda: rec.has("ConfigMap", f"{ns}/marker", "ADDED"), what="marker")
        assert inf.get("ConfigMap", elsewhere, "far") is None
        # Steady state: no list at all after the initial sync.
        assert len(kube.lists) == lists_after_sync


async def test_secrets_are_cached_hashed(tier: Tier) -> None:
    ns = tier.ns
    writer = Kube(tier.api, redactor=Redactor(), field_manager="tester")
    async with informing(tier, ns) as (inf, _, _):
        await writer.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": ns},
                            "data": {"key": base64.b64encode(SECRET_VALUE.encode()).decode()}}, dry_run=False)
        await eventually(lambda: inf.get("Secret", ns, "s") is not None, what="secret cached")
        cached = inf.get("Secret", ns, "s") or {}
        assert cached["data"]["key"].startswith("sha256:")
        assert SECRET_VALUE not in repr(inf.objects())
        assert base64.b64encode(SECRET_VALUE.encode()).decode() not in repr(inf.objects())


# --- stand-in only: these need its fault hooks (sandbox/apiserver/faults.py) ---------------------


@pytest.fixture
async def writer(server: ApiServer) -> AsyncIterator[Kube]:
    async with writer_for(server, NS, "elsewhere") as k:
        yield k


@pytest.fixture
async def informer(server: ApiServer, writer: Kube) -> AsyncIterator[tuple[Informer, Recorder]]:
    await writer.apply(cm("before", "1"), dry_run=False)
    async with kube_for(server.url) as kube:
        inf = Informer(kube, namespaces={NS}, watch_timeout_seconds=30)
        rec = Recorder()
        inf.subscribe(rec)
        task = await run_until_synced(inf)
        try:
            yield inf, rec
        finally:
            await stop_task(task)


async def test_dropped_watches_resume_without_a_list_and_lose_nothing(
        server: ApiServer, writer: Kube, informer: tuple[Informer, Recorder]) -> None:
    """Stand-in only: drop_watches and injected 5xx/resets."""
    inf, rec = informer
    lists, full, checks = server.stats.count("list"), inf.stats.lists, inf.stats.freshness_checks
    # The reconnect fails a few times (5xx, then a reset connection) and backs off meanwhile.
    server.faults.fail_next(2, status=500, verb="watch", resource="configmaps")
    server.faults.fail_next(1, reset=True, verb="watch", resource="configmaps")
    await server.faults.drop_watches()
    await writer.apply(cm("during-drop", "1"), dry_run=False)
    await eventually(lambda: rec.has("ConfigMap", f"{NS}/during-drop", "ADDED"),
                     what="event made during the drop")
    assert inf.stats.lists == full, "a dropped watch must resume, not relist"
    # What it lists instead: one item "not older than" its resourceVersion per attempt to resume
    # (is this still our history?), nothing else.
    assert inf.stats.freshness_checks > checks
    assert server.stats.count("list") - lists == inf.stats.freshness_checks - checks
    assert inf.stats.errors >= 2


async def test_429_on_watch_waits_retry_after(server: ApiServer, writer: Kube,
                                              informer: tuple[Informer, Recorder]) -> None:
    """Stand-in only: an injected 429 with Retry-After."""
    _, rec = informer
    server.faults.fail_next(1, status=429, retry_after=0.2, verb="watch", resource="configmaps")
    await server.faults.drop_watches()
    t0 = asyncio.get_running_loop().time()
    await writer.apply(cm("after-429", "1"), dry_run=False)
    await eventually(lambda: rec.has("ConfigMap", f"{NS}/after-429", "ADDED"), what="event after a 429")
    assert asyncio.get_running_loop().time() - t0 >= 0.2


async def test_410_relists_and_notices_what_changed_meanwhile(
        server: ApiServer, writer: Kube, informer: tuple[Informer, Recorder]) -> None:
    """Stand-in only: compaction on demand (faults.compact) to force the 410."""
    inf, rec = informer
    assert inf.get("ConfigMap", NS, "before") is not None
    # Keep the informer away while the world changes, then compact the history it needs.
    server.faults.fail_next(4, status=500, verb="watch", resource="configmaps")
    await server.faults.drop_watches()
    await writer.core.delete_namespaced_config_map("before", NS)
    await writer.apply(cm("new-while-away", "1"), dry_run=False)
    server.faults.compact()
    await eventually(lambda: rec.has("ConfigMap", f"{NS}/before", "DELETED"), what="deletion seen via relist")
    await eventually(lambda: rec.has("ConfigMap", f"{NS}/new-while-away", "ADDED"),
                     what="creation via relist")
    assert inf.stats.relists >= 1
    # Two full lists: the first and the relist (the other lists the server saw are the one-item
    # checks before each attempt to resume the watch).
    assert inf.stats.by_kind_lists["ConfigMap"] == 2
    # And the watch after the relist works.
    await writer.apply(cm("after-relist", "1"), dry_run=False)
    await eventually(lambda: rec.has("ConfigMap", f"{NS}/after-relist", "ADDED"), what="watch after relist")
