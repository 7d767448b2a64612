"""Table tests of the pieces the corpus builds on: the InferenceService shapes, KServe's runtime
selection, stored-model layouts by format, injection precedence, and variants of the corpus cases
(each a corpus case with one object changed, through ``diagnose()``)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from daemon.core.authz import evaluate
from daemon.core.diagnosis import diagnose
from daemon.core.diagnosis.model_layouts import layout_ok
from daemon.core.diagnosis.runtime import ranked
from daemon.core.diagnosis.spec import RAW, SERVERLESS, deployment_mode, predictor_of
from daemon.core.settings import SecretAccessSettings, Settings
from daemon.core.world import World
from tests.corpus import load, shared_objects

SETTINGS = Settings(secrets=SecretAccessSettings(namespaces=("*",)))
CASES = {c.name: c for c in load()}


@pytest.mark.parametrize(("predictor", "fmt", "shape", "scheme"), [
    ({"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://b/m"}}, "sklearn", "model", "gs"),
    ({"xgboost": {"storageUri": "s3://b/m"}}, "xgboost", "legacy:xgboost", "s3"),
    ({"tensorflow": {"storageUri": "pvc://claim/m"}}, "tensorflow", "legacy:tensorflow", "pvc"),
    ({"containers": [{"name": "c", "image": "i", "env": [{"name": "STORAGE_URI", "value": "hf://o/m"}]}]},
     None, "containers", "hf"),
    ({}, None, "none", ""),
])
def test_every_predictor_shape_reads_alike(predictor: dict[str, Any], fmt: str | None, shape: str,
                                           scheme: str) -> None:
    p = predictor_of({"spec": {"predictor": predictor}})
    assert (p.format, p.shape, p.scheme) == (fmt, shape, scheme)


@pytest.mark.parametrize(("predictor", "protocol", "protocol_set"), [
    # What KServe v0.20's defaulting webhook writes before it selects (checked against the real
    # manager by tests/integration/test_corpus_real_kserve.py, corpus c08, c38, c39, c40).
    ({"model": {"modelFormat": {"name": "onnx"}}}, "v1", False),
    ({"model": {"modelFormat": {"name": "triton"}}}, "v2", True),
    ({"model": {"modelFormat": {"name": "vllm"}}}, "v2", True),
    ({"model": {"modelFormat": {"name": "triton"}, "protocolVersion": "grpc-v2"}}, "grpc-v2", True),
    ({"model": {"modelFormat": {"name": "sklearn"}, "protocolVersion": "v2"}}, "v2", True),
    ({"onnx": {"storageUri": "gs://b/m"}}, "v2", True),
    ({"triton": {"storageUri": "gs://b/m"}}, "v2", True),
    ({"huggingface": {"storageUri": "hf://o/m"}}, "v2", True),
    ({"huggingface": {"protocolVersion": "v1"}}, "v1", True),
    ({"sklearn": {"storageUri": "gs://b/m"}}, "v1", False),
])
def test_the_protocol_kserve_selects_with(predictor: dict[str, Any], protocol: str,
                                          protocol_set: bool) -> None:
    p = predictor_of({"spec": {"predictor": predictor}})
    assert (p.protocol, p.protocol_set) == (protocol, protocol_set)


def _rt(name: str, formats: list[dict[str, Any]], protocols: list[str] | None = None,
        created: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"creationTimestamp": created} if created else {})}
    spec: dict[str, Any] = {"supportedModelFormats": formats}
    if protocols:
        spec["protocolVersions"] = protocols
    return {"kind": "ClusterServingRuntime", "metadata": meta, "spec": spec}


@pytest.mark.parametrize(("runtimes", "order"), [
    # KServe's GetSupportingRuntimes order: priority of the format's first entry (none last), then
    # the lowest protocol version served, then newest, then name.
    ([_rt("a", [{"name": "x", "priority": 1}]), _rt("b", [{"name": "x", "priority": 2}])], ["b", "a"]),
    ([_rt("a", [{"name": "x"}]), _rt("b", [{"name": "x", "priority": 1}])], ["b", "a"]),
    ([_rt("a", [{"name": "x", "version": "1", "priority": 1}, {"name": "x", "version": "2", "priority": 9}]),
      _rt("b", [{"name": "x", "priority": 2}])], ["b", "a"]),
    ([_rt("a", [{"name": "x", "priority": 1}], ["v2"]),
      _rt("b", [{"name": "x", "priority": 1}], ["v1", "v2"])], ["b", "a"]),
    ([_rt("a", [{"name": "x"}], ["v1"], "2025-01-01T00:00:00Z"),
      _rt("b", [{"name": "x"}], ["v1"], "2025-06-01T00:00:00Z")], ["b", "a"]),
    ([_rt("b", [{"name": "x"}], ["v1"]), _rt("a", [{"name": "x"}], ["v1"])], ["a", "b"]),
])
def test_runtimes_ranked_as_kserve_ranks_them(runtimes: list[dict[str, Any]], order: list[str]) -> None:
    assert [r["metadata"]["name"] for r in ranked(runtimes, "x")] == order


@pytest.mark.parametrize(("annotation", "configmap", "mode"), [
    (None, None, SERVERLESS),
    ("RawDeployment", None, RAW),
    (None, {"data": {"deploy": '{"defaultDeploymentMode": "RawDeployment"}'}}, RAW),
    ("Serverless", {"data": {"deploy": '{"defaultDeploymentMode": "RawDeployment"}'}}, SERVERLESS),
    (None, {"data": {"deploy": "not json"}}, SERVERLESS),
])
def test_deployment_mode(annotation: str | None, configmap: dict[str, Any] | None, mode: str) -> None:
    meta = {"annotations": {"serving.kserve.io/deploymentMode": annotation}} if annotation else {}
    assert deployment_mode({"metadata": meta}, configmap) == mode


@pytest.mark.parametrize(("fmt", "files", "ok"), [
    ("tensorflow", ["flowers/1/saved_model.pb", "flowers/1/variables/variables.index"], True),
    ("tensorflow", ["saved_model.pb"], True),
    ("tensorflow", ["model.h5x"], False),
    ("onnx", ["model.onnx"], True),
    ("onnx", ["model.pt"], False),
    ("triton", ["cifar/config.pbtxt", "cifar/1/model.pt"], True),
    ("triton", ["cifar/config.pbtxt"], False),
    ("pytorch", ["config/config.properties", "model-store/mnist.mar"], True),
    ("pytorch", ["config/config.properties"], False),
    ("huggingface", ["config.json", "model.safetensors", "tokenizer.json"], True),
    ("huggingface", ["config.json"], False),
    ("sklearn", ["model.joblib"], True),
    ("xgboost", ["model"], True),
    ("xgboost", ["README.md"], False),
    ("mlflow", ["MLmodel", "model.pkl"], True),
    ("mlflow", ["model.pkl"], False),
    ("catboost", ["model.cbm"], None),
    (None, ["anything"], None),
])
def test_stored_model_layout_by_format(fmt: str | None, files: list[str], ok: bool | None) -> None:
    assert layout_ok(fmt, files) is ok


def _variant(case: str, change: Callable[[list[dict[str, Any]]], None]) -> list[tuple[str, str]]:
    objs = copy.deepcopy([*shared_objects(), *CASES[case].objects])
    change(objs)
    findings = diagnose(world=World.build(objs), desired=[], drifts=[], observations=[], settings=SETTINGS,
                        now=0.0)
    return sorted((f.code.value, f.severity.value) for f in findings)


def _one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind)


def _isvc(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return _one(objs, "InferenceService")


def _add_istiod_canary(objs: list[dict[str, Any]]) -> None:
    objs.append({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "istiod-canary", "namespace": "istio-system"}, "spec": {}})


def _label_true_annotation_false(objs: list[dict[str, Any]]) -> None:
    pred = _isvc(objs)["spec"]["predictor"]
    pred["labels"] = {"sidecar.istio.io/inject": "true"}
    pred["annotations"] = {"sidecar.istio.io/inject": "false"}


def _gcs_key_secret(objs: list[dict[str, Any]]) -> None:
    ns = _isvc(objs)["metadata"]["namespace"]
    objs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gcs", "namespace": ns},
                 "data": {"gcloud-application-credentials.json": "e30="}})
    objs.append({"apiVersion": "v1", "kind": "ServiceAccount",
                 "metadata": {"name": "default", "namespace": ns}, "secrets": [{"name": "gcs"}]})


def _gke_identity(objs: list[dict[str, Any]]) -> None:
    ns = _isvc(objs)["metadata"]["namespace"]
    objs.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
        "name": "default", "namespace": ns,
        "annotations": {"iam.gke.io/gcp-service-account": "models@proj.iam.gserviceaccount.com"}}})


def _drop_the_claim(objs: list[dict[str, Any]]) -> None:
    objs[:] = [o for o in objs if not (o["kind"] == "PersistentVolumeClaim"
                                       and o["metadata"]["namespace"] == "c26-pvc-bound")]


def _pvc_pending(objs: list[dict[str, Any]]) -> None:
    ns = _isvc(objs)["metadata"]["namespace"]
    objs.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": {"name": "task-pv-claim", "namespace": ns}, "status": {"phase": "Pending"}})


_NO_CREDENTIALS = "botocore.exceptions.NoCredentialsError: Unable to locate credentials"


def _pipeline_failed_with_no_credentials(objs: list[dict[str, Any]]) -> None:
    ns = _isvc(objs)["metadata"]["namespace"]
    objs.append({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "sklearn-s3-predictor-0", "namespace": ns,
        "labels": {"serving.kserve.io/inferenceservice": "sklearn-s3", "component": "predictor"}},
        "status": {"initContainerStatuses": [{"name": "storage-initializer", "ready": False, "state": {
            "terminated": {"reason": "Error", "exitCode": 1, "message": _NO_CREDENTIALS}}}]}})


def _strict_mesh_wide_permissive_namespace(objs: list[dict[str, Any]]) -> None:
    pa = _one(objs, "PeerAuthentication")
    pa["metadata"]["namespace"] = "istio-system"
    objs.append({"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
                 "metadata": {"name": "default", "namespace": "c30-store"},
                 "spec": {"mtls": {"mode": "PERMISSIVE"}}})


def _namespace_runtime_without_the_version(objs: list[dict[str, Any]]) -> None:
    objs.append({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
                 "metadata": {"name": "sk2", "namespace": "c32-version-unsupported"},
                 "spec": {"supportedModelFormats": [
                     {"name": "sklearn", "version": "2", "autoSelect": True}]}})


def _drop_protocol_list(objs: list[dict[str, Any]]) -> None:
    _isvc(objs).pop("status")  # KServe's own verdict would count otherwise
    for o in objs:
        if o["kind"] == "ClusterServingRuntime" and o["metadata"]["name"] == "kserve-tritonserver":
            del o["spec"]["protocolVersions"]  # KServe: no list accepts any protocol


NC = ("not-checked", "info")
VARIANTS = [
    ("c29-istio-rev-missing", _add_istiod_canary, []),
    ("c27-inject-label-false", _label_true_annotation_false, []),
    ("c01-sklearn", _gcs_key_secret, []),
    ("c01-sklearn", _gke_identity, []),
    ("c26-pvc-bound", _drop_the_claim, [("pvc-not-bound", "critical")]),
    ("c25-pvc-missing", _pvc_pending, [("pvc-not-bound", "warning")]),
    ("c20-s3-no-secret", _pipeline_failed_with_no_credentials, [("storage-credentials-missing", "critical")]),
    ("c30-peerauth-strict", _strict_mesh_wide_permissive_namespace, []),
    ("c32-version-unsupported", _namespace_runtime_without_the_version, [NC]),
    ("c08-onnx-v1", _drop_protocol_list, [NC]),
]


@pytest.mark.parametrize(("case", "change", "expect"), VARIANTS,
                         ids=[f"{c}-{getattr(f, '__name__', 'lambda')}" for c, f, _ in VARIANTS])
def test_corpus_variants(case: str, change: Callable[[list[dict[str, Any]]], None],
                         expect: list[tuple[str, str]]) -> None:
    assert _variant(case, change) == sorted(expect)


def test_rules_on_request_attributes_are_reported_as_not_evaluated() -> None:
    deny_paths = {"metadata": {"name": "no-admin", "namespace": "s"}, "spec": {
        "action": "DENY", "rules": [{"to": [{"operation": {"notPaths": ["/models/*"]}}]}]}}
    r = evaluate([deny_paths], workload_namespace="s", workload_labels={},
                 principal="cluster.local/ns/a/sa/b", source_namespace="a")
    assert r.allowed and r.unevaluated == ("DENY policy s/no-admin rule 0 (depends on request attributes)",)


def test_a_store_name_that_only_resolves_in_the_cluster_is_not_checked_from_outside() -> None:
    from probes.observation import Observation

    case = CASES["c09-triton-s3"]
    lookup = Observation(probe="storage", target=case.key, started=0.0, finished=1.0, ok=False,
                         outcome="unreachable", values={}, details={},
                         evidence=("lookup minio.c09-store: Name or service not known (dns)",))
    findings = diagnose(world=World.build([*shared_objects(), *case.objects]), desired=[], drifts=[],
                        observations=[lookup], settings=SETTINGS, now=1.0)
    assert [(f.code.value, f.severity.value) for f in findings] == [("not-checked", "info")]
    # The same failure for a store whose Service is not there stays a finding.
    objs = [o for o in [*shared_objects(), *case.objects] if o["kind"] != "Service"]
    findings = diagnose(world=World.build(objs), desired=[], drifts=[], observations=[lookup],
                        settings=SETTINGS, now=1.0)
    assert [(f.code.value, f.severity.value) for f in findings] == [("storage-unreachable", "critical")]
