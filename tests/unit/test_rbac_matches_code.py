"""The daemon's RBAC is exactly ``daemon/kube/rbac.py``, and the code asks for nothing outside it.

Four checks, each a way the role and the code could drift apart:

1. **Role ↔ table**: the ClusterRole/Roles in ``config/deploy/base/rbac.yaml`` grant exactly the
   permissions ``daemon.kube.rbac.required`` expands to for the shipped configuration (no more:
   least privilege; no less: the daemon would get a 403 in production that no sandbox test shows).
2. **Code → table** (static): an AST scan of ``daemon/`` and ``probes/`` for every
   kubernetes_asyncio API method the code references (``read_namespaced_secret``,
   ``patch_namespaced_deployment``, ``list_cluster_custom_object(group, version, plural)``…),
   mapped to (API group, resource, verb). Each must be granted by ``REQUIRED`` or declared in
   ``NOT_GRANTED`` (a generic per-kind code path the daemon never takes, refused on purpose).
   A custom-object call whose ``plural`` is not a literal stands for every custom resource in
   ``daemon.core.resources.RESOURCES`` of that scope. A module that watches (``watch=True`` or
   ``Watch().stream``) needs ``watch`` for every ``list`` it references; a module that
   server-side applies (``application/apply-patch+yaml``) needs ``create`` for every ``patch``
   (an apply that creates is authorised as ``create``).
2b. **Table → code** (surplus): every (group, resource, verb) the role grants is used by some code
   path the scan finds; a permission no code uses fails the test.
3. **Data → table**: every kind in the desired manifests can be server-side applied (create +
   patch + get) where it lives; CoreDNS can be patched by the name and namespace the settings
   give; the Lease works in the namespace the settings give; KServe's ConfigMap can be read.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from daemon.kube import rbac
from daemon.kube.rbac import CLUSTER, NOT_GRANTED, Grant, Rule, allows, expand
from tests.conftest import ROOT


def _required() -> tuple[Rule, ...]:
    """The rules for the shipped configuration, as config/deploy/build.py derives them."""
    spec = importlib.util.spec_from_file_location("warden_deploy_build", ROOT / "config/deploy/build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    found: tuple[Rule, ...] = build.required_rules(ROOT)
    return found


REQUIRED = _required()

# -- the scanner -----------------------------------------------------------------------------------

VERBS = {
    "read": "get", "list": "list", "create": "create", "patch": "patch", "replace": "update",
    "delete_collection": "deletecollection", "delete": "delete", "get": "get",
}
# kubernetes_asyncio's snake-case kind → (API group, plural resource). A kind missing here fails
# the scan loudly (extend the table) rather than being skipped.
KINDS = {
    "namespace": ("", "namespaces"),
    "service_account": ("", "serviceaccounts"),
    "secret": ("", "secrets"),
    "config_map": ("", "configmaps"),
    "pod": ("", "pods"),
    "event": ("", "events"),
    "service": ("", "services"),
    "endpoints": ("", "endpoints"),
    "node": ("", "nodes"),
    "persistent_volume_claim": ("", "persistentvolumeclaims"),
    "deployment": ("apps", "deployments"),
    "replica_set": ("apps", "replicasets"),
    "stateful_set": ("apps", "statefulsets"),
    "daemon_set": ("apps", "daemonsets"),
    "lease": ("coordination.k8s.io", "leases"),
    "token_review": ("authentication.k8s.io", "tokenreviews"),
    "self_subject_access_review": ("authorization.k8s.io", "selfsubjectaccessreviews"),
}
SUBRESOURCES = ("log", "status", "scale", "eviction", "binding", "ephemeralcontainers")
_API_METHOD = re.compile(
    r"^(?P<verb>read|list|create|patch|replace|delete_collection|delete)_"
    r"(?P<namespaced>namespaced_)?(?P<kind>[a-z_]+?)(?P<all>_for_all_namespaces)?(?:_with_http_info)?$"
)
_CUSTOM = re.compile(
    r"^(?P<verb>get|list|create|patch|replace|delete)_(?P<scope>namespaced|cluster)_custom_object"
    r"(?:_(?P<sub>status|scale))?(?:_with_http_info)?$"
)


def _api_methods() -> frozenset[str]:
    """Every request method of every kubernetes_asyncio ``*Api`` class: only these count."""
    from kubernetes_asyncio import client

    names: set[str] = set()
    for cls_name in dir(client):
        cls = getattr(client, cls_name)
        if cls_name.endswith("Api") and isinstance(cls, type):
            names.update(n for n in vars(cls) if not n.startswith("_"))
    return frozenset(names)


API_METHODS = _api_methods()


@dataclass(frozen=True, order=True)
class Use:
    api_group: str
    resource: str
    verb: str
    where: str


class UnknownKindError(Exception):
    pass


@dataclass(frozen=True)
class CustomResource:
    group: str
    plural: str
    namespaced: bool


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _custom_uses(m: re.Match[str], call: ast.Call | None, where: str,
                 custom: tuple[CustomResource, ...]) -> list[Use]:
    verb = VERBS[m["verb"]]
    namespaced_call = m["scope"] == "namespaced"
    plural_idx = 3 if namespaced_call else 2
    group = plural = None
    if call is not None:
        args = {i: a for i, a in enumerate(call.args)}
        kws = {k.arg: k.value for k in call.keywords if k.arg}
        group = _literal(kws.get("group", args.get(0)))
        plural = _literal(kws.get("plural", args.get(plural_idx)))
    sub = f"/{m['sub']}" if m["sub"] else ""
    if plural is not None:
        return [Use(group or "?", plural + sub, verb, where)]
    # Dynamic plural: every custom resource this call could reach.
    if namespaced_call:
        targets = [c for c in custom if c.namespaced]
    elif verb == "list":
        targets = list(custom)  # the cluster path lists a namespaced kind across namespaces
    else:
        targets = [c for c in custom if not c.namespaced]
    return [Use(c.group, c.plural + sub, verb, where) for c in targets if group in (None, c.group)]


def _typed_uses(m: re.Match[str], where: str) -> list[Use]:
    kind, sub = m["kind"], ""
    if kind not in KINDS:
        head, _, tail = kind.rpartition("_")
        if tail in SUBRESOURCES and head in KINDS:
            kind, sub = head, "/" + tail
    if kind not in KINDS:
        raise UnknownKindError(f"{where}: unknown kind {kind!r} in an API method name: add it to KINDS")
    group, resource = KINDS[kind]
    verb = VERBS[m["verb"]]
    if sub == "/log" and verb == "get":
        return [Use(group, resource + sub, "get", where)]
    return [Use(group, resource + sub, verb, where)]


def scan_source(source: str, *, filename: str, custom: tuple[CustomResource, ...]) -> set[Use]:
    """Every API permission the module's code references (see the module docstring)."""
    tree = ast.parse(source, filename=filename)
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    watches = any(
        (isinstance(n, ast.keyword) and n.arg == "watch" and isinstance(n.value, ast.Constant)
         and n.value.value is True)
        or (isinstance(n, ast.Attribute) and n.attr == "stream")
        for n in ast.walk(tree)
    )
    applies = any(isinstance(n, ast.Constant) and n.value == "application/apply-patch+yaml"
                  for n in ast.walk(tree))
    uses: set[Use] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or node.attr not in API_METHODS:
            continue
        where = f"{filename}:{node.lineno}"
        parent = parents.get(node)
        call = parent if isinstance(parent, ast.Call) and parent.func is node else None
        if (cm := _CUSTOM.match(node.attr)) is not None:
            found = _custom_uses(cm, call, where, custom)
        elif (tm := _API_METHOD.match(node.attr)) is not None:
            found = _typed_uses(tm, where)
        else:
            continue
        uses.update(found)
        if watches:
            uses.update(Use(u.api_group, u.resource, "watch", u.where) for u in found if u.verb == "list")
        if applies:
            uses.update(Use(u.api_group, u.resource, "create", u.where) for u in found if u.verb == "patch")
    return uses


