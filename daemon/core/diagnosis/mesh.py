"""The mesh between the model and its object store.

* :func:`injection` decides whether the model's pods get an istio-proxy, by Istio's rules
  (namespace ``istio-injection``/``istio.io/rev``, the ``sidecar.istio.io/inject`` pod *label*,
  which wins, then the annotation; the running pods show what actually happened);
* :func:`istio_revision`: ``istio-revision-missing`` when ``istio.io/rev`` names a revision
  whose istiod is not there ("not checked" when no istiod is visible at all);
* :func:`sidecar_disabled`: ``sidecar-disabled-policy-unenforced`` — injection off while a policy
  is *meant* to admit the model (no sidecar, no identity: the policy cannot match it). It runs
  before the policy and storage rules because it explains their symptoms. Injection off while
  no policy names the model but the store's policies refuse a caller without identity (the
  seed's attempt 5: only the pipelines' policy there) is the same root cause, found by
  :func:`policy_denies` once the store is known: one finding, the sidecar, with the policy as
  evidence — an ALLOW rule for the principal (the seed's attempt 6) cannot help a pod that has
  no principal, so naming the policy first would send the operator the wrong way;
* :func:`peer_authentication_strict`: a STRICT PeerAuthentication on the store (workload,
  namespace or mesh-wide, the most specific wins) while the model has no sidecar;
* :func:`policy_denies`: ``mesh-policy-denies`` — the live AuthorizationPolicies evaluated for the
  model's principal against the *model's own* store workload (:mod:`.store`:
  :func:`daemon.core.authz.evaluate`, Istio's order CUSTOM, DENY, ALLOW), or a ``mesh-denied``
  storage probe. A store outside the mesh or the cluster is not evaluated; CUSTOM policies and
  rules on request attributes are ``mesh-policy-not-evaluated`` (info), never silence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon.core.authz import AuthzResult, evaluate, match_value
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
from daemon.core.diagnosis.store import Store
from daemon.core.findings import Code, Severity
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


@dataclass(frozen=True, kw_only=True)
class Injection:
    """Whether the model's pods get an istio-proxy, and what decided it."""

    injected: bool
    where: list[str]
    """Why it is off (empty when on)."""
    remove: dict[str, Any] | None = None
    """The InferenceService annotation to remove when that alone turns injection off."""
    ns_human: str = ""
    revision: str | None = None


def _inject_value(o: Mapping[str, Any] | None) -> str | None:
    v = (o or {}).get(INJECT_ANNOTATION)
    return str(v).lower() if v is not None else None


