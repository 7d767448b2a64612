"""Storage credentials: ``storage-credentials-missing``, ``storage-secret-format`` and
``storage-secret-annotation``.

Judged the way KServe hands credentials to the storage-initializer
(:func:`probes.credentials.resolve`: the annotation key this KServe reads, from the live
``inferenceservice-config``, then the ServiceAccount's secrets), so the trap where a
kustomize install ignores Helm's ``serving.kserve.io/secretName`` is caught before a pod
fails. That static answer is authoritative; the storage probe adds ``no-credentials`` or
``invalid-credentials`` (the object store rejected what it got).

The remedy comes from the desired state: DerivedSecrets to (re-)derive, the
InferenceService/ServiceAccount to apply, the annotation to rewrite. If a DerivedSecret's
source is missing the daemon cannot derive it, and a person must restore the source.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from daemon.core.desired import DERIVED_FROM_ANNOTATION, STORAGE_SECRET_ANNOTATIONS
from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.fields import annotations_of, meta, ref
from daemon.core.diagnosis.model import Model
from daemon.core.findings import Code, Severity
from daemon.core.objects import ObjectRef
from probes.credentials import Resolution, resolve

_CREDENTIAL_ERRORS = ("NoCredentialsError", "InvalidAccessKeyId", "SignatureDoesNotMatch")


def _code(problem: str | None, *, desired_name: str | None, checked: str | None) -> Code:
    if problem == "annotation-key-mismatch":
        return Code.STORAGE_SECRET_ANNOTATION
    if problem == "annotation-names-missing-secret":
        if desired_name is not None and desired_name != checked:
            return Code.STORAGE_SECRET_ANNOTATION
        return Code.STORAGE_CREDENTIALS_MISSING
    if problem == "wrong-key-names":
        return Code.STORAGE_SECRET_FORMAT
    return Code.STORAGE_CREDENTIALS_MISSING


WORKLOAD_IDENTITY_ANNOTATIONS = ("eks.amazonaws.com/role-arn", "iam.gke.io/gcp-service-account")


def s3_resolution(ctx: Pass, m: Model) -> Resolution:
    """The credentials KServe would mount for ``m`` (:func:`probes.credentials.resolve`)."""
    ns = m.cfg.namespace
    assert m.source is not None
    sa = ctx.world.get("ServiceAccount", ns, m.sa_name)
    secrets = {str(meta(s).get("name")): s for s in ctx.world.list("Secret", ns)}
    try:
        return resolve(isvc=m.source, service_account=sa, secrets=secrets, kserve_config=ctx.configmap)
    except ValueError as exc:  # the ConfigMap's credentials JSON is unreadable
        res = resolve(isvc=m.source, service_account=sa, secrets=secrets, kserve_config=None)
        return replace(res, evidence=(*res.evidence, str(exc)))


def workload_identity(ctx: Pass, m: Model) -> str | None:
    """The ServiceAccount annotation that gives the pods a cloud identity (IRSA, GKE WI)."""
    sa = ctx.world.get("ServiceAccount", m.cfg.namespace, m.sa_name) or ctx.desired.get(
        ("ServiceAccount", m.cfg.namespace, m.sa_name)
    )
    ann = annotations_of(sa)
    for key in WORKLOAD_IDENTITY_ANNOTATIONS:
        if ann.get(key):
            return f"ServiceAccount {m.cfg.namespace}/{m.sa_name} {key}={ann[key]}"
    return None


def storage_credentials(ctx: Pass, m: Model, res: Resolution) -> None:
    ns = m.cfg.namespace
    if not ctx.secrets_visible(ns):
        ctx.not_checked(
            m,
            what="storage credentials",
            why=f"no access to secrets in {ns}",
            remedy=f"list {ns} under secrets.namespaces in the settings (and grant read on its secrets)",
        )
        return
    probe = m.storage
    problem = res.problem.value if res.problem is not None else None
    check_secret = res.secret_name
    ev = list(res.evidence) if problem is not None else []
    if problem is None and probe is not None and probe.outcome == "no-credentials":
        problem = str(probe.details.get("problem") or "no-secret-referenced")
    if probe is not None and probe.outcome in ("no-credentials", "invalid-credentials"):
        ev.append(f"storage probe: {probe.outcome}")
        ev.extend(probe.evidence)
    invalid = probe is not None and probe.outcome == "invalid-credentials"
    if problem is None and not invalid:
        # The static check (configuration) is authoritative; a NoCredentialsError in a log
        # with usable credentials configured comes from a pod of an older revision.
        return
    failed_lines = [ln for ln in m.log_lines() if any(e in ln for e in _CREDENTIAL_ERRORS)][:3]
    # The probe's "no-credentials" when nothing names a secret is the same fact again, not a
    # failure seen (and it cannot use a pod's workload identity): only the pods' words count.
    probe_none = probe is not None and probe.outcome == "no-credentials" and problem != "no-secret-referenced"
    seen_in_pod = any(k == "credentials" for k, _ in m.symptoms)
    seen_failing = bool(failed_lines) or invalid or probe_none or seen_in_pod
    identity = workload_identity(ctx, m)
    if problem == "no-secret-referenced" and identity is not None and not seen_failing:
        return  # workload identity (IRSA / GKE): KServe needs no secret
    ev.extend(failed_lines)
    # No secret at all may still work (node IAM role, anonymous bucket): a warning until a
    # pod or the probe says it failed.
    severity = (
        Severity.WARNING if problem == "no-secret-referenced" and not seen_failing else Severity.CRITICAL
    )

    # What the desired state says the storage secret is.
    d_isvc = ctx.desired.get(("InferenceService", ns, m.cfg.name))
    d_name = next(
        (str(v) for k, v in annotations_of(d_isvc).items() if k in STORAGE_SECRET_ANNOTATIONS), None
    )
    derived_refs = [
        ObjectRef.of(dict(d))
        for (_k, d_ns, _n), d in ctx.desired_of_kind("Secret")
        if d_ns == ns and DERIVED_FROM_ANNOTATION in annotations_of(d)
    ]
    apply: list[ObjectRef] = []
    derive: list[ObjectRef] = []
    for r in derived_refs:
        drift = ctx.claim("Secret", ns, r.name)
        if drift is not None or problem == "secret-missing" or invalid:
            derive.append(r)
            if drift is not None:
                ev.extend(drift.describe())
    for kind, name in (("InferenceService", m.cfg.name), ("ServiceAccount", m.sa_name)):
        drift = ctx.claim(kind, ns, name)
        desired_ref = ctx.desired_ref(kind, ns, name)
        if drift is not None and desired_ref is not None:
            apply.append(desired_ref)
            ev.extend(drift.describe())
    for r in derive:
        # Name the shape the source is in (e.g. the pipelines' accesskey/secretkey): that is
        # why KServe cannot use it directly and a derived secret is needed at all.
        source = str(annotations_of(ctx.desired.get(("Secret", ns, r.name))).get(DERIVED_FROM_ANNOTATION, ""))
        src_obj = ctx.world.get("Secret", *source.split("/", 1)) if "/" in source else None
        if src_obj is not None:
            keys = sorted((src_obj.get("data") or {}).keys())
            ev.append(
                f"Secret {r.name} is derived from {source}, which holds {keys}: not the "
                f"{ctx.kserve.access_key_name}/{ctx.kserve.secret_key_name} KServe reads"
                if not {ctx.kserve.access_key_name, ctx.kserve.secret_key_name} <= set(keys)
                else f"Secret {r.name} is derived from {source} ({keys})"
            )
    sources_missing = [
        f"{d_src}"
        for r in derive
        for d_src in [annotations_of(ctx.desired.get(("Secret", ns, r.name)))[DERIVED_FROM_ANNOTATION]]
        if ctx.world.get("Secret", *d_src.split("/", 1)) is None
    ]
    code = _code(problem, desired_name=d_name, checked=check_secret)
    subject = m.ref
    if code is Code.STORAGE_SECRET_FORMAT and check_secret:
        subject = ref("v1", "Secret", ns, check_secret)
    elif code is Code.STORAGE_CREDENTIALS_MISSING and derive:
        subject = derive[0]
    key = ctx.kserve.secret_annotation
    steps = []
    if derive:
        steps.append(
            f"derive Secret {', '.join(r.name for r in derive)} from its declared source "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, s3 annotations)"
        )
    if code is Code.STORAGE_SECRET_FORMAT and d_name and d_name != check_secret:
        steps.append(
            f"point {key} on InferenceService {m.cfg.key} at {d_name}, which holds "
            f"{ctx.kserve.access_key_name}/{ctx.kserve.secret_key_name}"
        )
    if apply:
        steps.append(f"apply {', '.join(str(r) for r in apply)} from the desired state")
    if code is Code.STORAGE_SECRET_ANNOTATION:
        steps.append(
            f"kubectl annotate inferenceservice {m.cfg.name} -n {ns} "
            + " ".join(
                f"{k}-" for k in STORAGE_SECRET_ANNOTATIONS if k != key and k in annotations_of(m.source)
            )
            + f" {key}={d_name or check_secret or '<secret>'} --overwrite"
        )
    data: dict[str, Any]
    if sources_missing:
        data = {"human": True}
        src = sources_missing[0].split("/")
        remedy = (
            f"the source secret {', '.join(sources_missing)} does not exist: restore it (kubectl get "
            f"secret {src[1]} -n {src[0]}) or fix "
            "the DerivedSecret declaration in config/desired/; then the daemon can " + "; ".join(steps)
        )
    elif derive or apply:
        data = {"derive": derive, "apply": apply}
        remedy = "; ".join(steps) + " (done automatically)"
    else:
        data = {"human": True}
        remedy = "; ".join(steps) or (
            f"point {key} on InferenceService {m.cfg.key} at a secret holding AWS_ACCESS_KEY_ID/"
            f"AWS_SECRET_ACCESS_KEY, or list one in ServiceAccount {m.sa_name}'s .secrets"
        )
        if invalid:
            remedy = (
                f"the object store rejects the credentials in the storage secret: check them "
                f"(kubectl describe secret -n {ns}); re-derive from the source if it was rotated"
            )
    ctx.explain(
        m,
        code=code,
        subject=subject,
        evidence=ev or [f"storage credentials problem: {problem}"],
        remedy=remedy,
        data=data,
        explains=("credentials",),
        severity=severity,
    )
