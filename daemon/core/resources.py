"""The Kubernetes resources the daemon reads or writes: kind → group, version, plural, scope.

One table, so the effects layer (``daemon/kube/effects.py``), the watch caches (``daemon/kube/informer.py``)
and the RBAC table (``daemon/kube/rbac.py``) agree on what ``InferenceService`` means on the wire.
No discovery round-trip at start-up: the daemon supports exactly these kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from daemon.core.objects import ObjectRef


@dataclass(frozen=True, kw_only=True)
class Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def core(self) -> bool:
        return self.group == ""

    def ref(self, namespace: str | None, name: str) -> ObjectRef:
        return ObjectRef(api_version=self.api_version, kind=self.kind,
                         namespace=namespace if self.namespaced else None, name=name)


RESOURCES: Final[tuple[Resource, ...]] = (
    Resource(api_version="v1", kind="Namespace", plural="namespaces", namespaced=False),
    Resource(api_version="v1", kind="ServiceAccount", plural="serviceaccounts"),
    Resource(api_version="v1", kind="Secret", plural="secrets"),
    Resource(api_version="v1", kind="ConfigMap", plural="configmaps"),
    Resource(api_version="v1", kind="Pod", plural="pods"),
    Resource(api_version="v1", kind="Event", plural="events"),
    Resource(api_version="apps/v1", kind="Deployment", plural="deployments"),
    Resource(api_version="coordination.k8s.io/v1", kind="Lease", plural="leases"),
    Resource(api_version="serving.kserve.io/v1beta1", kind="InferenceService", plural="inferenceservices"),
    Resource(api_version="serving.kserve.io/v1alpha1", kind="ServingRuntime", plural="servingruntimes"),
    Resource(api_version="serving.kserve.io/v1alpha1", kind="ClusterServingRuntime",
             plural="clusterservingruntimes", namespaced=False),
    Resource(api_version="security.istio.io/v1", kind="AuthorizationPolicy", plural="authorizationpolicies"),
    Resource(api_version="v1", kind="Service", plural="services"),
    Resource(api_version="v1", kind="PersistentVolumeClaim", plural="persistentvolumeclaims"),
    Resource(api_version="security.istio.io/v1", kind="PeerAuthentication", plural="peerauthentications"),
    Resource(api_version="v1", kind="Node", plural="nodes", namespaced=False),
)

_BY_KIND: Final = {r.kind: r for r in RESOURCES}


class UnknownKindError(LookupError):
    """A manifest of a kind the daemon does not handle (a bad desired manifest)."""


def resource_for(api_version: str, kind: str) -> Resource:
    r = _BY_KIND.get(kind)
    if r is None or (api_version and r.group != api_version.rpartition("/")[0]):
        raise UnknownKindError(f"unsupported kind {api_version}/{kind}".replace("//", "/"))
    return r


def resource_of(ref: ObjectRef) -> Resource:
    return resource_for(ref.api_version, ref.kind)