def _custom_resources() -> tuple[CustomResource, ...]:
    from daemon.core.resources import RESOURCES

    typed_groups = {g for g, _ in KINDS.values()}
    return tuple(CustomResource(group=r.group, plural=r.plural, namespaced=r.namespaced)
                 for r in RESOURCES if r.group not in typed_groups)


def scan_tree() -> set[Use]:
    custom = _custom_resources()
    uses: set[Use] = set()
    for pkg in ("daemon", "probes"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            uses |= scan_source(path.read_text(), filename=rel, custom=custom)
    return uses


def _covered(use: Use, rules: tuple[Rule, ...]) -> bool:
    return any(r.api_group == use.api_group and r.resource == use.resource and use.verb in r.verbs
               for r in rules)


# -- the scanner, on known snippets ---------------------------------------------------------------

CUSTOM = (CustomResource("serving.kserve.io", "inferenceservices", True),
          CustomResource("serving.kserve.io", "clusterservingruntimes", False))


@pytest.mark.parametrize(("snippet", "expected"), [
    ("api.read_namespaced_secret('n', 'ns')", {("", "secrets", "get")}),
    ("await self.core.patch_namespaced_service_account(n, ns, body)", {("", "serviceaccounts", "patch")}),
    ("f = api.list_pod_for_all_namespaces", {("", "pods", "list")}),
    ("api.list_namespace()", {("", "namespaces", "list")}),
    ("api.read_namespaced_pod_log(n, ns)", {("", "pods/log", "get")}),
    ("api.patch_namespaced_deployment_with_http_info(n, ns, b)", {("apps", "deployments", "patch")}),
    ("api.replace_namespaced_lease(n, ns, b)", {("coordination.k8s.io", "leases", "update")}),
    ("api.delete_namespaced_pod(n, ns)", {("", "pods", "delete")}),
    ("api.patch_namespaced_pod_status(n, ns, b)", {("", "pods/status", "patch")}),
    ("c.patch_namespaced_custom_object('serving.kserve.io', 'v1beta1', ns, 'inferenceservices', n, b)",
     {("serving.kserve.io", "inferenceservices", "patch")}),
    ("c.get_cluster_custom_object(group='g.io', version='v1', plural='things', name=n)",
     {("g.io", "things", "get")}),
    # dynamic plural: every custom resource of the call's scope
    ("c.get_namespaced_custom_object(r.group, r.version, ns, r.plural, n)",
     {("serving.kserve.io", "inferenceservices", "get")}),
    ("c.patch_cluster_custom_object(r.group, r.version, r.plural, n, b)",
     {("serving.kserve.io", "clusterservingruntimes", "patch")}),
    ("c.list_cluster_custom_object(r.group, r.version, r.plural)",
     {("serving.kserve.io", "inferenceservices", "list"),
      ("serving.kserve.io", "clusterservingruntimes", "list")}),
    # a module that watches needs watch with its lists
    ("f = api.list_secret_for_all_namespaces\nf(watch=True)",
     {("", "secrets", "list"), ("", "secrets", "watch")}),
    ("w = Watch()\nw.stream(api.list_namespaced_pod, ns)", {("", "pods", "list"), ("", "pods", "watch")}),
    # a module that server-side applies needs create with its patches
    ("CT = 'application/apply-patch+yaml'\napi.patch_namespaced_secret(n, ns, b)",
     {("", "secrets", "patch"), ("", "secrets", "create")}),
    # not API calls
    ("x.read_text(); y.list_files(); z.patch(1); api.get_api_resources()", set()),
    ("kube.read_pod_log(ns, n)", set()),
])
def test_scanner_finds_api_uses(snippet: str, expected: set[tuple[str, str, str]]) -> None:
    got = {(u.api_group, u.resource, u.verb) for u in scan_source(snippet, filename="x.py", custom=CUSTOM)}
    assert got == expected


def test_scanner_reports_where() -> None:
    (use,) = scan_source("\n\napi.delete_namespaced_pod(n, ns)", filename="daemon/x.py", custom=CUSTOM)
    assert use.where == "daemon/x.py:3"


# -- 1. role ↔ table ----------------------------------------------------------------------------------

def _grants_from_manifests(docs: list[dict[str, Any]]) -> set[Grant]:
    roles = {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")): d
             for d in docs if d["kind"] in ("ClusterRole", "Role")}
    bound: set[Grant] = set()
    for b in docs:
        if b["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": "kserve-warden",
                                  "namespace": rbac.OWN_NAMESPACE}], b["metadata"]
        ref = b["roleRef"]
        ns = b["metadata"].get("namespace")
        role = roles[(ref["kind"], ref["name"], ns if ref["kind"] == "Role" else None)]
        scope = CLUSTER if b["kind"] == "ClusterRoleBinding" else ns
        for rule in role["rules"]:
            assert set(rule) <= {"apiGroups", "resources", "verbs", "resourceNames"}, rule
            for g in rule["apiGroups"]:
                for res in rule["resources"]:
                    for v in rule["verbs"]:
                        assert "*" not in (g, res, v), f"wildcard in {rule}"
                        for name in rule.get("resourceNames") or [""]:
                            bound.add(Grant(scope=scope, api_group=g, resource=res, verb=v,
                                            resource_name=name))
    return bound


