"""Where the model is stored, judged by the scheme of its ``storageUri``.

* ``s3://`` — credentials as KServe resolves them (:mod:`.credentials`), and the store's
  endpoint for the mesh checks (:mod:`.store`);
* ``gs://`` — a secret of the ServiceAccount holding the GCS key file KServe looks for
  (``credentials.gcs.gcsCredentialFileName`` of ``inferenceservice-config``, default
  ``gcloud-application-credentials.json``), or GKE workload identity. Public buckets need
  neither, so finding none is only "not checked", never a failure by itself;
* ``http://``/``https://`` — nothing to check (no credentials are involved);
* ``pvc://NAME/path`` — the claim exists in the model's namespace and is Bound (``pvc-not-bound``;
  a Pending claim may be waiting for its first consumer, so that is a warning);
* ``hf://`` and any other scheme — "not checked", at info level.

A model with KServe's storage spec (``storage: {key, path, parameters}``) is judged by
:mod:`.storage_spec` instead, whatever its ``storageUri``: KServe then reads the
``storage-config`` Secret, not the ServiceAccount's secrets.
"""

from __future__ import annotations

import json
from typing import Any

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.credentials import s3_resolution, storage_credentials, workload_identity
from daemon.core.diagnosis.fields import meta, ref
from daemon.core.diagnosis.model import Model
from daemon.core.diagnosis.storage_spec import storage_spec
from daemon.core.findings import Code, Severity
from probes.credentials import Resolution

GCS_DEFAULT_KEY = "gcloud-application-credentials.json"


def _gcs_key_name(ctx: Pass) -> str:
    raw = ((ctx.configmap or {}).get("data") or {}).get("credentials")
    try:
        doc = json.loads(raw) if raw else {}
    except (json.JSONDecodeError, TypeError):
        doc = {}
    gcs = doc.get("gcs") if isinstance(doc, dict) else None
    return str((gcs or {}).get("gcsCredentialFileName") or GCS_DEFAULT_KEY)


def _gcs(ctx: Pass, m: Model) -> None:
    ns = m.cfg.namespace
    if workload_identity(ctx, m) is not None:
        return
    if not ctx.secrets_visible(ns):
        ctx.not_checked(m, what="GCS credentials", why=f"no access to secrets in {ns}")
        return
    key = _gcs_key_name(ctx)
    sa = ctx.world.get("ServiceAccount", ns, m.sa_name) or ctx.desired.get(("ServiceAccount", ns, m.sa_name))
    raw_refs: Any = (sa or {}).get("secrets") or []
    refs: list[Any] = list(raw_refs)
    for s in refs:
        secret = ctx.world.get("Secret", ns, str(s.get("name")))
        if secret is not None and key in (secret.get("data") or {}):
            return
    ctx.not_checked(
        m,
        what=f"GCS access to {m.spec.storage_uri}",
        why=f"ServiceAccount {m.sa_name} lists no secret with {key} and has no workload identity; "
        "fine for a public bucket",
        remedy=f"for a private bucket: add a secret holding {key} to ServiceAccount {ns}/{m.sa_name}, "
        "or annotate it with iam.gke.io/gcp-service-account",
    )


def _pvc(ctx: Pass, m: Model) -> None:
    ns = m.cfg.namespace
    uri = m.spec.storage_uri or ""
    name = uri.split("://", 1)[1].split("/", 1)[0]
    pvc = ctx.world.get("PersistentVolumeClaim", ns, name)
    subject = ref("v1", "PersistentVolumeClaim", ns, name)
    if pvc is None and not ctx.world.list("PersistentVolumeClaim"):
        # No claim visible anywhere: the kind may not be watched here (RBAC): do not guess.
        ctx.not_checked(
            m, what=f"PersistentVolumeClaim {ns}/{name}", why="no PersistentVolumeClaims are visible"
        )
        return
    if pvc is None:
        ctx.explain(
            m,
            code=Code.PVC_NOT_BOUND,
            subject=subject,
            evidence=[f"storageUri {uri}: PersistentVolumeClaim {ns}/{name} does not exist"],
            remedy=f"create the claim {name} in {ns} holding the model, or fix the storageUri of {m.cfg.key}",
            explains=("storage",),
        )
        return
    phase = str((pvc.get("status") or {}).get("phase") or "Pending")
    if phase == "Bound":
        return
    ctx.explain(
        m,
        code=Code.PVC_NOT_BOUND,
        subject=subject,
        evidence=[f"storageUri {uri}: PersistentVolumeClaim {ns}/{meta(pvc).get('name')} is {phase}"],
        remedy=f"kubectl describe pvc {name} -n {ns} (no matching PersistentVolume or StorageClass?)",
        explains=("storage",),
        # Pending with a WaitForFirstConsumer class is normal until a pod uses it.
        severity=Severity.WARNING if phase == "Pending" else Severity.CRITICAL,
    )


def storage_source(ctx: Pass, m: Model) -> Resolution | None:
    """Judge the model's storage by scheme; the S3 resolution when it is on S3 (for the mesh checks)."""
    if m.spec.storage is not None and m.spec.scheme != "pvc":  # a claim is mounted: no storage-config
        return storage_spec(ctx, m)
    uri = m.spec.storage_uri
    if not uri:
        return None
    scheme = m.spec.scheme
    if scheme == "s3":
        res = s3_resolution(ctx, m)
        storage_credentials(ctx, m, res)
        return res
    if scheme == "gs":
        _gcs(ctx, m)
    elif scheme == "pvc":
        _pvc(ctx, m)
    elif scheme in ("http", "https"):
        pass
    elif scheme == "hf":
        ctx.not_checked(
            m, what=f"storage {uri}", why="the Hugging Face hub's token and reachability are not checked"
        )
    else:
        ctx.not_checked(m, what=f"storage {uri}", why=f"scheme {scheme or '(none)'} is not judged here")
    return None
