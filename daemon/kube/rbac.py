"""Exactly what the daemon may do on the Kubernetes API: the table its RBAC is generated from.

:func:`required` returns every (API group, resource, verb, scope, names) the daemon uses for a
given configuration (settings + desired state), and why. Three things are held to it by tests:

- the ClusterRole/Roles in ``config/deploy/base/rbac.yaml`` are generated from it
  (``python config/deploy/build.py``, for ``config/warden.yaml`` + ``config/desired``) and must
  match it exactly — no more, no less;
- a scan of the daemon's source (``tests/unit/test_rbac_matches_code.py``) finds every
  kubernetes_asyncio call and fails if one is not covered here — *and* if a permission granted
  here is used by no code path (surplus);
- the effects layer may call :func:`allows` before a write.

Least privilege, rule by rule (issue 11 item 7, issue 13 items 9-11):

* **Cluster-wide reads** (ClusterRole) only of what discovery of every InferenceService needs:
  InferenceServices, ServingRuntimes, ClusterServingRuntimes, pods, ServiceAccounts,
  namespaces, Services, PVCs, AuthorizationPolicies, PeerAuthentications, Nodes. With
  ``scope.namespaces`` set the same reads are granted per namespace instead (a Role each; the
  informer then lists and watches per namespace); the cluster-scoped kinds (namespaces,
  ClusterServingRuntimes, Nodes) stay in the ClusterRole.
* **Secrets** are never read cluster-wide unless ``secrets.namespaces`` holds ``"*"``: a Role
  per opted-in namespace; outside those, only the single Secrets the desired state needs (the
  derived secret, its source), by ``resourceNames`` — the informer reads them by field selector.
* **Named reads**: KServe's ConfigMap and the CoreDNS Deployment are read by
  ``fieldSelector=metadata.name=…``, so their Roles carry ``resourceNames``.
* **Writes** are derived from the desired state, object by object: each desired object may be
  server-side applied (``patch``) *by its own name* in its own namespace, nothing else. A
  server-side apply that creates a missing object is authorised as ``create`` with the object's
  name (the API server's patch handler builds the create check with ``Name``), so ``create`` is
  granted too, **with the same ``resourceNames``**: no Secret can be minted under another name.
  The ``kubeflow`` Role therefore holds the one AuthorizationPolicy the desired state puts there.
* ``delete`` on pods (a predictor pod stuck after its ServiceAccount was fixed) and
  ``pods/log`` (storage-initializer lines as evidence) only where the desired InferenceServices'
  pods live (or the scope's namespaces, when set); Events (``create``/``patch``, never named:
  a POST carries no name) where findings are reported — cluster-wide without a namespace scope,
  since every InferenceService's findings become Events on it.
* CoreDNS may be patched only by name in its namespace; the Lease lives in the daemon's own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from daemon.core.desired import DesiredState
from daemon.core.resources import resource_for
from daemon.core.settings import Settings

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
    """``CLUSTER`` or the one namespace a Role is granted in."""
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

DISCOVERY_READS: Final[tuple[Rule, ...]] = (
    Rule(api_group="", resource="namespaces", verbs=READ, why="injection labels, istio.io/rev"),
    Rule(api_group="", resource="serviceaccounts", verbs=READ, why="model SAs: secrets, imagePullSecrets"),
    Rule(api_group="", resource="pods", verbs=READ,
         why="predictor pod statuses: ImagePullBackOff, readiness"),
    Rule(api_group=KSERVE, resource="inferenceservices", verbs=READ,
         why="every InferenceService in scope: spec and status conditions"),
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
    Rule(api_group="", resource="nodes", verbs=READ,
         why="an Unschedulable predictor pod: allocatable, taints, labels, conditions of each Node"),
)
CLUSTER_SCOPED: Final = frozenset({"namespaces", "clusterservingruntimes", "nodes"})

NOT_GRANTED: Final[tuple[Rule, ...]] = (
    # The effects layer dispatches per kind (one code path per supported kind and verb), so it
    # *can* build requests the daemon never makes. Those are listed here, refused on purpose: a
    # change that starts using one must move it to the required rules, which regenerates the role.
    Rule(api_group="", resource="namespaces", verbs=("patch", "create"),
         why="generic merge-patch/apply path; namespaces are watched, never written"),
    Rule(api_group="", resource="configmaps", verbs=("patch", "create"),
         why="generic patch path; KServe's ConfigMap is only read"),
    Rule(api_group="", resource="pods", verbs=("patch", "create"),
         why="generic patch path; a stuck pod is deleted, never patched"),
    Rule(api_group="", resource="events", verbs=READ,
         why="generic read/list paths; Events are only written (count bumps by merge patch)"),
    Rule(api_group="coordination.k8s.io", resource="leases", verbs=("list", "watch", "patch"),
         why="generic list/watch/patch paths; the Lease is read by name, replaced with its resourceVersion"),
    Rule(api_group=KSERVE, resource="clusterservingruntimes", verbs=("patch", "create"),
         why="generic cluster-scoped patch path; only namespaced ServingRuntimes are applied"),
    Rule(api_group="", resource="services", verbs=("patch", "create"),
         why="generic per-kind path; Services are only read (a model's store endpoint)"),
    Rule(api_group="", resource="persistentvolumeclaims", verbs=("patch", "create"),
         why="generic per-kind path; PVCs are only read (pvc:// models)"),
    Rule(api_group="apps", resource="deployments", verbs=("create",),
         why="generic apply path; CoreDNS is only patched by name, never created"),
    Rule(api_group=ISTIO_SECURITY, resource="peerauthentications", verbs=("patch", "create"),
         why="generic custom-object patch path; PeerAuthentications are only read"),
    Rule(api_group="", resource="nodes", verbs=("patch", "create"),
         why="generic per-kind path; Nodes are only read (where a pending pod could go)"),
)


def _ns_of(obj: Mapping[str, Any]) -> str | None:
    ns = (obj.get("metadata") or {}).get("namespace")
    return str(ns) if ns else None


def secret_read_namespaces(settings: Settings, desired: DesiredState) -> frozenset[str]:
    """Where every Secret of a namespace is read (listed, watched): the opt-in only.
    ``{"*"}``: everywhere (explicit opt-in)."""
    names = set(settings.secrets.namespaces)
    return frozenset({CLUSTER}) if CLUSTER in names else frozenset(names)


def secret_read_names(settings: Settings, desired: DesiredState) -> frozenset[tuple[str, str]]:
    """Single Secrets the desired state needs outside the opt-in, read by name
    (``fieldSelector=metadata.name=``, RBAC ``resourceNames``): the Secrets it writes (the
    derived one, to compare) and each derived secret's source (to copy)."""
    whole = secret_read_namespaces(settings, desired)
    if CLUSTER in whole:
        return frozenset()
    pairs = {(ns, str((m.get("metadata") or {}).get("name", ""))) for m in desired.manifests
             if m.get("kind") == "Secret" and (ns := _ns_of(m))}
    for d in desired.derived:
        pairs |= {(d.namespace, d.name), (d.source_namespace, d.source_name)}
    return frozenset((ns, name) for ns, name in pairs if ns not in whole)


