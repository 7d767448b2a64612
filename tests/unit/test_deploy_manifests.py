"""The in-cluster manifests, as ``kubectl apply -k`` would send them, are valid and safe.

What is validated is the real ``kustomize build`` output (kubectl's built-in kustomize) of the
base and of the example overlay, never the source files alone. Core kinds go through
``kubernetes-validate --strict`` (the API's own OpenAPI schemas; unknown fields fail); the
CRD kinds (ServiceMonitor, PrometheusRule, AuthorizationPolicy) through a JSON schema of the
fields we use, closed with ``additionalProperties: false`` so a typo fails too. The generated
parts (RBAC, the ConfigMap's files, the PrometheusRule) must be up to date with their sources.
"""

from __future__ import annotations

import copy
import importlib.util
import shutil
import subprocess
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT, find_tool

K8S_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
CRD_KINDS = ("ServiceMonitor", "PrometheusRule", "AuthorizationPolicy")
DAEMON_LABELS = {"app.kubernetes.io/name": "kserve-warden", "app.kubernetes.io/component": "daemon"}


def _load_build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("warden_deploy_build", ROOT / "config/deploy/build.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@cache
def kustomize(path: str) -> tuple[dict[str, Any], ...]:
    kubectl = find_tool("kubectl")
    out = subprocess.run([kubectl, "kustomize", str(ROOT / path)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def one(docs: tuple[dict[str, Any], ...], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


BUILDS = ("config/deploy/base", "config/deploy/overlays/example")


# -- generated parts are current ------------------------------------------------------------------

def test_generated_files_are_up_to_date() -> None:
    problems = _load_build().check(ROOT)
    assert problems == [], "stale generated manifests: run `python config/deploy/build.py`"


def test_check_mode_notices_stale_files(tmp_path: Path) -> None:
    """The staleness check is real: change or delete a source and --check names the copy."""
    build = _load_build()
    repo = tmp_path / "repo"
    for rel in ("config/desired", "config/deploy/base"):
        shutil.copytree(ROOT / rel, repo / rel)
    for rel in ("config/warden.yaml", "config/prometheus/warden-rules.yaml",
                "config/prometheus/prometheusrule.yaml"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, repo / rel)
    assert build.check(repo) == []
    (repo / "config/warden.yaml").write_text((ROOT / "config/warden.yaml").read_text() + "# changed\n")
    assert build.check(repo) == ["config/deploy/base/config/warden.yaml: out of date"]
    last = sorted((repo / "config/desired").glob("*.yaml"))[-1]
    last.unlink()
    problems = build.check(repo)
    assert f"config/deploy/base/config/desired/{last.name}: its source is gone" in problems
    assert "config/deploy/base/kustomization.yaml: out of date" in problems
    build.write(repo)
    assert build.check(repo) == []
    assert not (repo / "config/deploy/base/config/desired" / last.name).exists()


# -- schema validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", BUILDS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_kinds_validate_strictly(path: str, version: str) -> None:
    docs = kustomize(path)
    core = [d for d in docs if d["kind"] not in CRD_KINDS]
    assert {d["kind"] for d in core} >= {
        "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
        "ConfigMap", "Service", "Deployment", "PodDisruptionBudget"}
    for d in core:
        kubernetes_validate.validate(d, version, strict=True)


def test_strict_validation_rejects_an_unknown_field() -> None:
    """Negative control: a misspelt field is an error, so the test above would catch one."""
    dep = copy.deepcopy(one(kustomize(BUILDS[1]), "Deployment"))
    dep["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSIONS[-1], strict=True)


def _closed(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


_STR = {"type": "string", "minLength": 1}
_STRS = {"type": "array", "items": _STR, "minItems": 1}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_META = _closed({"name": _STR, "namespace": _STR, "labels": _LABELS, "annotations": _LABELS},
                ("name", "namespace"))
_DURATION = {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h|d|w|y))+$"}

CRD_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": _closed({
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "ServiceMonitor"},
        "metadata": _META,
        "spec": _closed({
            "jobLabel": _STR,
            "namespaceSelector": _closed({"matchNames": _STRS}),
            "selector": _closed({"matchLabels": _LABELS}, ("matchLabels",)),
            "endpoints": {"type": "array", "minItems": 1, "items": _closed({
                "port": _STR, "path": {"type": "string", "pattern": "^/"}, "interval": _DURATION,
                "scrapeTimeout": _DURATION}, ("port",))},
        }, ("selector", "endpoints")),
    }, ("apiVersion", "kind", "metadata", "spec")),
    "PrometheusRule": _closed({
        "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PrometheusRule"},
        "metadata": _META,
        "spec": _closed({"groups": {"type": "array", "minItems": 1, "items": _closed({
            "name": _STR, "interval": _DURATION,
            "rules": {"type": "array", "minItems": 1, "items": _closed({
                "alert": _STR, "record": _STR, "expr": _STR, "for": _DURATION,
                "labels": _LABELS, "annotations": _LABELS}, ("expr",))},
        }, ("name", "rules"))}}, ("groups",)),
    }, ("apiVersion", "kind", "metadata", "spec")),
    "AuthorizationPolicy": _closed({
        "apiVersion": {"enum": ["security.istio.io/v1", "security.istio.io/v1beta1"]},
        "kind": {"const": "AuthorizationPolicy"}, "metadata": _META,
        "spec": _closed({
            "action": {"enum": ["ALLOW", "DENY", "AUDIT", "CUSTOM"]},
            "selector": _closed({"matchLabels": _LABELS}, ("matchLabels",)),
            "rules": {"type": "array", "minItems": 1, "items": _closed({
                "from": {"type": "array", "items": _closed({"source": _closed({
                    "principals": _STRS, "namespaces": _STRS})}, ("source",))},
                "to": {"type": "array", "items": _closed({"operation": _closed({
                    "methods": {"type": "array", "items": {"enum": ["GET", "HEAD", "PUT", "POST", "DELETE"]}},
                    "ports": _STRS, "paths": _STRS})}, ("operation",))},
            })},
        }, ("action", "rules")),
    }, ("apiVersion", "kind", "metadata", "spec")),
}