def injection(ctx: Pass, m: Model) -> Injection:
    """Istio's rules: the namespace label (``istio-injection=enabled|disabled`` or
    ``istio.io/rev``), then the pod's ``sidecar.istio.io/inject`` *label* (newer Istio; it wins
    over the annotation and can enable injection in an unlabelled namespace), then the
    annotation (it can only turn injection off). KServe copies the InferenceService's
    labels/annotations and ``spec.<component>.labels/annotations`` to the pods; the pods
    themselves show what happened: a proxy in them counts as injection unless the configuration
    now turns it off explicitly (then the next pods will have none)."""
    src = m.source
    pred = predictor_spec(src)
    key = m.cfg.key
    label_src = [(f"InferenceService {key} label", meta(src).get("labels") or {}),
                 (f"InferenceService {key} spec.predictor.labels", pred.get("labels") or {})]
    ann_src = [(f"InferenceService {key} annotation", annotations_of(src)),
               (f"InferenceService {key} spec.predictor.annotations", pred.get("annotations") or {})]
    for p in m.pods:
        pname = meta(p).get("name")
        label_src.append((f"pod {pname} label", meta(p).get("labels") or {}))
        ann_src.append((f"pod {pname} annotation", annotations_of(p)))
    labels = [(w, v) for w, o in label_src if (v := _inject_value(o)) is not None]
    anns = [(w, v) for w, o in ann_src if (v := _inject_value(o)) is not None]
    ns_obj = ctx.world.get("Namespace", None, m.cfg.namespace)
    ns_labels = meta(ns_obj).get("labels") or {}
    ns_inj = ns_labels.get("istio-injection")
    rev = str(ns_labels["istio.io/rev"]) if "istio.io/rev" in ns_labels and ns_inj is None else None
    ns_on = ns_inj == "enabled" or rev is not None
    has_proxy = any(c["name"] == "istio-proxy" for p in m.pods for c in container_states(p))
    where: list[str] = []
    remove = None
    ns_human = ""
    if ns_inj == "disabled":
        where.append(f"namespace {m.cfg.namespace} is labelled istio-injection=disabled")
        ns_human = f"kubectl label namespace {m.cfg.namespace} istio-injection=enabled --overwrite; "
    elif labels:
        w, v = labels[0]
        if v == "false":
            where.append(f'{w} {INJECT_ANNOTATION}: "false" (the label wins over the annotation)')
        elif not ns_on and ns_obj is not None and v != "true" and not has_proxy:
            where.append(f"namespace {m.cfg.namespace} is not labelled for injection")
    elif anns and anns[0][1] == "false":
        w, _ = anns[0]
        where.append(f'{w} {INJECT_ANNOTATION}: "false"')
        if w.startswith(f"InferenceService {key} annotation"):
            remove = {"target": m.ref, "key": INJECT_ANNOTATION}
    elif not ns_on and ns_obj is not None and not has_proxy:
        # Not labelled, yet the running pods have a proxy: injected some other way; trust the pods.
        where.append(
            f"namespace {m.cfg.namespace} is not labelled istio-injection=enabled or istio.io/rev "
            f"(labels: {dict(ns_labels)})"
        )
        ns_human = f"kubectl label namespace {m.cfg.namespace} istio-injection=enabled --overwrite; "
    for p in m.pods:
        names = [c["name"] for c in container_states(p)]
        if not names or not where:
            continue
        if "istio-proxy" in names:
            # Created while injection was on: the pod has its proxy, its replacement will not.
            where.append(f"pod {meta(p).get('name')} still has istio-proxy (created before injection "
                         "was turned off; a new pod gets none)")
        else:
            where.append(f"pod {meta(p).get('name')} containers: {', '.join(names)} (no istio-proxy)")
    return Injection(injected=not where, where=where, remove=remove, ns_human=ns_human, revision=rev)


def istio_revision(ctx: Pass, m: Model, inj: Injection) -> None:
    """``istio.io/rev=<rev>`` on the namespace: does that control-plane revision exist?"""
    rev = inj.revision
    if rev is None or not inj.injected or m.pods:
        return
    root = ctx.settings.mesh.root_namespace
    # istiod of revision R runs as Deployment and Service istiod-R (istiod for "default").
    names = {str(meta(d).get("name", "")) for kind in ("Deployment", "Service")
             for d in ctx.world.list(kind, root)}
    istiods = sorted(n for n in names if n.startswith("istiod"))
    if not istiods:
        ctx.not_checked(
            m, what=f"istio revision {rev} of namespace {m.cfg.namespace}",
            why=f"no istiod Deployment or Service visible in {root}",
        )
        return
    wanted = {f"istiod-{rev}"} | ({"istiod"} if rev == "default" else set())
    if wanted & set(istiods):
        return
    ctx.note(
        m,
        code=Code.ISTIO_REVISION_MISSING,
        severity=Severity.WARNING,
        evidence=[
            f"namespace {m.cfg.namespace} is labelled istio.io/rev={rev}",
            f"istiod Deployments/Services in {root}: {istiods}; none is istiod-{rev}",
        ],
        remedy=(
            f"label the namespace with an existing revision (kubectl label namespace {m.cfg.namespace} "
            f"istio.io/rev=<rev> --overwrite) or install revision {rev}; pods get no sidecar meanwhile"
        ),
    )


