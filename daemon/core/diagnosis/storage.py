"""``storage-unreachable``: the object store cannot be reached, for no reason named elsewhere.

This rule runs after the ones that can explain an unreachable store, and defers to them:
with sidecar injection off the error is the sidecar finding's symptom; when the mesh denies
the principal, Envoy's refusal looks like a connection error and the policy finding already
says so; when DNS is failing and the probe's evidence is a lookup error, it is a DNS symptom
(folded into the DNS finding). A lookup failure of a store whose Service exists means the probe
runs outside the cluster: "not checked". Only what is left is reported here, as TLS trouble or
a store that is down.
"""

from __future__ import annotations

import re

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.draft import Draft
from daemon.core.diagnosis.model import Model
from daemon.core.diagnosis.store import IN_MESH, OUTSIDE_MESH, Store
from daemon.core.findings import Code

_UNREACHABLE = ("unreachable", "tls-error")
_LOOKUP = re.compile(r"dns|resolve|lookup|name or service", re.I)


def storage_unreachable(
    ctx: Pass, m: Model, *, dns: Draft | None, sidecar: Draft | None, denied: bool, store: Store | None = None
) -> None:
    s = m.storage
    log_unreach = [
        ln
        for ln in m.log_lines()
        if "EndpointConnectionError" in ln or "Could not connect to the endpoint" in ln
    ]
    probe_unreach = s is not None and s.outcome in _UNREACHABLE
    if not (probe_unreach or log_unreach):
        return
    what = (
        f"storage probe: {s.outcome}"
        if s is not None and probe_unreach
        else ("storage-initializer: endpoint connection error")
    )
    if sidecar is not None:
        sidecar.caused.append(what)
        return
    if denied:
        return  # the mesh policy explains it (Envoy's refusal looks like a connection error)
    lookup_failed = s is not None and any(_LOOKUP.search(e) for e in s.evidence)
    if dns is not None and lookup_failed:
        ctx.dns_symptoms.append(what)
        return
    if lookup_failed and not log_unreach and store is not None and store.basis in (IN_MESH, OUTSIDE_MESH):
        # The Service exists, yet its name does not resolve where the probe runs: the probe is
        # outside the cluster (``check`` from a laptop). Not the store's fault; not judged.
        ctx.not_checked(
            m, what=f"reachability of store {store.endpoint}",
            why="its in-cluster name does not resolve where the probe runs (outside the cluster?)",
            remedy="run kserve-warden in the cluster, or map the endpoint in "
            "probes.storage.endpoint_overrides",
        )
        return
    ev = ([what, *list(s.evidence)] if s is not None else []) + log_unreach[:3]
    tls = s is not None and s.outcome == "tls-error"
    remedy = (
        "TLS handshake with the object store failed: check serving.kserve.io/s3-usehttps and "
        "s3-verifyssl on the storage secret/ServiceAccount against the endpoint"
        if tls
        else "check the object store: kubectl get pods,svc -n kubeflow; kubectl run test "
        f"--image=curlimages/curl --rm -i --restart=Never -n {m.cfg.namespace} -- curl -v "
        "http://minio-service.kubeflow:9000"
    )
    ctx.explain(m, code=Code.STORAGE_UNREACHABLE, evidence=ev, remedy=remedy, explains=("storage",))