def test_role_grants_exactly_the_table() -> None:
    docs = [d for d in yaml.safe_load_all((ROOT / "config/deploy/base/rbac.yaml").read_text()) if d]
    granted = _grants_from_manifests(docs)
    required = set(expand(REQUIRED))
    assert granted - required == set(), "the role grants more than daemon.kube.rbac.required()"
    assert required - granted == set(), "the role lacks part of REQUIRED: run python config/deploy/build.py"


def test_table_is_consistent() -> None:
    both = {(g.api_group, g.resource, g.verb) for g in expand(REQUIRED)} & \
        {(g.api_group, g.resource, g.verb) for g in expand(NOT_GRANTED)}
    assert not both, f"required and refused at once: {both}"
    for r in REQUIRED + NOT_GRANTED:
        assert r.verbs and r.why, r
        assert set(r.verbs) <= {"get", "list", "watch", "create", "update", "patch", "delete"}, r
    # Secrets: never read cluster-wide, never deleted, written only under the derived secret's name.
    assert not allows("get", api_group="", resource="secrets", namespace="default", rules=REQUIRED)
    assert not allows("list", api_group="", resource="secrets", rules=REQUIRED)
    assert allows("list", api_group="", resource="secrets", namespace="user-example-com", rules=REQUIRED)
    assert not allows("delete", api_group="", resource="secrets", namespace="user-example-com",
                      rules=REQUIRED)
    for verb in ("create", "patch"):
        assert allows(verb, api_group="", resource="secrets", namespace="user-example-com",
                      name="minio-s3-secret", rules=REQUIRED)
        assert not allows(verb, api_group="", resource="secrets", namespace="user-example-com",
                          name="minted-token", rules=REQUIRED), "a Secret could be minted under any name"
        assert not allows(verb, api_group="", resource="secrets", namespace="kubeflow",
                          name="minio-s3-secret", rules=REQUIRED)
    # CoreDNS only, only in kube-system
    for ns, name, ok in (("kube-system", "coredns", True), ("kube-system", "other", False),
                         ("kserve", "coredns", False)):
        assert allows("patch", api_group="apps", resource="deployments", namespace=ns, name=name,
                      rules=REQUIRED) is ok
    # kubeflow: exactly what its one desired AuthorizationPolicy needs (plus reading the source secret)
    kubeflow = {(r.api_group, r.resource, v, n) for r in REQUIRED if r.scope == "kubeflow"
                for v in r.verbs if v not in ("get", "list", "watch") for n in r.resource_names}
    ap, name = ("security.istio.io", "authorizationpolicies"), "minio-user-namespace-access"
    assert kubeflow == {(*ap, "create", name), (*ap, "patch", name)}
    # pods/log and pod deletion only where the predictor pods live
    assert {r.scope for r in REQUIRED if r.resource in ("pods/log",) or "delete" in r.verbs} == \
        {"user-example-com"}
    # cluster-wide: reads, and Events (findings on every InferenceService in scope)
    writes = {(r.resource, v) for r in REQUIRED if r.scope == CLUSTER for v in r.verbs
              if v not in ("get", "list", "watch")}
    assert writes <= {("events", "create"), ("events", "patch")}, "no cluster-wide write but Events"


