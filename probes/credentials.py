"""Which S3 credentials KServe would give an InferenceService's storage-initializer (pure).

This mirrors KServe's ``CredentialBuilder.CreateSecretVolumeAndEnv`` and ``s3.BuildSecretEnvs``
(``pkg/credentials``), so the storage probe tests exactly what the pod will get, and the
diagnosis can say *why* the pod gets nothing:

1. The credentials config is the ``credentials`` JSON of the live ``inferenceservice-config``
   ConfigMap. Its ``storageSecretNameAnnotation`` names the annotation that points at the
   storage secret: ``serving.kserve.io/storageSecretName`` in KServe's kustomize install,
   ``serving.kserve.io/secretName`` in its Helm chart. When the ConfigMap is given but has no
   such key, KServe looks at no annotation at all; when no ConfigMap is given we assume
   the kustomize default.
2. If the InferenceService carries that annotation, that secret and only that secret is
   used (a missing secret fails the pod; a secret without the expected key is skipped
   silently, and KServe does *not* fall back to the ServiceAccount).
3. Otherwise each secret listed in the ServiceAccount's ``.secrets`` is read; a missing one
   fails the pod; one without the configured secret-key name (``s3.s3SecretAccessKeyName``,
   default ``AWS_SECRET_ACCESS_KEY``) is skipped silently — the seed's
   ``mlpipeline-minio-artifact`` with ``accesskey``/``secretkey``. When several S3 secrets
   qualify, KServe merges their env vars in order, but its merge replaces plain values only:
   the key pair (``secretKeyRef``) stays the *first* secret's, the ``s3-*`` settings are the
   last one's that sets them (as KServe v0.20's pod webhook does; see
   tests/integration/test_corpus_real_kserve.py).
4. The S3 settings come from the chosen secret's annotations ``serving.kserve.io/s3-endpoint``,
   ``s3-usehttps``, ``s3-verifyssl``, ``s3-region``, falling back to the config's ``s3``
   defaults — only when a secret is used: with none, KServe sets no S3 settings at all. The
   endpoint URL is ``https://`` unless ``s3-usehttps`` is exactly ``"0"`` (or the endpoint
   carries its scheme). The ServiceAccount's own ``s3-*`` annotations are read by KServe only
   for IAM-role (IRSA) accounts (``eks.amazonaws.com/role-arn``): there they come first and a
   secret's settings replace them; on any other account they are reported as ignored — the
   seed set them and saw no effect.

Secrets arrive as raw API JSON (base64 ``data``, or ``stringData``). The daemon's World
hashes values (``sha256:...``): :func:`resolve` works on those too, because every problem and
every piece of evidence depends only on key names and annotations; then
``Resolution.credentials`` is None and ``values_available`` False. The probe resolves again
on real secrets to get values. Credential values never appear in a repr or in evidence.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

KSERVE_GROUP = "serving.kserve.io"
KUSTOMIZE_ANNOTATION = f"{KSERVE_GROUP}/storageSecretName"
HELM_ANNOTATION = f"{KSERVE_GROUP}/secretName"
KNOWN_SECRET_ANNOTATIONS = (KUSTOMIZE_ANNOTATION, HELM_ANNOTATION)
DEFAULT_ACCESS_KEY_ID_NAME = "AWS_ACCESS_KEY_ID"
DEFAULT_SECRET_ACCESS_KEY_NAME = "AWS_SECRET_ACCESS_KEY"
S3_ENDPOINT = f"{KSERVE_GROUP}/s3-endpoint"
S3_USE_HTTPS = f"{KSERVE_GROUP}/s3-usehttps"
S3_VERIFY_SSL = f"{KSERVE_GROUP}/s3-verifyssl"
S3_REGION = f"{KSERVE_GROUP}/s3-region"
S3_ANNOTATIONS = (S3_ENDPOINT, S3_USE_HTTPS, S3_VERIFY_SSL, S3_REGION)
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
HASH_PREFIX = "sha256:"

# Key names people put in MinIO secrets that KServe does not read (the seed's secret used
# the first pair: Kubeflow Pipelines' own artifact secret).
_LOOKALIKE_KEYS = frozenset(
    {
        "accesskey",
        "secretkey",
        "access_key",
        "secret_key",
        "accesskeyid",
        "secretaccesskey",
        "aws_access_key",
        "aws_secret_key",
    }
)


class CredentialProblem(StrEnum):
    SECRET_MISSING = "secret-missing"
    """The ServiceAccount lists a secret that does not exist."""
    WRONG_KEY_NAMES = "wrong-key-names"
    """The secret exists but lacks the configured key names (e.g. ``accesskey``/``secretkey``)."""
    ANNOTATION_NAMES_MISSING_SECRET = "annotation-names-missing-secret"
    """The storage-secret annotation names a secret that does not exist."""
    ANNOTATION_KEY_MISMATCH = "annotation-key-mismatch"
    """The InferenceService uses a storage-secret annotation KServe is not configured to read."""
    NO_SECRET_REFERENCED = "no-secret-referenced"
    """No annotation and no usable ServiceAccount secret: nothing names a secret."""


@dataclass(frozen=True)
class Credentials:
    """An S3 key pair. The repr masks both values."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)

    def __repr__(self) -> str:
        return "Credentials(access_key_id='***', secret_access_key='***')"

    __str__ = __repr__


