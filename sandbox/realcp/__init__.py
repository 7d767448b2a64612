"""The sandbox on a real Kubernetes control plane (``kserve-warden sandbox --control-plane real``).

:class:`RealApi` stands where :class:`sandbox.apiserver.ApiServer` stands in a
:class:`~sandbox.Sandbox`: it starts (or borrows) a :class:`~sandbox.realcp.controlplane.ControlPlane`
— etcd, kube-apiserver and kube-controller-manager built from Go modules — installs the project's
CustomResourceDefinitions (``crds/``), registers the Nodes the simulated kubelet runs pods on
(:data:`~sandbox.realcp.controlplane.NODES`: two CPU nodes and a tainted GPU node; their kubelet
endpoint is :class:`~sandbox.realcp.nodelogs.NodeLogs`), starts kube-scheduler to place pods on
them, and hands out admin clients.
Everything above it (the seeded world, S3 behind the mesh, DNS, the simulated kubelet, CoreDNS
and istio-proxy, the failure injectors) is the same code as on the stand-in, talking to the real
server over the wire. KServe itself is not simulated here: :class:`~sandbox.realcp.kserve.KServe`
runs KServe's own controller manager (its CRDs, RBAC, webhooks and ConfigMap from its Go
module), started by :meth:`RealApi.start_kserve` once the world is seeded.

A borrowed control plane (one per test session) is reset instead of restarted: every namespace
the previous user created is deleted (the real namespace controller empties it) and cluster-scoped
custom objects are removed, so each Sandbox starts from the same empty cluster. KServe's
InferenceServices carry its finalizer; the previous user's manager is gone, so the reset removes
the finalizer itself (as an operator cleaning up after an uninstalled controller must).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException

from sandbox.realcp import injector as _injector
from sandbox.realcp.controlplane import (
    NODE_NAME,
    NODES,
    ControlPlane,
    ControlPlaneFailed,
    ControlPlaneMissing,
    NodeShape,
)
from sandbox.realcp.kserve import KServe, remove_webhooks
from sandbox.realcp.nodelogs import NodeLogs

__all__ = [
    "NODES", "NODE_NAME", "ControlPlane", "ControlPlaneFailed", "ControlPlaneMissing", "NodeShape", "RealApi",
    "crd_documents",
]

CRD_DIR = Path(__file__).resolve().parent / "crds"
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
RESET_TIMEOUT = 120.0
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CLUSTER_RUNTIMES = "/apis/serving.kserve.io/v1alpha1/clusterservingruntimes"
ISVCS = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices"


def crd_documents() -> list[dict[str, Any]]:
    """The project's CRDs for the kinds no real controller here brings (Istio's)."""
    return [d for f in sorted(CRD_DIR.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def admin_client(cp: ControlPlane) -> ApiClient:
    cfg = Configuration(host=cp.url)
    cfg.ssl_ca_cert = str(cp.ca_file)
    cfg.api_key = {"BearerToken": cp.admin_token}
    cfg.api_key_prefix = {"BearerToken": "Bearer"}
    return ApiClient(configuration=cfg)


async def api_call(api: ApiClient, method: str, path: str, body: Any = None, *,
                   ctype: str = "application/json", query: list[tuple[str, str]] | None = None) -> Any:
    """One raw API request as the admin (JSON in, JSON out; an error status raises ApiException)."""
    from sandbox.controllers.watch import response_json

    resp = await api.call_api(
        path, method, query_params=query or [], body=body,
        header_params={"Content-Type": ctype, "Accept": "application/json"},
        auth_settings=["BearerToken"], _preload_content=False, _return_http_data_only=True,
    )
    return await response_json(resp)


class RealApi:
    """The API part of a Sandbox on the real control plane (the ``ApiServer`` interface it uses)."""

    def __init__(self, *, control_plane: ControlPlane | None = None, host: str = "127.0.0.1") -> None:
        self._borrowed = control_plane is not None
        self.cp = control_plane or ControlPlane()
        self.nodelogs: NodeLogs | None = None
        self.kserve: KServe | None = None
        self.injector: _injector.SidecarInjector | None = None
        self._host = host

    @property
    def url(self) -> str:
        return self.cp.url

    def new_api_client(self) -> ApiClient:
        return admin_client(self.cp)

    def write_kubeconfig(self, path: Path, *, namespace: str) -> None:
        from sandbox.realcp.controlplane import write_kubeconfig

        write_kubeconfig(path, server=self.cp.url, ca_file=self.cp.ca_file, user="admin",
                         token=self.cp.admin_token, namespace=namespace)

    def mark_seeded(self) -> None:
        """The stand-in's hook (request counters); nothing to do on a real server."""

    async def start(self) -> None:
        if not self._borrowed:
            await self.cp.start()
        elif not self.cp.alive():
            raise ControlPlaneFailed("the shared control plane is not running")
        self.nodelogs = NodeLogs(cert=self.cp.pki / "kubelet.crt", key=self.cp.pki / "kubelet.key",
                                 host=self._host)
        await self.nodelogs.start()
        workdir = Path(tempfile.mkdtemp(prefix="kserve-", dir=self.cp.dir))
        self.kserve = KServe(control_plane=self.cp, workdir=workdir, host=self._host)
        # Istio's sidecar injector (istiod's webhook): pods made by kube-controller-manager from
        # KServe's Deployments get their istio-proxy from it, as in a cluster.
        self.injector = _injector.SidecarInjector(workdir=workdir / "injector", host=self._host)
        await self.injector.start()
        async with self.new_api_client() as api:
            if self._borrowed:
                await reset(api)
                # A previous user that crashed left webhooks pointing at servers long gone.
                await remove_webhooks(api, self.kserve.module)
                await _injector.uninstall(api)
            await install_crds(api, also_wait_for=await self.kserve.install_crds(api))
            for shape in NODES:
                await register_node(api, port=self.nodelogs.https_port, shape=shape)
            await self.injector.install(api)
        # The real scheduler places the sandbox's pods on those Nodes (or says why it cannot).
        await self.cp.start_scheduler()

    async def start_kserve(self, api: ApiClient) -> None:
        """KServe's manager, once the seeded world has its namespace and ConfigMap."""
        assert self.kserve is not None, "RealApi is not started"
        await self.kserve.start(api)

    async def stop(self) -> None:
        await self.cp.stop_scheduler()
        # Webhooks first (failurePolicy Fail: one registered without its server refuses pods).
        if self.kserve is not None or self.injector is not None:
            async with self.new_api_client() as api:
                if self.kserve is not None:
                    await self.kserve.stop(api)
                if self.injector is not None:
                    with contextlib.suppress(Exception):
                        await self.injector.uninstall(api)
                    await self.injector.stop()
            self.kserve = self.injector = None
        if self.nodelogs is not None:
            await self.nodelogs.stop()
            self.nodelogs = None
        if not self._borrowed:
            await self.cp.stop()