# -- 2. code → table ------------------------------------------------------------------------------------

def test_code_uses_nothing_the_role_lacks() -> None:
    uses = scan_tree()
    assert uses, "the scan found no API use at all: the scanner is broken"
    missing = sorted(u for u in uses if not _covered(u, REQUIRED) and not _covered(u, NOT_GRANTED))
    assert not missing, (
        "the daemon's code uses permissions daemon/kube/rbac.py does not list (add them to REQUIRED and run "
        "config/deploy/build.py, or to NOT_GRANTED if that code path is never taken):\n"
        + "\n".join(f"  {u.verb} {u.api_group or 'core'}/{u.resource}  at {u.where}" for u in missing)
    )


def test_role_grants_nothing_the_code_never_uses() -> None:
    """Surplus: a permission in the role that no code path uses is privilege for nothing."""
    uses = {(u.api_group, u.resource, u.verb) for u in scan_tree()}
    surplus = sorted({(g.api_group, g.resource, g.verb) for g in expand(REQUIRED)} - uses)
    assert not surplus, f"the role grants permissions no code uses: {surplus}"


def test_the_surplus_check_fails_on_an_unused_permission() -> None:
    uses = {(u.api_group, u.resource, u.verb) for u in scan_tree()}
    extra = Rule(api_group="", resource="secrets", verbs=("delete",), scope="user-example-com", why="x")
    granted = {(g.api_group, g.resource, g.verb) for g in expand((*REQUIRED, extra))}
    assert granted - uses == {("", "secrets", "delete")}