@dataclass(frozen=True, kw_only=True)
class CredentialConfig:
    """The ``credentials`` section of ``inferenceservice-config``, with KServe's defaults."""

    storage_secret_name_annotation: str | None = KUSTOMIZE_ANNOTATION
    access_key_id_name: str = DEFAULT_ACCESS_KEY_ID_NAME
    secret_access_key_name: str = DEFAULT_SECRET_ACCESS_KEY_NAME
    s3_endpoint: str = ""
    s3_use_https: str = ""
    s3_verify_ssl: str = ""
    s3_region: str = ""
    source: str = "defaults (no inferenceservice-config given)"


@dataclass(frozen=True, kw_only=True)
class Resolution:
    """What KServe would mount, and if nothing usable, why."""

    credentials: Credentials | None
    secret_name: str | None
    annotation_key: str | None
    """The annotation KServe reads to find the storage secret (None: it reads none)."""
    endpoint: str | None
    """``host[:port]`` from ``s3-endpoint`` (or the config default); None: AWS's default."""
    use_https: bool
    verify_ssl: bool
    region: str | None
    problem: CredentialProblem | None
    evidence: tuple[str, ...] = ()
    key_names: tuple[str, ...] = ()
    """Key names of the chosen secret (names only, never values)."""
    values_available: bool = False
    """False when the secret values were hashes (or absent): diagnosis only, no probing."""

    @property
    def endpoint_url(self) -> str | None:
        if not self.endpoint:
            return None
        if "://" in self.endpoint:
            return self.endpoint
        return ("https://" if self.use_https else "http://") + self.endpoint


