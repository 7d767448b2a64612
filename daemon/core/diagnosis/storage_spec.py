"""A model stored by KServe's storage spec: its ``storage-config`` Secret and key, judged statically.

``spec.predictor.model.storage: {key, path, parameters}`` (or on a framework key) names the model
by a key of the namespace's ``storage-config`` Secret (``credentials.storageSpecSecretName`` of
``inferenceservice-config``; an InferenceService's storage-secret annotation overrides it) and a
path in its bucket. KServe v0.20 resolves it as :func:`probes.credentials.resolve_storage_spec`
mirrors; the ServiceAccount's secrets are then not read at all, so none of the ``storageUri``
credential rules (:mod:`.credentials`) apply to such a model.

What is judged here, from the World alone (Secrets hashed: key names, never values):

* where KServe refuses — its pod webhook fails the predictor pod's creation (the Secret is missing
  while a key is named, the key is not in it, no type can be determined, an s3 path has no
  bucket), or its controller the predictor (a ``storageUri`` beside ``storage.path``) — a
  critical ``storage-credentials-missing`` naming KServe's own error, the Secret's key names and
  the Deployment's ``ReplicaFailure`` when it is there, with the exact fix;
* no key's JSON reaching the storage-initializer (the default key ``default``/``default_<type>``
  absent: not an error to KServe) while nothing else gives credentials — a warning, as for an
  ``s3://`` model with no secret (a node role or an anonymous bucket may still work), critical
  once a pod or the probe shows the download failing;
* what only the key's JSON holds (the type when no parameter names it, the endpoint, the
  credentials) is "not checked" at info level — never guessed. The storage probe reads the real
  Secret (for a ``storageUri``): its ``no-credentials`` (the JSON holds no key pair: a warning, as
  above) or ``invalid-credentials`` (the store refuses the pair: critical) names the key to fix,
  and the endpoint it took from the JSON places the store (mesh checks; a store name that does
  not resolve where the probe runs is then "not checked", not a store that is down).
  A type other than s3 (hdfs, webhdfs) is "not checked" too.

An S3 model with a known endpoint returns its :class:`~probes.credentials.Resolution`, so the
store and its mesh are judged as for an ``s3://`` URI (:mod:`.store`, :mod:`.mesh`). A
``pvc://`` storageUri is mounted, not downloaded: KServe reads no storage-config for it, and it is
judged as any claim (:mod:`.storage_source`).
"""

from __future__ import annotations

from dataclasses import replace

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.credentials import workload_identity
from daemon.core.diagnosis.fields import ISVC_LABEL, meta, ref
from daemon.core.diagnosis.model import Model
from daemon.core.findings import Code, Severity
from daemon.core.objects import ObjectRef
from probes.credentials import (
    DEFAULT_STORAGE_KEY,
    Resolution,
    StorageSpecProblem,
    StorageSpecResolution,
    resolve_storage_spec,
)

# The JSON a storage-config key holds for S3 (KServe's docs), for the remedies: field names only.
_S3_JSON = ('{"type": "s3", "access_key_id": …, "secret_access_key": …, "endpoint_url": …, '
            '"bucket": …, "region": …}')


def _resolve(ctx: Pass, m: Model) -> StorageSpecResolution | None:
    ns = m.cfg.namespace
    assert m.source is not None
    secrets = {str(meta(s).get("name")): s for s in ctx.world.list("Secret", ns)}
    try:
        return resolve_storage_spec(isvc=m.source, secrets=secrets, kserve_config=ctx.configmap)
    except ValueError:  # the ConfigMap's credentials JSON is unreadable: KServe's defaults
        return resolve_storage_spec(isvc=m.source, secrets=secrets, kserve_config=None)


def _refusals(ctx: Pass, m: Model) -> list[str]:
    """The predictor Deployments' ``ReplicaFailure`` messages: KServe's pod webhook refusing."""
    out = []
    for d in ctx.world.list("Deployment", m.cfg.namespace):
        if (meta(d).get("labels") or {}).get(ISVC_LABEL) != m.cfg.name:
            continue
        for c in (d.get("status") or {}).get("conditions") or []:
            if c.get("type") == "ReplicaFailure" and c.get("status") == "True":
                why = str(c.get("message") or "")[:300]
                out.append(f"Deployment {meta(d).get('name')}: ReplicaFailure {why}")
    return out


