"""Kinds the cluster does not serve or RBAC does not grant, a server that is not Kubernetes, and
the watches' return after an outage (issue 23 items 1, 5 and 10) — over real sockets.

Item 1 was a production breaker: a kind answered 404 never counted as heard from, so on any
cluster without Istio's PeerAuthentication CRD (and on the stand-in, which serves none) ``/readyz``
went 503 for good 60 s after start, with a pair of "watch failed 404" warnings every 30 s. The
stand-in serves no PeerAuthentication, and a CRD created or deleted on it starts or stops its
kind being served, as on a real cluster; the 403 and the outage need its fault hooks and a
restart on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
import structlog

from daemon.core.errors import NotKubernetesError
from daemon.core.logs import Redactor
from daemon.core.world import FORBIDDEN, NOT_SERVED
from daemon.kube.effects import Kube
from daemon.kube.informer import Informer, run_until_synced
from daemon.process.server import HealthState
from sandbox.apiserver import ApiServer
from tests.conftest import ROOT, free_port
from tests.integration.apiserver.objects import PEER_AUTHENTICATION_CRD
from tests.integration.daemon_fixtures import api_client, eventually, kube_for, stop_task
from tests.integration.informer_fixtures import server, writer_for

__all__ = ["server"]  # the fixture, imported

NS = "discovery-ns"
KINDS = [("v1", "ConfigMap"), ("security.istio.io/v1", "PeerAuthentication")]



def said(logs: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    return [e for e in logs if text in str(e.get("event"))]


class CountingKube(Kube):
    """The real client; counts its discovery rounds."""

    discoveries = 0

    async def served(self, group_versions: Iterable[str]) -> dict[str, frozenset[str]]:
        self.discoveries += 1
        return await super().served(group_versions)


@contextlib.asynccontextmanager
async def informing(server: ApiServer, **kwargs: Any) -> AsyncIterator[tuple[Informer, CountingKube]]:
    async with api_client(server.url) as api:
        kube = CountingKube(api, redactor=Redactor())
        inf = Informer(kube, kinds=KINDS, namespaces={NS}, **kwargs)
        task = await run_until_synced(inf)
        try:
            yield inf, kube
        finally:
            await stop_task(task)


async def test_a_kind_not_served_is_said_once_never_listed_and_never_stale(server: ApiServer) -> None:
    """The breaker: readiness must not depend on a kind the cluster cannot have."""
    async with writer_for(server, NS):
        pass
    with structlog.testing.capture_logs() as logs:
        async with informing(server, rediscover_seconds=0.02) as (inf, kube):
            health = HealthState(clock=time.time)
            health.watch_caches(lambda: inf.stale(0.0))
            health.set_synced(True)
            health.set_config_valid(True)
            await eventually(lambda: inf.watching, what="the ConfigMap watch")
            # Several rediscovery rounds: each one discovery request, no list, no warning.
            await eventually(lambda: kube.discoveries >= 6, what="five rediscoveries")
            assert inf.unobserved() == {"PeerAuthentication": NOT_SERVED}
            assert inf.stale(0.0) == [], "a kind not served is never stale"
            assert health.readiness().ok, health.readiness().body
            assert inf.world().unobserved == {"PeerAuthentication": NOT_SERVED}
    assert server.stats.count("list", "peerauthentications") == 0
    assert server.stats.count("watch", "peerauthentications") == 0
    assert len(said(logs, "not served")) == 1, said(logs, "not served")
    assert [e for e in logs if e.get("log_level") == "warning"] == []


async def test_a_crd_installed_later_is_watched_and_one_deleted_becomes_not_served(
        server: ApiServer) -> None:
    async with writer_for(server, NS) as writer, informing(server, rediscover_seconds=0.05) as (inf, _):
        assert inf.unobserved() == {"PeerAuthentication": NOT_SERVED}
        await writer.custom.create_cluster_custom_object(
            "apiextensions.k8s.io", "v1", "customresourcedefinitions", PEER_AUTHENTICATION_CRD)
        await eventually(lambda: inf.unobserved() == {} and inf.watching, what="the new kind watched")
        await writer.custom.create_namespaced_custom_object(
            "security.istio.io", "v1", NS, "peerauthentications",
            {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
             "metadata": {"name": "strict", "namespace": NS}, "spec": {"mtls": {"mode": "STRICT"}}})
        await eventually(lambda: inf.get("PeerAuthentication", NS, "strict") is not None,
                         what="the object created after the CRD")
        await writer.custom.delete_cluster_custom_object(
            "apiextensions.k8s.io", "v1", "customresourcedefinitions",
            "peerauthentications.security.istio.io")
        await eventually(lambda: inf.unobserved() == {"PeerAuthentication": NOT_SERVED},
                         what="the deleted kind not served")
        assert inf.get("PeerAuthentication", NS, "strict") is None
        assert inf.stale(0.0) == []


async def test_a_forbidden_kind_is_not_checked_then_read_once_allowed(server: ApiServer) -> None:
    async with writer_for(server, NS):
        pass
    server.faults.fail_next(1, status=403, verb="list", resource="configmaps")
    with structlog.testing.capture_logs() as logs:
        async with informing(server, rediscover_seconds=0.05) as (inf, _):
            assert inf.unobserved() == {"ConfigMap": f"{FORBIDDEN} in {NS}",
                                        "PeerAuthentication": NOT_SERVED}
            assert inf.stale(0.0) == []
            await eventually(lambda: "ConfigMap" not in inf.unobserved() and inf.watching,
                             what="the ConfigMap read once the 403 is gone")
    assert len(said(logs, "forbidden")) == 1
    assert len(said(logs, "observed now")) == 1


async def test_check_of_a_kind_forbidden_leaves_it_unobserved_but_inferenceservices_are_required(
        server: ApiServer) -> None:
    async with writer_for(server, NS), kube_for(server.url) as kube:
        server.faults.fail_next(1, status=403, verb="list", resource="configmaps")
        inf = Informer(kube, kinds=KINDS, namespaces={NS})
        await inf.sync_once()
        assert inf.unobserved() == {"ConfigMap": f"{FORBIDDEN} in {NS}", "PeerAuthentication": NOT_SERVED}
        server.faults.fail_next(1, status=403, verb="list", resource="inferenceservices")
        inf = Informer(kube, kinds=[("serving.kserve.io/v1beta1", "InferenceService")], namespaces={NS})
        with pytest.raises(Exception, match="403"):
            await inf.sync_once()


class MaxJitter(random.Random):
    """Every back-off at the top of its jitter range: the delays are known exactly."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def test_watches_return_within_a_probe_period_of_the_api_not_their_back_off() -> None:
    """Item 10: after a long outage the back-off had grown; the API answering again ends it.

    With every delay at its maximum, the eighth failure waits 6.4 s; the watch must be back long
    before that once the API returns (a 0.05 s outage probe). Before the fix it waited it out."""
    port = free_port()
    first = ApiServer(port=port)
    await first.start()
    second: ApiServer | None = None
    try:
        async with kube_for(first.url) as kube:
            inf = Informer(kube, kinds=[("v1", "Namespace")], rng=MaxJitter(),
                           outage_probe_seconds=0.05)
            task = await run_until_synced(inf)
            try:
                await eventually(lambda: inf.watching, what="the watch")
                await first.stop()
                await eventually(lambda: inf.stats.errors >= 8, timeout=30, what="eight failed attempts")
                second = ApiServer(port=port)
                await second.start()
                async with asyncio.timeout(3.0):  # the pending back-off is 6.4 s
                    await eventually(lambda: inf.watching, timeout=3.0, what="the watch back")
            finally:
                await stop_task(task)
    finally:
        if second is not None:
            await second.stop()