def test_not_granted_declarations_are_not_stale() -> None:
    """Every refused permission still matches a code path; otherwise drop it from NOT_GRANTED."""
    uses = {(u.api_group, u.resource, u.verb) for u in scan_tree()}
    stale = [g for g in expand(NOT_GRANTED) if (g.api_group, g.resource, g.verb) not in uses]
    assert not stale, f"NOT_GRANTED lists permissions no code path uses: {sorted(stale)}"


# -- 3. data → table -------------------------------------------------------------------------------------

def _desired_objects() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for d in (ROOT / "config/desired", ROOT / "sandbox/demo/desired"):
        for p in sorted(d.glob("*.yaml")):
            out += [o for o in yaml.safe_load_all(p.read_text()) if isinstance(o, dict)]
    assert out, "no desired manifests found"
    return out


def test_every_desired_kind_can_be_applied_where_it_lives() -> None:
    from daemon.core.resources import UnknownKindError as UnknownResourceKind
    from daemon.core.resources import resource_for

    for obj in _desired_objects():
        try:
            res = resource_for(obj["apiVersion"], obj["kind"])
        except UnknownResourceKind:
            # A declaration the daemon turns into API calls itself (the derived storage secret).
            spec = obj.get("spec") or {}
            assert obj["kind"] == "DerivedSecret", obj["kind"]
            for ns, verbs in ((obj["metadata"]["namespace"], ("get", "create", "patch")),
                              ((spec.get("source") or {}).get("namespace"), ("get",))):
                assert ns, obj
                for verb in verbs:
                    name = obj["metadata"]["name"] if verb != "get" else spec["source"]["name"]
                    assert allows(verb, api_group="", resource="secrets", namespace=ns, name=name,
                                  rules=REQUIRED), (verb, ns)
            continue
        ns = (obj.get("metadata") or {}).get("namespace")
        for verb in ("get", "create", "patch"):
            name = obj["metadata"]["name"]
            assert allows(verb, api_group=res.group, resource=res.plural, namespace=ns, name=name,
                          rules=REQUIRED), (
                f"cannot {verb} {obj['kind']} {ns}/{name}")