def sidecar_disabled(ctx: Pass, m: Model, inj: Injection) -> Draft | None:
    """Injection off while a policy is meant to admit the model (see the module docstring)."""
    if inj.injected:
        return None
    meant = _meant_to_admit(ctx, m)
    if not meant:
        return None
    evidence = [f"AuthorizationPolicy {', '.join(meant)} is meant to admit {m.principal}"]
    return _sidecar_cause(ctx, m, inj, evidence)


def _sidecar_cause(ctx: Pass, m: Model, inj: Injection, policy_evidence: list[str], then: str = "") -> Draft:
    """The ``sidecar-disabled-policy-unenforced`` finding: what turned injection off, the
    policies as evidence, the fix (``then``: what is left to do once the sidecar is back)."""
    ev = [*inj.where, *policy_evidence]
    if m.storage is not None and not m.storage.ok:
        ev.append(f"storage probe: {m.storage.outcome}")
    if inj.remove is not None:
        remedy = (
            f"{inj.ns_human}kubectl annotate inferenceservice {m.cfg.name} -n {m.cfg.namespace} "
            f"{INJECT_ANNOTATION}- (done automatically; the desired state does not have it){then}. "
            "If DNS was the reason for disabling it, fix DNS instead"
        )
        data: dict[str, Any] = {"remove_annotation": inj.remove}
    else:
        data = {"human": True}
        remedy = (
            f'{inj.ns_human}remove {INJECT_ANNOTATION}: "false" from the predictor\'s pod template '
            f"(spec.predictor.annotations/labels of {m.cfg.key}), then delete the predictor pods so "
            f"they are recreated with the sidecar{then}"
        )
    return ctx.explain(
        m, code=Code.SIDECAR_DISABLED_POLICY_UNENFORCED, evidence=ev, remedy=remedy, data=data,
        explains=("mesh", "storage"),
    )


def _unenforceable(ctx: Pass, m: Model, inj: Injection, store: Store, result: AuthzResult) -> bool:
    """Injection off, and the store's policies refuse a caller without a mesh identity: the
    disabled sidecar is the root cause, the policies its evidence (one finding). What the
    principal would meet once the sidecar is back is evidence too, and the rest of the fix."""
    mesh = ctx.settings.mesh
    plain = evaluate(
        ctx.world.list("AuthorizationPolicy"),
        workload_namespace=store.namespace or mesh.storage_namespace,
        workload_labels=store.labels if store.evaluated else mesh.storage_labels,
        principal=None,
        source_namespace=None,
        root_namespace=mesh.root_namespace,
    )
    if plain.allowed:
        return False  # the store admits plaintext callers: the sidecar is not what refuses them
    guards = ", ".join(plain.applicable) or plain.deciding_policy or "?"
    ev = [f"AuthorizationPolicy {guards} guards {store.describe()}: {plain.reason}"]
    then = ""
    if not result.allowed:
        ev.append(f"with the sidecar back, {m.principal} would still be refused: {result.reason}")
        policies = [result.deciding_policy] if result.deciding_policy else list(result.applicable)
        if len(policies) == 1:
            ns, _, name = policies[0].partition("/")
            how = f"kubectl edit authorizationpolicy {name} -n {ns}"
        else:  # several ALLOW policies apply and none admits it: the operator picks one
            how = f"add an ALLOW rule to one of {', '.join(policies)}"
        then = f"; then admit {m.principal} to the store ({how}, or declare a policy in the desired state)"
    _sidecar_cause(ctx, m, inj, ev, then)
    return True


def _pa_mode(pa: Mapping[str, Any]) -> str:
    return str(((pa.get("spec") or {}).get("mtls") or {}).get("mode") or "UNSET").upper()


