"""One fixture for the wire-level API tests on both control planes: the stand-in and the real one.

:func:`tier_for` yields a :class:`Tier` — an admin :class:`~kubernetes_asyncio.client.ApiClient`,
an authenticated aiohttp session for raw requests, a kubeconfig (for kubectl) and a namespace of
the test's own — on either

* ``embedded``: a fresh :class:`sandbox.apiserver.ApiServer` on a free loopback port, or
* ``real``: the session's real control plane (:func:`tests.integration.control_planes.
  session_control_plane`: etcd + kube-apiserver + kube-controller-manager, with the project's
  CRDs installed by :func:`sandbox.realcp.install_crds`; possibly KServe's own CRDs too, which the
  tests do not depend on).

The real server is shared by the whole session, so a test touches only what is its own: the
namespace :attr:`Tier.ns` (unique per test), further namespaces from :meth:`Tier.namespace`, and
cluster-scoped objects it registers with :meth:`Tier.cleanup`. All of them are deleted at
teardown (namespaces in the background: the real namespace controller empties them; no later test
depends on their absence, and :func:`sandbox.realcp.reset` waits for them before a Sandbox starts).

The same assertions hold on both tiers: where the stand-in answered differently from the real
kube-apiserver the stand-in was changed (the list is in ``sandbox/apiserver/__init__.py``).
Tests that need the stand-in's fault hooks (:mod:`sandbox.apiserver.faults`) do not use this
fixture; they say why next to the test.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from sandbox.apiserver import ApiServer
from sandbox.kubeconfig import write_kubeconfig as write_standin_kubeconfig
from sandbox.realcp import NODE_NAME, ControlPlane, admin_client, install_crds, register_node
from sandbox.realcp.controlplane import write_kubeconfig as write_real_kubeconfig
from sandbox.realcp.kserve import KServe, remove_webhooks
from sandbox.realcp.nodelogs import NodeLogs
from tests.conftest import find_tool
from tests.integration.control_planes import CONTROL_PLANES

__all__ = ["CONTROLLER_MADE", "NODE_NAME", "Tier", "own", "tier", "tier_for"]

_COUNTER = itertools.count(1)
T = TypeVar("T")
_CRDS_INSTALLED: set[str] = set()


@dataclass(kw_only=True)
class Tier:
    """What a test needs of one control plane (see the module docstring)."""

    name: str  # "embedded" or "real"
    api: client.ApiClient
    http: aiohttp.ClientSession  # base URL set; auth and TLS as kubectl would use them
    url: str
    ns: str
    kubeconfig: Path
    kubectl: str
    server: ApiServer | None = None  # the stand-in (None on the real tier)
    cp: ControlPlane | None = None
    _namespaces: list[str] = field(default_factory=list)
    _cluster_paths: list[str] = field(default_factory=list)
    _nodelogs: NodeLogs | None = None
    _stack: contextlib.AsyncExitStack | None = None

    @property
    def real(self) -> bool:
        return self.name == "real"

    async def namespace(self, suffix: str, labels: dict[str, str] | None = None) -> str:
        """Create one more namespace of this test's own; its name is ``<ns>-<suffix>``."""
        name = f"{self.ns}-{suffix}"[:63].rstrip("-")
        body: Any = {"metadata": {"name": name, "labels": labels or {}}}
        await client.CoreV1Api(self.api).create_namespace(body)
        self._namespaces.append(name)
        return name

    def new_client(self) -> client.ApiClient:
        """Another admin client of the same server (its own connections); the caller closes it."""
        if self.cp is not None:
            return admin_client(self.cp)
        return client.ApiClient(client.Configuration(host=self.url))

    def adopt(self, namespace: str) -> None:
        """A namespace the test created some other way (kubectl): deleted at teardown too."""
        self._namespaces.append(namespace)

    async def set_pod_log(self, namespace: str, pod: str, container: str, text: str) -> None:
        """Give a container of ``pod`` (bound to :data:`NODE_NAME`) a log, as a kubelet would:
        on the stand-in through its sandbox-only hook; on the real server the log is served by
        the simulated node's kubelet endpoint (:class:`sandbox.realcp.nodelogs.NodeLogs`), which
        the apiserver proxies ``pods/log`` to."""
        if self.server is not None:
            self.server.set_pod_log(namespace, pod, container, text)
            return
        assert self.cp is not None and self._stack is not None
        if self._nodelogs is None:
            nodelogs = NodeLogs(cert=self.cp.pki / "kubelet.crt", key=self.cp.pki / "kubelet.key")
            await nodelogs.start()
            self._stack.push_async_callback(nodelogs.stop)
            await register_node(self.api, port=nodelogs.https_port)
            self._nodelogs = nodelogs
        self._nodelogs.logs[(namespace, pod, container)] = text

    def unique(self, base: str) -> str:
        """A name for a cluster-scoped object of this test (unique across the session)."""
        return f"{base}-{self.ns}"[:63].rstrip("-")

    def cleanup(self, path: str) -> None:
        """Delete the cluster-scoped object at ``path`` at teardown (404 is fine)."""
        self._cluster_paths.append(path)

    async def request(self, method: str, path: str, *, data: Any = None,
                      headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
        """One raw request: (status, content type, parsed JSON body or the text)."""
        async with self.http.request(method, path, data=data, headers=headers or {}) as r:
            text = await r.text()
            body: Any = text
            if r.content_type == "application/json" and text:
                import json

                body = json.loads(text)
            return r.status, r.content_type, body


def _slug(test_name: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")
    return s.removeprefix("test-")[:40].rstrip("-")


@contextlib.asynccontextmanager
async def tier_for(name: str, *, test_name: str, tmp_path: Path, cp: ControlPlane | None = None,
                   watch_history: int = 1000) -> AsyncIterator[Tier]:
    """A :class:`Tier` on ``name`` (``real`` needs the session's ``cp``)."""
    ns = f"t{next(_COUNTER)}-{_slug(test_name)}".rstrip("-")
    kubeconfig = tmp_path / "kubeconfig"
    async with contextlib.AsyncExitStack() as stack:
        if name == "real":
            assert cp is not None, "the real tier needs the session's control plane"
            api = admin_client(cp)
            stack.push_async_callback(api.close)
            await _prepare(api, cp)
            write_real_kubeconfig(kubeconfig, server=cp.url, ca_file=cp.ca_file, user="admin",
                                  token=cp.admin_token, namespace=ns)
            http = aiohttp.ClientSession(
                base_url=cp.url, headers={"Authorization": f"Bearer {cp.admin_token}"},
                connector=aiohttp.TCPConnector(ssl=cp.ssl_context()))
            assert cp.bin_dir is not None
            kubectl, server, url = str(cp.bin_dir / "kubectl"), None, cp.url
        else:
            server = ApiServer(watch_history=watch_history)
            await server.start()
            stack.push_async_callback(server.stop)
            api = client.ApiClient(client.Configuration(host=server.url))
            stack.push_async_callback(api.close)
            write_standin_kubeconfig(kubeconfig, server=server.url, namespace=ns)
            http = aiohttp.ClientSession(base_url=server.url)
            kubectl, url = find_tool("kubectl"), server.url
        stack.push_async_callback(http.close)
        tier = Tier(name=name, api=api, http=http, url=url, ns=ns, kubeconfig=kubeconfig, kubectl=kubectl,
                    server=server, cp=cp, _stack=stack)
        await client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
        tier._namespaces.append(ns)
        try:
            yield tier
        finally:
            if tier.real:
                await _clean(tier)


@pytest.fixture(params=CONTROL_PLANES)
async def tier(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Tier]:
    """The test on each control plane (import this fixture into a test module to use it)."""
    cp = request.getfixturevalue("real_control_plane") if request.param == "real" else None
    async with tier_for(request.param, test_name=request.node.originalname, tmp_path=tmp_path, cp=cp) as t:
        yield t


async def _prepare(api: client.ApiClient, cp: ControlPlane) -> None:
    """The CRDs a Sandbox on this control plane has (KServe's own and the project's Istio ones;
    once per session), and no admission webhook left by a KServe manager that is gone."""
    kserve = KServe(control_plane=cp, workdir=cp.dir)  # its CRDs and webhooks only: no process
    if cp.url not in _CRDS_INSTALLED:
        await install_crds(api, also_wait_for=await kserve.install_crds(api))
        _CRDS_INSTALLED.add(cp.url)
    await remove_webhooks(api, kserve.module)


async def _clean(tier: Tier) -> None:
    """Delete what the test made on the shared server (the stand-in is simply stopped)."""
    for path in reversed(tier._cluster_paths):
        async with tier.http.delete(path) as r:
            assert r.status in (200, 202, 404), (path, r.status, await r.text())
    core = client.CoreV1Api(tier.api)
    for ns in tier._namespaces:
        # A pod bound to the sandbox's Node waits for its kubelet to confirm the deletion; there
        # is none after this test, so delete those at once (unbound pods go at once anyway).
        with contextlib.suppress(ApiException):
            for pod in (await core.list_namespaced_pod(ns)).items:
                if pod.spec.node_name:
                    await core.delete_namespaced_pod(pod.metadata.name, ns, grace_period_seconds=0)
        with contextlib.suppress(ApiException):
            await core.delete_namespace(ns)


# Objects the real cluster's controllers put into every namespace (the stand-in does the same:
# see sandbox/apiserver/crud.py); tests comparing whole listings leave them out.
CONTROLLER_MADE = frozenset({"kube-root-ca.crt"})


def own(tier: Tier, items: list[T]) -> list[T]:
    """``items`` in this test's namespaces, without :data:`CONTROLLER_MADE` ones (dicts or models)."""
    out = []
    for item in items:
        meta = item["metadata"] if isinstance(item, dict) else item.metadata  # type: ignore[attr-defined]
        ns = meta.get("namespace") if isinstance(meta, dict) else meta.namespace
        name = meta["name"] if isinstance(meta, dict) else meta.name
        if name in CONTROLLER_MADE or (ns and ns not in tier._namespaces):
            continue
        out.append(item)
    return out