def _remedy(res: StorageSpecResolution, m: Model) -> str:
    ns, name, key = m.cfg.namespace, res.secret_name, res.key or res.spec.key or DEFAULT_STORAGE_KEY
    isvc = f"InferenceService {m.cfg.key}"
    create = f"kubectl create secret generic {name} -n {ns} --from-file={key}=<store>.json"
    p = res.problem
    if p is StorageSpecProblem.SECRET_MISSING:
        return (f"create the Secret {name} in {ns} holding key {key} (its value: {_S3_JSON}): {create}; "
                f"or drop storage.key from {isvc}")
    if p is StorageSpecProblem.KEY_MISSING:
        return (f"add key {key} to Secret {ns}/{name} (kubectl edit secret {name} -n {ns}; its value: "
                f"{_S3_JSON}), or set storage.key of {isvc} to a key the Secret holds")
    if p is StorageSpecProblem.TYPE_UNKNOWN:
        return (f"add key {DEFAULT_STORAGE_KEY} to Secret {ns}/{name} with the store's JSON ({_S3_JSON}), or "
                f"set storage.key (a key the Secret holds) or storage.parameters.type on {isvc}")
    if p is StorageSpecProblem.BUCKET_MISSING:
        return (f"set storage.parameters.bucket on {isvc} (with the type a parameter, KServe does not "
                "read the bucket from the Secret)")
    if p is StorageSpecProblem.URI_AND_PATH:
        return f"remove either storageUri or storage.path from {isvc}"
    if p is StorageSpecProblem.TYPE_UNSUPPORTED:
        return f"set the type in key {key} of Secret {ns}/{name} to s3, hdfs or webhdfs"
    return f"make key {key} of Secret {ns}/{name} a JSON object of strings ({_S3_JSON})"


def _subject(res: StorageSpecResolution, m: Model) -> ObjectRef:
    """The object to change: the Secret when it is missing or lacks the key, else the model."""
    if res.problem in (StorageSpecProblem.SECRET_MISSING, StorageSpecProblem.KEY_MISSING,
                       StorageSpecProblem.INVALID_JSON, StorageSpecProblem.TYPE_UNSUPPORTED):
        return ref("v1", "Secret", m.cfg.namespace, res.secret_name)
    return m.ref


def storage_spec(ctx: Pass, m: Model) -> Resolution | None:
    """Judge a storage-spec model (see the module doc); its S3 resolution when the store is known."""
    ns = m.cfg.namespace
    if not ctx.secrets_visible(ns):
        ctx.not_checked(
            m, what="the storage spec's storage-config Secret", why=f"no access to secrets in {ns}",
            remedy=f"list {ns} under secrets.namespaces in the settings (and grant read on its secrets)",
        )
        return None
    res = _resolve(ctx, m)
    if res is None:
        return None
    if res.refused:
        who = ("controller fails the predictor" if res.problem is StorageSpecProblem.URI_AND_PATH
               else "pod webhook refuses the predictor pod")
        ctx.explain(
            m, code=Code.STORAGE_CREDENTIALS_MISSING, subject=_subject(res, m),
            evidence=[*res.evidence, f"KServe's {who}: {res.kserve_error}", *_refusals(ctx, m)],
            remedy=_remedy(res, m), explains=("credentials", "storage"),
        )
        return None
    if res.uri is None and res.key is None and res.type is None:
        return None  # no path and no storageUri: KServe downloads nothing
    where = f"key {res.key} of Secret {ns}/{res.secret_name}"
    if not res.type_known:
        ctx.not_checked(
            m, what=f"the storage of {m.cfg.key} ({where})",
            why="its type, bucket, endpoint and credentials are inside the Secret's value, which the "
            "diagnosis never reads",
        )
        _probe_verdict(ctx, m, res)
        probed = _probed_endpoint(ctx, m, res)
        return None if probed is None else replace(res.s3(annotation_key=ctx.kserve.secret_annotation),
                                                   endpoint=probed)
    if res.type != "s3":
        ctx.not_checked(m, what=f"storage {res.uri or res.type}",
                        why=f"storage type {res.type} is not judged here")
        return None
    s3 = res.s3(annotation_key=ctx.kserve.secret_annotation)
    if res.problem is StorageSpecProblem.NO_CONFIG:
        _no_config(ctx, m, res)
        return s3
    _probe_verdict(ctx, m, res)  # the static answer is fine: only the probe, reading the JSON, can say more
    if s3.endpoint is None and not res.values_read:
        if (probed := _probed_endpoint(ctx, m, res)) is not None:
            return replace(s3, endpoint=probed)
        ctx.not_checked(
            m, what=f"the store of {m.cfg.key} and the mesh towards it",
            why=f"its endpoint_url is inside {where}, which the diagnosis never reads",
        )
        return None
    return s3


