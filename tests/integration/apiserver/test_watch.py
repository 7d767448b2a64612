"""Watches through kubernetes_asyncio's ``Watch``: initial ADDED, resume from a
resourceVersion, 410 Expired once the history no longer reaches back, timeoutSeconds, selector
moves, server-side closes (``drop_watches``, ``stop``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.rest import ApiException

from sandbox.apiserver import ApiServer


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    s = ApiServer(watch_history=50)
    await s.start()
    yield s
    await s.stop()


async def collect(api: client.ApiClient, n: int, **kwargs: Any) -> list[tuple[str, str]]:
    """The first ``n`` (type, name) events of a configmap watch in ``default``."""
    core = client.CoreV1Api(api)
    out: list[tuple[str, str]] = []
    w = watch.Watch()
    async with w:
        async for ev in w.stream(core.list_namespaced_config_map, "default", timeout_seconds=30, **kwargs):
            out.append((ev["type"], ev["object"].metadata.name))
            if len(out) == n:
                break
    return out


async def test_watch_from_scratch_sends_existing_then_changes(
    server: ApiServer, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    task = asyncio.create_task(collect(api, 4))
    await asyncio.wait_for(server.wait_for_watches(), 30)
    await core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    await core.patch_namespaced_config_map("a", "default", {"data": {"x": "1"}})
    await core.delete_namespaced_config_map("b", "default")
    assert await task == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]


async def test_watch_resumes_from_resource_version(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    rv = (await core.list_namespaced_config_map("default")).metadata.resource_version
    # Changes while nobody watches, then resume: exactly the missed events, no initial ADDED.
    await core.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    await core.patch_namespaced_config_map("a", "default", {"data": {"x": "1"}})
    assert await collect(api, 2, resource_version=rv) == [("ADDED", "b"), ("MODIFIED", "a")]


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


async def test_timeout_seconds_ends_the_stream(server: ApiServer) -> None:
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        started = loop.time()
        async with http.get(
            f"{server.url}/api/v1/namespaces/default/configmaps?watch=True&timeoutSeconds=1"
        ) as r:
            assert r.status == 200
            assert await asyncio.wait_for(r.read(), 30) == b""
        assert loop.time() - started >= 0.9  # the server held the stream open until the timeout


async def test_watch_selectors_turn_moves_into_added_and_deleted(
    server: ApiServer, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map("default", {"metadata": {"name": "a", "labels": {"app": "x"}}})
    task = asyncio.create_task(collect(api, 3, label_selector="app=x"))
    await asyncio.wait_for(server.wait_for_watches(), 30)
    await core.create_namespaced_config_map("default", {"metadata": {"name": "b", "labels": {"app": "y"}}})
    await core.patch_namespaced_config_map("a", "default", {"metadata": {"labels": {"app": "y"}}})
    await core.patch_namespaced_config_map("b", "default", {"metadata": {"labels": {"app": "x"}}})
    assert await task == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "b")]


async def test_custom_object_watch_all_namespaces(server: ApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    co = client.CustomObjectsApi(api)
    await core.create_namespace({"metadata": {"name": "n1"}})
    names: list[tuple[str, str, str]] = []

    async def run() -> None:
        w = watch.Watch()
        async with w:
            async for ev in w.stream(
                co.list_cluster_custom_object,
                "serving.kserve.io",
                "v1beta1",
                "inferenceservices",
                timeout_seconds=30,
            ):
                obj = ev["object"]
                names.append((ev["type"], obj["metadata"]["namespace"], obj["metadata"]["name"]))
                if len(names) == 2:
                    return

    task = asyncio.create_task(run())
    await asyncio.wait_for(server.wait_for_watches(), 30)
    for ns in ("n1", "default"):
        await co.create_namespaced_custom_object(
            "serving.kserve.io",
            "v1beta1",
            ns,
            "inferenceservices",
            {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "metadata": {"name": "m"},
                "spec": {},
            },
        )
    await task
    assert names == [("ADDED", "n1", "m"), ("ADDED", "default", "m")]


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


async def test_watch_from_a_resource_version_the_server_never_had(server: ApiServer) -> None:
    """The real watch cache: wait for the cache to catch up, then 504 Timeout with the cause
    ResourceVersionTooLarge (the client's history is another one: an etcd restore, a wiped API)."""
    server.watches.fresh_wait = 0.1
    too_new = server.store.revision + 1000
    async with aiohttp.ClientSession() as s, s.get(
        f"{server.url}/api/v1/namespaces/default/configmaps",
        params={"watch": "true", "resourceVersion": str(too_new)},
    ) as r:
        assert r.status == 504
        assert r.headers["Retry-After"] == "1"
        body = await r.json()
    assert body["reason"] == "Timeout" and body["code"] == 504
    assert body["message"] == f"Too large resource version: {too_new}, current: {server.store.revision}"
    cause = {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
    assert body["details"]["causes"] == [cause]


async def test_watch_from_a_future_resource_version_is_served_once_the_store_reaches_it(
    server: ApiServer, api: client.ApiClient
) -> None:
    core = client.CoreV1Api(api)
    server.watches.fresh_wait = 30.0
    task = asyncio.create_task(collect(api, 1, resource_version=str(server.store.revision + 1)))
    # The first write reaches the resourceVersion the watch starts *after*; the second is its first event.
    await core.create_namespaced_config_map("default", {"metadata": {"name": "reached"}})
    await core.create_namespaced_config_map("default", {"metadata": {"name": "late"}})
    assert await asyncio.wait_for(task, 30) == [("ADDED", "late")]