def predictor_namespaces(settings: Settings, desired: DesiredState) -> frozenset[str]:
    """Where the predictor pods the daemon may delete or read logs of live: the scope when set,
    else the namespaces of the desired InferenceServices and of the models' overrides."""
    if settings.scope.namespaces:
        return frozenset(settings.scope.namespaces)
    names = {ns for m in desired.manifests if m.get("kind") == "InferenceService" and (ns := _ns_of(m))}
    return frozenset(names | {m.namespace for m in settings.models})


def required(settings: Settings, desired: DesiredState, *,
             own_namespace: str = OWN_NAMESPACE) -> tuple[Rule, ...]:
    """Every permission the daemon needs for this configuration (see the module docstring)."""
    rules: list[Rule] = []
    scope_ns = sorted(settings.scope.namespaces)
    # -- observe (every replica) ------------------------------------------------------------------
    for r in DISCOVERY_READS:
        if not scope_ns or r.resource in CLUSTER_SCOPED:
            rules.append(r)
        else:
            rules.extend(Rule(api_group=r.api_group, resource=r.resource, verbs=r.verbs, scope=ns, why=r.why)
                         for ns in _around_scope(settings, desired))
    for ns in sorted(secret_read_namespaces(settings, desired)):
        rules.append(Rule(api_group="", resource="secrets", verbs=READ, scope=ns,
                          why="storage secret shape (hashed, never logged), opted in (secrets.namespaces)"))
    by_ns: dict[str, list[str]] = {}
    for ns, name in sorted(secret_read_names(settings, desired)):
        by_ns.setdefault(ns, []).append(name)
    for ns, names in by_ns.items():
        rules.append(Rule(api_group="", resource="secrets", verbs=READ, scope=ns, resource_names=tuple(names),
                          why="only the Secrets the desired state derives or derives from, by name"))
    kc = settings.kserve_config
    rules.append(Rule(api_group="", resource="configmaps", verbs=READ, scope=kc.namespace,
                      resource_names=(kc.name,),
                      why="KServe's inferenceservice-config, read by name (storage key, defaults)"))
    cd = settings.coredns
    rules.append(Rule(api_group="apps", resource="deployments", verbs=READ, scope=cd.namespace,
                      resource_names=(cd.deployment,), why="the CoreDNS Deployment, read by name"))
    # -- heal (the leader only) -------------------------------------------------------------------
    rules.append(Rule(api_group="apps", resource="deployments", verbs=("patch",), scope=cd.namespace,
                      resource_names=(cd.deployment,),
                      why="rollout restart of CoreDNS (restartedAt) and its restart-budget annotation"))
    for m in desired.manifests:
        res = resource_for(str(m.get("apiVersion", "")), str(m.get("kind", "")))
        name = str((m.get("metadata") or {}).get("name", ""))
        rules.append(Rule(api_group=res.group, resource=res.plural, verbs=APPLY,
                          scope=_ns_of(m) or CLUSTER, resource_names=(name,),
                          why=f"server-side apply of the desired {res.kind} {name} (create when missing)"))
    for d in desired.derived:
        rules.append(Rule(api_group="", resource="secrets", verbs=APPLY, scope=d.namespace,
                          resource_names=(d.name,),
                          why=f"the derived storage secret {d.name}, applied by SSA under its own name only"))
    for ns in sorted(predictor_namespaces(settings, desired)):
        rules.append(Rule(api_group="", resource="pods", verbs=("delete",), scope=ns,
                          why="a predictor pod stuck in ImagePullBackOff after its SA was fixed"))
        rules.append(Rule(api_group="", resource="pods/log", verbs=("get",), scope=ns,
                          why="storage-initializer and istio-proxy log lines as finding evidence"))
    event_scopes = sorted(_around_scope(settings, desired) | {cd.namespace}) if scope_ns else [CLUSTER]
    for ns in event_scopes:
        rules.append(Rule(api_group="", resource="events", verbs=APPLY, scope=ns,
                          why="Normal/Warning events on the objects concerned, reason = finding code"))
    # -- leader election --------------------------------------------------------------------------
    le = settings.leader_election
    rules.append(Rule(api_group="coordination.k8s.io", resource="leases", verbs=("get", "create", "update"),
                      scope=le.lease_namespace or own_namespace, why="the leader Lease"))
    return tuple(_merge(rules))


