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

5. A model with KServe's *storage spec* (``storage: {key, path, parameters}``) is resolved
   instead against the ``storage-config`` Secret (:func:`resolve_storage_spec`, see its comment
   block below): KServe then does not read the ServiceAccount's secrets at all, and
   :func:`resolve` returns that resolution's S3 side.

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
STORAGE_SPEC_SECRET = "storage-config"
"""KServe's ``constants.DefaultStorageSpecSecret``."""

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
    storage_spec_secret_name: str = "storage-config"
    """``storageSpecSecretName``: the Secret a storage spec's keys are looked up in."""
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
    storage_key: str | None = None
    """A storage spec's key in ``secret_name`` (its JSON is the credential); None: no storage spec."""

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
        storage_spec_secret_name=str(section.get("storageSpecSecretName") or STORAGE_SPEC_SECRET),
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
    spec = resolve_storage_spec(isvc=isvc, secrets=secrets, kserve_config=kserve_config)
    if spec is not None:
        # A storage spec: KServe reads its storage-config key instead of the ServiceAccount's
        # secrets (which it then does not read at all).
        return spec.s3(annotation_key=config.storage_secret_name_annotation)
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


# -- KServe's storage spec ---------------------------------------------------------------------
#
# ``spec.predictor.model.storage`` (or ``spec.predictor.<framework>.storage``): ``{key, path,
# schemaPath, parameters}``. KServe v0.20 resolves it in three places, mirrored by
# :func:`resolve_storage_spec`:
#
# * its controller (``components/component.go`` ``addStorageSpecAnnotations``) copies the spec
#   onto the predictor's pod template as internal annotations and makes ``path`` the source URI
#   ``<scheme-placeholder>://<path>`` — a ``storageUri`` beside a ``path`` is its reconcile error
#   "must provide only one of storageUri and storage.path" (``predictor.go``
#   ``addStorageInitializerAnnotations``);
# * its pod webhook (``storage_initializer_injector.go`` ``InjectStorageInitializer`` →
#   ``CommonStorageInitialization``) then calls ``CreateStorageSpecSecretEnvs``
#   (``pkg/credentials/service_account_credentials.go``) *instead of* reading the
#   ServiceAccount's secrets: the Secret is ``credentials.storageSpecSecretName`` of
#   ``inferenceservice-config`` (default ``storage-config``), or the one the
#   ``storageSecretNameAnnotation`` annotation names; the key is ``key``, else ``default``, or
#   ``default_<type>`` when the parameters name a type. A named key that is absent, or a Secret
#   that cannot be read while a key is named, fails the webhook, and so the pod's creation; the
#   default key may be absent. The type is the ``type`` parameter, else the key's JSON ``type``
#   (one of s3, hdfs, webhdfs); none at all fails. For a ``path``, an s3 URI needs a bucket (the
#   parameter, else the JSON's — read only when the type is not a parameter). The
#   storage-initializer gets the key's JSON by ``secretKeyRef`` (``STORAGE_CONFIG``) and the
#   parameters as ``STORAGE_OVERRIDE_CONFIG``;
# * the storage-initializer (``python/storage/kserve_storage/kserve_storage.py``
#   ``_update_with_storage_spec``) merges the parameters over the JSON and, for type s3, sets
#   ``AWS_ENDPOINT_URL``/``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_DEFAULT_REGION``/
#   ``S3_VERIFY_SSL`` from ``endpoint_url``/``access_key_id``/``secret_access_key``/``region``/
#   ``verify_ssl``.
#
# On hashed secrets (the daemon's World) the JSON cannot be read: the key names decide what they
# can (the Secret, the key), the parameters the rest, and what only the JSON holds stays unknown
# (``values_read`` False) — never guessed.

STORAGE_URI_PLACEHOLDER = "<scheme-placeholder>"
"""KServe's ``credentials.UriSchemePlaceholder``."""
DEFAULT_STORAGE_KEY = "default"
STORAGE_SPEC_TYPES = ("s3", "hdfs", "webhdfs")
_BUCKET_TYPES = ("s3",)
# Parameters and JSON fields that are no credential: safe to name with their value in evidence.
_PLAIN_FIELDS = ("type", "bucket", "endpoint_url", "region", "verify_ssl", "anonymous")


@dataclass(frozen=True, kw_only=True)
class StorageSpec:
    """An InferenceService's ``storage`` (its parameters may hold credentials: never in a repr)."""

    key: str | None
    path: str | None
    schema_path: str | None
    parameters: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def key_given(self) -> bool:
        """KServe treats an empty ``key`` as none (its annotation is then empty)."""
        return bool(self.key)

    def plain_parameters(self) -> dict[str, str]:
        """The parameters that are no credential (type, bucket, endpoint…), for evidence."""
        return {k: v for k, v in self.parameters.items() if k in _PLAIN_FIELDS}