@pytest.mark.parametrize("path", BUILDS)
def test_crd_kinds_match_their_schema(path: str) -> None:
    docs = kustomize(path)
    kinds = [d["kind"] for d in docs if d["kind"] in CRD_KINDS]
    assert "ServiceMonitor" in kinds and "AuthorizationPolicy" in kinds
    for d in docs:
        if d["kind"] in CRD_SCHEMAS:
            jsonschema.validate(d, CRD_SCHEMAS[d["kind"]])


def test_crd_schema_rejects_an_unknown_field() -> None:
    sm = copy.deepcopy(one(kustomize(BUILDS[0]), "ServiceMonitor"))
    sm["spec"]["endpoints"][0]["intreval"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(sm, CRD_SCHEMAS["ServiceMonitor"])


# -- the Deployment -------------------------------------------------------------------------------------

def _container(dep: dict[str, Any]) -> dict[str, Any]:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return dict(c)


def test_deployment_is_ha_and_locked_down() -> None:
    docs = kustomize(BUILDS[1])
    dep = one(docs, "Deployment", "kserve-warden")
    spec, pod = dep["spec"], dep["spec"]["template"]["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"] == DAEMON_LABELS
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["serviceAccountName"] == "kserve-warden"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = _container(dep)
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}
    assert c["image"] == "registry.example.com/kserve-warden/daemon:0.1.0"
    assert "command" not in c, "the image's ENTRYPOINT (kserve-warden run) must stay in charge"


