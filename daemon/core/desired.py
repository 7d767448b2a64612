"""Desired state: the manifests the daemon keeps applied, and the secret it derives.

``config/desired/*.yaml`` (the demo's copy: ``sandbox/demo/desired``) holds plain
manifests plus one kind of our own, ``DerivedSecret`` (``warden.kserve.io/v1alpha1``): "make
secret X from secret Y, renaming keys, with these annotations". No credential value ever
lives in config: a ``Secret`` carrying ``data``/``stringData`` (or a container ``env`` entry
with a literal value under a credential-like name) is rejected at load time.

:meth:`DesiredState.manifests_for` turns the declaration into concrete objects *for a given
live World*:

* the derived Secret is rendered with the source secret's values as the World holds them,
  i.e. **hashed** (``sha256:...``), so :func:`daemon.core.diff.diff` compares by hash and nothing
  here ever holds a credential; only the effects layer copies real values, via the API;
* the InferenceService's storage-secret annotation is written under the key the live KServe
  ``inferenceservice-config`` ConfigMap configures (``credentials.storageSecretNameAnnotation``):
  ``serving.kserve.io/storageSecretName`` for kustomize installs, ``serving.kserve.io/secretName``
  for Helm ones. This is the seed's trap: the wrong key is silently ignored by KServe.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import yaml

from daemon.core.objects import ObjectRef
from daemon.core.world import World, secret_value_hash
from probes.credentials import CredentialConfig, credential_config

DERIVED_API_VERSION = "warden.kserve.io/v1alpha1"
DERIVED_KIND = "DerivedSecret"
DERIVED_FROM_ANNOTATION = "warden.kserve.io/derived-from"
"""Set on the rendered Secret: ``namespace/name`` of its source (tells APPLY from DERIVE)."""
MANAGED_BY_LABEL = ("app.kubernetes.io/managed-by", "kserve-warden")

STORAGE_SECRET_ANNOTATION_DEFAULT = "serving.kserve.io/storageSecretName"
STORAGE_SECRET_ANNOTATION_HELM = "serving.kserve.io/secretName"
STORAGE_SECRET_ANNOTATIONS = (STORAGE_SECRET_ANNOTATION_DEFAULT, STORAGE_SECRET_ANNOTATION_HELM)
S3_ACCESS_KEY_DEFAULT = "AWS_ACCESS_KEY_ID"
S3_SECRET_KEY_DEFAULT = "AWS_SECRET_ACCESS_KEY"

# (apiVersion, kind) the desired state may hold. Anything else is a typo or out of scope.
KNOWN_KINDS: frozenset[tuple[str, str]] = frozenset({
    ("v1", "ServiceAccount"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("serving.kserve.io/v1alpha1", "ServingRuntime"),
    ("serving.kserve.io/v1beta1", "InferenceService"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("security.istio.io/v1beta1", "AuthorizationPolicy"),
    (DERIVED_API_VERSION, DERIVED_KIND),
})
_CREDENTIAL_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL)", re.I)


class DesiredError(Exception):
    """Invalid desired state: one message per problem, each naming file and document."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid desired state:\n" + "\n".join(f"  - {p}" for p in self.problems))


@dataclass(frozen=True, kw_only=True)
class KServeStorageConfig:
    """What the live ``inferenceservice-config`` says about storage credentials."""

    secret_annotation: str = STORAGE_SECRET_ANNOTATION_DEFAULT
    access_key_name: str = S3_ACCESS_KEY_DEFAULT
    secret_key_name: str = S3_SECRET_KEY_DEFAULT

    @classmethod
    def from_configmap(cls, cm: Mapping[str, Any] | None) -> KServeStorageConfig:
        """Parse ``data.credentials`` as KServe does (:func:`probes.credentials.credential_config`).

        Unreadable JSON, or a config naming no annotation, falls back to KServe's kustomize
        defaults: the desired state must still write *some* key.
        """
        try:
            cfg = credential_config(cm)
        except ValueError:
            cfg = CredentialConfig()
        return cls(
            secret_annotation=cfg.storage_secret_name_annotation or STORAGE_SECRET_ANNOTATION_DEFAULT,
            access_key_name=cfg.access_key_id_name,
            secret_key_name=cfg.secret_access_key_name,
        )