# The older predictor keys, each the modelFormat name KServe's webhook converts it to (one list
# for this module and :mod:`daemon.core.diagnosis.spec`).
LEGACY_FRAMEWORKS = (
    "sklearn",
    "xgboost",
    "lightgbm",
    "tensorflow",
    "pytorch",
    "onnx",
    "triton",
    "huggingface",
    "paddle",
    "pmml",
)


def _predictor_implementation(isvc: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``spec.predictor.model``, else the older framework key (as :mod:`daemon.core.diagnosis.spec`)."""
    pred = ((isvc or {}).get("spec") or {}).get("predictor") or {}
    if not isinstance(pred, Mapping):
        return {}
    for key in ("model", *LEGACY_FRAMEWORKS):
        impl = pred.get(key)
        if isinstance(impl, Mapping) and impl:
            return impl
    return {}


def storage_spec_of(isvc: Mapping[str, Any] | None) -> StorageSpec | None:
    """The predictor's storage spec (None: it has none)."""
    raw = _predictor_implementation(isvc).get("storage")
    if not isinstance(raw, Mapping):
        return None
    params = raw.get("parameters")
    return StorageSpec(
        key=str(raw["key"]) if raw.get("key") is not None else None,
        path=str(raw["path"]) if raw.get("path") is not None else None,
        schema_path=str(raw["schemaPath"]) if raw.get("schemaPath") is not None else None,
        parameters={str(k): str(v) for k, v in params.items()} if isinstance(params, Mapping) else {},
    )


class StorageSpecProblem(StrEnum):
    URI_AND_PATH = "storage-uri-and-path"
    """KServe's controller: a storageUri beside storage.path."""
    SECRET_MISSING = "storage-config-missing"
    """The pod webhook: a key is named but its Secret does not exist."""
    KEY_MISSING = "storage-key-missing"
    """The pod webhook: the named key is not in the Secret."""
    INVALID_JSON = "storage-config-invalid"
    """The pod webhook: the key's value is not a JSON object of strings."""
    TYPE_UNSUPPORTED = "storage-type-unsupported"
    """The pod webhook: the JSON's type is not s3, hdfs or webhdfs."""
    TYPE_UNKNOWN = "storage-type-unknown"
    """The pod webhook: neither a type parameter nor a JSON to read one from."""
    BUCKET_MISSING = "storage-bucket-missing"
    """The pod webhook: an s3 path without a bucket."""
    NO_CONFIG = "no-storage-config"
    """Not an error to KServe: no key's JSON reaches the storage-initializer (no credentials)."""


@dataclass(frozen=True, kw_only=True)
class StorageSpecResolution:
    """What KServe makes of a storage spec (see the comment above :data:`STORAGE_URI_PLACEHOLDER`)."""

    spec: StorageSpec
    secret_name: str
    """The Secret KServe looks the key up in."""
    secret_exists: bool
    key: str | None
    """The key KServe reads (named, or its default); None: no source URI, nothing is read."""
    entry: bool
    """The key is in the Secret: the storage-initializer gets its JSON (``STORAGE_CONFIG``)."""
    values_read: bool
    """The key's JSON was read (a real Secret); False on hashed values: only key names known."""
    type: str | None
    """The storage type KServe settles on; None: undetermined (see ``problem``) or unknown."""
    uri: str | None
    """What the storage-initializer downloads; None: no source, or not known without the JSON."""
    problem: StorageSpecProblem | None
    kserve_error: str | None
    """KServe's own error text when it refuses (controller or pod webhook); None: it does not."""
    evidence: tuple[str, ...] = ()
    endpoint_url: str | None = None
    region: str | None = None
    verify_ssl: bool = True
    credentials: Credentials | None = None

    @property
    def refused(self) -> bool:
        """KServe refuses: the predictor (controller) or its pod (webhook) is never created."""
        return self.kserve_error is not None

    @property
    def type_known(self) -> bool:
        return self.type is not None

    def s3(self, *, annotation_key: str | None = None) -> Resolution:
        """The S3 side as a :class:`Resolution` (what the storage probe and the mesh checks take)."""
        endpoint = self.endpoint_url
        # Hashed values with the key present: the credentials are unknown here, not missing.
        missing = self.credentials is None and (self.values_read or not self.entry)
        problem = CredentialProblem.NO_SECRET_REFERENCED if missing else None
        return Resolution(
            credentials=self.credentials,
            secret_name=self.secret_name if self.entry else None,
            annotation_key=annotation_key,
            endpoint=endpoint,
            use_https=not (endpoint or "").lower().startswith("http://"),
            verify_ssl=self.verify_ssl,
            region=self.region,
            problem=problem,
            evidence=self.evidence,
            values_available=self.credentials is not None,
            storage_key=self.key if self.entry else None,
        )


def storage_spec_secret(
    isvc: Mapping[str, Any] | None, kserve_config: Mapping[str, Any] | None
) -> str | None:
    """The Secret ``isvc``'s storage spec is resolved against (None: it has no storage spec):
    what a caller must read, besides the ServiceAccount's secrets, before :func:`resolve`."""
    if storage_spec_of(isvc) is None:
        return None
    config = credential_config(kserve_config)
    ann = _annotations(isvc)
    if config.storage_secret_name_annotation and ann.get(config.storage_secret_name_annotation):
        return str(ann[config.storage_secret_name_annotation])
    return config.storage_spec_secret_name


def _storage_json(value: str | None) -> tuple[dict[str, str] | None, str | None]:
    """The key's JSON as KServe's ``map[string]string``; or None and why it is not one."""
    if value is None:
        return None, None
    try:
        doc = json.loads(value)
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc.msg})"
    if not isinstance(doc, dict):
        return None, "not a JSON object"
    wrong = sorted(str(k) for k, v in doc.items() if not isinstance(v, str))
    if wrong:
        return None, f"not all strings ({', '.join(wrong)})"
    return {str(k): str(v) for k, v in doc.items()}, None


