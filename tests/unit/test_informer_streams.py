"""Which list+watch streams the informer opens for a scope (pure: no request is made).

The least-privilege promise lives here: Secrets are never read cluster-wide unless the settings
say ``"*"``; with a namespace list every namespaced kind is read per namespace (a Role there is
enough); the label selector goes to InferenceServices only; KServe's ConfigMap and CoreDNS are
read by name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.core.resources import resource_for
from daemon.core.world import WATCHED_KINDS
from daemon.kube.informer import plan_streams

RESOURCES = tuple(resource_for(av, k) for av, k in WATCHED_KINDS)
BY_NAME = {"ConfigMap": ("kserve", "inferenceservice-config"), "Deployment": ("kube-system", "coredns")}


def plan(namespaces: set[str] | None, secrets: set[str] | None,
         selector: str | None = None) -> set[tuple[str, str | None, str | None, str | None]]:
    return {(s.resource.kind, s.namespace, s.label_selector, s.field_selector)
            for s in plan_streams(RESOURCES, namespaces=namespaces, secret_namespaces=secrets,
                                  selector=selector, by_name=BY_NAME)}


@pytest.mark.parametrize(("secrets", "expected"), [
    (set(), set()),
    ({"user-example-com", "kubeflow"}, {"user-example-com", "kubeflow"}),
    ({"*"}, {None}),
    ({"*", "kubeflow"}, {None}),
])
def test_secrets_only_where_opted_in(secrets: set[str], expected: set[str | None]) -> None:
    got = {ns for kind, ns, _, _ in plan(None, secrets) if kind == "Secret"}
    assert got == expected


def test_no_scope_reads_every_namespace_but_secrets() -> None:
    streams = plan(None, set(), selector="team=a")
    for kind in ("Pod", "ServiceAccount", "ServingRuntime", "AuthorizationPolicy", "Namespace",
                 "ClusterServingRuntime"):
        assert (kind, None, None, None) in streams
    assert ("InferenceService", None, "team=a", None) in streams
    assert ("ConfigMap", "kserve", None, "metadata.name=inferenceservice-config") in streams
    assert ("Deployment", "kube-system", None, "metadata.name=coredns") in streams
    assert not any(kind == "Secret" for kind, *_ in streams)


def test_a_namespace_list_reads_each_namespace_alone() -> None:
    streams = plan({"a", "b"}, {"a"}, selector="team=a")
    pods = {ns for kind, ns, _, _ in streams if kind == "Pod"}
    assert pods == {"a", "b"}
    assert {(ns, sel) for kind, ns, sel, _ in streams if kind == "InferenceService"} == \
        {("a", "team=a"), ("b", "team=a")}
    assert {ns for kind, ns, _, _ in streams if kind == "Secret"} == {"a"}
    # cluster-scoped kinds stay one cluster-wide stream
    assert ("Namespace", None, None, None) in streams
    assert ("ClusterServingRuntime", None, None, None) in streams


def test_stream_owns_only_its_namespace_and_name() -> None:
    (cm,) = [s for s in plan_streams(RESOURCES, namespaces=None, secret_namespaces=(), by_name=BY_NAME)
             if s.resource.kind == "ConfigMap"]
    assert cm.owns({"metadata": {"namespace": "kserve", "name": "inferenceservice-config"}})
    assert not cm.owns({"metadata": {"namespace": "kserve", "name": "other"}})
    assert not cm.owns({"metadata": {"namespace": "x", "name": "inferenceservice-config"}})


def test_the_runner_reads_secrets_only_where_the_settings_and_desired_state_say() -> None:
    from daemon.kube.rbac import secret_read_names
    from daemon.process.config_files import load_desired, load_settings
    from daemon.process.runner import read_by_name, secret_namespaces, watch_namespaces
    from tests.conftest import ROOT

    def streams(settings_path: Path | None, environ: dict[str, str] | None = None
                ) -> set[tuple[str, str | None]]:
        s = load_settings(settings_path, environ=environ or {})
        d = load_desired(s.desired.dir)
        return {(st.resource.kind, st.namespace) if st.resource.kind != "Secret" or not st.field_selector
                else ("Secret", f"{st.namespace}:{st.field_selector}")
                for st in plan_streams(RESOURCES, namespaces=watch_namespaces(s, d),
                                       secret_namespaces=secret_namespaces(s, d), selector=s.scope.selector,
                                       by_name=read_by_name(s, d), secret_names=secret_read_names(s, d))}

    # No settings: every namespace for discovery, not one Secret.
    bare = streams(None)
    assert ("InferenceService", None) in bare and not any(k == "Secret" for k, _ in bare)
    # The configured example: the opt-in namespaces (also the derived secret's and its source's).
    example = streams(ROOT / "config" / "warden.yaml")
    assert {ns for k, ns in example if k == "Secret"} == {"user-example-com", "kubeflow"}
    assert ("ConfigMap", "kserve") in example and ("Deployment", "kube-system") in example
    # The example's desired state with no opt-in: only the derived secret and its source, by name.
    named = streams(ROOT / "config" / "warden.yaml", {"WARDEN_SECRET_NAMESPACES": ""})
    assert {ns for k, ns in named if k == "Secret"} == {
        "user-example-com:metadata.name=minio-s3-secret", "kubeflow:metadata.name=mlpipeline-minio-artifact"}