def test_probes_and_metrics_port_match_the_daemon_settings() -> None:
    settings = yaml.safe_load((ROOT / "config/warden.yaml").read_text())
    c = _container(one(kustomize(BUILDS[1]), "Deployment"))
    (port,) = c["ports"]
    assert port == {"name": "metrics", "containerPort": settings["server"]["port"], "protocol": "TCP"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert "startupProbe" not in c or c["startupProbe"]["httpGet"]["port"] == "metrics"
    # leader election runs in the daemon's own namespace, where its Role is
    assert settings["leader_election"]["enabled"] is True
    assert settings["leader_election"]["lease_namespace"] == "kserve-warden"


def test_writable_paths_are_volumes_only() -> None:
    dep = one(kustomize(BUILDS[1]), "Deployment")
    c = _container(dep)
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert set(mounts) == {"/etc/kserve-warden", "/tmp"}
    assert mounts["/etc/kserve-warden"]["readOnly"] is True
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in vols[mounts["/tmp"]["name"]]


def test_configmap_holds_exactly_the_desired_state_and_settings() -> None:
    docs = kustomize(BUILDS[1])
    dep = one(docs, "Deployment")
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    # kustomize's content hash in the name: a config change rolls the pods
    assert cm["metadata"]["name"].startswith("kserve-warden-config-")
    assert cm["metadata"]["namespace"] == "kserve-warden"
    vol = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}["config"]["configMap"]
    assert vol["name"] == cm["metadata"]["name"]
    # what the pod sees under /etc/kserve-warden: path -> content
    in_pod = {item["path"]: cm["data"][item["key"]] for item in vol["items"]}
    assert set(cm["data"]) == {item["key"] for item in vol["items"]}, "a ConfigMap key is not mounted"
    expected = {"warden.yaml": (ROOT / "config/warden.yaml").read_text()}
    for p in sorted((ROOT / "config/desired").glob("*.yaml")):
        expected[f"desired/{p.name}"] = p.read_text()
    assert in_pod == expected
    # and the daemon reads the mounted desired state, not its embedded copy
    env = {e["name"]: e.get("value") for e in _container(dep)["env"]}
    assert env["WARDEN_DESIRED_DIR"] == "/etc/kserve-warden/desired"
    assert _container(dep)["args"] == ["--config", "/etc/kserve-warden/warden.yaml"]


def test_no_credential_value_in_the_configmap() -> None:
    (cm,) = [d for d in kustomize(BUILDS[1]) if d["kind"] == "ConfigMap"]
    for key, text in cm["data"].items():
        for obj in yaml.safe_load_all(text):
            if isinstance(obj, dict) and obj.get("kind") == "Secret":
                assert not obj.get("data") and not obj.get("stringData"), f"{key} carries secret values"


# -- Service, ServiceMonitor, PDB, policy, RBAC wiring ------------------------------------------------

def test_metrics_service_and_servicemonitor_find_the_pods() -> None:
    docs = kustomize(BUILDS[1])
    dep = one(docs, "Deployment")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    svc = one(docs, "Service", "kserve-warden")
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    (sport,) = svc["spec"]["ports"]
    assert sport["name"] == "metrics" and sport["targetPort"] == "metrics"
    sm = one(docs, "ServiceMonitor")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"]["matchNames"] == [svc["metadata"]["namespace"]]
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    # the job label the alerts use: up{job="kserve-warden"}
    assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == "kserve-warden"


def test_pdb_keeps_one_replica() -> None:
    docs = kustomize(BUILDS[1])
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == DAEMON_LABELS


def test_authorization_policy_admits_only_the_daemon_principal_to_minio() -> None:
    docs = kustomize(BUILDS[1])
    ap = one(docs, "AuthorizationPolicy")
    assert ap["metadata"]["namespace"] == "kubeflow"
    assert ap["spec"]["action"] == "ALLOW"
    assert ap["spec"]["selector"]["matchLabels"] == {"app": "seaweedfs"}
    sa = one(docs, "ServiceAccount")
    principal = f"cluster.local/ns/{sa['metadata']['namespace']}/sa/{sa['metadata']['name']}"
    sources = [s["source"] for r in ap["spec"]["rules"] for s in r["from"]]
    assert sources == [{"principals": [principal]}], "principal only: no namespace-wide rule"
    ns = one(docs, "Namespace", "kserve-warden")
    assert ns["metadata"]["labels"]["istio-injection"] == "enabled", "without a sidecar there is no principal"


