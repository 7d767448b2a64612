"""Watches through kubernetes_asyncio's ``Watch``: initial ADDED, resume from a
resourceVersion, timeoutSeconds, selector moves, all namespaces, a resourceVersion the server
never had — on both tiers (``tier``) — and, on the stand-in only, what needs its hooks: 410
Expired once the history no longer reaches back (``faults.compact``, a short ``watch_history``,
``mark_seeded``), server-side closes (``drop_watches``, ``stop``), bookmarks on demand.

A test that changes things while a watch is open first waits for the watch's first event (an
initial ADDED), or starts the watch from a listed resourceVersion: either way no event can be
missed, with no stand-in hook to tell when the stream is open.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.rest import ApiException

from sandbox.apiserver import ApiServer
from tests.integration.apiserver.objects import ISVC, isvc
from tests.integration.apiserver.tiers import CONTROLLER_MADE, Tier


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    s = ApiServer(watch_history=50)
    await s.start()
    yield s
    await s.stop()


class Events:
    """A configmap watch in ``namespace`` on a task; ``next()`` awaits its next (type, name)."""

    def __init__(self, api: client.ApiClient, namespace: str, **kwargs: Any) -> None:
        self.queue: asyncio.Queue[tuple[str, str] | BaseException] = asyncio.Queue()
        self._task = asyncio.create_task(self._run(api, namespace, kwargs))

    async def _run(self, api: client.ApiClient, namespace: str, kwargs: dict[str, Any]) -> None:
        core = client.CoreV1Api(api)
        try:
            async with watch.Watch() as w:
                async for ev in w.stream(core.list_namespaced_config_map, namespace, timeout_seconds=30,
                                         **kwargs):
                    if ev["object"].metadata.name not in CONTROLLER_MADE:
                        self.queue.put_nowait((ev["type"], ev["object"].metadata.name))
        except ApiException as exc:
            self.queue.put_nowait(exc)

    async def next(self) -> tuple[str, str]:
        item = await asyncio.wait_for(self.queue.get(), 30)
        if isinstance(item, BaseException):
            raise item
        return item

    async def take(self, n: int) -> list[tuple[str, str]]:
        return [await self.next() for _ in range(n)]

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def collect(api: client.ApiClient, n: int, namespace: str = "default",
                  **kwargs: Any) -> list[tuple[str, str]]:
    """The first ``n`` (type, name) events of a configmap watch in ``namespace``."""
    events = Events(api, namespace, **kwargs)
    try:
        return await events.take(n)
    finally:
        await events.close()


async def test_watch_from_scratch_sends_existing_then_changes(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    ns = tier.ns
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
    events = Events(tier.api, ns)
    try:
        assert await events.next() == ("ADDED", "a")  # the watch is open: nothing can be missed now
        await core.create_namespaced_config_map(ns, {"metadata": {"name": "b"}})
        await core.patch_namespaced_config_map("a", ns, {"data": {"x": "1"}})
        await core.delete_namespaced_config_map("b", ns)
        assert await events.take(3) == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    finally:
        await events.close()


async def test_watch_resumes_from_resource_version(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    ns = tier.ns
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "a"}})
    rv = (await core.list_namespaced_config_map(ns)).metadata.resource_version
    # Changes while nobody watches, then resume: exactly the missed events, no initial ADDED.
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "b"}})
    await core.patch_namespaced_config_map("a", ns, {"data": {"x": "1"}})
    assert await collect(tier.api, 2, ns, resource_version=rv) == [("ADDED", "b"), ("MODIFIED", "a")]


# Stand-in only from here to test_timeout_seconds_ends_the_stream: a real server's history is
# etcd's, compacted on its own schedule; the stand-in compacts on demand (faults.compact), keeps
# a short history (watch_history=50) and starts it where the seed ends (mark_seeded).


async def test_watch_resume_after_compaction_is_410(server: ApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    rv = (await core.list_namespaced_config_map("default")).metadata.resource_version
    await core.patch_namespaced_config_map("a", "default", {"data": {"x": "1"}})
    server.faults.compact()
    with pytest.raises(ApiException) as e:
        await collect(api, 1, resource_version=rv)
    assert e.value.status == 410 and "Expired" in str(e.value.reason)
    # The raw wire shape: HTTP 200, one ERROR event carrying a 410 Expired Status, then end.
    async with aiohttp.ClientSession() as http:
        url = f"{server.url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"
        async with http.get(url) as r:
            assert r.status == 200
            lines = (await r.read()).decode().splitlines()
    assert len(lines) == 1
    ev = json.loads(lines[0])
    assert ev["type"] == "ERROR" and ev["object"]["code"] == 410 and ev["object"]["reason"] == "Expired"
    assert ev["object"]["message"].startswith("too old resource version")


async def test_history_is_bounded_per_resource(server: ApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    rv = (await core.list_namespaced_config_map("default")).metadata.resource_version
    for i in range(60):  # the fixture keeps 50 events per resource
        await core.patch_namespaced_config_map("a", "default", {"data": {"i": str(i)}})
    with pytest.raises(ApiException) as e:
        await collect(api, 1, resource_version=rv)
    assert e.value.status == 410
    # A recent resourceVersion still resumes.
    recent = (await core.read_namespaced_config_map("a", "default")).metadata.resource_version
    task = asyncio.create_task(collect(api, 1, resource_version=recent))
    await asyncio.wait_for(server.wait_for_watches(), 30)
    await core.patch_namespaced_config_map("a", "default", {"data": {"i": "last"}})
    assert await task == [("MODIFIED", "a")]


async def test_mark_seeded_starts_the_window(server: ApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map("default", {"metadata": {"name": "seed"}})
    before = (await core.list_namespaced_config_map("default")).metadata.resource_version
    server.mark_seeded()
    with pytest.raises(ApiException) as e:
        await collect(api, 1, resource_version=str(int(before) - 1))
    assert e.value.status == 410
    task = asyncio.create_task(collect(api, 1, resource_version=before))
    await asyncio.wait_for(server.wait_for_watches(), 30)
    await core.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
    assert await task == [("ADDED", "after")]


async def test_timeout_seconds_ends_the_stream(tier: Tier) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with tier.http.get(f"/api/v1/namespaces/{tier.ns}/configmaps?watch=True&timeoutSeconds=1") as r:
        assert r.status == 200
        body = await asyncio.wait_for(r.read(), 30)
    # Nothing but what a controller put there meanwhile (a real cluster's kube-root-ca.crt).
    assert all(json.loads(line)["object"]["metadata"]["name"] in CONTROLLER_MADE
               for line in body.splitlines())
    assert loop.time() - started >= 0.9  # the server held the stream open until the timeout


async def test_watch_selectors_turn_moves_into_added_and_deleted(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    ns = tier.ns
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "a", "labels": {"app": "x"}}})
    events = Events(tier.api, ns, label_selector="app=x")
    try:
        assert await events.next() == ("ADDED", "a")
        await core.create_namespaced_config_map(ns, {"metadata": {"name": "b", "labels": {"app": "y"}}})
        await core.patch_namespaced_config_map("a", ns, {"metadata": {"labels": {"app": "y"}}})
        await core.patch_namespaced_config_map("b", ns, {"metadata": {"labels": {"app": "x"}}})
        assert await events.take(2) == [("DELETED", "a"), ("ADDED", "b")]
    finally:
        await events.close()


async def test_custom_object_watch_all_namespaces(tier: Tier) -> None:
    co = client.CustomObjectsApi(tier.api)
    n1 = await tier.namespace("n1")
    mine = {n1, tier.ns}
    # From a listed resourceVersion: every later change arrives, whenever the stream opens.
    rv = (await co.list_cluster_custom_object(*ISVC))["metadata"]["resourceVersion"]
    for ns in (n1, tier.ns):
        await co.create_namespaced_custom_object(*ISVC[:2], ns, ISVC[2], isvc("m"))
    names: list[tuple[str, str, str]] = []
    async with watch.Watch() as w:
        async for ev in w.stream(co.list_cluster_custom_object, *ISVC, resource_version=rv,
                                 timeout_seconds=30):
            obj = ev["object"]
            if obj["metadata"]["namespace"] in mine:  # the shared real server has other tests'
                names.append((ev["type"], obj["metadata"]["namespace"], obj["metadata"]["name"]))
            if len(names) == 2:
                break
    assert names == [("ADDED", n1, "m"), ("ADDED", tier.ns, "m")]


async def test_list_from_a_resource_version_the_server_never_had(tier: Tier) -> None:
    """A list "not older than" a resourceVersion beyond the server's history: the watch cache
    waits for it to catch up (3 s there; 0.1 s on the stand-in, told so), then 504 Timeout with
    the cause ResourceVersionTooLarge (the client's history is another one: an etcd restore)."""
    if tier.server is not None:
        tier.server.watches.fresh_wait = 0.1
    core = client.CoreV1Api(tier.api)
    current = int((await core.list_namespaced_config_map(tier.ns)).metadata.resource_version)
    too_new = current + 100000
    status, _, body = await tier.request(
        "GET", f"/api/v1/namespaces/{tier.ns}/configmaps?resourceVersion={too_new}")
    assert status == 504 and body["reason"] == "Timeout" and body["code"] == 504
    m = re.fullmatch(rf"Timeout: Too large resource version: {too_new}, current: (\d+)", body["message"])
    assert m is not None and int(m.group(1)) >= current, body["message"]
    assert body["details"]["causes"] == [
        {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]
    assert body["details"]["retryAfterSeconds"] == 1


async def test_watch_from_a_resource_version_the_server_never_had_hears_nothing(tier: Tier) -> None:
    """The same resourceVersion to a *watch*: not refused, no 504 (kube-apiserver 1.36 serves it
    from its watch cache); the stream stays open and drops everything up to that number,
    bookmarks included, until it times out. A client cannot learn from the watch that its
    history is gone; the informer asks with a list (test_daemon_faults)."""
    core = client.CoreV1Api(tier.api)
    current = int((await core.list_namespaced_config_map(tier.ns)).metadata.resource_version)
    too_new = current + 100000
    query = f"watch=true&allowWatchBookmarks=true&timeoutSeconds=2&resourceVersion={too_new}"
    async with tier.http.get(f"/api/v1/namespaces/{tier.ns}/configmaps?{query}") as r:
        assert r.status == 200
        await core.create_namespaced_config_map(tier.ns, {"metadata": {"name": "below-the-watch"}})
        assert await asyncio.wait_for(r.read(), 30) == b""


# Stand-in only: its hooks close streams from the server side (drop_watches, stop), make it send
# bookmarks at once (a real server sends one about every minute), and wait for an exact
# resourceVersion no other writer takes (the shared real server has kube-controller-manager).


async def test_drop_watches_ends_open_streams(server: ApiServer) -> None:
    url = f"{server.url}/api/v1/namespaces/default/configmaps?watch=true"
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        assert r.status == 200
        await asyncio.wait_for(server.wait_for_watches(), 30)
        await server.faults.drop_watches()
        assert await asyncio.wait_for(r.read(), 30) == b""
    assert server.open_watches == 0


async def test_stop_closes_open_watches_quickly() -> None:
    s = ApiServer()
    await s.start()
    async with aiohttp.ClientSession() as http, http.get(f"{s.url}/api/v1/configmaps?watch=true") as r:
        await asyncio.wait_for(s.wait_for_watches(), 30)
        # stop() ends the stream itself instead of waiting out its 30-minute default timeout.
        await asyncio.wait_for(s.stop(), 30)
        assert await asyncio.wait_for(r.read(), 30) == b""


async def test_bookmarks_when_asked(server: ApiServer) -> None:
    server.watches.bookmark_interval = 0.0
    async with aiohttp.ClientSession() as http:
        query = "watch=true&allowWatchBookmarks=true&timeoutSeconds=30"
        url = f"{server.url}/api/v1/namespaces/default/configmaps?{query}"
        async with http.get(url) as r:
            line = await asyncio.wait_for(r.content.readline(), 30)
    ev = json.loads(line)
    assert (
        ev["type"] == "BOOKMARK" and int(ev["object"]["metadata"]["resourceVersion"]) == server.store.revision
    )


async def test_watch_from_a_future_resource_version_is_served_once_the_store_reaches_it(
    server: ApiServer, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    task = asyncio.create_task(collect(api, 1, resource_version=str(server.store.revision + 1)))
    # The first write reaches the resourceVersion the watch starts *after*; the second is its first event.
    await core.create_namespaced_config_map("default", {"metadata": {"name": "reached"}})
    await core.create_namespaced_config_map("default", {"metadata": {"name": "late"}})
    assert await asyncio.wait_for(task, 30) == [("ADDED", "late")]