@dataclass(frozen=True, kw_only=True)
class DerivedSecret:
    """"Secret ``namespace/name`` = keys of ``source`` renamed by ``keys``, plus annotations."""

    namespace: str
    name: str
    source_namespace: str
    source_name: str
    keys: Mapping[str, str]
    """source key → target key (e.g. ``accesskey`` → ``AWS_ACCESS_KEY_ID``)."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    type: str = "Opaque"

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(api_version="v1", kind="Secret", namespace=self.namespace, name=self.name)

    @property
    def source_ref(self) -> ObjectRef:
        return ObjectRef(api_version="v1", kind="Secret", namespace=self.source_namespace,
                         name=self.source_name)

    def render(self, source: Mapping[str, Any] | None) -> dict[str, Any]:
        """The Secret, ``data`` holding the source's (hashed) values under the target names.

        Keys the source lacks are left out; ``missing_keys`` says which.
        """
        src_data = (source or {}).get("data") or {}
        data = {}
        for src_key, dst_key in self.keys.items():
            if src_key in src_data:
                v = str(src_data[src_key])
                # The World holds hashes; hash anything else so no value ever leaves here.
                data[dst_key] = v if v.startswith("sha256:") else secret_value_hash(v)
        labels = dict(self.labels)
        labels.setdefault(*MANAGED_BY_LABEL)
        annotations = dict(self.annotations)
        annotations[DERIVED_FROM_ANNOTATION] = f"{self.source_namespace}/{self.source_name}"
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "labels": labels, "annotations": annotations},
            "type": self.type,
            "data": data,
        }

    def missing_keys(self, source: Mapping[str, Any] | None) -> list[str]:
        src_data = (source or {}).get("data") or {}
        return [k for k in self.keys if k not in src_data]


@dataclass(frozen=True)
class DesiredState:
    manifests: tuple[Mapping[str, Any], ...] = ()
    """Plain manifests, as written (read-only views)."""
    derived: tuple[DerivedSecret, ...] = ()
    sources: Mapping[ObjectRef, str] = field(default_factory=dict)
    """Where each object was declared (``file#doc``), for messages."""

    def refs(self) -> list[ObjectRef]:
        return [ObjectRef.of(dict(m)) for m in self.manifests] + [d.ref for d in self.derived]

    def derived_secret(self, ref: ObjectRef) -> DerivedSecret | None:
        for d in self.derived:
            if (d.namespace, d.name) == (ref.namespace, ref.name) and ref.kind == "Secret":
                return d
        return None

    def manifests_for(self, world: World, *, kserve_config: ObjectRef | None = None) -> list[dict[str, Any]]:
        """Concrete desired objects for this World (see module docstring).

        ``kserve_config`` names the KServe ConfigMap; default: the first
        ``inferenceservice-config`` in the World.
        """
        cm = _find_kserve_config(world, kserve_config)
        storage = KServeStorageConfig.from_configmap(cm)
        out: list[dict[str, Any]] = []
        for m in self.manifests:
            obj = _thaw(m)
            if obj.get("kind") == "InferenceService":
                _use_annotation_key(obj, storage.secret_annotation)
            out.append(obj)
        for d in self.derived:
            out.append(d.render(world.get("Secret", d.source_namespace, d.source_name)))
        return out


def _find_kserve_config(world: World, ref: ObjectRef | None) -> Mapping[str, Any] | None:
    if ref is not None:
        return world.get("ConfigMap", ref.namespace, ref.name)
    for cm in world.list("ConfigMap"):
        if (cm.get("metadata") or {}).get("name") == "inferenceservice-config":
            return cm
    return None


def _use_annotation_key(isvc: dict[str, Any], key: str) -> None:
    """Move the storage-secret annotation to ``key``, whichever known key it was written under."""
    meta = isvc.setdefault("metadata", {})
    ann: dict[str, Any] = meta.get("annotations") or {}
    value = None
    for k in STORAGE_SECRET_ANNOTATIONS:
        v = ann.pop(k, None)
        if value is None:
            value = v
    if value is not None:
        ann[key] = value
        meta["annotations"] = ann


def _thaw(m: Any) -> Any:
    if isinstance(m, Mapping):
        return {k: _thaw(v) for k, v in m.items()}
    if isinstance(m, list | tuple):
        return [_thaw(v) for v in m]
    return m


def _freeze(m: Any) -> Any:
    if isinstance(m, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in m.items()})
    if isinstance(m, list):
        return tuple(_freeze(v) for v in m)
    return m


# --- loading ------------------------------------------------------------------------------


