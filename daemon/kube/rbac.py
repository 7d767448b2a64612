"""Exactly what the daemon may do on the Kubernetes API: the one table its RBAC is built from.

``REQUIRED`` lists every (API group, resource, verb) the daemon uses, where it uses it, and why.
Three things are held to it by tests:

- the ClusterRole/Roles in ``config/deploy/base/rbac.yaml`` are generated from it
  (``python config/deploy/build.py``) and must match it exactly — no more, no less;
- a scan of the daemon's source (``tests/unit/test_rbac_matches_code.py``) finds every
  kubernetes_asyncio call (``read_*``, ``list_*``, ``patch_namespaced_*``, custom-object calls
  with their ``plural``…) and fails if one is not covered here;
- the effects layer may call :func:`allows` before a write, so a missing permission is a clear
  error in a test rather than a 403 in production.

Least privilege is the point. Reads are cluster-wide (the daemon watches with one
all-namespaces list per kind, no polling). Writes are limited to the kinds the daemon heals and
granted only in the *workload namespaces* (scope :data:`WORKLOADS`: every namespace
``config/warden.yaml`` watches or a desired object lives in; ``config/deploy/build.py`` writes
one Role per namespace), CoreDNS may be patched (rollout restart) only by name in
``kube-system``, and the leader-election Lease lives only in the daemon's own namespace.

Server-side apply is a ``patch`` that creates the object when it is missing; the API server then
also checks ``create``, so every kind the daemon applies has both verbs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Final

OWN_NAMESPACE: Final = "kserve-warden"
"""Where the daemon runs; the Lease is here. A kustomize overlay that moves it must move the Role."""

CLUSTER: Final = "*"
"""Scope of a rule granted cluster-wide (ClusterRole + ClusterRoleBinding)."""

WORKLOADS: Final = "<workloads>"
"""Scope of a rule granted in each workload namespace (a Role per namespace).