async def install_crds(api: ApiClient, *, also_wait_for: Sequence[dict[str, Any]] = ()) -> None:
    """Server-side apply the project's CRDs, then wait until they and ``also_wait_for`` (CRDs
    applied by someone else: KServe's) are Established and served."""
    docs = crd_documents()
    for doc in docs:
        await api_call(api, "PATCH", f"{CRD_PATH}/{doc['metadata']['name']}", doc,
                       ctype="application/apply-patch+yaml",
                       query=[("fieldManager", "sandbox-realcp"), ("force", "true")])
    docs += list(also_wait_for)
    names = [doc["metadata"]["name"] for doc in docs]
    deadline = time.monotonic() + 60
    for name in names:
        while True:
            crd = await api_call(api, "GET", f"{CRD_PATH}/{name}")
            conds = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
            if conds.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise ControlPlaneFailed(f"CRD {name} not Established after 60s")
            await asyncio.sleep(0.1)
    # Established is not yet served from the watch cache: until that cache is initialised a list
    # answers 429 "storage is (re)initializing". A sandbox is ready when every kind lists.
    for doc in docs:
        spec = doc["spec"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            path = f"/apis/{spec['group']}/{version['name']}/{spec['names']['plural']}"
            while True:
                try:
                    await api_call(api, "GET", path, query=[("limit", "1")])
                    break
                except ApiException as exc:
                    if exc.status not in (404, 429, 503) or time.monotonic() > deadline:
                        raise
                await asyncio.sleep(0.1)


async def register_node(api: ApiClient, *, port: int, shape: NodeShape = NODES[0]) -> None:
    """A Node as its kubelet would register it (labels, taints; allocatable and capacity, which the
    scheduler fits pods against); its kubelet endpoint, shared by every sandbox Node, serves
    container logs."""
    name = shape.name
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                              **shape.labels}},
        "spec": {"taints": [dict(t) for t in shape.taints]} if shape.taints else {},
    }
    await api_call(api, "PATCH", f"/api/v1/nodes/{name}", node, ctype="application/apply-patch+yaml",
                query=[("fieldManager", "sandbox-realcp"), ("force", "true")])
    status = {
        "status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "capacity": dict(shape.allocatable),
            "allocatable": dict(shape.allocatable),
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "the sandbox's simulated kubelet"}],
        }
    }
    await api_call(api, "PATCH", f"/api/v1/nodes/{name}/status", status,
                ctype="application/merge-patch+json")
    # The TaintNodesByCondition admission plugin gives every new Node node.kubernetes.io/not-ready;
    # the node lifecycle controller lifts it once the Node is Ready. That controller is not run
    # here (it would mark the Nodes unreachable without kubelet heartbeats): lift it as it would.
    taints = {"spec": {"taints": [dict(t) for t in shape.taints]}}
    await api_call(api, "PATCH", f"/api/v1/nodes/{name}", taints, ctype="application/merge-patch+json")