def _annotations(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    if not obj:
        return {}
    return (obj.get("metadata") or {}).get("annotations") or {}


def _name(obj: Mapping[str, Any] | None) -> str:
    if not obj:
        return "?"
    return str((obj.get("metadata") or {}).get("name", "?"))


def credential_config(configmap: Mapping[str, Any] | None) -> CredentialConfig:
    """Parse the ``inferenceservice-config`` ConfigMap (raw JSON) the way KServe does.

    Accepts the ConfigMap object, or its ``credentials`` section already parsed (a mapping
    with ``s3``/``storageSecretNameAnnotation`` keys). Bad JSON raises ``ValueError`` — the
    KServe controller fails to start on it too.
    """
    if configmap is None:
        return CredentialConfig()
    if "data" in configmap or "metadata" in configmap:
        raw = (configmap.get("data") or {}).get("credentials")
        if raw is None:
            section: Mapping[str, Any] = {}
        else:
            try:
                section = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValueError(f"inferenceservice-config credentials is not JSON: {exc.msg}") from exc
        source = f"ConfigMap {_name(configmap)}"
    else:
        section = configmap
        source = "credentials config"
    s3: Mapping[str, Any] = section.get("s3") or {}
    return CredentialConfig(
        storage_secret_name_annotation=section.get("storageSecretNameAnnotation") or None,
        access_key_id_name=s3.get("s3AccessKeyIDName") or DEFAULT_ACCESS_KEY_ID_NAME,
        secret_access_key_name=s3.get("s3SecretAccessKeyName") or DEFAULT_SECRET_ACCESS_KEY_NAME,
        s3_endpoint=str(s3.get("s3Endpoint") or ""),
        s3_use_https=str(s3.get("s3UseHttps") or ""),
        s3_verify_ssl=str(s3.get("s3VerifySSL") or ""),
        s3_region=str(s3.get("s3Region") or ""),
        source=source,
    )


def _secret_items(secret: Mapping[str, Any]) -> dict[str, str | None]:
    """Key → decoded value (None when hashed or not decodable). Keys only are fine."""
    out: dict[str, str | None] = {}
    for key, value in (secret.get("data") or {}).items():
        if not isinstance(value, str) or value.startswith(HASH_PREFIX):
            out[key] = None
            continue
        try:
            out[key] = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, ValueError):
            out[key] = None
    for key, value in (secret.get("stringData") or {}).items():
        out[key] = value if isinstance(value, str) and not value.startswith(HASH_PREFIX) else None
    return out


def _use_https(value: str) -> bool:
    """KServe's ``s3-usehttps``: exactly ``"0"`` means plain HTTP; anything else (``"false"``
    too) keeps ``https://`` in the endpoint URL it gives the storage-initializer."""
    return value.strip() != "0"


def _truthy(value: str, *, default: bool) -> bool:
    """KServe's ``s3-usehttps``/``s3-verifyssl``: ``"0"`` (or false) turns it off."""
    if value == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


@dataclass
class _Builder:
    config: CredentialConfig
    evidence: list[str] = field(default_factory=list)

    def values(self, annotations: Mapping[str, str]) -> dict[str, Any]:
        """The S3 settings one source gives the storage-initializer, as KServe's
        ``BuildS3EnvVars`` does: an annotation (even an empty one) else the config's default;
        only what comes out non-empty is set. The endpoint carries its scheme decision with it:
        an ``http(s)://`` prefix decides, else ``s3-usehttps`` is ``"0"`` for plain HTTP."""
        out: dict[str, Any] = {}
        endpoint = str(annotations.get(S3_ENDPOINT, self.config.s3_endpoint)).strip()
        if endpoint:
            out["endpoint"] = endpoint
            if endpoint.lower().startswith(("http://", "https://")):
                out["use_https"] = endpoint.lower().startswith("https://")
            else:
                out["use_https"] = _use_https(annotations.get(S3_USE_HTTPS, self.config.s3_use_https))
        verify = str(annotations.get(S3_VERIFY_SSL, self.config.s3_verify_ssl))
        if verify:
            out["verify_ssl"] = _truthy(verify, default=True)
        region = str(annotations.get(S3_REGION, self.config.s3_region))
        if region:
            out["region"] = region
        return out

    def settings(self, sources: Sequence[Mapping[str, str]]) -> dict[str, Any]:
        """The settings from ``sources`` (annotation sets) in KServe's order: the IRSA
        ServiceAccount's first, then each S3 secret's; a later one's values replace an earlier
        one's (KServe's env merge). No source: KServe sets nothing (AWS's defaults apply)."""
        merged: dict[str, Any] = {}
        for ann in sources:
            merged.update(self.values(ann))
        return {
            "endpoint": merged.get("endpoint"),
            "use_https": merged.get("use_https", True),
            "verify_ssl": merged.get("verify_ssl", True),
            "region": merged.get("region"),
        }

    def usable(self, name: str, secret: Mapping[str, Any]) -> bool:
        """KServe's test: the secret holds the configured secret-key name."""
        return self.config.secret_access_key_name in _secret_items(secret)

    def describe_keys(self, name: str, secret: Mapping[str, Any]) -> str:
        keys = sorted(_secret_items(secret))
        lookalikes = [k for k in keys if k.lower() in _LOOKALIKE_KEYS]
        text = (
            f"secret {name} has keys {keys or '(none)'}, KServe reads "
            f"{self.config.access_key_id_name}/{self.config.secret_access_key_name}"
        )
        if lookalikes:
            text += f" ({'/'.join(lookalikes)} are not read)"
        return text


