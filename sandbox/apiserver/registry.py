"""What the stand-in serves: resource kinds, their scope, verbs and subresources.

A :class:`ResourceKind` is one (group, version, resource) the server answers for. Built-in kinds
are fixed in :data:`BUILTIN_KINDS`; custom resources come from CustomResourceDefinition objects:
creating a CRD through the API calls :meth:`Registry.register_crd`, which makes its resource
served at once, like the real apiextensions-apiserver (minus the Established condition delay).

Storage is keyed by *group resource* (``inferenceservices.serving.kserve.io``), not by version,
so a kind served at two versions (``security.istio.io/v1`` and ``v1beta1``) is one set of objects;
the stand-in does no schema conversion, only rewrites ``apiVersion`` on the way out (the real
server's ``None`` conversion strategy does the same).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sandbox.apiserver.status import JSON, ApiError

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_META_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True, kw_only=True)
class PrinterColumn:
    """A CRD ``additionalPrinterColumns`` entry (kubectl's table columns)."""

    name: str
    type: str
    json_path: str
    priority: int = 0


@dataclass(frozen=True, kw_only=True)
class ResourceKind:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    log_subresource: bool = False
    # Built-in kinds accept strategic-merge patches; custom resources answer 415 like the real server.
    builtin: bool = True
    field_labels: tuple[str, ...] = _META_FIELDS
    printer_columns: tuple[PrinterColumn, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # A kind stored as another one (events.k8s.io/v1 Events live in core v1 Events' storage).
    storage: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """The storage key, ``resource.group`` (``pods`` for the core group)."""
        if self.storage:
            return self.storage
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def discovery(self) -> list[JSON]:
        """The entries of this kind in an ``APIResourceList`` (itself plus its subresources)."""
        main: JSON = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        out = [main]
        if self.status_subresource:
            out.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if self.log_subresource:
            out.append(
                {
                    "name": f"{self.plural}/log",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "Pod",
                    "verbs": ["get"],
                }
            )
        return out


def _core(plural: str, singular: str, kind: str, *, namespaced: bool = True, **kw: Any) -> ResourceKind:
    return ResourceKind(
        group="", version="v1", plural=plural, singular=singular, kind=kind, namespaced=namespaced, **kw
    )


BUILTIN_KINDS: tuple[ResourceKind, ...] = (
    _core(
        "namespaces",
        "namespace",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        status_subresource=True,
        field_labels=(*_META_FIELDS, "status.phase"),
    ),
    _core("serviceaccounts", "serviceaccount", "ServiceAccount", short_names=("sa",)),
    _core("secrets", "secret", "Secret", field_labels=(*_META_FIELDS, "type")),
    _core("configmaps", "configmap", "ConfigMap", short_names=("cm",)),
    _core(
        "pods",
        "pod",
        "Pod",
        short_names=("po",),
        categories=("all",),
        status_subresource=True,
        log_subresource=True,
        field_labels=(
            *_META_FIELDS,
            "status.phase",
            "spec.nodeName",
            "spec.serviceAccountName",
            "status.podIP",
            "spec.restartPolicy",
            "spec.schedulerName",
        ),
    ),
    _core(
        "events",
        "event",
        "Event",
        short_names=("ev",),
        field_labels=(
            *_META_FIELDS,
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ),
    ),
    _core(
        "services", "service", "Service", short_names=("svc",), categories=("all",), status_subresource=True
    ),
    # Served (and watched by the daemon) so its Node reads answer as a cluster's would; the
    # stand-in kubelet runs pods without binding them, so it registers none.
    _core("nodes", "node", "Node", namespaced=False, short_names=("no",), status_subresource=True),
    ResourceKind(
        group="apps",
        version="v1",
        plural="deployments",
        singular="deployment",
        kind="Deployment",
        namespaced=True,
        short_names=("deploy",),
        categories=("all",),
        status_subresource=True,
    ),
    ResourceKind(
        group="coordination.k8s.io",
        version="v1",
        plural="leases",
        singular="lease",
        kind="Lease",
        namespaced=True,
    ),
    ResourceKind(
        group="events.k8s.io",
        version="v1",
        plural="events",
        singular="event",
        kind="Event",
        namespaced=True,
        short_names=("ev",),
        field_labels=(*_META_FIELDS, "reason", "type"),
        storage="events",
    ),
    ResourceKind(
        group="apiextensions.k8s.io",
        version="v1",
        plural="customresourcedefinitions",
        singular="customresourcedefinition",
        kind="CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        status_subresource=True,
    ),
)

# The order groups appear in /apis (kubectl resolves short names in this order).
_GROUP_ORDER = ("", "apps", "events.k8s.io", "coordination.k8s.io", "apiextensions.k8s.io")


@dataclass
class Registry:
    """Served kinds by (group, version, plural); CRD-defined ones come and go at run time."""

    _kinds: dict[tuple[str, str, str], ResourceKind] = field(default_factory=dict)
    # group -> versions in preference order
    _versions: dict[str, list[str]] = field(default_factory=dict)
    # CRD name -> the (group, version, plural) keys it registered
    _crds: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    @classmethod
    def with_builtins(cls) -> Registry:
        reg = cls()
        for k in BUILTIN_KINDS:
            reg.add(k)
        return reg

    def add(self, kind: ResourceKind, *, preferred: bool = False) -> None:
        self._kinds[(kind.group, kind.version, kind.plural)] = kind
        versions = self._versions.setdefault(kind.group, [])
        if kind.version not in versions:
            if preferred:
                versions.insert(0, kind.version)
            else:
                versions.append(kind.version)

    def lookup(self, group: str, version: str, plural: str) -> ResourceKind | None:
        return self._kinds.get((group, version, plural))

    def serves_group(self, group: str) -> bool:
        """Whether any kind is served in ``group`` (a CRD's group counts once registered)."""
        return bool(self._versions.get(group))

    def kinds(self) -> Iterable[ResourceKind]:
        return self._kinds.values()

    def group_versions(self) -> list[tuple[str, list[str]]]:
        """Named groups (not core) with their served versions, preferred first."""
        order = {g: i for i, g in enumerate(_GROUP_ORDER)}
        groups = sorted((g for g in self._versions if g), key=lambda g: (order.get(g, len(order)), g))
        return [(g, list(self._versions[g])) for g in groups if self._versions[g]]

    def in_group_version(self, group: str, version: str) -> list[ResourceKind] | None:
        if version not in self._versions.get(group, []):
            return None
        return [k for (g, v, _), k in self._kinds.items() if g == group and v == version]

    def by_kind(self, api_version: str, kind: str) -> ResourceKind | None:
        group, _, version = api_version.rpartition("/")
        for k in self._kinds.values():
            if k.group == group and k.version == version and k.kind == kind:
                return k
        return None

    # --- CustomResourceDefinitions -------------------------------------------------------------

    def register_crd(self, crd: JSON) -> None:
        kinds = kinds_from_crd(crd)
        name = str(crd["metadata"]["name"])
        self.unregister_crd(name)
        keys: list[tuple[str, str, str]] = []
        for i, k in enumerate(kinds):
            self.add(k, preferred=(i == 0))
            keys.append((k.group, k.version, k.plural))
        self._crds[name] = keys

    def unregister_crd(self, name: str) -> None:
        for key in self._crds.pop(name, []):
            self._kinds.pop(key, None)
            group, version, _ = key
            if not any(g == group and v == version for (g, v, _) in self._kinds):
                versions = self._versions.get(group, [])
                if version in versions:
                    versions.remove(version)


def validate_crd(crd: JSON) -> list[tuple[str, str]]:
    """Field errors of a CRD body (empty when acceptable), as ``(field, message)`` pairs."""
    errors: list[tuple[str, str]] = []
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "Required value")]
    names = spec.get("names") if isinstance(spec.get("names"), dict) else None
    group = spec.get("group")
    if not isinstance(group, str) or "." not in group:
        errors.append(("spec.group", "Invalid value: should be a domain with at least one dot"))
    if names is None or not names.get("plural") or not names.get("kind"):
        errors.append(("spec.names", "Required value: plural and kind are required"))
    elif isinstance(group, str):
        want = f"{names['plural']}.{group}"
        if crd.get("metadata", {}).get("name") != want:
            errors.append(
                ("metadata.name", f'Invalid value: must be spec.names.plural+"."+spec.group ({want})')
            )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errors.append(("spec.scope", 'Unsupported value: supported values: "Cluster", "Namespaced"'))
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        errors.append(
            ("spec.versions", "Required value: must have exactly one version marked as storage version")
        )
    else:
        if sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
            errors.append(
                ("spec.versions", "Invalid value: must have exactly one version marked as storage version")
            )
        for i, v in enumerate(versions):
            if not isinstance(v, dict) or not isinstance(v.get("name"), str) or not v.get("name"):
                errors.append((f"spec.versions[{i}].name", "Required value"))
    return errors


