"""Per-kind defaulting and validation rules, and CRD-driven registration, table-driven."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from sandbox.apiserver.crds import BUILTIN_CRDS
from sandbox.apiserver.kinds import bad_base64, normalize, type_errors, validate_labels, validate_name
from sandbox.apiserver.registry import Registry, kinds_from_crd, validate_crd
from sandbox.apiserver.selectors import SelectorError, parse_field_selector
from sandbox.apiserver.store import key_order

REG = Registry.with_builtins()


def kind(group: str, version: str, plural: str) -> Any:
    k = REG.lookup(group, version, plural)
    assert k is not None
    return k


def test_secret_string_data_folds_into_base64_data() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "minio123"}}
    assert normalize(kind("", "v1", "secrets"), obj, creating=True) == []
    assert obj == {
        "metadata": {"name": "s"},
        "data": {"a": "eA==", "b": base64.b64encode(b"minio123").decode()},
        "type": "Opaque",
    }


@pytest.mark.parametrize(
    ("plural", "body", "field"),
    [
        ("secrets", {"data": {"k!": "eA=="}}, "data[k!]"),
        ("secrets", {"data": {"bad key": "eA=="}}, "data[bad key]"),
        ("configmaps", {"data": {"k": 1}}, "data"),
        ("pods", {"spec": {}}, "spec.containers"),
        ("pods", {"spec": {"containers": [{"image": "x"}]}}, "spec.containers[0].name"),
        ("serviceaccounts", {"secrets": "s3"}, "secrets"),
    ],
)
def test_invalid_bodies(plural: str, body: dict[str, Any], field: str) -> None:
    errors = normalize(kind("", "v1", plural), {"metadata": {"name": "x"}, **body}, creating=True)
    assert field in [f for f, _ in errors]


def test_pod_and_namespace_defaults() -> None:
    pod: dict[str, Any] = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
        "status": {"x": 1},
    }
    assert normalize(kind("", "v1", "pods"), pod, creating=True) == []
    assert pod["status"] == {"phase": "Pending"} and pod["spec"]["serviceAccountName"] == "default"
    ns: dict[str, Any] = {"metadata": {"name": "kubeflow"}}
    normalize(kind("", "v1", "namespaces"), ns, creating=True)
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "kubeflow"}
    assert ns["status"] == {"phase": "Active"}
    no_image: dict[str, Any] = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    assert normalize(kind("", "v1", "pods"), no_image, creating=True) == [
        ("spec.containers[0].image", "Required value")]


@pytest.mark.parametrize(
    ("plural", "name", "ok"),
    [
        ("configmaps", "inferenceservice-config", True),
        ("configmaps", "a.b-c", True),
        ("configmaps", "Upper", False),
        ("configmaps", "-lead", False),
        ("namespaces", "user-example-com", True),
        ("namespaces", "a.b", False),
        ("events", "iris.17f3a", True),
    ],
)
def test_names(plural: str, name: str, ok: bool) -> None:
    assert (validate_name(kind("", "v1", plural), name) is None) is ok


@pytest.mark.parametrize(
    ("labels", "n_errors"),
    [
        ({"app": "iris", "sidecar.istio.io/inject": "true"}, 0),
        ({"istio-injection": ""}, 0),
        ({"bad key!": "x"}, 1),
        ({"k": "has space"}, 1),
        ({"k": "x" * 64}, 1),
    ],
)
def test_label_validation(labels: dict[str, str], n_errors: int) -> None:
    assert len(validate_labels(labels, "metadata.labels")) == n_errors


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"metadata": "x"}, "json: cannot unmarshal into Go struct field .metadata of type v1.ObjectMeta"),
        ({"metadata": {"labels": {"a": 1}}}, "field ObjectMeta.metadata.labels of type map"),
        ({"metadata": {"annotations": ["x"]}}, "field ObjectMeta.metadata.annotations of type map"),
        ({"metadata": {"finalizers": "x"}}, "field ObjectMeta.metadata.finalizers of type []string"),
        ({"metadata": {"name": 5}}, "field ObjectMeta.metadata.name of type string"),
        ({"metadata": {"namespace": ["a"]}}, "field ObjectMeta.metadata.namespace of type string"),
        # Well-typed bodies decode (whatever validation says later).
        ({}, None),
        ({"metadata": {"name": "a", "labels": {"k": "v"}, "annotations": {}, "finalizers": ["f"],
                       "namespace": None}}, None),
    ],
)
def test_type_errors(body: dict[str, Any], error: str | None) -> None:
    got = type_errors(body)
    if error is None:
        assert got is None
    else:
        assert got is not None and error in got, got


def test_builtin_crds_are_valid_and_register() -> None:
    reg = Registry.with_builtins()
    for crd in BUILTIN_CRDS:
        assert validate_crd(crd) == []
        reg.register_crd(crd)
    isvc = reg.lookup("serving.kserve.io", "v1beta1", "inferenceservices")
    assert isvc is not None and isvc.namespaced and isvc.status_subresource and not isvc.builtin
    assert [c.name for c in isvc.printer_columns] == ["URL", "Ready", "Age"]
    csr = reg.lookup("serving.kserve.io", "v1alpha1", "clusterservingruntimes")
    assert csr is not None and not csr.namespaced
    assert [k.version for k in kinds_from_crd(BUILTIN_CRDS[-1])] == ["v1", "v1beta1"]
    assert ("security.istio.io", ["v1", "v1beta1"]) in reg.group_versions()
    reg.unregister_crd("authorizationpolicies.security.istio.io")
    assert reg.lookup("security.istio.io", "v1", "authorizationpolicies") is None
    assert "security.istio.io" not in dict(reg.group_versions())


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda c: c["metadata"].update(name="wrong"), "metadata.name"),
        (lambda c: c["spec"].update(scope="Global"), "spec.scope"),
        (lambda c: c["spec"].update(versions=[]), "spec.versions"),
        (lambda c: c["spec"].update(group="nodot"), "spec.group"),
    ],
)
def test_invalid_crds(mutate: Any, field: str) -> None:
    crd = copy.deepcopy(BUILTIN_CRDS[0])
    mutate(crd)
    assert field in [f for f, _ in validate_crd(crd)]


def _deployment(labels: dict[str, str] | None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    template: dict[str, Any] = {"spec": {"containers": [{"name": "c", "image": "i"}]}}
    if labels is not None:
        template["metadata"] = {"labels": labels}
    spec = {"selector": {"matchLabels": {"a": "b"}}, "template": template}
    return {"metadata": {"name": "d"}, "spec": spec, **({"status": status} if status else {})}


# What kube-apiserver 1.36 answered (issue 12 part 4: the stand-in now says the same).
@pytest.mark.parametrize(
    ("obj", "errors"),
    [
        (_deployment({"a": "b", "x": "y"}), []),
        (_deployment(None), [("spec.template.metadata.labels",
                              "Invalid value: null: `selector` does not match template `labels`")]),
        (_deployment({"a": "c"}), [("spec.template.metadata.labels",
                                    'Invalid value: map[string]string{"a":"c"}: `selector` does not match '
                                    "template `labels`")]),
        (_deployment({"a": "b"}, {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}), []),
        (_deployment({"a": "b"}, {"readyReplicas": 1}),
         [("status.readyReplicas", "Invalid value: 1: cannot be greater than status.replicas")]),
        (_deployment({"a": "b"}, {"replicas": 2, "readyReplicas": 1, "availableReplicas": 2}),
         [("status.availableReplicas", "Invalid value: 2: cannot be greater than readyReplicas")]),
        (_deployment({"a": "b"}, {"replicas": -1}),
         [("status.replicas", "Invalid value: -1: must be greater than or equal to 0")]),
    ],
    ids=["ok", "no-template-labels", "labels-mismatch", "status-ok", "ready-over-replicas",
         "available-over-ready", "negative"],
)
def test_deployment_template_and_status_rules(obj: dict[str, Any], errors: list[tuple[str, str]]) -> None:
    assert normalize(kind("apps", "v1", "deployments"), obj, creating=False) == errors


@pytest.mark.parametrize(
    ("data", "at"),
    [({"k": "eA=="}, None), ({"k": "%%"}, 0), ({"k": "eA%="}, 2), (None, None)],
)
def test_secret_data_base64_error_offset(data: Any, at: int | None) -> None:
    assert bad_base64(data) == at


@pytest.mark.parametrize(
    ("plural", "selector", "message"),
    [
        ("configmaps", "data.k=v",
         '"data.k" is not a known field selector: only "metadata.name", "metadata.namespace"'),
        ("pods", "spec.nope=v", "field label not supported: spec.nope"),
    ],
)
def test_unknown_field_selector_wording(plural: str, selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as e:
        parse_field_selector(selector, allowed=kind("", "v1", plural).field_labels)
    assert str(e.value) == message


def test_lists_follow_etcd_key_order() -> None:
    keys = [("t1", "a"), ("t1-other", "d"), ("t1", "b")]
    assert sorted(keys, key=key_order) == [("t1-other", "d"), ("t1", "a"), ("t1", "b")]
