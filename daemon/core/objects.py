"""References to Kubernetes objects and the raw JSON shapes the daemon reads.

``ObjectRef`` is the key everything is indexed by (findings, ledger entries, workers).
The ``TypedDict`` shapes document the parts of raw API JSON the pure logic relies on;
they are deliberately partial (``total=False``): the API may send more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict


@dataclass(frozen=True, kw_only=True, order=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str | None
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{where}{self.name}"

    @property
    def key(self) -> str:
        """``namespace/name`` (or ``name`` for cluster-scoped objects), as in client-go."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @classmethod
    def of(cls, obj: dict[str, Any]) -> ObjectRef:
        meta = obj.get("metadata") or {}
        return cls(
            api_version=str(obj.get("apiVersion", "")),
            kind=str(obj.get("kind", "")),
            namespace=meta.get("namespace"),
            name=str(meta.get("name", "")),
        )


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    resourceVersion: str
    generation: int
    labels: dict[str, str]
    annotations: dict[str, str]
    managedFields: list[dict[str, Any]]
    ownerReferences: list[dict[str, Any]]
    deletionTimestamp: str


class KubeObject(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any]
    status: dict[str, Any]
    data: dict[str, str]
    stringData: dict[str, str]
