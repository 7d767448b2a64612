"""A frozen snapshot of the live cluster objects the pure logic reads.

The effects layer keeps watch caches; at each reconcile it hands ``diagnose()`` a
:class:`World`, so the pure functions never see a client, a socket or a clock.

Secrets enter the World already *hashed*: every value in ``data`` is replaced by
``sha256:<hex>`` (see :func:`hash_secret`). Pure code can compare and report on secrets
(key names, "same value as the source") without ever holding a credential. Only the
effects layer, when it derives the storage secret, reads real values, and it reads them
straight from the API.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from daemon.core.objects import KubeObject

# The kinds the daemon watches, as (apiVersion, kind).
WATCHED_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "Pod"),
    ("apps/v1", "Deployment"),
    ("serving.kserve.io/v1beta1", "InferenceService"),
    ("serving.kserve.io/v1alpha1", "ServingRuntime"),
    ("serving.kserve.io/v1alpha1", "ClusterServingRuntime"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    # Where a model's store and storage live: the Service its endpoint names (→ workload
    # labels for the mesh checks), pvc:// claims, and STRICT mTLS on the store.
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("security.istio.io/v1", "PeerAuthentication"),
    # Where an Unschedulable predictor pod could go: allocatable, taints, labels, conditions
    # (daemon.core.diagnosis.scheduling). Cluster-scoped; optional like every kind here.
    ("v1", "Node"),
)


NOT_SERVED: Final = "not served"
"""In :attr:`World.unobserved`: the API does not serve the kind (no such CRD): none exists."""
FORBIDDEN: Final = "forbidden"
"""In :attr:`World.unobserved` (a prefix): RBAC does not let the daemon list the kind."""


def secret_value_hash(b64_value: str) -> str:
    """``sha256:<hex>`` of a secret's decoded value (``data`` values are base64)."""
    try:
        raw = base64.b64decode(b64_value, validate=True)
    except ValueError:
        raw = b64_value.encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def hash_secret(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a Secret whose ``data``/``stringData`` values are hashes, never values."""
    out = dict(obj)
    data = dict(obj.get("data") or {})
    for k, v in (obj.get("stringData") or {}).items():
        data[k] = base64.b64encode(str(v).encode()).decode()
    out["data"] = {k: secret_value_hash(str(v)) for k, v in data.items()}
    out.pop("stringData", None)
    meta = dict(out.get("metadata") or {})
    # The last-applied annotation of kubectl may embed the values: drop it.
    ann = {k: v for k, v in (meta.get("annotations") or {}).items()
           if k != "kubectl.kubernetes.io/last-applied-configuration"}
    if ann or "annotations" in meta:
        meta["annotations"] = ann
    out["metadata"] = meta
    return out


def _key(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


@dataclass(frozen=True)
class World:
    """Live objects by kind, then by ``namespace/name`` key (cluster-scoped: ``name``)."""

    objects: Mapping[str, Mapping[str, KubeObject]] = field(default_factory=dict)
    unobserved: Mapping[str, str] = field(default_factory=dict)
    """Kind → why the daemon could not read it (``not served``: none can exist, the empty list
    is the truth; ``forbidden…``: RBAC does not grant it, the empty list is *not* the truth)."""
    _by_namespace: dict[tuple[str, str], list[KubeObject]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    """``(kind, namespace)`` → objects, filled on first use per kind: a pass over 1,000
    InferenceServices asks for one namespace's pods a thousand times, and a scan of every pod
    each time made the pass quadratic."""

    @classmethod
    def build(cls, objs: Iterable[Mapping[str, Any]], *,
              unobserved: Mapping[str, str] | None = None) -> World:
        by_kind: dict[str, dict[str, KubeObject]] = {}
        for o in objs:
            kind = str(o.get("kind", ""))
            meta = o.get("metadata") or {}
            if kind == "Secret":
                o = hash_secret(o)
            by_kind.setdefault(kind, {})[_key(meta.get("namespace"), str(meta.get("name", "")))] = o  # type: ignore[assignment]
        return cls(MappingProxyType({k: MappingProxyType(v) for k, v in by_kind.items()}),
                   MappingProxyType(dict(unobserved or {})))

    def get(self, kind: str, namespace: str | None, name: str) -> KubeObject | None:
        return self.objects.get(kind, {}).get(_key(namespace, name))

    def list(self, kind: str, namespace: str | None = None) -> list[KubeObject]:
        items = self.objects.get(kind, {}).values()
        if namespace is None:
            return list(items)
        index = self._by_namespace
        if (kind, "") not in index:  # the marker: this kind is indexed
            index[(kind, "")] = []
            for o in items:
                ns = (o.get("metadata") or {}).get("namespace")
                if ns:
                    index.setdefault((kind, str(ns)), []).append(o)
        return list(index.get((kind, namespace), ())) if namespace else []

    def __iter__(self) -> Iterator[KubeObject]:
        for objs in self.objects.values():
            yield from objs.values()
