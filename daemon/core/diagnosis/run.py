"""The diagnosis pass: the order the rules run in, and why.

DNS first, for the whole cluster: its finding collects the symptoms it explains while the
models are diagnosed. Then, per model, the rules that can name a root cause, most specific
and most static first: runtime (KServe's selection), injection and the istio revision, the
sidecar (before the mesh policy and the storage errors it explains), the storage by scheme
(credentials, GCS, PVC), the model's own store and its mesh (STRICT mTLS, policy), image pull,
what the scheduler and kubelet recorded on the pods (unschedulable, OOM-killed, evicted: before
the download and the stored model, whose failures they explain), the storage-initializer's own
failure (a download that failed is a storage cause: unreachable, denied, not found, no
credentials, an unsupported URI), the stored model (only when it was downloaded and a runtime
serves it; and only if the model files are fine, a wrong model answer), an unreachable store
(deferring to sidecar, policy and DNS), a Ready InferenceService whose pods crash-loop, a
crash-loop no rule named; then the
transformer/explainer/ingress, DNS correlation, and not-ready as the last word for an
unexplained model. Each symptom goes to one cause (:class:`daemon.core.diagnosis.model.Model`).
Last, across the cluster, whatever drift no rule claimed.

A desired InferenceService that does not exist yet is judged from configuration alone (runtime,
injection, storage, mesh, pull secrets) so its causes are named before a pod tries. A ModelMesh
InferenceService is judged from its conditions only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.dns import dns_latency, dns_not_checked, fold_into_dns
from daemon.core.diagnosis.download import download_failed
from daemon.core.diagnosis.draft import Draft
from daemon.core.diagnosis.drift import unclaimed_drift
from daemon.core.diagnosis.image_pull import image_pull_unauthorized
from daemon.core.diagnosis.mesh import (
    injection,
    istio_revision,
    peer_authentication_strict,
    policy_denies,
    sidecar_disabled,
)
from daemon.core.diagnosis.model import Model
from daemon.core.diagnosis.model_files import model_files
from daemon.core.diagnosis.predictor import not_declared, not_ready, wrong_model
from daemon.core.diagnosis.probe_errors import probe_errors
from daemon.core.diagnosis.readiness import components_not_ready
from daemon.core.diagnosis.resources import crash_loop, evicted_ephemeral_storage, oom_killed
from daemon.core.diagnosis.runtime import no_serving_runtime
from daemon.core.diagnosis.scheduling import unschedulable
from daemon.core.diagnosis.spec import MODELMESH
from daemon.core.diagnosis.staleness import ready_but_crash_looping
from daemon.core.diagnosis.storage import storage_unreachable
from daemon.core.diagnosis.storage_source import storage_source
from daemon.core.diagnosis.store import store_of
from daemon.core.diagnosis.unobserved import unobserved_kinds
from daemon.core.diff import Drift
from daemon.core.discovery import discover
from daemon.core.findings import Finding
from daemon.core.settings import Settings
from daemon.core.world import World
from probes.observation import Observation


def diagnose(
    *,
    world: World,
    desired: Sequence[Mapping[str, Any]],
    drifts: Sequence[Drift],
    observations: Sequence[Observation],
    settings: Settings,
    now: float,
) -> list[Finding]:
    """One finding per root cause (see :mod:`daemon.core.diagnosis`)."""
    ctx = Pass(
        world=world, desired=desired, drifts=drifts, observations=observations, settings=settings, now=now
    )
    models = [ctx.model(m) for m in discover(world=world, desired=desired, settings=settings).models]
    dns = dns_latency(ctx)
    dns_not_checked(ctx)
    unobserved_kinds(ctx)
    for m in models:
        _diagnose_model(ctx, m, dns)
    if dns is not None:
        dns.caused.extend(ctx.dns_symptoms)
        ctx.drafts.insert(0, dns)
    unclaimed_drift(ctx)
    for d in ctx.drafts:  # findings about one model's objects carry it, for per-model output
        if d.inferenceservice is None and d.subject.kind == "InferenceService" and d.subject.namespace:
            d.inferenceservice = f"{d.subject.namespace}/{d.subject.name}"
    return [d.build() for d in ctx.drafts] + probe_errors(ctx)


def _diagnose_model(ctx: Pass, m: Model, dns: Draft | None) -> None:
    m.collect_symptoms()
    if m.isvc is None and m.declared is None:
        not_declared(ctx, m)  # configured to be watched, absent, and not ours to create
        return
    modelmesh = m.mode == MODELMESH
    runtime = no_serving_runtime(ctx, m)
    if not modelmesh:  # ModelMesh places models itself: judged from its conditions only
        inj = injection(ctx, m)
        istio_revision(ctx, m, inj)
        sidecar = sidecar_disabled(ctx, m, inj)
        res = storage_source(ctx, m)
        store = store_of(ctx, m, res) if m.spec.scheme == "s3" else None
        if store is not None:
            peer_authentication_strict(ctx, m, inj, store)
            denied = policy_denies(ctx, m, inj, sidecar, store)
        else:
            denied = False
        image_pull_unauthorized(ctx, m)
        if m.isvc is None:
            return  # declared, not created yet: only what configuration alone can say
        # What the scheduler and the kubelet recorded on the pods: an OOM-killed server's failed
        # load (KServe's ModelLoadFailed) is the kill's symptom, not a wrong model format, and an
        # OOM-killed storage-initializer's exit is the kill, not a failed download.
        pod_cause = unschedulable(ctx, m) or oom_killed(ctx, m) or evicted_ephemeral_storage(ctx, m)
        # A failed download is the store's cause: the model never reached the server, so
        # neither its format nor the store's reachability is judged again from the same failure.
        failed_download = not pod_cause and download_failed(ctx, m, dns=dns)
        # With no runtime selected no server ever ran: a load failure cannot be this model's.
        if not pod_cause and not failed_download and not runtime and not model_files(ctx, m):
            wrong_model(ctx, m)
        if not failed_download:
            storage_unreachable(ctx, m, dns=dns, sidecar=sidecar, denied=denied, store=store)
        if not ready_but_crash_looping(ctx, m):
            crash_loop(ctx, m)  # a crash no rule above named: its own last words
    elif m.isvc is None:
        return
    components_not_ready(ctx, m)
    if dns is not None:
        fold_into_dns(ctx, m, dns)
    not_ready(ctx, m)
    leftover = m.take()
    if leftover and m.first_cause is not None:
        m.first_cause.caused.extend(leftover)