Which namespaces those are is configuration, not code: the deployment generator takes them from
``config/warden.yaml`` and ``config/desired``; :func:`allows` and :func:`expand` take them as
``workloads=``.
"""

READ: Final = ("get", "list", "watch")
APPLY: Final = ("create", "patch")


@dataclass(frozen=True, kw_only=True, order=True)
class Rule:
    api_group: str
    """``""`` for the core group."""
    resource: str
    """Plural resource, with subresource after a slash (``pods/log``)."""
    verbs: tuple[str, ...]
    scope: str = CLUSTER
    """``CLUSTER``, ``WORKLOADS``, or the one namespace a Role is granted in."""
    resource_names: tuple[str, ...] = ()
    """Restrict to these object names (empty: any)."""
    why: str = ""


@dataclass(frozen=True, kw_only=True, order=True)
class Grant:
    """One permission, fully expanded: what RBAC matching actually compares."""

    scope: str
    api_group: str
    resource: str
    verb: str
    resource_name: str = ""


KSERVE: Final = "serving.kserve.io"
ISTIO_SECURITY: Final = "security.istio.io"

REQUIRED: Final[tuple[Rule, ...]] = (
    # -- observe (every replica) --------------------------------------------------------------
    Rule(api_group="", resource="namespaces", verbs=READ, why="watch the namespaces named in warden.yaml"),
    Rule(api_group="", resource="serviceaccounts", verbs=READ, why="model SAs: secrets, imagePullSecrets"),
    Rule(api_group="", resource="secrets", verbs=READ,
         why="storage secret shape (hashed, never logged); source of the derived storage secret"),
    Rule(api_group="", resource="configmaps", verbs=READ,
         why="KServe's inferenceservice-config (which storage-secret annotation it honours)"),
    Rule(api_group="", resource="pods", verbs=READ,
         why="predictor pod statuses: ImagePullBackOff, readiness"),
    Rule(api_group="", resource="pods/log", verbs=("get",),
         why="storage-initializer and istio-proxy log lines as finding evidence"),
    Rule(api_group="", resource="events", verbs=READ, why="events as evidence (FailedPull, 401)"),
    Rule(api_group="apps", resource="deployments", verbs=READ, why="CoreDNS and predictor deployments"),
    Rule(api_group=KSERVE, resource="inferenceservices", verbs=READ,
         why="desired vs live; status conditions"),
    Rule(api_group=KSERVE, resource="servingruntimes", verbs=READ, why="a runtime supports the model format"),
    Rule(api_group=KSERVE, resource="clusterservingruntimes", verbs=READ,
         why="cluster-wide runtimes count as supporting a format too"),
    Rule(api_group=ISTIO_SECURITY, resource="authorizationpolicies", verbs=READ,
         why="evaluate ALLOW/DENY against the model's SA principal statically"),
    Rule(api_group=ISTIO_SECURITY, resource="peerauthentications", verbs=READ,
         why="STRICT mTLS on a model's object store while the model has no sidecar"),
    Rule(api_group="", resource="services", verbs=READ,
         why="map a model's storage endpoint (svc.ns:port) to the store's workload labels"),
    Rule(api_group="", resource="persistentvolumeclaims", verbs=READ,
         why="pvc:// models: the claim exists and is Bound"),
    # -- heal (the leader only) ----------------------------------------------------------------
    Rule(api_group="", resource="serviceaccounts", verbs=APPLY, scope=WORKLOADS,
         why="SSA: storage secret in .secrets, imagePullSecrets, s3 annotations"),
    Rule(api_group="", resource="secrets", verbs=APPLY, scope=WORKLOADS,
         why="derive the storage secret through the API"),
    Rule(api_group=KSERVE, resource="servingruntimes", verbs=APPLY, scope=WORKLOADS,
         why="re-create the ServingRuntime"),
    Rule(api_group=KSERVE, resource="inferenceservices", verbs=APPLY, scope=WORKLOADS,
         why="SSA of desired annotations; drop sidecar.istio.io/inject=false"),
    Rule(api_group=ISTIO_SECURITY, resource="authorizationpolicies", verbs=APPLY, scope=WORKLOADS,
         why="re-create the principal-only MinIO ALLOW policy"),
    Rule(api_group="", resource="pods", verbs=("delete",), scope=WORKLOADS,
         why="a predictor pod stuck in ImagePullBackOff after its SA was fixed"),
    Rule(api_group="", resource="events", verbs=APPLY, scope=WORKLOADS,
         why="Normal/Warning events on the objects concerned, reason = finding code"),
    Rule(api_group="", resource="events", verbs=APPLY, scope="kube-system",
         why="the event on the CoreDNS Deployment when it is restarted"),
    Rule(api_group="apps", resource="deployments", verbs=("patch",), scope="kube-system",
         resource_names=("coredns",),
         why="rollout restart of CoreDNS (restartedAt annotation) and its restart-budget annotation"),
    # -- leader election -----------------------------------------------------------------------
    Rule(api_group="coordination.k8s.io", resource="leases", verbs=("get", "create", "update"),
         scope=OWN_NAMESPACE, why="the leader Lease"),
)

NOT_GRANTED: Final[tuple[Rule, ...]] = (
    # The effects layer dispatches per kind (one code path per supported kind and verb), so it
    # *can* build requests the daemon never makes. Those are listed here, refused on purpose: a
    # change that starts using one must move it to REQUIRED, which regenerates the role.
    Rule(api_group="", resource="namespaces", verbs=("patch",),
         why="generic merge-patch path; namespaces are watched, never written"),
    Rule(api_group="", resource="configmaps", verbs=("patch",),
         why="generic patch path; KServe's ConfigMap is only read"),
    Rule(api_group="", resource="pods", verbs=("patch",),
         why="generic patch path; a stuck pod is deleted, never patched"),
    Rule(api_group="coordination.k8s.io", resource="leases", verbs=("list", "watch", "patch"),
         why="generic list/watch/patch paths; the Lease is read by name, replaced with its resourceVersion"),
    Rule(api_group=KSERVE, resource="clusterservingruntimes", verbs=("patch",),
         why="generic cluster-scoped patch path; only namespaced ServingRuntimes are applied"),
    Rule(api_group=ISTIO_SECURITY, resource="peerauthentications", verbs=("patch",),
         why="generic custom-object patch path; PeerAuthentications are only read"),
    Rule(api_group="", resource="services", verbs=("patch",),
         why="generic typed patch path; Services are only read"),
    Rule(api_group="", resource="persistentvolumeclaims", verbs=("patch",),
         why="generic typed patch path; claims are only read"),
)


def expand(rules: tuple[Rule, ...] = REQUIRED, *, workloads: Collection[str] = ()) -> frozenset[Grant]:
    """Every single permission the rules grant, ``WORKLOADS`` spelt out as ``workloads``."""
    return frozenset(_expand(rules, workloads))


def _expand(rules: tuple[Rule, ...], workloads: Collection[str]) -> Iterator[Grant]:
    for r in rules:
        scopes = sorted(workloads) if r.scope == WORKLOADS else [r.scope]
        for scope in scopes:
            for verb in r.verbs:
                for name in r.resource_names or ("",):
                    yield Grant(scope=scope, api_group=r.api_group, resource=r.resource, verb=verb,
                                resource_name=name)


def allows(verb: str, *, api_group: str, resource: str, namespace: str | None = None,
           name: str | None = None, workloads: Collection[str] = (),
           rules: tuple[Rule, ...] = REQUIRED) -> bool:
    """Whether the daemon's role permits this request (RBAC semantics, without wildcards).

    A cluster-wide rule covers every namespace; a ``WORKLOADS`` rule the namespaces in
    ``workloads``; a namespaced rule only its own namespace; a rule with ``resource_names`` only
    requests naming one of them.
    """
    for r in rules:
        if r.api_group != api_group or r.resource != resource or verb not in r.verbs:
            continue
        if r.scope == WORKLOADS:
            if namespace is None or namespace not in workloads:
                continue
        elif r.scope != CLUSTER and r.scope != namespace:
            continue
        if r.resource_names and name not in r.resource_names:
            continue
        return True
    return False
