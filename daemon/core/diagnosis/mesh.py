"""The mesh between the model and its object store: ``mesh-policy-denies`` and
``sidecar-disabled-policy-unenforced``.

Both are judged statically, before any pod tries. :func:`policy_denies` evaluates the live
AuthorizationPolicies for the model's ServiceAccount principal against the object store's
workload (:func:`daemon.core.authz.evaluate`, Istio's own order: CUSTOM, DENY, ALLOW); a
``mesh-denied`` storage probe counts too. :func:`sidecar_disabled` finds injection turned off
(on the InferenceService, its pod template, its pods, or its namespace) while a policy is
*meant* to admit the model: with no sidecar the traffic carries no identity, so the policy
cannot match it. The sidecar finding runs first, because it explains storage errors the
other rules would otherwise report again (they are folded into its ``caused``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daemon.core.authz import evaluate, match_value
from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.draft import Draft
from daemon.core.diagnosis.fields import (
    AP_API,
    INJECT_ANNOTATION,
    annotations_of,
    container_states,
    meta,
    predictor_spec,
    ref,
)
from daemon.core.diagnosis.model import Model
from daemon.core.findings import Code
from daemon.core.objects import ObjectRef


def _meant_to_admit(ctx: Pass, m: Model) -> list[str]:
    """Policies (desired or live) whose rules name this model's principal or namespace."""
    out = []
    pols: list[Mapping[str, Any]] = [d for _, d in ctx.desired_of_kind("AuthorizationPolicy")]
    pols += ctx.world.list("AuthorizationPolicy")
    for p in pols:
        for rule in (p.get("spec") or {}).get("rules") or []:
            for f in rule.get("from") or []:
                src = (f or {}).get("source") or {}
                if any(match_value(str(x), m.principal) for x in src.get("principals") or []) or any(
                    match_value(str(x), m.cfg.namespace) for x in src.get("namespaces") or []
                ):
                    out.append(f"{meta(p).get('namespace')}/{meta(p).get('name')}")
    return sorted(set(out))


def _disabled(o: Mapping[str, Any]) -> bool:
    return str(o.get(INJECT_ANNOTATION, "")).lower() == "false"


def sidecar_disabled(ctx: Pass, m: Model) -> Draft | None:
    where: list[str] = []
    remove: dict[str, Any] | None = None
    if _disabled(annotations_of(m.isvc)):
        where.append(f'InferenceService {m.cfg.key} has annotation {INJECT_ANNOTATION}: "false"')
        remove = {"target": m.ref, "key": INJECT_ANNOTATION}
    if _disabled(predictor_spec(m.isvc).get("annotations") or {}):
        where.append(
            f'InferenceService {m.cfg.key} spec.predictor.annotations has {INJECT_ANNOTATION}: "false"'
        )
    for p in m.pods:
        if _disabled(annotations_of(p)):
            names = [c["name"] for c in container_states(p)]
            where.append(
                f'pod {meta(p).get("name")} has {INJECT_ANNOTATION}: "false" '
                f"(containers: {', '.join(names) or 'unknown'}; no istio-proxy)"
            )
    ns_obj = ctx.world.get("Namespace", None, m.cfg.namespace)
    ns_human = ""
    if ns_obj is not None:
        labels = meta(ns_obj).get("labels") or {}
        if labels.get("istio-injection") != "enabled" and "istio.io/rev" not in labels:
            where.append(
                f"namespace {m.cfg.namespace} is not labelled istio-injection=enabled "
                f"(labels: {dict(labels)})"
            )
            ns_human = f"kubectl label namespace {m.cfg.namespace} istio-injection=enabled --overwrite; "
    if not where:
        return None
    meant = _meant_to_admit(ctx, m)
    if not meant:
        return None
    ev = [*where, f"AuthorizationPolicy {', '.join(meant)} is meant to admit {m.principal}"]
    if m.storage is not None and not m.storage.ok:
        ev.append(f"storage probe: {m.storage.outcome}")
    if remove is not None:
        remedy = (
            f"{ns_human}kubectl annotate inferenceservice {m.cfg.name} -n {m.cfg.namespace} "
            f"{INJECT_ANNOTATION}- (done automatically; the desired state does not have it). "
            "If DNS was the reason for disabling it, fix DNS instead"
        )
        data: dict[str, Any] = {"remove_annotation": remove}
    else:
        data = {"human": True}
        remedy = (
            f'{ns_human}remove {INJECT_ANNOTATION}: "false" from the predictor\'s pod template '
            f"(spec.predictor.annotations of {m.cfg.key}), then delete the predictor pods so "
            "they are recreated with the sidecar"
        )
    return ctx.explain(m, code=Code.SIDECAR_DISABLED_POLICY_UNENFORCED, evidence=ev, remedy=remedy, data=data)


