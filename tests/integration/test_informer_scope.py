"""The informer's scope, applied by the API server (issue 11 item 1, issue 13 item 9).

Over real sockets, on both tiers (``tier``: the stand-in and the real kube-apiserver): with no
namespace list every InferenceService is read, including one in a namespace created after the
caches synced (no restart); the label selector is sent to the server; Secrets are listed only in
the opted-in namespaces, never cluster-wide; a selector the server refuses is an error, not a
retry loop. A list the server asks to repeat is retried within the budget: stand-in only (the
429/503 are injected by its fault hooks). The per-namespace and per-kind stream plan itself is
table-tested in tests/unit/test_informer_streams.py.

The real server is shared by the session: cluster-wide reads may see other tests' objects, so
the assertions name this test's own namespaces.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from daemon.core.errors import InvalidError, KubeError
from daemon.core.logs import Redactor
from daemon.core.resources import Resource
from daemon.kube.effects import Kube, ListResult
from daemon.kube.informer import Informer, run_until_synced
from sandbox.apiserver import ApiServer
from tests.integration.apiserver.tiers import Tier, tier
from tests.integration.daemon_fixtures import eventually, kube_for, stop_task
from tests.integration.informer_fixtures import server, writer_for

__all__ = ["server", "tier"]  # the fixtures, imported

KINDS = (("v1", "Namespace"), ("v1", "Secret"), ("serving.kserve.io/v1beta1", "InferenceService"))


class RecordingKube(Kube):
    """The real client; each list's (plural, namespace, labelSelector) is remembered."""

    lists: list[tuple[str, str | None, str | None]]

    async def list_objects(self, res: Resource, *, namespace: str | None = None,
                           label_selector: str | None = None,
                           field_selector: str | None = None) -> ListResult:
        self.lists.append((res.plural, namespace, label_selector))
        return await super().list_objects(res, namespace=namespace, label_selector=label_selector,
                                          field_selector=field_selector)


def isvc(ns: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                             "storageUri": "s3://models/x"}}}}


def secret(ns: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "data": {"k": "dmFsdWU="}}


async def namespace(k: Kube, name: str) -> None:
    await k.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, dry_run=False)


@contextlib.asynccontextmanager
async def recording(tier: Tier) -> AsyncIterator[RecordingKube]:
    api = tier.new_client()
    try:
        kube = RecordingKube(api, redactor=Redactor())
        kube.lists = []
        yield kube
    finally:
        await api.close()


async def teams(tier: Tier) -> tuple[Kube, str, str]:
    writer = Kube(tier.api, redactor=Redactor(), field_manager="tester")
    return writer, await tier.namespace("team-a"), await tier.namespace("team-b")


async def test_every_namespace_new_ones_too_and_secrets_only_where_opted_in(tier: Tier) -> None:
    writer, team_a, team_b = await teams(tier)
    await writer.apply(isvc(team_a, "one"), dry_run=False)
    for ns in (team_a, team_b):
        await writer.apply(secret(ns, "creds"), dry_run=False)
    async with recording(tier) as kube:
        inf = Informer(kube, kinds=KINDS, namespaces=None, secret_namespaces={team_a},
                       watch_timeout_seconds=30)
        task = await run_until_synced(inf)
        try:
            assert inf.get("InferenceService", team_a, "one") is not None
            # Secrets: one list in the opted-in namespace, none cluster-wide, none elsewhere.
            assert [(p, ns) for p, ns, _ in kube.lists if p == "secrets"] == [("secrets", team_a)]
            assert inf.get("Secret", team_a, "creds") is not None
            assert inf.get("Secret", team_b, "creds") is None
            # InferenceServices: one cluster-wide list.
            assert [(p, ns) for p, ns, _ in kube.lists if p == "inferenceservices"] == \
                [("inferenceservices", None)]
            # A namespace and an InferenceService that appear later arrive on the watches.
            team_new = await tier.namespace("team-new")
            await writer.apply(isvc(team_new, "late"), dry_run=False)
            await eventually(lambda: inf.get("InferenceService", team_new, "late") is not None,
                             what="InferenceService in a new namespace")
            assert inf.get("Namespace", None, team_new) is not None
            await writer.apply(secret(team_new, "creds"), dry_run=False)
            await writer.apply(secret(team_a, "marker"), dry_run=False)
            await eventually(lambda: inf.get("Secret", team_a, "marker") is not None, what="marker")
            assert inf.get("Secret", team_new, "creds") is None
            assert inf.stats.relists == 0 and len(kube.lists) == len(inf.streams)
        finally:
            await stop_task(task)