def resolve(
    *,
    isvc: Mapping[str, Any],
    service_account: Mapping[str, Any] | None,
    secrets: Mapping[str, Mapping[str, Any]],
    kserve_config: Mapping[str, Any] | None,
) -> Resolution:
    """Resolve the storage credentials of ``isvc`` as KServe would (see the module doc).

    ``secrets`` maps secret name → raw Secret JSON in the ISVC's namespace (values may be
    base64, hashed, or absent). ``kserve_config`` is the ``inferenceservice-config``
    ConfigMap (or its parsed ``credentials`` section); None assumes KServe's defaults.
    """
    config = credential_config(kserve_config)
    b = _Builder(config)
    annotation_key = config.storage_secret_name_annotation
    isvc_ann = _annotations(isvc)
    sa_name = _name(service_account) if service_account else None
    sa_ann = _annotations(service_account)
    # An IAM-role (IRSA) ServiceAccount: KServe gives the storage-initializer its s3-*
    # annotations first, whatever else it mounts (BuildServiceAccountEnvs).
    irsa = IRSA_ANNOTATION in sa_ann
    if irsa:
        b.evidence.append(f"ServiceAccount {sa_name} has {IRSA_ANNOTATION}: KServe reads its s3-* "
                          "annotations")

    def done(
        *,
        secret_name: str | None,
        secret: Mapping[str, Any] | None,
        problem: CredentialProblem | None,
        also: Sequence[Mapping[str, Any]] = (),
    ) -> Resolution:
        """``also``: further S3 secrets whose s3-* settings KServe merges over ``secret``'s."""
        used = [_annotations(x) for x in (secret, *also)] if secret is not None and problem is None else []
        creds: Credentials | None = None
        values_available = False
        key_names: tuple[str, ...] = ()
        if secret is not None:
            items = _secret_items(secret)
            key_names = tuple(sorted(items))
            if problem is None:
                access = items.get(config.access_key_id_name)
                secret_key = items.get(config.secret_access_key_name)
                if access is not None and secret_key is not None:
                    creds = Credentials(access, secret_key)
                    values_available = True
                else:
                    b.evidence.append(f"secret {secret_name}: values not available here (hashed or absent)")
        return Resolution(
            credentials=creds,
            secret_name=secret_name,
            annotation_key=annotation_key,
            problem=problem,
            evidence=tuple(b.evidence),
            key_names=key_names,
            values_available=values_available,
            **b.settings([*([sa_ann] if irsa else []), *used]),
        )

    def check_keys(name: str, secret: Mapping[str, Any]) -> CredentialProblem | None:
        items = _secret_items(secret)
        if config.secret_access_key_name not in items or config.access_key_id_name not in items:
            b.evidence.append(b.describe_keys(name, secret))
            return CredentialProblem.WRONG_KEY_NAMES
        return None

    # 1. The annotation KServe is configured to read.
    if annotation_key is None:
        b.evidence.append(f"{config.source} sets no storageSecretNameAnnotation: KServe reads no annotation")
    if annotation_key is not None and annotation_key in isvc_ann:
        name = isvc_ann[annotation_key]
        b.evidence.append(f"InferenceService annotation {annotation_key}={name}")
        secret = secrets.get(name)
        if secret is None:
            b.evidence.append(f"secret {name} named by {annotation_key} does not exist")
            return done(
                secret_name=name, secret=None, problem=CredentialProblem.ANNOTATION_NAMES_MISSING_SECRET
            )
        problem = check_keys(name, secret)
        if problem is not None:
            b.evidence.append(
                f"KServe skips secret {name} silently and does not fall back to the ServiceAccount"
            )
        return done(secret_name=name, secret=secret, problem=problem)

    # An annotation KServe will not read (the kustomize/Helm naming split).
    ignored = [k for k in KNOWN_SECRET_ANNOTATIONS if k in isvc_ann and k != annotation_key]
    for key in ignored:
        b.evidence.append(
            f"InferenceService annotation {key}={isvc_ann[key]} is ignored: {config.source} "
            f"says the annotation is {annotation_key or '(none)'}"
        )
    sa_ignored = sorted(
        k for k in sa_ann if k in KNOWN_SECRET_ANNOTATIONS or (k in S3_ANNOTATIONS and not irsa))
    if sa_ignored:
        b.evidence.append(
            f"ServiceAccount {sa_name} annotations {', '.join(sa_ignored)} are not read by KServe "
            "(it reads s3-* annotations on the secret)"
        )
    mismatch = CredentialProblem.ANNOTATION_KEY_MISMATCH if ignored else None

    # 2. The ServiceAccount's .secrets.
    if service_account is None:
        b.evidence.append("ServiceAccount not found: KServe mounts no credentials")
        return done(secret_name=None, secret=None, problem=mismatch or CredentialProblem.NO_SECRET_REFERENCED)
    refs: Sequence[Mapping[str, Any]] = service_account.get("secrets") or []
    chosen: tuple[str, Mapping[str, Any]] | None = None
    later: list[Mapping[str, Any]] = []
    skipped: list[tuple[str, Mapping[str, Any]]] = []
    for ref in refs:
        name = str(ref.get("name", ""))
        secret = secrets.get(name)
        if secret is None:
            b.evidence.append(f"ServiceAccount {sa_name} lists secret {name}, which does not exist")
            return done(secret_name=name, secret=None, problem=mismatch or CredentialProblem.SECRET_MISSING)
        if b.usable(name, secret):
            if chosen is None:
                chosen = (name, secret)
            else:
                # KServe merges each S3 secret's env over the previous one's, but its merge
                # replaces plain values only: the key pair (secretKeyRef) stays the first's.
                b.evidence.append(
                    f"secret {name} also holds {config.secret_access_key_name}: KServe keeps the key pair of "
                    f"{chosen[0]} and takes {name}'s s3-* settings"
                )
                later.append(secret)
        else:
            skipped.append((name, secret))
    if chosen is not None:
        name, secret = chosen
        b.evidence.append(f"ServiceAccount {sa_name} secret {name} holds {config.secret_access_key_name}")
        problem = check_keys(name, secret)
        return done(secret_name=name, secret=secret, problem=problem, also=later)
    if mismatch is not None:
        return done(secret_name=None, secret=None, problem=mismatch)
    if skipped:
        for name, secret in skipped:
            b.evidence.append(b.describe_keys(name, secret) + "; KServe skips it silently")
        return done(secret_name=skipped[0][0], secret=None, problem=CredentialProblem.WRONG_KEY_NAMES)
    b.evidence.append(
        f"no {annotation_key or 'storage-secret'} annotation on the InferenceService and "
        f"ServiceAccount {sa_name} lists no secrets"
    )
    return done(secret_name=None, secret=None, problem=CredentialProblem.NO_SECRET_REFERENCED)