def peer_authentication_strict(ctx: Pass, m: Model, inj: Injection, store: Store) -> None:
    """A STRICT PeerAuthentication on the store refuses the plaintext of a sidecar-less model."""
    if inj.injected or not store.evaluated:
        return
    root = ctx.settings.mesh.root_namespace
    pas = ctx.world.list("PeerAuthentication")

    def selects(pa: Mapping[str, Any]) -> bool:
        sel = ((pa.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return bool(sel) and all(store.labels.get(k) == v for k, v in sel.items())

    workload = [p for p in pas if meta(p).get("namespace") == store.namespace and selects(p)]
    namespace = [p for p in pas if meta(p).get("namespace") == store.namespace
                 and not ((p.get("spec") or {}).get("selector") or {}).get("matchLabels")]
    mesh = [p for p in pas if meta(p).get("namespace") == root
            and not ((p.get("spec") or {}).get("selector") or {}).get("matchLabels")]
    deciding = None
    for level in (workload, namespace, mesh):  # the most specific policy with a mode wins
        modes = [p for p in level if _pa_mode(p) not in ("UNSET", "")]
        if modes:
            deciding = sorted(modes, key=lambda p: str(meta(p).get("name")))[0]
            break
    if deciding is None or _pa_mode(deciding) != "STRICT":
        return
    name = f"{meta(deciding).get('namespace')}/{meta(deciding).get('name')}"
    ctx.explain(
        m,
        code=Code.PEER_AUTHENTICATION_STRICT_NO_SIDECAR,
        subject=ref("security.istio.io/v1", "PeerAuthentication", meta(deciding).get("namespace"),
                    str(meta(deciding).get("name"))),
        evidence=[*inj.where, f"PeerAuthentication {name} sets mTLS STRICT on {store.describe()}"],
        remedy=(
            f"turn sidecar injection back on for {m.cfg.key} (its traffic must be mTLS), or "
            f"set a PERMISSIVE PeerAuthentication for the store's port (kubectl get peerauthentication "
            f"-n {meta(deciding).get('namespace')})"
        ),
        explains=("mesh", "storage"),
    )


def policy_denies(ctx: Pass, m: Model, inj: Injection, sidecar: Draft | None, store: Store) -> bool:
    """Whether the mesh refuses the model's principal (a finding is added, or folded into
    ``sidecar``). With injection off and no sidecar finding yet, a store whose policies refuse a
    caller without identity makes the disabled sidecar the root cause (:func:`_unenforceable`)."""
    mesh = ctx.settings.mesh
    probe_denied = m.storage is not None and m.storage.outcome == "mesh-denied"
    if not store.evaluated and not probe_denied:
        return False  # a store outside the mesh or the cluster: no sidecar policy applies
    result = evaluate(
        ctx.world.list("AuthorizationPolicy"),
        workload_namespace=store.namespace or mesh.storage_namespace,
        workload_labels=store.labels if store.evaluated else mesh.storage_labels,
        principal=m.principal,
        source_namespace=m.cfg.namespace,
        root_namespace=mesh.root_namespace,
    )
    if sidecar is None and not inj.injected and _unenforceable(ctx, m, inj, store, result):
        return True
    if result.allowed and not probe_denied:
        if result.unevaluated:
            ctx.note(
                m,
                code=Code.MESH_POLICY_NOT_EVALUATED,
                severity=Severity.INFO,
                evidence=[store.describe(), *(f"not evaluated: {u}" for u in result.unevaluated),
                          f"static check otherwise: {result.reason}"],
                remedy=(
                    f"check by hand that {m.principal} may read the store: kubectl get authorizationpolicy "
                    f"-n {store.namespace} -o yaml (and the CUSTOM provider's rules)"
                ),
            )
        return False
    if result.allowed and probe_denied and sidecar is not None:
        sidecar.caused.append("storage probe: mesh-denied")
        return True
    ev: list[str] = []
    if not result.allowed:
        ev.append(f"static check: {m.principal} → {store.describe()}: denied; {result.reason}")
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
            ns, name = store.namespace or mesh.storage_namespace, "<policy>"
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
    ctx.explain(
        m, code=Code.MESH_POLICY_DENIES, subject=subject, evidence=ev, remedy=remedy, data=data,
        explains=("mesh", "storage"),
    )
    return True
