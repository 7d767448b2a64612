"""sandbox.realcp.injector's pure part: istiod's decision, the JSONPatch, the AdmissionReview
answer, the webhook configuration, and where Istio injects end to end (table by table, no I/O)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from sandbox.controllers.predictor_pod import INJECT_ANNOTATION, PROXY_IMAGE, build_pod, sidecar_injected
from sandbox.realcp.injector import (
    PROXY_CONTAINER,
    STATUS_ANNOTATION,
    BadReview,
    admission_response,
    escape_pointer,
    inject_required,
    selector_matches,
    sidecar_patch,
    webhook_configuration,
    webhooks,
    would_inject,
)

Obj = dict[str, Any]
NS = "user-example-com"


def pod(*, labels: Obj | None = None, annotations: Obj | None = None, containers: list[Obj] | None = None,
        namespace: str | None = NS, **spec: Any) -> Obj:
    meta: Obj = {"generateName": "iris-"}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "kserve-container", "image": "kserve/sklearnserver"}]
                     if containers is None else containers, **spec}}


def review(obj: Any, *, operation: str = "CREATE", namespace: str = NS, uid: str = "u-1",
           kind: Obj | None = None) -> Obj:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": uid, "kind": kind or {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "operation": operation, "namespace": namespace, "object": obj}}


def apply_patch(doc: Obj, ops: list[Obj]) -> Obj:
    """RFC 6902 ``add`` (the only op the injector emits): object member or array append."""
    out = copy.deepcopy(doc)
    for op in ops:
        assert op["op"] == "add"
        *parents, last = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
        target: Any = out
        for token in parents:
            target = target[token]
        if isinstance(target, list):
            assert last == "-"
            target.append(op["value"])
        else:
            target[last] = op["value"]
    return out


def decoded(answer: Obj) -> list[Obj]:
    ops: list[Obj] = json.loads(base64.b64decode(answer["response"]["patch"]))
    return ops


# -- istiod's decision ---------------------------------------------------------------------------

@pytest.mark.parametrize(("namespace", "labels", "annotations", "host_network", "expected"), [
    (NS, {}, {}, False, True),                                  # selected, no opinion: policy enabled
    (NS, {}, {INJECT_ANNOTATION: "false"}, False, False),
    (NS, {}, {INJECT_ANNOTATION: "FALSE"}, False, False),
    (NS, {}, {INJECT_ANNOTATION: "true"}, False, True),
    (NS, {}, {INJECT_ANNOTATION: ""}, False, True),                         # empty is no opinion
    (NS, {}, {INJECT_ANNOTATION: "bogus"}, False, False),                   # only y/yes/true/on inject
    (NS, {INJECT_ANNOTATION: "false"}, {}, False, False),
    (NS, {INJECT_ANNOTATION: "Yes"}, {}, False, True),
    (NS, {INJECT_ANNOTATION: "on"}, {}, False, True),
    (NS, {INJECT_ANNOTATION: "true"}, {INJECT_ANNOTATION: "false"}, False, True),   # the label wins
    (NS, {INJECT_ANNOTATION: "false"}, {INJECT_ANNOTATION: "true"}, False, False),  # the label wins
    ("kube-system", {INJECT_ANNOTATION: "true"}, {}, False, False),         # istiod's ignored namespaces
    ("kube-public", {}, {}, False, False),
    (NS, {}, {}, True, False),                                              # hostNetwork pods never
])
def test_inject_required(namespace: str, labels: Obj, annotations: Obj, host_network: bool,
                         expected: bool) -> None:
    assert inject_required(namespace=namespace, labels=labels, annotations=annotations,
                           host_network=host_network) is expected


# -- the patch -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("token", "escaped"), [
    ("sidecar.istio.io/status", "sidecar.istio.io~1status"),
    ("a~b", "a~0b"),
    ("~/", "~0~1"),      # "~" first: "/" → "~1" must not become "~01"
    ("plain", "plain"),
])
def test_escape_pointer(token: str, escaped: str) -> None:
    assert escape_pointer(token) == escaped


@pytest.mark.parametrize(("before", "paths"), [
    (pod(annotations={"a": "b"}), ["/spec/containers/-", "/metadata/annotations/sidecar.istio.io~1status"]),
    (pod(), ["/spec/containers/-", "/metadata/annotations"]),                  # no annotations map
    (pod(annotations=None), ["/spec/containers/-", "/metadata/annotations"]),
    ({"metadata": {"annotations": None}, "spec": {"containers": []}},
     ["/spec/containers/-", "/metadata/annotations"]),                       # null annotations
    ({"metadata": {}, "spec": {}}, ["/spec/containers", "/metadata/annotations"]),  # no containers list
])
def test_sidecar_patch_paths_and_result(before: Obj, paths: list[str]) -> None:
    ops = sidecar_patch(before)
    assert [op["path"] for op in ops] == paths
    after = apply_patch(before, ops)
    assert after["spec"]["containers"][-1] == PROXY_CONTAINER
    assert json.loads(after["metadata"]["annotations"][STATUS_ANNOTATION]) == {"containers": ["istio-proxy"]}
    for key, value in ((before.get("metadata") or {}).get("annotations") or {}).items():
        assert after["metadata"]["annotations"][key] == value            # nothing else touched
    assert sidecar_patch(after) == []                                    # idempotent


def test_the_patch_gives_what_build_pod_gives() -> None:
    isvc = {"metadata": {"name": "iris-model", "namespace": NS, "uid": "u1"},
            "spec": {"predictor": {"model": {"storageUri": "s3://models/iris"}}}}
    runtime = {"metadata": {"name": "rt"},
               "spec": {"containers": [{"name": "kserve-container", "image": "x"}]}}
    plain = build_pod(isvc=isvc, runtime=runtime, service_account=None, storage_env=[], inject=False)
    injected = build_pod(isvc=isvc, runtime=runtime, service_account=None, storage_env=[], inject=True)
    patched = apply_patch(plain, sidecar_patch(plain))
    assert patched["spec"]["containers"] == injected["spec"]["containers"]
    assert patched["metadata"]["annotations"][STATUS_ANNOTATION] == injected["metadata"]["annotations"][
        STATUS_ANNOTATION]
    assert PROXY_CONTAINER["image"] == PROXY_IMAGE
    assert sidecar_patch(injected) == []     # build_pod's pod (the stand-in's tier) is left alone


# -- the AdmissionReview answer ------------------------------------------------------------------

def test_a_selected_pod_create_is_allowed_with_a_json_patch() -> None:
    answer = admission_response(review(pod(labels={"app": "x"}), uid="abc"))
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "abc" and response["allowed"] is True and response["patchType"] == "JSONPatch"
    assert decoded(answer) == sidecar_patch(pod(labels={"app": "x"}))


@pytest.mark.parametrize(("obj", "operation", "namespace"), [
    (pod(annotations={INJECT_ANNOTATION: "false"}), "CREATE", NS),         # opted out by annotation
    (pod(labels={INJECT_ANNOTATION: "false"}), "CREATE", NS),              # by label
    (pod(containers=[{"name": "app", "image": "a"}, dict(PROXY_CONTAINER)]), "CREATE", NS),  # has one
    (pod(namespace=None), "CREATE", "kube-system"),                         # namespace from the request
    (pod(hostNetwork=True), "CREATE", NS),
    (pod(), "UPDATE", NS),                                                  # only creates are mutated
])
def test_allowed_without_a_patch(obj: Obj, operation: str, namespace: str) -> None:
    response = admission_response(review(obj, operation=operation, namespace=namespace))["response"]
    assert response == {"uid": "u-1", "allowed": True}


@pytest.mark.parametrize(("request_review", "reason"), [
    (review({"kind": "Service"}, kind={"group": "", "version": "v1", "kind": "Service"}), "v1 Pods only"),
    (review(None), "no Pod object"),
    (review(["not", "a", "pod"]), "no Pod object"),
    (review({"metadata": "x", "spec": {}}), "metadata or spec"),
    (review({"metadata": {"labels": ["a"]}, "spec": {}}), "labels or annotations"),
])
def test_a_wrong_object_is_denied_with_the_reason(request_review: Obj, reason: str) -> None:
    response = admission_response(request_review)["response"]
    assert response["uid"] == "u-1" and response["allowed"] is False
    assert response["status"]["code"] == 400 and reason in response["status"]["message"]


@pytest.mark.parametrize(("body", "reason"), [
    ([], "not a JSON object"),
    ("text", "not a JSON object"),
    ({**review(pod()), "apiVersion": "admission.k8s.io/v1beta1"}, "AdmissionReview of admission.k8s.io/v1"),
    ({**review(pod()), "kind": "Pod"}, "AdmissionReview of"),
    ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "no request.uid"),
    (review(pod(), uid=""), "no request.uid"),
])
def test_no_review_to_answer_raises_bad_review(body: Any, reason: str) -> None:
    with pytest.raises(BadReview, match=reason):
        admission_response(body)


# -- the configuration ---------------------------------------------------------------------------

def test_the_configuration_mirrors_istios_default_revision() -> None:
    doc = webhook_configuration(url="https://127.0.0.1:1/inject", ca_bundle="Q0E=")
    assert doc["kind"] == "MutatingWebhookConfiguration"
    assert doc["metadata"]["name"] == "istio-sidecar-injector"
    assert [w["name"] for w in doc["webhooks"]] == [
        "rev.namespace.sidecar-injector.istio.io", "rev.object.sidecar-injector.istio.io",
        "namespace.sidecar-injector.istio.io", "object.sidecar-injector.istio.io"]
    for w in doc["webhooks"]:
        assert w["clientConfig"] == {"url": "https://127.0.0.1:1/inject", "caBundle": "Q0E="}
        assert w["rules"] == [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                               "resources": ["pods"], "scope": "*"}]
        assert (w["failurePolicy"], w["reinvocationPolicy"], w["sideEffects"]) == ("Fail", "Never", "None")
        assert w["admissionReviewVersions"] == ["v1"] and w["timeoutSeconds"] <= 10
    namespace_hook = doc["webhooks"][2]
    assert namespace_hook["namespaceSelector"] == {
        "matchExpressions": [{"key": "istio-injection", "operator": "In", "values": ["enabled"]}]}
    assert namespace_hook["objectSelector"] == {
        "matchExpressions": [{"key": INJECT_ANNOTATION, "operator": "NotIn", "values": ["false"]}]}


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    (None, {}, True),
    ({}, {"a": "1"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
])
def test_selector_matches(selector: Obj | None, labels: Obj, expected: bool) -> None:
    assert selector_matches(selector, labels) is expected


# -- where Istio injects: the apiserver's half and istiod's half together ------------------------

ENABLED = {"istio-injection": "enabled"}
OFF = {INJECT_ANNOTATION: "false"}
ON = {INJECT_ANNOTATION: "true"}


@pytest.mark.parametrize(("ns_labels", "labels", "annotations"), [
    (ns, lab, ann)
    for ns in (ENABLED, {}, {"istio-injection": "disabled"}, {"team": "a"})
    for lab in ({}, OFF)
    for ann in ({}, OFF)
])
def test_would_inject_agrees_with_the_simulated_controller_where_both_speak(
        ns_labels: Obj, labels: Obj, annotations: Obj) -> None:
    obj = pod(labels=labels, annotations=annotations)
    assert would_inject(namespace_labels=ns_labels, pod=obj) is sidecar_injected(
        namespace_labels=ns_labels, labels=labels, annotations=annotations)


@pytest.mark.parametrize(("ns_labels", "obj", "expected"), [
    # Istio's rules the simulated controller does not model:
    ({}, pod(labels=ON), True),                                              # object. webhook
    ({"team": "a"}, pod(labels=ON, annotations=OFF), True),                  # label wins there too
    ({"istio-injection": "disabled"}, pod(labels=ON), False),                # an explicit "disabled" wins
    (ENABLED, pod(labels=ON, annotations=OFF), True),                        # the label wins
    ({"istio.io/rev": "default"}, pod(), True),                              # rev.namespace. webhook
    ({"istio.io/rev": "canary"}, pod(), False),                              # another revision's istiod
    ({}, pod(labels={**ON, "istio.io/rev": "default"}), True),               # rev.object. webhook
    (ENABLED, pod(namespace="kube-system"), False),                          # istiod ignores kube-system
    (ENABLED, pod(annotations={INJECT_ANNOTATION: "no"}), False),
    ({}, pod(containers=[dict(PROXY_CONTAINER)]), True),                     # already there: it stays
])
def test_would_inject_follows_istio(ns_labels: Obj, obj: Obj, expected: bool) -> None:
    assert would_inject(namespace_labels=ns_labels, pod=obj) is expected


def test_webhooks_are_mutually_exclusive() -> None:
    """Istio's four selectors never pick the same pod twice (no double review per create)."""
    for ns_labels in (ENABLED, {}, {"istio.io/rev": "default"}, {**ENABLED, "istio.io/rev": "x"}):
        for labels in ({}, ON, OFF, {**ON, "istio.io/rev": "default"}):
            hits = [w["name"] for w in webhooks(url="", ca_bundle="")
                    if selector_matches(w["namespaceSelector"], ns_labels)
                    and selector_matches(w["objectSelector"], labels)]
            assert len(hits) <= 1, (ns_labels, labels, hits)