def policy_denies(ctx: Pass, m: Model, sidecar: Draft | None) -> bool:
    """Whether the mesh refuses the model's principal (a finding is added, or folded into ``sidecar``)."""
    mesh = ctx.settings.mesh
    result = evaluate(
        ctx.world.list("AuthorizationPolicy"),
        workload_namespace=mesh.storage_namespace,
        workload_labels=mesh.storage_labels,
        principal=m.principal,
        source_namespace=m.cfg.namespace,
        root_namespace=mesh.root_namespace,
    )
    probe_denied = m.storage is not None and m.storage.outcome == "mesh-denied"
    if result.allowed and not probe_denied:
        return False
    if result.allowed and probe_denied and sidecar is not None:
        sidecar.caused.append("storage probe: mesh-denied")
        return True
    ev: list[str] = []
    if not result.allowed:
        ev.append(
            f"static check: {m.principal} → {mesh.storage_namespace} "
            f"{dict(mesh.storage_labels)}: denied; {result.reason}"
        )
    if probe_denied and m.storage is not None:
        ev.append("storage probe: mesh-denied")
        ev.extend(m.storage.evidence)
    apply: list[ObjectRef] = []
    for (kind, ns, name), d in ctx.desired_of_kind("AuthorizationPolicy"):
        drift = ctx.claim(kind, ns, name)
        if drift is not None:
            apply.append(ObjectRef.of(dict(d)))
            ev.extend(drift.describe())
    deny_policy = None
    if result.deciding_policy and "DENY" in result.reason:
        deny_policy = result.deciding_policy
    if apply and deny_policy is None:
        subject = apply[0]
        remedy = (
            f"apply the desired AuthorizationPolicy {', '.join(str(r) for r in apply)} (principal "
            f"{m.principal} only): kubectl apply --server-side --field-manager=kserve-warden "
            "-f config/desired/40-authorization-policy.yaml (done automatically)"
        )
        data: dict[str, Any] = {"apply": apply}
    else:
        data = {"human": True}
        decided = deny_policy or result.deciding_policy
        if decided is not None and not result.allowed:
            ns, _, name = decided.partition("/")
            subject = ref(AP_API, "AuthorizationPolicy", ns, name)
        else:
            ns, name = mesh.storage_namespace, "<policy>"
            subject = m.ref
        if deny_policy is not None:
            remedy = (
                f"DENY policy {deny_policy} refuses {m.principal}: review it with "
                f"kubectl get authorizationpolicy {name} -n {ns} -o yaml and exclude the principal"
            )
        elif result.allowed:
            # The sidecar refused but no policy we can see does: one outside the watched
            # namespaces, or a CUSTOM authorizer.
            remedy = (
                f"the object store's sidecar refuses {m.principal} but no watched policy "
                "explains it: kubectl get authorizationpolicy -A; check CUSTOM (ext-authz) providers"
            )
        else:
            policies = ", ".join(result.applicable) or decided or "?"
            remedy = (
                f"add an ALLOW rule for principal {m.principal} on the object store "
                f"(policies applying: {policies}): kubectl edit authorizationpolicy {name} -n {ns}, "
                "or declare one in config/desired/"
            )
    if sidecar is not None:
        sidecar.caused.append(f"{subject} would deny {m.principal} too (fixed separately)")
    ctx.explain(m, code=Code.MESH_POLICY_DENIES, subject=subject, evidence=ev, remedy=remedy, data=data)
    return True
