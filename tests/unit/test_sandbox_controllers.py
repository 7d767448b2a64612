"""The simulated controllers' pure logic, table by table (no I/O)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from sandbox import world
from sandbox.controllers.coredns import restarted_at, rollout_status
from sandbox.controllers.isvc_status import desired_status, stamp
from sandbox.controllers.kubelet import pull_image, registry_of
from sandbox.controllers.podstatus import PodRun, pod_status
from sandbox.controllers.predictor_pod import INPUTS_ANNOTATION, build_pod, sidecar_injected
from sandbox.controllers.runtime_select import model_spec, no_runtime_message, select_runtime
from sandbox.controllers.storage_initializer import CredentialsConfig, resolve_credentials, target_name
from sandbox.controllers.watch import merge_patch

Obj = dict[str, Any]


def isvc(
    fmt: str = "sklearn",
    *,
    runtime: str | None = None,
    version: str | None = None,
    annotations: dict[str, str] | None = None,
    protocol: str | None = None,
) -> Obj:
    model: Obj = {
        "modelFormat": {"name": fmt, **({"version": version} if version else {})},
        "storageUri": world.STORAGE_URI,
    }
    if runtime:
        model["runtime"] = runtime
    if protocol:
        model["protocolVersion"] = protocol
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "iris-model",
            "namespace": "ns",
            "uid": "u1",
            "generation": 3,
            "annotations": annotations or {},
        },
        "spec": {"predictor": {"serviceAccountName": "iris-sa", "model": model}},
    }


def rt(
    name: str,
    *formats: tuple[str, bool],
    ns: str | None = "ns",
    disabled: bool = False,
    version: str | None = None,
    protocols: list[str] | None = None,
) -> Obj:
    meta: Obj = {"name": name, **({"namespace": ns} if ns else {})}
    spec: Obj = {
        "supportedModelFormats": [
            {"name": f, "autoSelect": a, **({"version": version} if version else {})} for f, a in formats
        ],
        "containers": [
            {"name": "kserve-container", "image": f"img/{name}", "args": ["--model_name", "{{.Name}}"]}
        ],
    }
    if disabled:
        spec["disabled"] = True
    if protocols:
        spec["protocolVersions"] = protocols
    return {"metadata": meta, "spec": spec}


@pytest.mark.parametrize(
    ("case", "model", "runtimes", "cluster", "expected"),
    [
        ("none at all", isvc(), [], [], None),
        ("autoSelect match", isvc(), [rt("a", ("sklearn", True))], [], "a"),
        ("format listed without autoSelect", isvc(), [rt("a", ("sklearn", False))], [], None),
        ("other format only", isvc(), [rt("a", ("xgboost", True))], [], None),
        ("disabled runtime", isvc(), [rt("a", ("sklearn", True), disabled=True)], [], None),
        ("other namespace", isvc(), [rt("a", ("sklearn", True), ns="elsewhere")], [], None),
        ("cluster runtime fallback", isvc(), [], [rt("c", ("sklearn", True), ns=None)], "c"),
        ("namespaced wins", isvc(), [rt("n", ("sklearn", True))], [rt("c", ("sklearn", True), ns=None)], "n"),
        ("named runtime, no autoSelect needed", isvc(runtime="a"), [rt("a", ("sklearn", False))], [], "a"),
        ("named runtime missing", isvc(runtime="gone"), [rt("a", ("sklearn", True))], [], None),
        ("named runtime lacks the format", isvc(runtime="a"), [rt("a", ("xgboost", True))], [], None),
        ("version mismatch", isvc(version="2"), [rt("a", ("sklearn", True), version="1")], [], None),
        ("version match", isvc(version="1"), [rt("a", ("sklearn", True), version="1")], [], "a"),
        # KServe's answer to the ONNX sample without protocolVersion (corpus c08, confirmed on the
        # real controller): v1 by default, and Triton serves v2 only.
        ("auto-select, protocol unset, v2-only runtime", isvc("onnx"),
         [], [rt("triton", ("onnx", True), ns=None, protocols=["v2", "grpc-v2"])], None),
        ("auto-select, protocol v2", isvc("onnx", protocol="v2"),
         [], [rt("triton", ("onnx", True), ns=None, protocols=["v2", "grpc-v2"])], "triton"),
        ("triton format defaults to v2", isvc("triton"),
         [], [rt("triton", ("triton", True), ns=None, protocols=["v2", "grpc-v2"])], "triton"),
        ("named runtime, protocol unset: not checked", isvc("onnx", runtime="t"),
         [rt("t", ("onnx", False), protocols=["v2"])], [], "t"),
        ("named runtime, protocol set and not served", isvc("onnx", runtime="t", protocol="v1"),
         [rt("t", ("onnx", False), protocols=["v2"])], [], None),
    ],
)
def test_select_runtime(
    case: str, model: Obj, runtimes: list[Obj], cluster: list[Obj], expected: str | None
) -> None:
    chosen = select_runtime(model, runtimes, cluster)
    assert (chosen["metadata"]["name"] if chosen else None) == expected, case


def test_no_runtime_message_is_the_seeds() -> None:
    assert (
        no_runtime_message("sklearn", None)
        == "no runtime found to support predictor with model type: {sklearn <nil>}"
    )
    assert no_runtime_message("sklearn", "1").endswith("{sklearn 1}")


@pytest.mark.parametrize(
    ("ns_labels", "annotations", "labels", "expected"),
    [
        ({"istio-injection": "enabled"}, {}, {}, True),
        ({}, {}, {}, False),
        ({"istio-injection": "disabled"}, {}, {}, False),
        ({"istio-injection": "enabled"}, {"sidecar.istio.io/inject": "false"}, {}, False),
        ({"istio-injection": "enabled"}, {"sidecar.istio.io/inject": "False"}, {}, False),
        ({"istio-injection": "enabled"}, {}, {"sidecar.istio.io/inject": "false"}, False),
        ({"istio-injection": "enabled"}, {"sidecar.istio.io/inject": "true"}, {}, True),
    ],
)
def test_sidecar_injected(
    ns_labels: dict[str, str], annotations: dict[str, str], labels: dict[str, str], expected: bool
) -> None:
    assert sidecar_injected(namespace_labels=ns_labels, annotations=annotations, labels=labels) is expected


def test_build_pod_carries_pull_secrets_sidecar_and_a_hash_of_its_inputs() -> None:
    sa = {"metadata": {"name": "iris-sa"}, "imagePullSecrets": [{"name": "harbor-credentials"}]}
    runtime = rt("a", ("sklearn", True))
    pod = build_pod(isvc=isvc(), runtime=runtime, service_account=sa, storage_env=[], inject=True)
    assert pod["spec"]["imagePullSecrets"] == [{"name": "harbor-credentials"}]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["kserve-container", "istio-proxy"]
    assert pod["spec"]["containers"][0]["args"] == ["--model_name", "iris-model"]
    assert pod["spec"]["initContainers"][0]["args"] == [world.STORAGE_URI, "/mnt/models"]
    assert pod["spec"]["serviceAccountName"] == "iris-sa"
    assert pod["metadata"]["labels"]["serving.kserve.io/inferenceservice"] == "iris-model"
    digest = pod["metadata"]["annotations"][INPUTS_ANNOTATION]
    variants = [
        build_pod(
            isvc=isvc(), runtime=runtime, service_account={"metadata": {}}, storage_env=[], inject=True
        ),
        build_pod(isvc=isvc(), runtime=runtime, service_account=sa, storage_env=[], inject=False),
        build_pod(
            isvc=isvc(),
            runtime=runtime,
            service_account=sa,
            inject=True,
            storage_env=[{"name": "AWS_REGION", "value": "us-east-1"}],
        ),
    ]
    hashes = {v["metadata"]["annotations"][INPUTS_ANNOTATION] for v in variants}
    assert digest not in hashes and len(hashes) == 3
    again = build_pod(isvc=isvc(), runtime=runtime, service_account=sa, storage_env=[], inject=True)
    assert again["metadata"]["annotations"][INPUTS_ANNOTATION] == digest


def _pod(ready: bool, *, init_error: str = "", waiting: str = "") -> Obj:
    status: Obj = {
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "initContainerStatuses": [],
        "containerStatuses": [],
    }
    if init_error:
        status["initContainerStatuses"] = [
            {
                "name": "storage-initializer",
                "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": init_error}},
            }
        ]
    if waiting:
        status["containerStatuses"] = [
            {
                "name": "kserve-container",
                "ready": False,
                "state": {"waiting": {"reason": waiting, "message": "m"}},
            }
        ]
    return {"metadata": {"name": "p"}, "status": status}


@pytest.mark.parametrize(
    ("runtime_found", "pod", "ready", "reason", "failure"),
    [
        (False, None, "False", "NoSupportingRuntime", "NoSupportingRuntime"),
        (True, _pod(True), "True", None, None),
        (True, None, "False", "PodNotReady", None),
        (True, _pod(False, init_error="NoCredentialsError"), "False", "Error", "ModelLoadFailed"),
        (True, _pod(False, waiting="ImagePullBackOff"), "False", "ImagePullBackOff", "ModelLoadFailed"),
        (True, _pod(False, waiting="CrashLoopBackOff"), "False", "CrashLoopBackOff", "ModelLoadFailed"),
    ],
)
def test_desired_status(
    runtime_found: bool, pod: Obj | None, ready: str, reason: str | None, failure: str | None
) -> None:
    status = desired_status(isvc=isvc(), runtime_found=runtime_found, pod=pod, address="http://127.0.0.1:1")
    conds = {c["type"]: c for c in status["conditions"]}
    assert set(conds) == {"PredictorReady", "IngressReady", "Ready"}
    assert conds["Ready"]["status"] == ready and conds["Ready"].get("reason") == reason
    assert status["url"] == "http://iris-model.ns.example.com"
    assert status["address"] == {"url": "http://127.0.0.1:1"}
    assert status["observedGeneration"] == 3
    assert (status["modelStatus"].get("lastFailureInfo") or {}).get("reason") == failure


def test_last_failure_info_outlives_the_failure_as_kserve_leaves_it() -> None:
    failed = isvc()
    failed["status"] = desired_status(isvc=failed, runtime_found=True, address=None,
                                      pod=_pod(False, waiting="CrashLoopBackOff"))
    assert failed["status"]["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad"
    healed = desired_status(isvc=failed, runtime_found=True, pod=_pod(True), address="http://127.0.0.1:1")
    assert healed["modelStatus"]["transitionStatus"] == "UpToDate"
    assert healed["modelStatus"]["lastFailureInfo"] == failed["status"]["modelStatus"]["lastFailureInfo"]
    assert {c["type"]: c["status"] for c in healed["conditions"]}["Ready"] == "True"


def test_stamp_keeps_transition_time_while_the_status_holds() -> None:
    old = {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "T0"}]}
    same = stamp({"conditions": [{"type": "Ready", "status": "False"}]}, old, "T1")
    flipped = stamp({"conditions": [{"type": "Ready", "status": "True"}]}, old, "T1")
    assert same["conditions"][0]["lastTransitionTime"] == "T0"
    assert flipped["conditions"][0]["lastTransitionTime"] == "T1"


def _secret(name: str, keys: list[str], annotations: dict[str, str] | None = None) -> Obj:
    return {"metadata": {"name": name, "annotations": annotations or {}}, "data": {k: "eA==" for k in keys}}


AWS = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
S3_ANN = {
    "serving.kserve.io/s3-endpoint": "minio-service.kubeflow:9000",
    "serving.kserve.io/s3-usehttps": "0",
}
SECRETS = {
    "minio-s3-secret": _secret("minio-s3-secret", AWS, S3_ANN),
    "mlpipeline-minio-artifact": _secret("mlpipeline-minio-artifact", ["accesskey", "secretkey"]),
    "helm-style": _secret("helm-style", AWS),
}
SA_GOOD = {
    "metadata": {"name": "iris-sa"},
    "secrets": [{"name": "mlpipeline-minio-artifact"}, {"name": "minio-s3-secret"}],
}
KUSTOMIZE = CredentialsConfig()
HELM = CredentialsConfig(annotation="serving.kserve.io/secretName")


@pytest.mark.parametrize(
    ("case", "annotations", "sa", "config", "secret"),
    [
        ("SA secrets: the one with the key names", {}, SA_GOOD, KUSTOMIZE, "minio-s3-secret"),
        (
            "SA secrets: wrong shape skipped silently",
            {},
            {"secrets": [{"name": "mlpipeline-minio-artifact"}]},
            KUSTOMIZE,
            None,
        ),
        (
            "annotation names the right secret",
            {"serving.kserve.io/storageSecretName": "helm-style"},
            SA_GOOD,
            KUSTOMIZE,
            "helm-style",
        ),
        (
            "annotation names the wrong secret: no fallback (seed attempt 3)",
            {"serving.kserve.io/storageSecretName": "mlpipeline-minio-artifact"},
            SA_GOOD,
            KUSTOMIZE,
            None,
        ),
        (
            "annotation names a missing secret",
            {"serving.kserve.io/storageSecretName": "nope"},
            SA_GOOD,
            KUSTOMIZE,
            None,
        ),
        (
            "Helm annotation key read from the config",
            {"serving.kserve.io/secretName": "helm-style"},
            SA_GOOD,
            HELM,
            "helm-style",
        ),
        (
            "kustomize key ignored under the Helm config",
            {"serving.kserve.io/storageSecretName": "nope"},
            SA_GOOD,
            HELM,
            "minio-s3-secret",
        ),
        ("no service account", {}, None, KUSTOMIZE, None),
    ],
)
def test_resolve_credentials(
    case: str, annotations: dict[str, str], sa: Obj | None, config: CredentialsConfig, secret: str | None
) -> None:
    env = resolve_credentials(annotations=annotations, service_account=sa, secrets=SECRETS, config=config)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    if secret is None:
        assert refs == {}, case
    else:
        assert refs == {
            "AWS_ACCESS_KEY_ID": {"name": secret, "key": "AWS_ACCESS_KEY_ID"},
            "AWS_SECRET_ACCESS_KEY": {"name": secret, "key": "AWS_SECRET_ACCESS_KEY"},
        }, case


def test_resolve_credentials_s3_settings_from_annotations() -> None:
    sa = {
        **SA_GOOD,
        "metadata": {"name": "iris-sa", "annotations": {"serving.kserve.io/s3-region": "us-east-1"}},
    }
    env = resolve_credentials(annotations={}, service_account=sa, secrets=SECRETS, config=KUSTOMIZE)
    values = {e["name"]: e["value"] for e in env if "value" in e}
    assert values == {
        "S3_ENDPOINT": "minio-service.kubeflow:9000",
        "S3_USE_HTTPS": "0",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://minio-service.kubeflow:9000",
    }


def test_credentials_config_from_the_live_configmap() -> None:
    cm = {
        "data": {
            "credentials": json.dumps(
                {
                    "storageSecretNameAnnotation": "serving.kserve.io/secretName",
                    "s3": {
                        "s3AccessKeyIDName": "k",
                        "s3SecretAccessKeyName": "s",
                        "s3Endpoint": "s3.example:9000",
                        "s3UseHttps": "",
                    },
                }
            )
        }
    }
    cfg = CredentialsConfig.from_configmap(cm)
    assert cfg == CredentialsConfig(
        annotation="serving.kserve.io/secretName",
        access_key_name="k",
        secret_key_name="s",
        s3_defaults=(("S3_ENDPOINT", "s3.example:9000"),),
    )
    assert CredentialsConfig.from_configmap(None) == KUSTOMIZE
    assert CredentialsConfig.from_configmap({"data": {"credentials": "{not json"}}) == KUSTOMIZE


@pytest.mark.parametrize(
    ("key", "prefix", "expected"),
    [
        ("a/iris/model", "a/iris/model", "model"),  # exact object: last segment, no extension added
        ("a/iris/model.pkl", "a/iris/model", ".pkl"),  # KServe keeps what follows the prefix
        ("a/iris/v1/model.json", "a/iris", "v1/model.json"),
        ("a/iris/model", "a/iris", "model"),
    ],
)
def test_target_name(key: str, prefix: str, expected: str) -> None:
    assert target_name(key, prefix) == expected


def _dockercfg(*hosts: str, type_: str = "kubernetes.io/dockerconfigjson") -> Obj:
    data = base64.b64encode(json.dumps({"auths": {h: {"auth": "eA=="} for h in hosts}}).encode()).decode()
    return {"type": type_, "data": {".dockerconfigjson": data}}


PRIVATE = ("192.168.58.12:30002/", "ghcr.io/kserve-warden/")


@pytest.mark.parametrize(
    ("image", "secrets", "ok"),
    [
        ("python:3.11", [], True),
        ("docker.io/istio/proxyv2:1.22.3", [], True),
        ("192.168.58.12:30002/kubeflow-iris/iris-serve:v1.1", [], False),
        ("192.168.58.12:30002/kubeflow-iris/iris-serve:v1.1", [None], False),
        ("192.168.58.12:30002/kubeflow-iris/iris-serve:v1.1", [_dockercfg("192.168.58.12:30002")], True),
        ("192.168.58.12:30002/kubeflow-iris/iris-serve:v1.1", [_dockercfg("ghcr.io")], False),
        (
            "192.168.58.12:30002/kubeflow-iris/iris-serve:v1.1",
            [_dockercfg("192.168.58.12:30002", type_="Opaque")],
            False,
        ),
        ("ghcr.io/kserve-warden/serving:0.1.0", [_dockercfg("ghcr.io")], True),
        ("ghcr.io/other/public:1", [], True),
    ],
)
def test_pull_image(image: str, secrets: list[Obj | None], ok: bool) -> None:
    error = pull_image(image=image, secrets=secrets, private=PRIVATE)
    assert (error is None) is ok
    if not ok:
        assert error is not None and error.endswith("unexpected status code 401 Unauthorized")
        assert f'Failed to pull image "{image}"' in error


def test_registry_of() -> None:
    assert registry_of("192.168.58.12:30002/a/b:1") == "192.168.58.12:30002"
    assert registry_of("ghcr.io/a/b") == "ghcr.io"
    assert registry_of("library/python") == "docker.io"
    assert registry_of("python") == "docker.io"


def _state(cs: Obj) -> tuple[str, str]:
    kind, detail = next(iter(cs["state"].items()))
    return kind, str(detail.get("reason", ""))


@pytest.mark.parametrize(
    ("run", "phase", "init", "main", "ready"),
    [
        (
            PodRun(start_time="T"),
            "Pending",
            ("waiting", "PodInitializing"),
            ("waiting", "PodInitializing"),
            False,
        ),
        (
            PodRun(
                start_time="T", init="failed", init_message="a\nbotocore.exceptions.NoCredentialsError: x"
            ),
            "Pending",
            ("terminated", "Error"),
            ("waiting", "PodInitializing"),
            False,
        ),
        (
            PodRun(start_time="T", init="done", main="pull-failed", main_message="401"),
            "Pending",
            ("terminated", "Completed"),
            ("waiting", "ImagePullBackOff"),
            False,
        ),
        (
            PodRun(start_time="T", init="done", main="crashed", main_message="ModelLoadError"),
            "Pending",
            ("terminated", "Completed"),
            ("waiting", "CrashLoopBackOff"),
            False,
        ),
        (
            PodRun(start_time="T", init="done", main="running"),
            "Running",
            ("terminated", "Completed"),
            ("running", ""),
            True,
        ),
        (
            PodRun(start_time="T", init="done", main="running", has_proxy=True, proxy_ready=False),
            "Running",
            ("terminated", "Completed"),
            ("running", ""),
            False,
        ),
        (
            PodRun(start_time="T", init="done", main="running", has_proxy=True, proxy_ready=True),
            "Running",
            ("terminated", "Completed"),
            ("running", ""),
            True,
        ),
    ],
)
def test_pod_status(
    run: PodRun, phase: str, init: tuple[str, str], main: tuple[str, str], ready: bool
) -> None:
    status = pod_status(run)
    assert status["phase"] == phase
    assert _state(status["initContainerStatuses"][0]) == init
    assert _state(status["containerStatuses"][0]) == main
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert conds["Ready"] == ("True" if ready else "False")
    assert [c["name"] for c in status["containerStatuses"]] == (
        ["kserve-container", "istio-proxy"] if run.has_proxy else ["kserve-container"]
    )
    for cs in status["initContainerStatuses"] + status["containerStatuses"]:
        assert cs["imageID"] is not None  # kubernetes_asyncio's models refuse None


def test_pod_status_init_error_message_is_the_log_tail() -> None:
    """KServe gives the storage-initializer ``FallbackToLogsOnError``: the kubelet copies the log's
    tail (80 lines, 2048 bytes) into the termination message, so a message spanning lines (v0.20's
    "Cannot recognize storage type for …" and the supported schemes after it) stays whole."""
    run = PodRun(
        start_time="T", init="failed", init_message="INFO x\nbotocore.exceptions.NoCredentialsError: y\n"
    )
    term = pod_status(run)["initContainerStatuses"][0]["state"]["terminated"]
    assert term == {"exitCode": 1, "reason": "Error",
                    "message": "INFO x\nbotocore.exceptions.NoCredentialsError: y"}
    long = "\n".join(f"line {i}" for i in range(500))
    message = pod_status(PodRun(start_time="T", init="failed", init_message=long))[
        "initContainerStatuses"][0]["state"]["terminated"]["message"]
    assert message.splitlines()[-1] == "line 499" and len(message.splitlines()) == 80
    assert len(message.encode()) <= 2048


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        ({}, {"a": 1}, {"a": 1}),
        ({"a": 1}, {"a": 1}, {}),
        ({"a": 1, "b": 2}, {"a": 1}, {"b": None}),
        ({"m": {"x": 1, "y": 2}}, {"m": {"x": 1}}, {"m": {"y": None}}),
        ({"l": [1, 2]}, {"l": [1]}, {"l": [1]}),
        ({"m": {"x": 1}}, {"m": 5}, {"m": 5}),
    ],
)
def test_merge_patch(old: Obj, new: Obj, patch: Obj) -> None:
    assert merge_patch(old, new) == patch


def test_coredns_restart_annotation_and_rollout_status() -> None:
    dep = {
        "metadata": {"generation": 4},
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2025-11-29T19:00:00Z"}}
            },
        },
    }
    assert restarted_at(dep) == "2025-11-29T19:00:00Z"
    assert restarted_at({"metadata": {}, "spec": {}}) is None
    st = rollout_status(dep)
    assert st["observedGeneration"] == 4 and st["readyReplicas"] == st["updatedReplicas"] == 2


def test_world_paths_and_what_is_not_seeded() -> None:
    seeded = world.seed_objects(access_key_id="AKIAEXAMPLE", secret_access_key="s3cr3t")
    paths = [world.object_path(o) for o in seeded]
    assert "/api/v1/namespaces/kubeflow/secrets/mlpipeline-minio-artifact" in paths
    assert "/apis/apps/v1/namespaces/kube-system/deployments/coredns" in paths
    assert "/api/v1/namespaces/user-example-com" in paths
    assert "/apis/security.istio.io/v1/namespaces/kubeflow/authorizationpolicies/seaweedfs-service" in paths
    names = {o["metadata"]["name"] for o in seeded}
    assert not names & {
        "iris-sa",
        "minio-s3-secret",
        "iris-fastapi-runtime",
        "iris-model",
        "minio-user-namespace-access",
    }
    healthy = {world.object_path(o) for o in world.healthy_objects(access_key_id="k", secret_access_key="s")}
    assert (
        "/apis/serving.kserve.io/v1beta1/namespaces/user-example-com/inferenceservices/iris-model" in healthy
    )
    assert "s3cr3t" not in repr(seeded)  # values only base64 in data (and never logged)


def test_pod_status_readiness_is_per_container() -> None:
    # DNS degraded: the model server is fine, its sidecar is not; kubectl shows 1/2, pod not Ready.
    status = pod_status(
        PodRun(start_time="T", init="done", main="running", has_proxy=True, proxy_ready=False)
    )
    assert [(c["name"], c["ready"]) for c in status["containerStatuses"]] == [
        ("kserve-container", True),
        ("istio-proxy", False),
    ]
    assert {c["type"]: c["status"] for c in status["conditions"]}["ContainersReady"] == "False"


@pytest.mark.parametrize(("predictor", "fmt", "protocol"), [
    # KServe v0.20's own samples use the older keys; its defaulting webhook makes a model of them.
    ({"sklearn": {"storageUri": "gs://kfserving-examples/models/sklearn/1.0/model"}}, "sklearn", None),
    ({"onnx": {"storageUri": "gs://kfserving-examples/models/onnx"}}, "onnx", "v2"),
    ({"triton": {"storageUri": "gs://x", "runtimeVersion": "21.08-py3"}}, "triton", "v2"),
    ({"xgboost": {"protocolVersion": "v2", "storageUri": "gs://x"}}, "xgboost", "v2"),
    ({"model": {"modelFormat": {"name": "onnx"}, "storageUri": "gs://x"}}, "onnx", None),
    ({"containers": [{"name": "kserve-container", "image": "x"}]}, "", None),
])
def test_model_spec_of_the_older_predictor_keys(predictor: Obj, fmt: str, protocol: str | None) -> None:
    model = model_spec({"spec": {"predictor": predictor}})
    assert (model.get("modelFormat") or {}).get("name", "") == fmt
    assert model.get("protocolVersion") == protocol
    assert "runtimeVersion" not in model
    if fmt:
        assert model["storageUri"].startswith("gs://")


def test_the_onnx_sample_gets_triton_as_kserve_gives_it() -> None:
    """docs/samples/v1beta1/onnx/onnx.yaml: the older key, so protocol v2 and Triton (corpus c38)."""
    sample = {"metadata": {"namespace": "ns", "name": "style-sample"},
              "spec": {"predictor": {"onnx": {"storageUri": "gs://kfserving-examples/models/onnx"}}}}
    triton = rt("kserve-tritonserver", ("onnx", True), ns=None, protocols=["v2", "grpc-v2"])
    chosen = select_runtime(sample, [], [triton])
    assert chosen is triton
    pod = build_pod(isvc={**sample, "metadata": {**sample["metadata"], "uid": "u"}}, runtime=triton,
                    service_account=None, storage_env=[], inject=False)
    assert pod["spec"]["initContainers"][0]["args"][0] == "gs://kfserving-examples/models/onnx"