def _no_config(ctx: Pass, m: Model, res: StorageSpecResolution) -> None:
    """No key's JSON reaches the storage-initializer and no parameter holds credentials."""
    # Only a pod's words count: the probe's no-credentials here is this same fact again.
    seen_failing = any(k == "credentials" for k, _ in m.symptoms)
    if workload_identity(ctx, m) is not None and not seen_failing:
        return  # a cloud identity on the pods may reach the bucket without keys
    ev = [*res.evidence, "no S3 credentials: no storage-config JSON, none in the parameters"]
    if m.storage is not None and m.storage.outcome in ("no-credentials", "invalid-credentials"):
        ev.append(f"storage probe: {m.storage.outcome}")
    key = f"{DEFAULT_STORAGE_KEY}_{res.type}" if res.spec.parameters.get("type") else DEFAULT_STORAGE_KEY
    where = f"Secret {m.cfg.namespace}/{res.secret_name}"
    put = f"add key {key} to {where}" if res.secret_exists else f"create {where} with key {key}"
    ctx.explain(
        m, code=Code.STORAGE_CREDENTIALS_MISSING,
        subject=ref("v1", "Secret", m.cfg.namespace, res.secret_name),
        evidence=ev,
        remedy=(f"{put}, holding the store's JSON ({_S3_JSON}); or set storage.key of InferenceService "
                f"{m.cfg.key} to a key the Secret holds"),
        explains=("credentials",),
        severity=Severity.CRITICAL if seen_failing else Severity.WARNING,
    )


def _probed_endpoint(ctx: Pass, m: Model, res: StorageSpecResolution) -> str | None:
    """The endpoint the storage probe took from the key's JSON (it reads the real Secret): the
    store, for the mesh checks and for telling a store that is down from a probe outside the
    cluster. None: no probe run for this Secret, or it went to an ``endpoint_overrides`` stand-in
    (not the store's own name)."""
    probe = m.storage
    if probe is None or probe.details.get("secret_name") != res.secret_name:
        return None
    endpoint = str(probe.details.get("endpoint") or "")
    overrides = {v.split("://", 1)[-1] for v in ctx.settings.probes.storage.endpoint_overrides.values()}
    if not endpoint or endpoint.split("://", 1)[-1] in overrides:
        return None
    return endpoint


def _probe_verdict(ctx: Pass, m: Model, res: StorageSpecResolution) -> None:
    """The storage probe read the key's JSON: no key pair in it, or one the store refuses."""
    probe = m.storage
    if probe is None or probe.outcome not in ("no-credentials", "invalid-credentials"):
        return
    ns, name, key = m.cfg.namespace, res.secret_name, res.key
    where = f"key {key} of Secret {ns}/{name}"
    ev = [*res.evidence, f"storage probe: {probe.outcome}", *probe.evidence]
    if probe.outcome == "no-credentials":
        if workload_identity(ctx, m) is not None and not any(k == "credentials" for k, _ in m.symptoms):
            return  # a cloud identity on the pods may reach the bucket without keys
        remedy = f"put access_key_id and secret_access_key in {where} (its JSON: {_S3_JSON})"
        pod_failed = any(k == "credentials" for k, _ in m.symptoms)
        severity = Severity.CRITICAL if pod_failed else Severity.WARNING
    else:
        remedy = (f"the object store refuses the access_key_id/secret_access_key in {where}: set the store's "
                  f"current key pair there (kubectl edit secret {name} -n {ns})")
        severity = Severity.CRITICAL
    ctx.explain(m, code=Code.STORAGE_CREDENTIALS_MISSING, subject=ref("v1", "Secret", ns, name), evidence=ev,
                remedy=remedy, explains=("credentials",), severity=severity)
