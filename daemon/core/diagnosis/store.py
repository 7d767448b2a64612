"""Which object store a model's storage traffic reaches, and whether the mesh stands in front of it.

The endpoint is the model's own (KServe's order): the ``serving.kserve.io/s3-endpoint``
annotation of the storage secret KServe resolves, else that of the secret the desired state
will create under that name, else the ServiceAccount's (KServe reads it for IAM-role
accounts), else the ``s3.s3Endpoint`` default of ``inferenceservice-config``; no endpoint at
all is AWS S3, outside the cluster.

``host[:port]`` of the form ``svc``, ``svc.ns``, ``svc.ns.svc`` or ``svc.ns.svc.cluster.local``
is mapped to the Service in the World, and its selector gives the workload labels the
AuthorizationPolicies and PeerAuthentications are judged against. A Service in a namespace
without injection whose pods carry no sidecar is outside the mesh: no policy is evaluated.
Any other hostname (or an IP) is outside the cluster. Only when the endpoint names an
in-cluster Service the World does not hold do the settings' ``mesh.storage_namespace`` and
``storage_labels`` stand in, and the evidence says the check rests on them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.fields import annotations_of, container_states, meta
from daemon.core.diagnosis.model import Model
from probes.credentials import S3_ENDPOINT, Resolution

IN_MESH, SETTINGS, EXTERNAL, OUTSIDE_MESH = "service", "settings", "external", "outside-mesh"


@dataclass(frozen=True, kw_only=True)
class Store:
    endpoint: str | None
    basis: str
    """``service`` (mapped from the World), ``settings`` (fallback), ``external``, ``outside-mesh``."""
    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    note: str = ""

    @property
    def evaluated(self) -> bool:
        return self.basis in (IN_MESH, SETTINGS)

    def describe(self) -> str:
        where = f"{self.namespace} {dict(self.labels)}"
        return {
            IN_MESH: f"store {self.endpoint} → {where}",
            SETTINGS: f"store {self.endpoint}: {self.note}; policy check based on the settings "
            f"(mesh.storage_namespace/storage_labels: {where})",
            EXTERNAL: f"store {self.endpoint or 'AWS S3 (no endpoint)'} is outside the cluster",
            OUTSIDE_MESH: f"store {self.endpoint}: {self.note}",
        }[self.basis]


def endpoint_of(ctx: Pass, m: Model, res: Resolution | None) -> str | None:
    ns = m.cfg.namespace
    if res is not None and res.problem is None and res.endpoint:
        return res.endpoint
    if res is not None and res.secret_name:
        name = res.secret_name
        for obj in (ctx.world.get("Secret", ns, name), ctx.desired.get(("Secret", ns, name))):
            ep = annotations_of(obj).get(S3_ENDPOINT)
            if ep:
                return str(ep)
    sa_key = ("ServiceAccount", ns, m.sa_name)
    for obj in (ctx.world.get(*sa_key), ctx.desired.get(sa_key)):
        ep = annotations_of(obj).get(S3_ENDPOINT)
        if ep:
            return str(ep)
    return res.endpoint if res is not None and res.endpoint else None


def _host(endpoint: str) -> str:
    host = endpoint.split("://", 1)[-1].split("/", 1)[0]
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _injected_namespace(ctx: Pass, namespace: str) -> bool | None:
    ns = ctx.world.get("Namespace", None, namespace)
    if ns is None:
        return None
    labels = meta(ns).get("labels") or {}
    return labels.get("istio-injection") == "enabled" or (
        "istio.io/rev" in labels and labels.get("istio-injection") != "disabled"
    )


def store_of(ctx: Pass, m: Model, res: Resolution | None) -> Store:
    endpoint = endpoint_of(ctx, m, res)
    if endpoint is None:
        return Store(endpoint=None, basis=EXTERNAL)
    host = _host(endpoint)
    try:
        ipaddress.ip_address(host)
        return Store(endpoint=endpoint, basis=EXTERNAL)
    except ValueError:
        pass
    parts = host.lower().split(".")
    if parts[-2:] == ["cluster", "local"]:
        parts = parts[:-2]
    if parts and parts[-1] == "svc":
        parts = parts[:-1]
    if len(parts) == 1:
        svc_name, svc_ns = parts[0], m.cfg.namespace
    elif len(parts) == 2:
        svc_name, svc_ns = parts
    else:
        return Store(endpoint=endpoint, basis=EXTERNAL)
    svc = ctx.world.get("Service", svc_ns, svc_name)
    if svc is None:
        mesh = ctx.settings.mesh
        return Store(
            endpoint=endpoint,
            basis=SETTINGS,
            namespace=mesh.storage_namespace,
            labels=dict(mesh.storage_labels),
            note=f"Service {svc_ns}/{svc_name} is not in the watched objects",
        )
    selector = {str(k): str(v) for k, v in ((svc.get("spec") or {}).get("selector") or {}).items()}
    pods = [
        p for p in ctx.world.list("Pod", svc_ns)
        if selector and all((meta(p).get("labels") or {}).get(k) == v for k, v in selector.items())
    ]
    with_proxy = any(c["name"] == "istio-proxy" for p in pods for c in container_states(p)) or any(
        c.get("name") == "istio-proxy" for p in pods for c in (p.get("spec") or {}).get("containers") or []
    )
    if _injected_namespace(ctx, svc_ns) is False and not with_proxy:
        return Store(
            endpoint=endpoint, basis=OUTSIDE_MESH, namespace=svc_ns, labels=selector,
            note=f"Service {svc_ns}/{svc_name} is in a namespace without sidecar injection: "
            "no mesh policy applies to it",
        )
    return Store(endpoint=endpoint, basis=IN_MESH, namespace=svc_ns, labels=selector)