def _around_scope(settings: Settings, desired: DesiredState) -> set[str]:
    """With a namespace scope: the scope plus what diagnosis reads around it (the mesh's
    namespaces, the desired objects' namespaces) — what the informer watches."""
    names = set(settings.scope.namespaces) | {settings.mesh.storage_namespace, settings.mesh.root_namespace}
    names |= {m.namespace for m in settings.models}
    names |= {ns for m in desired.manifests if (ns := _ns_of(m))}
    for d in desired.derived:
        names |= {d.namespace, d.source_namespace}
    return names


def _merge(rules: Sequence[Rule]) -> Iterator[Rule]:
    """Drop exact duplicates (two desired objects of one kind merge in the generator)."""
    seen: set[tuple[str, str, tuple[str, ...], str, tuple[str, ...]]] = set()
    for r in rules:
        key = (r.api_group, r.resource, r.verbs, r.scope, r.resource_names)
        if key not in seen:
            seen.add(key)
            yield r


def expand(rules: Sequence[Rule]) -> frozenset[Grant]:
    """Every single permission the rules grant."""
    return frozenset(_expand(rules))


def _expand(rules: Sequence[Rule]) -> Iterator[Grant]:
    for r in rules:
        for verb in r.verbs:
            for name in r.resource_names or ("",):
                yield Grant(scope=r.scope, api_group=r.api_group, resource=r.resource, verb=verb,
                            resource_name=name)


def allows(verb: str, *, api_group: str, resource: str, rules: Collection[Rule], namespace: str | None = None,
           name: str | None = None) -> bool:
    """Whether ``rules`` permit this request (RBAC semantics, without wildcards): a cluster-wide
    rule covers every namespace, a namespaced rule only its own namespace, a rule with
    ``resource_names`` only requests naming one of them."""
    for r in rules:
        if r.api_group != api_group or r.resource != resource or verb not in r.verbs:
            continue
        if r.scope != CLUSTER and r.scope != namespace:
            continue
        if r.resource_names and name not in r.resource_names:
            continue
        return True
    return False
