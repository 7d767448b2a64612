"""What :meth:`daemon.kube.effects.Kube.derive_secret` accepts: a DerivedSecret declaration, in one shape.

A declaration comes either from :mod:`daemon.core.desired` (an object with the
:class:`DerivedSecretDecl` attributes, which can also render its own metadata) or as a raw
``DerivedSecret`` manifest; :func:`derivation` normalises both to a frozen
:class:`Derivation` (a source namespace defaults to the target's, the type to ``Opaque``),
so the effect itself reads one shape. :class:`DeriveError` names the source keys that are
missing, never a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from daemon.core.errors import KubeError


class DerivedSecretDecl(Protocol):
    """What :meth:`Kube.derive_secret` needs from a DerivedSecret declaration.

    ``daemon.core.desired`` supplies it; a raw ``DerivedSecret`` manifest (mapping) is accepted too.
    """

    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def source_namespace(self) -> str: ...
    @property
    def source_name(self) -> str: ...
    @property
    def keys(self) -> Mapping[str, str]: ...
    @property
    def annotations(self) -> Mapping[str, str]: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def type(self) -> str: ...


class DeriveError(KubeError):
    """The source secret lacks a key the declaration maps (names the key, never a value)."""


@dataclass(frozen=True, kw_only=True)
class Derivation:
    name: str
    namespace: str
    source_namespace: str
    source_name: str
    keys: Mapping[str, str]
    annotations: Mapping[str, str]
    labels: Mapping[str, str]
    type: str


def derivation(decl: DerivedSecretDecl | Mapping[str, Any]) -> Derivation:
    if isinstance(decl, Mapping):
        meta = decl.get("metadata") or {}
        spec = decl.get("spec") or {}
        src = spec.get("source") or {}
        return Derivation(
            name=str(meta.get("name", "")), namespace=str(meta.get("namespace", "")),
            source_namespace=str(src.get("namespace") or meta.get("namespace", "")),
            source_name=str(src.get("name", "")), keys=dict(spec.get("keys") or {}),
            annotations=dict(spec.get("annotations") or {}), labels=dict(spec.get("labels") or {}),
            type=str(spec.get("type") or "Opaque"),
        )
    return Derivation(
        name=decl.name, namespace=decl.namespace, source_namespace=decl.source_namespace,
        source_name=decl.source_name, keys=dict(decl.keys), annotations=dict(decl.annotations),
        labels=dict(decl.labels), type=decl.type or "Opaque",
    )