async def test_namespace_list_reads_per_namespace_with_the_label_selector(tier: Tier) -> None:
    writer, team_a, team_b = await teams(tier)
    await writer.apply(isvc(team_a, "mine", {"team": "a"}), dry_run=False)
    await writer.apply(isvc(team_a, "theirs", {"team": "b"}), dry_run=False)
    await writer.apply(isvc(team_b, "outside", {"team": "a"}), dry_run=False)
    async with recording(tier) as kube:
        inf = Informer(kube, kinds=KINDS, namespaces={team_a}, secret_namespaces=(),
                       selector="team=a", watch_timeout_seconds=30)
        task = await run_until_synced(inf)
        try:
            assert [(p, ns, sel) for p, ns, sel in kube.lists if p != "namespaces"] == \
                [("inferenceservices", team_a, "team=a")]
            assert [o["metadata"]["name"] for o in inf.list_kind("InferenceService")] == ["mine"]
            await writer.apply(isvc(team_a, "new", {"team": "a"}), dry_run=False)
            await writer.apply(isvc(team_a, "new-other", {"team": "b"}), dry_run=False)
            await eventually(lambda: inf.get("InferenceService", team_a, "new") is not None,
                             what="new InferenceService matching the selector")
            assert inf.get("InferenceService", team_a, "new-other") is None
            assert inf.list_kind("Secret") == []
        finally:
            await stop_task(task)


async def test_a_selector_the_server_refuses_is_an_error_not_a_retry_loop(tier: Tier) -> None:
    async with recording(tier) as kube:
        inf = Informer(kube, kinds=KINDS, namespaces=None, secret_namespaces=(), selector="team in (a",
                       watch_timeout_seconds=30)
        with pytest.raises(InvalidError):
            await inf.sync_once()
        with pytest.raises(InvalidError):
            await run_until_synced(inf)


# Stand-in only: the 429 and 503 are injected by its fault hooks (sandbox/apiserver/faults.py).


@pytest.fixture
async def writer(server: ApiServer) -> AsyncIterator[Kube]:
    async with writer_for(server, "team-a", "team-b") as k:
        yield k


async def test_a_list_the_server_asks_to_repeat_is_retried_within_the_budget(
        server: ApiServer, writer: Kube) -> None:
    # A real kube-apiserver answers 429 "storage is (re)initializing" for a CRD created a moment
    # ago, and 429/5xx under priority-and-fairness pressure: `check` must retry, not exit 2.
    await namespace(writer, "team-a")
    await writer.apply(isvc("team-a", "m"), dry_run=False)
    server.faults.fail_next(1, status=429, retry_after=0.05, verb="list", resource="inferenceservices")
    server.faults.fail_next(1, status=503, verb="list", resource="inferenceservices")
    async with kube_for(server.url) as kube:
        inf = Informer(kube, kinds=KINDS, namespaces=None, secret_namespaces=(), watch_timeout_seconds=30)
        await inf.sync_once(retry_seconds=10.0)
        assert inf.get("InferenceService", "team-a", "m") is not None
        # Past the budget the error is raised, not retried for ever.
        server.faults.fail_next(50, status=503, verb="list", resource="inferenceservices")
        with pytest.raises(KubeError):
            await inf.sync_once(retry_seconds=0.0)