async def _drop_isvc_finalizers(api: ApiClient, namespace: str) -> None:
    try:
        isvcs = await api_call(api, "GET", ISVCS.format(ns=namespace))
    except ApiException as exc:
        if exc.status == 404:
            return
        raise
    for isvc in isvcs.get("items") or []:
        if isvc["metadata"].get("finalizers"):
            try:
                await api_call(api, "PATCH", f"{ISVCS.format(ns=namespace)}/{isvc['metadata']['name']}",
                               {"metadata": {"finalizers": None}}, ctype="application/merge-patch+json")
            except ApiException as exc:
                if exc.status != 404:
                    raise


async def _force_delete_pods(api: ApiClient, namespace: str, *, bound_only: bool) -> None:
    """Delete the pods of ``namespace`` with grace period 0 (``bound_only``: those bound to a
    node): no kubelet will confirm their deletion, so they would wait Terminating forever."""
    pods = await api_call(api, "GET", f"/api/v1/namespaces/{namespace}/pods")
    for pod in pods.get("items") or []:
        if bound_only and not (pod.get("spec") or {}).get("nodeName"):
            continue
        try:
            await api_call(api, "DELETE", f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}",
                           {"gracePeriodSeconds": 0})
        except ApiException as exc:
            if exc.status != 404:
                raise


async def reset(api: ApiClient) -> None:
    """Delete what a previous user left: non-system namespaces (waited for) and cluster-scoped CRs."""
    with_crds = True
    try:
        runtimes = await api_call(api, "GET", CLUSTER_RUNTIMES)
    except ApiException as exc:
        if exc.status != 404:
            raise
        with_crds = False
    if with_crds:
        for r in runtimes.get("items") or []:
            name = r["metadata"]["name"]
            try:
                await api_call(api, "DELETE", f"{CLUSTER_RUNTIMES}/{name}")
            except ApiException as exc:
                if exc.status != 404:
                    raise
    deadline = time.monotonic() + RESET_TIMEOUT
    while True:
        nss = await api_call(api, "GET", "/api/v1/namespaces")
        left = [n["metadata"]["name"] for n in nss.get("items") or []
                if n["metadata"]["name"] not in SYSTEM_NAMESPACES]
        if not left:
            break
        for name in left:
            await _drop_isvc_finalizers(api, name)
            # Pods bound to the sandbox's Node wait for its kubelet to finish deleting them; the
            # previous user's kubelet is gone, so do that part here (grace period 0).
            await _force_delete_pods(api, name, bound_only=False)
            if not any(n["metadata"]["name"] == name and n["metadata"].get("deletionTimestamp")
                       for n in nss["items"]):
                try:
                    await api_call(api, "DELETE", f"/api/v1/namespaces/{name}")
                except ApiException as exc:
                    if exc.status != 404:
                        raise
        if time.monotonic() > deadline:
            raise ControlPlaneFailed(f"namespaces {left} not deleted after {RESET_TIMEOUT:.0f}s")
        await asyncio.sleep(0.2)
    # kube-system and default keep what the seed and the last daemon put there: remove the seeded
    # CoreDNS Deployment (the garbage collector takes its ReplicaSets and pods) and every Event.
    for ns in sorted(SYSTEM_NAMESPACES):
        await api_call(api, "DELETE", f"/api/v1/namespaces/{ns}/events")
        # Pods the scheduler bound there (the seeded CoreDNS Deployment's, which no kubelet runs)
        # would wait forever for a kubelet to confirm their deletion: gone at once instead.
        await _force_delete_pods(api, ns, bound_only=True)
    for path in ("/apis/apps/v1/namespaces/kube-system/deployments/coredns",):
        try:
            await api_call(api, "DELETE", path, {"propagationPolicy": "Background"})
        except ApiException as exc:
            if exc.status != 404:
                raise
