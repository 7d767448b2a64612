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

Least privilege is the point: writes are limited to the kinds the daemon heals, CoreDNS may be
patched (rollout restart) only by name in ``kube-system``, and the leader-election Lease lives
only in the daemon's own namespace.

Server-side apply is a ``patch`` that creates the object when it is missing; the API server then
also checks ``create``, so every kind the daemon applies has both verbs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

OWN_NAMESPACE: Final = "kserve-warden"
"""Where the daemon runs; the Lease is here. A kustomize overlay that moves it must move the Role."""

CLUSTER: Final = "*"
"""Scope of a rule granted cluster-wide (ClusterRole + ClusterRoleBinding)."""

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
    """``CLUSTER`` or the namespace a namespaced Role is granted in."""
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
    Rule(api_group="", resource="pods", verbs=READ, why="predictor pod statuses: ImagePullBackOff, readiness"),
    Rule(api_group="", resource="pods/log", verbs=("get",),
         why="storage-initializer and istio-proxy log lines as finding evidence"),
    Rule(api_group="", resource="events", verbs=READ, why="events as evidence (FailedPull, 401)"),
    Rule(api_group="apps", resource="deployments", verbs=READ, why="CoreDNS and predictor deployments"),
    Rule(api_group=KSERVE, resource="inferenceservices", verbs=READ, why="desired vs live; status conditions"),
    Rule(api_group=KSERVE, resource="servingruntimes", verbs=READ, why="a runtime supports the model format"),
    Rule(api_group=KSERVE, resource="clusterservingruntimes", verbs=READ,
         why="cluster-wide runtimes count as supporting a format too"),
    Rule(api_group=ISTIO_SECURITY, resource="authorizationpolicies", verbs=READ,
         why="evaluate ALLOW/DENY against the model's SA principal statically"),
    # -- heal (the leader only) ----------------------------------------------------------------
    Rule(api_group="", resource="serviceaccounts", verbs=APPLY,
         why="SSA: storage secret in .secrets, imagePullSecrets, s3 annotations"),
    Rule(api_group="", resource="secrets", verbs=APPLY, why="derive the storage secret through the API"),
    Rule(api_group=KSERVE, resource="servingruntimes", verbs=APPLY, why="re-create the ServingRuntime"),
    Rule(api_group=KSERVE, resource="inferenceservices", verbs=APPLY,
         why="SSA of desired annotations; drop sidecar.istio.io/inject=false"),
    Rule(api_group=ISTIO_SECURITY, resource="authorizationpolicies", verbs=APPLY,
         why="re-create the principal-only MinIO ALLOW policy"),
    Rule(api_group="", resource="pods", verbs=("delete",),
         why="a predictor pod stuck in ImagePullBackOff after its SA was fixed"),
    Rule(api_group="", resource="events", verbs=APPLY, why="Normal/Warning events, reason = finding code"),
    Rule(api_group="apps", resource="deployments", verbs=("patch",), scope="kube-system",
         resource_names=("coredns",),
         why="rollout restart of CoreDNS (restartedAt annotation) and its restart-budget annotation"),
    # -- leader election -----------------------------------------------------------------------
    Rule(api_group="coordination.k8s.io", resource="leases", verbs=("get", "create", "update"),
         scope=OWN_NAMESPACE, why="the leader Lease"),
)


def expand(rules: tuple[Rule, ...] = REQUIRED) -> frozenset[Grant]:
    """Every single permission the rules grant."""
    return frozenset(_expand(rules))


def _expand(rules: tuple[Rule, ...]) -> Iterator[Grant]:
    for r in rules:
        for verb in r.verbs:
            for name in r.resource_names or ("",):
                yield Grant(scope=r.scope, api_group=r.api_group, resource=r.resource, verb=verb,
                            resource_name=name)


def allows(verb: str, *, api_group: str, resource: str, namespace: str | None = None,
           name: str | None = None, rules: tuple[Rule, ...] = REQUIRED) -> bool:
    """Whether the daemon's role permits this request (RBAC semantics, without wildcards).

    A cluster-wide rule covers every namespace; a namespaced rule only its own namespace;
    a rule with ``resource_names`` only requests naming one of them.
    """
    for r in rules:
        if r.api_group != api_group or r.resource != resource or verb not in r.verbs:
            continue
        if r.scope != CLUSTER and r.scope != namespace:
            continue
        if r.resource_names and name not in r.resource_names:
            continue
        return True
    return False