def test_rbac_binds_the_deployment_service_account_in_the_right_namespaces() -> None:
    docs = kustomize(BUILDS[1])
    dep = one(docs, "Deployment")
    sa = one(docs, "ServiceAccount")
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    role_ns = sorted(d["metadata"]["namespace"] for d in docs if d["kind"] == "Role")
    settings = yaml.safe_load((ROOT / "config/warden.yaml").read_text())
    # the Lease, CoreDNS, KServe's ConfigMap (by name), and one Role per namespace the desired
    # state writes to or Secrets are read in
    assert role_ns == sorted({"kserve-warden", "kube-system", "kserve", *settings["secrets"]["namespaces"]})
    binding_ns = sorted(d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding")
    assert binding_ns == role_ns
    cluster_role = one(docs, "ClusterRole")
    writes = {(res, v) for r in cluster_role["rules"] for res in r["resources"] for v in r["verbs"]
              if v not in ("get", "list", "watch")}
    assert writes == {("events", "create"), ("events", "patch")}, "cluster-wide: reads, and Events only"
    assert "secrets" not in {res for r in cluster_role["rules"] for res in r["resources"]}, \
        "Secrets are read per opted-in namespace, never cluster-wide"


def test_own_namespace_enforces_the_restricted_pod_security_profile() -> None:
    ns = one(kustomize(BUILDS[1]), "Namespace", "kserve-warden")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_a_network_policy_says_who_may_scrape_the_metrics_port() -> None:
    docs = kustomize(BUILDS[1])
    pol = one(docs, "NetworkPolicy")
    dep = one(docs, "Deployment")
    assert pol["metadata"]["namespace"] == dep["metadata"]["namespace"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pol["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert pol["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = pol["spec"]["ingress"]
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    monitoring = {"kubernetes.io/metadata.name": "monitoring"}
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": monitoring}}]


def test_overlay_adds_the_prometheus_rule_with_the_plain_files_groups() -> None:
    docs = kustomize(BUILDS[1])
    rule = one(docs, "PrometheusRule")
    plain = yaml.safe_load((ROOT / "config/prometheus/warden-rules.yaml").read_text())
    assert rule["spec"]["groups"] == plain["groups"]
    assert rule["metadata"]["namespace"] == "kserve-warden"
    assert not [d for d in kustomize(BUILDS[0]) if d["kind"] == "PrometheusRule"]


def test_every_object_has_an_explicit_namespace_where_namespaced() -> None:
    """No kustomize `namespace:` override: the kube-system Role and the kubeflow policy must stay there."""
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for d in kustomize(BUILDS[1]):
        if d["kind"] not in cluster_scoped:
            assert d["metadata"].get("namespace"), f"{d['kind']}/{d['metadata']['name']} has no namespace"


def test_the_daemon_loads_the_mounted_config(tmp_path: Path) -> None:
    """Lay the ConfigMap out as the kubelet mounts it, and load it with the daemon's own loaders.

    The pod's environment comes from the rendered Deployment (paths under /etc/kserve-warden
    re-rooted in tmp): the settings validate, the desired state is the mounted one (not the
    embedded copy), and the port and Lease match the manifests.
    """
    import argparse

    from daemon.process.runner import load_inputs

    docs = kustomize(BUILDS[1])
    dep = one(docs, "Deployment")
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    c = _container(dep)
    mount = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["config"]
    root = tmp_path / mount.lstrip("/")
    vol = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}["config"]["configMap"]
    for item in vol["items"]:
        (root / item["path"]).parent.mkdir(parents=True, exist_ok=True)
        (root / item["path"]).write_text(cm["data"][item["key"]])
    environ = {e["name"]: e["value"].replace(mount, str(root)) for e in c["env"] if "value" in e}
    environ |= {e["name"]: "kserve-warden-abc" for e in c["env"] if "valueFrom" in e}
    config_arg = c["args"][c["args"].index("--config") + 1]
    assert config_arg.startswith(mount + "/")
    args = argparse.Namespace(config=config_arg.replace(mount, str(root)))
    inputs = load_inputs(args, environ=environ)
    assert inputs.settings.desired.dir == root / "desired"
    assert inputs.settings.server.port == c["ports"][0]["containerPort"]
    assert inputs.settings.leader_election.lease_namespace == dep["metadata"]["namespace"]
    desired_files = {p.name for p in (ROOT / "config/desired").glob("*.yaml")}
    assert {p.name for p in (root / "desired").iterdir()} == desired_files
    assert inputs.desired.manifests, "the mounted desired state is empty"