def resolve_storage_spec(
    *,
    isvc: Mapping[str, Any],
    secrets: Mapping[str, Mapping[str, Any]],
    kserve_config: Mapping[str, Any] | None,
) -> StorageSpecResolution | None:
    """Resolve ``isvc``'s storage spec as KServe v0.20 would (None: it has none).

    ``secrets`` maps name → raw Secret JSON in the InferenceService's namespace (values base64,
    hashed, or absent); ``kserve_config`` as for :func:`resolve`. Pure; never raises on bad
    input other than the ConfigMap's unreadable credentials JSON (``ValueError``).
    """
    spec = storage_spec_of(isvc)
    if spec is None:
        return None
    config = credential_config(kserve_config)
    ev: list[str] = []
    params = dict(spec.parameters)
    storage_uri = _predictor_implementation(isvc).get("storageUri")
    storage_uri = str(storage_uri) if storage_uri else None

    name = storage_spec_secret(isvc, kserve_config) or config.storage_spec_secret_name
    if name != config.storage_spec_secret_name:
        ev.append(f"InferenceService annotation {config.storage_secret_name_annotation}={name} names the "
                  "storage-config Secret")
    plain = spec.plain_parameters()
    ev.append(
        f"storage spec: key {spec.key or '(none)'}, path {spec.path if spec.path is not None else '(none)'}"
        + (f", parameters {plain}" if plain else "")
        + (f" (and {len(params) - len(plain)} other)" if len(params) > len(plain) else "")
    )

    def result(**kw: Any) -> StorageSpecResolution:
        base: dict[str, Any] = {"spec": spec, "secret_name": name, "secret_exists": name in secrets,
                                "key": None, "entry": False, "values_read": False, "type": None,
                                "uri": None, "problem": None, "kserve_error": None}
        base.update(kw)
        return StorageSpecResolution(evidence=tuple(ev), **base)

    # The controller: the source URI.
    if spec.path is not None and storage_uri is not None:
        msg = "must provide only one of storageUri and storage.path"
        ev.append(f"storageUri {storage_uri} beside storage.path {spec.path}")
        return result(problem=StorageSpecProblem.URI_AND_PATH, kserve_error=msg)
    if spec.path is not None:
        source = f"{STORAGE_URI_PLACEHOLDER}://{spec.path.removeprefix('/')}"
    elif storage_uri is not None:
        source = storage_uri
    else:
        ev.append("neither a path nor a storageUri: KServe adds no storage-initializer")
        return result()
    if source.startswith("pvc://"):
        ev.append("a pvc:// source is mounted, not downloaded: KServe reads no storage-config")
        return result(uri=source)

    # The pod webhook: CreateStorageSpecSecretEnvs.
    stype, bucket = params.get("type", ""), params.get("bucket", "")
    secret = secrets.get(name)
    key = spec.key or ""
    items: dict[str, str | None] = _secret_items(secret) if secret is not None else {}
    if secret is None:
        if spec.key_given:
            msg = f'can\'t read storage secret {name}: secrets "{name}" not found'
            ev.append(f"Secret {name} does not exist in the InferenceService's namespace")
            return result(key=key, problem=StorageSpecProblem.SECRET_MISSING, kserve_error=msg)
        ev.append(f"Secret {name} does not exist (no key named: KServe goes on without it)")
    elif spec.key_given:
        if key not in items:
            msg = f"specified storage key {key} not found in storage secret {name}"
            ev.append(f"Secret {name} has keys {sorted(items) or '(none)'}, not {key}")
            return result(key=key, problem=StorageSpecProblem.KEY_MISSING, kserve_error=msg)
    else:
        key = DEFAULT_STORAGE_KEY if not stype else f"{DEFAULT_STORAGE_KEY}_{stype}"
        ev.append(f"no key named: KServe reads the default key {key} of Secret {name}"
                  + (f" (default_<type>: the type parameter is {stype})" if stype else ""))
        if key not in items:
            ev.append(f"Secret {name} has no key {key} (keys {sorted(items) or '(none)'}): the "
                      "storage-initializer gets no STORAGE_CONFIG")
    entry = key in items
    value = items.get(key) if entry else None
    doc: dict[str, str] | None = None
    values_read = entry and value is not None
    type_unknown = False
    if entry:
        ev.append(f"Secret {name} key {key} → STORAGE_CONFIG of the storage-initializer")
        if not stype:
            if value is None:
                type_unknown = True  # hashed: the type is inside the value
                ev.append(f"the storage type is the JSON's in key {key} (its value is not read here)")
            else:
                doc, why = _storage_json(value)
                if doc is None:
                    msg = f"invalid json encountered in key {key} of storage secret {name}"
                    ev.append(f"key {key} of Secret {name} is {why}")
                    return result(key=key, entry=True, values_read=True,
                                  problem=StorageSpecProblem.INVALID_JSON, kserve_error=msg)
                if "type" in doc:
                    stype = doc["type"]
                    if stype not in STORAGE_SPEC_TYPES:
                        msg = (f"storage type must be one of [{', '.join(STORAGE_SPEC_TYPES)}]. storage type "
                               f"[{stype}] is not supported")
                        ev.append(f"key {key} of Secret {name} says type {stype}")
                        return result(key=key, entry=True, values_read=True,
                                      problem=StorageSpecProblem.TYPE_UNSUPPORTED, kserve_error=msg)
                if not bucket and doc.get("bucket"):
                    bucket = doc["bucket"]
        elif value is not None:
            doc, _why = _storage_json(value)  # read by the storage-initializer only (KServe skips it)
    if not stype and not type_unknown:
        msg = "unable to determine storage type"
        ev.append("no type parameter, and no key's JSON to read one from")
        return result(key=key if entry else None, entry=entry, values_read=values_read,
                      problem=StorageSpecProblem.TYPE_UNKNOWN, kserve_error=msg)

    uri: str | None = source
    placeholder = f"{STORAGE_URI_PLACEHOLDER}://"
    if source.startswith(placeholder):
        path = source[len(placeholder):]
        if type_unknown:
            uri = None
        elif stype in _BUCKET_TYPES:
            if not bucket:
                msg = f"format [{stype}] requires a bucket but one wasn't found in storage data or parameters"
                ev.append("no bucket parameter"
                          + (" (with the type a parameter, KServe reads no bucket from the secret)"
                             if entry and params.get("type") else ""))
                return result(key=key if entry else None, entry=entry, values_read=values_read, type=stype,
                              problem=StorageSpecProblem.BUCKET_MISSING, kserve_error=msg)
            uri = f"{stype}://{bucket}/{path}"
        else:
            uri = f"{stype}://{path}"
    if uri is not None:
        ev.append(f"the storage-initializer downloads {uri}")

    # The storage-initializer: the parameters merged over the JSON; type s3 sets the AWS_* env.
    merged = {**(doc or {}), **params}
    s3: dict[str, Any] = {}
    if merged.get("type") == "s3" or (not values_read and stype == "s3"):
        creds = None
        if merged.get("access_key_id") and merged.get("secret_access_key"):
            creds = Credentials(merged["access_key_id"], merged["secret_access_key"])
        verify = merged.get("verify_ssl", "")
        s3 = {"endpoint_url": merged.get("endpoint_url") or None, "region": merged.get("region") or None,
              "verify_ssl": verify.lower() not in ("0", "false") if verify else True, "credentials": creds}
    problem = None
    if not entry and not merged.get("secret_access_key"):
        problem = StorageSpecProblem.NO_CONFIG
    return result(key=key if entry else None, entry=entry, values_read=values_read,
                  type=None if type_unknown else stype, uri=uri, problem=problem, **s3)