def test_settings_targets_are_permitted() -> None:
    s = yaml.safe_load((ROOT / "config/warden.yaml").read_text())
    dns = s["coredns"]
    for verb in ("get", "list", "watch", "patch"):
        assert allows(verb, api_group="apps", resource="deployments", namespace=dns["namespace"],
                      name=dns["deployment"], rules=REQUIRED)
    le = s["leader_election"]
    for verb in ("get", "create", "update"):
        assert allows(verb, api_group="coordination.k8s.io", resource="leases",
                      namespace=le["lease_namespace"], name=le["lease_name"], rules=REQUIRED)
    kc = s["kserve_config"]
    for verb in ("get", "list", "watch"):
        assert allows(verb, api_group="", resource="configmaps", namespace=kc["namespace"], name=kc["name"],
                      rules=REQUIRED)
    assert not allows("list", api_group="", resource="configmaps", namespace=kc["namespace"], name="other",
                      rules=REQUIRED)
    for m in s["models"]:  # the models' namespaces: their pods may be deleted, their logs read
        for verb, res in (("delete", "pods"), ("get", "pods/log")):
            assert allows(verb, api_group="", resource=res, namespace=m["namespace"], rules=REQUIRED)
    for ns in s["secrets"]["namespaces"]:
        for verb in ("get", "list", "watch"):
            assert allows(verb, api_group="", resource="secrets", namespace=ns, rules=REQUIRED)
        for res in ("pods", "serviceaccounts"):
            assert allows("watch", api_group="", resource=res, namespace=ns, rules=REQUIRED)
        assert allows("create", api_group="", resource="events", namespace=ns, rules=REQUIRED)
    assert allows("create", api_group="", resource="events", namespace=dns["namespace"], rules=REQUIRED), \
        "the CoreDNS restart event"


def test_namespace_scope_and_secret_opt_in_shape_the_role() -> None:
    """With scope.namespaces the reads become Roles there; secrets: ["*"] is the only way to a
    cluster-wide Secret read; with no settings at all nothing is written anywhere."""
    from daemon.core.desired import parse_desired
    from daemon.core.settings import ScopeSettings, SecretAccessSettings, Settings
    from daemon.kube.rbac import required

    empty = parse_desired([])
    bare = required(Settings(), empty)
    assert not [r for r in bare if r.resource == "secrets"]
    assert {(r.resource, v) for r in bare for v in r.verbs if v not in ("get", "list", "watch")} == \
        {("events", "create"), ("events", "patch"), ("deployments", "patch"), ("leases", "create"),
         ("leases", "update")}
    everywhere = required(Settings(secrets=SecretAccessSettings(namespaces=("*",))), empty)
    assert allows("list", api_group="", resource="secrets", rules=everywhere)
    scoped = required(Settings(scope=ScopeSettings(namespaces=("team-a",))), empty)
    assert allows("watch", api_group="serving.kserve.io", resource="inferenceservices", namespace="team-a",
                  rules=scoped)
    assert not allows("watch", api_group="serving.kserve.io", resource="inferenceservices", rules=scoped)
    assert not allows("watch", api_group="serving.kserve.io", resource="inferenceservices",
                      namespace="team-b", rules=scoped)
    assert allows("list", api_group="", resource="namespaces", rules=scoped)  # cluster-scoped kind
    # The desired state without an opt-in: only its own Secrets, by name.
    from daemon.process.config_files import load_desired

    seed = load_desired(ROOT / "config" / "desired")
    named = required(Settings(), seed)
    for ns, name in (("user-example-com", "minio-s3-secret"), ("kubeflow", "mlpipeline-minio-artifact")):
        for verb in ("get", "list", "watch"):
            assert allows(verb, api_group="", resource="secrets", namespace=ns, name=name, rules=named)
            assert not allows(verb, api_group="", resource="secrets", namespace=ns, name="other", rules=named)