async def test_a_server_that_is_not_kubernetes_is_refused_not_read_as_an_empty_cluster(
        tmp_path: Path) -> None:
    """Item 5: ``python3 -m http.server`` answers 404 to every API path."""
    port = free_port()
    web = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port), cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        async with kube_for(url) as kube:
            await eventually(lambda: _answers(port), what="http.server listening")
            with pytest.raises(NotKubernetesError, match="not a Kubernetes API server"):
                await Informer(kube).sync_once()
            assert isinstance(kube, Kube)
        cfg = tmp_path / "kubeconfig"
        cfg.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            f"clusters: [{{name: c, cluster: {{server: '{url}'}}}}]\n"
            "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n")
        for cmd in (["check"], ["run", "--once"]):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "daemon", *cmd, "--kubeconfig", str(cfg), cwd=ROOT,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await proc.communicate()
            assert proc.returncode == 2, (cmd, out, err)
            assert b"CRITICAL" not in out and b"no-serving-runtime" not in out
            problem = [ln for ln in err.decode().splitlines() if ln.startswith("kserve-warden")]
            assert problem == [f"kserve-warden {cmd[0]}: cannot read the cluster: {url} is not a Kubernetes "
                               f"API server (GET /api/ answered HTTP 404)"], err.decode()
    finally:
        web.terminate()
        await web.wait()


async def _answers(port: int) -> bool:
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    w.close()
    await w.wait_closed()
    return True