def parse_desired(files: Iterable[tuple[str, str]]) -> DesiredState:
    """Parse ``(name, text)`` pairs of multi-document YAML into a :class:`DesiredState`."""
    problems: list[str] = []
    manifests: list[Mapping[str, Any]] = []
    derived: list[DerivedSecret] = []
    sources: dict[ObjectRef, str] = {}
    seen: dict[tuple[str, str | None, str], str] = {}
    for fname, text in files:
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problems.append(f"{fname}:{at}: not valid YAML: {getattr(exc, 'problem', None) or exc}")
            continue
        for i, doc in enumerate(docs):
            where = f"{fname}#{i}"
            if doc is None:
                continue  # an empty document (e.g. a trailing ---)
            before = len(problems)
            if not isinstance(doc, dict):
                problems.append(f"{where}: a manifest must be a mapping, got {type(doc).__name__}")
                continue
            api_version, kind = doc.get("apiVersion"), doc.get("kind")
            meta = doc.get("metadata")
            name = meta.get("name") if isinstance(meta, dict) else None
            namespace = meta.get("namespace") if isinstance(meta, dict) else None
            if not isinstance(api_version, str) or not isinstance(kind, str):
                problems.append(f"{where}: apiVersion and kind are required strings")
                continue
            if (api_version, kind) not in KNOWN_KINDS:
                known = ", ".join(f"{k} ({a})" for a, k in sorted(KNOWN_KINDS))
                problems.append(f"{where}: unknown kind {kind} ({api_version}); known: {known}")
                continue
            if not isinstance(name, str) or not name:
                problems.append(f"{where}: {kind} without metadata.name")
                continue
            if not isinstance(namespace, str) or not namespace:
                problems.append(f"{where}: {kind} {name} without metadata.namespace "
                                "(every desired kind is namespaced; say which namespace)")
                continue
            label = f"{kind} {namespace}/{name}"
            problems.extend(f"{where}: {label}: {p}" for p in _credential_problems(doc))
            if kind == DERIVED_KIND:
                d = _parse_derived(doc, f"{where}: {label}", problems)
                if d is not None:
                    key = ("Secret", namespace, name)
                    if key in seen:
                        problems.append(f"{where}: {label} declared twice (first at {seen[key]})")
                    seen[key] = where
                    derived.append(d)
                    sources[d.ref] = where
                continue
            if len(problems) > before:
                continue
            key = (kind, namespace, name)
            if key in seen:
                problems.append(f"{where}: {label} declared twice (first at {seen[key]})")
                continue
            seen[key] = where
            manifests.append(_freeze(doc))
            sources[ObjectRef.of(doc)] = where
    if problems:
        raise DesiredError(problems)
    return DesiredState(manifests=tuple(manifests), derived=tuple(derived), sources=MappingProxyType(sources))


def _credential_problems(doc: Mapping[str, Any]) -> list[str]:
    """Credential values in config: a Secret with data, or a literal env value that looks secret."""
    out: list[str] = []
    if doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
        out.append("carries credential values (data/stringData); no credential may live in config: "
                   f"declare a {DERIVED_KIND} ({DERIVED_API_VERSION}) that copies it from a live secret")

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            env = node.get("env")
            if isinstance(env, list):
                for e in env:
                    if isinstance(e, dict) and isinstance(e.get("name"), str) \
                            and _CREDENTIAL_NAME.search(e["name"]) and e.get("value"):
                        out.append(f"{path}.env[{e['name']}] has a literal value; credentials must come "
                                   "from a secretKeyRef, never from config")
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(doc.get("spec"), "spec")
    return out


def _parse_derived(doc: Mapping[str, Any], where: str, problems: list[str]) -> DerivedSecret | None:
    meta = doc["metadata"]
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        problems.append(f"{where}: spec is required")
        return None
    allowed = {"source", "keys", "annotations", "labels", "type"}
    for k in spec:
        if k not in allowed:
            problems.append(f"{where}: spec.{k}: unknown key (known: {', '.join(sorted(allowed))})")
    src = spec.get("source")
    keys = spec.get("keys")
    ok = True
    if not isinstance(src, dict) or not isinstance(src.get("name"), str) or not src.get("name"):
        problems.append(f"{where}: spec.source.name is required")
        ok = False
    if not isinstance(keys, dict) or not keys or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in keys.items()):
        problems.append(f"{where}: spec.keys must map source key names to target key names (strings)")
        ok = False
    for fld in ("annotations", "labels"):
        val = spec.get(fld, {})
        if not isinstance(val, dict) or not all(isinstance(v, str) for v in val.values()):
            problems.append(f"{where}: spec.{fld} must be a mapping of strings (quote numbers: \"0\")")
            ok = False
    if not ok or not isinstance(src, dict) or not isinstance(keys, dict):
        return None
    return DerivedSecret(
        namespace=meta["namespace"], name=meta["name"],
        source_namespace=str(src.get("namespace") or meta["namespace"]), source_name=src["name"],
        keys=MappingProxyType(dict(keys)),
        annotations=MappingProxyType(dict(spec.get("annotations") or {})),
        labels=MappingProxyType(dict(spec.get("labels") or {})),
        type=str(spec.get("type") or "Opaque"),
    )


def index_by_ref(manifests: Iterable[Mapping[str, Any]]) -> dict[ObjectRef, Mapping[str, Any]]:
    """Desired objects keyed by :class:`ObjectRef` (what ``plan()`` takes)."""
    return {ObjectRef.of(dict(m)): m for m in manifests}


def copy_manifest(m: Mapping[str, Any]) -> dict[str, Any]:
    """A plain, mutable deep copy of a (possibly frozen) manifest."""
    out: dict[str, Any] = copy.deepcopy(_thaw(m))
    return out