def kinds_from_crd(crd: JSON) -> list[ResourceKind]:
    """One :class:`ResourceKind` per served version, storage version first."""
    spec = crd["spec"]
    names = spec["names"]
    versions = sorted(
        (v for v in spec["versions"] if v.get("served", True)), key=lambda v: 0 if v.get("storage") else 1
    )
    out: list[ResourceKind] = []
    for v in versions:
        subresources = v.get("subresources") or {}
        columns = tuple(
            PrinterColumn(
                name=str(c.get("name", "")),
                type=str(c.get("type", "string")),
                json_path=str(c.get("jsonPath", "")),
                priority=int(c.get("priority", 0)),
            )
            for c in v.get("additionalPrinterColumns") or []
        )
        out.append(
            ResourceKind(
                group=spec["group"],
                version=v["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec.get("scope") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in subresources,
                builtin=False,
                printer_columns=columns,
            )
        )
    return out


def crd_not_served(group: str, version: str, plural: str) -> ApiError:
    """The real server's answer for a path no kind serves: for a group it serves, a 404 NotFound
    Status with empty details; for a group it does not know at all, the plain-text ``404 page not
    found`` of its HTTP mux (:func:`page_not_found`)."""
    del group, version, plural
    return ApiError(404, "NotFound", "the server could not find the requested resource", details={})


def page_not_found() -> ApiError:
    """kube-apiserver's answer for a path no handler serves (``/apis/<unknown group>/...``, ``/foo``):
    ``404 page not found`` as text/plain, not a Status."""
    return ApiError(404, "NotFound", "404 page not found", plain=True)
