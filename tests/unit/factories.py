"""Tiny factories for the pure-logic tests: the seed's cluster, healthy, then broken one way.

:func:`healthy` builds the seed's *final, working* deployment (namespace ``user-example-com``
meshed, MinIO in ``kubeflow``, the desired objects applied with the server's additions:
``resourceVersion``, ``managedFields``, defaulted fields, ``status``), plus probe observations
that say all is well. Each ``break_*`` function mutates a :class:`Cluster` into one of the
seed's failures (DESIGN.md's table). :func:`run` is the pure pipeline
desired → diff → diagnose, as the loop runs it.

The secret values here are fake but real-looking, so tests can assert they never leak.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.core.desired import DesiredState, copy_manifest, index_by_ref
from daemon.core.diagnosis import diagnose
from daemon.core.diff import Drift, diff
from daemon.core.findings import Finding
from daemon.core.objects import ObjectRef
from daemon.core.settings import Settings
from daemon.core.world import World
from daemon.process.config_files import load_desired, load_settings
from probes.observation import Observation
from tests.conftest import ROOT, SEED_DESIRED, b64
from tests.kserve_config import inferenceservice_config

NOW = 1_764_441_000.0  # 2025-11-29T18:30Z, the seed's afternoon
NS = "user-example-com"
ISVC = "iris-model"
POD = "iris-model-predictor-00001-deployment-6579ddcfbd-b7b7r"
ACCESS_KEY = "BY3N3TZ2XFGBI763IGEPD"
SECRET_KEY = "KQgORRVCRvRZa6pTsd6CtFmyTn7SONi1f66A0Ch/kg"
SECRET_VALUES = (ACCESS_KEY, SECRET_KEY, "harbor-robot-password-5e3f")
PIPELINE_POLICY = "seaweedfs-service"



_DESIRED: DesiredState | None = None
_SETTINGS: Settings | None = None


def desired_state() -> DesiredState:
    global _DESIRED
    if _DESIRED is None:
        _DESIRED = load_desired(SEED_DESIRED)
    return _DESIRED


def settings() -> Settings:
    global _SETTINGS
    if _SETTINGS is None:
        # The configured example (the seed's iris model with its canary, its desired state):
        # the embedded default has neither.
        _SETTINGS = load_settings(ROOT / "config" / "warden.yaml", environ={})
    return _SETTINGS


def _server_side(obj: dict[str, Any], rv: int) -> dict[str, Any]:
    """What the API server adds to an applied object."""
    meta = obj.setdefault("metadata", {})
    meta.update(
        {
            "uid": f"uid-{rv}",
            "resourceVersion": str(rv),
            "generation": 1,
            "creationTimestamp": "2025-11-29T18:00:00Z",
            "managedFields": [{"manager": "kserve-warden", "operation": "Apply"}],
        }
    )
    return obj


def _condition(type_: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    c = {"type": type_, "status": status, "lastTransitionTime": "2025-11-29T18:20:00Z"}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def container_status(
    name: str,
    *,
    ready: bool = True,
    waiting: tuple[str, str] | None = None,
    terminated: tuple[str, int, str] | None = None,
) -> dict[str, Any]:
    state: dict[str, Any]
    if waiting is not None:
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
    elif terminated is not None:
        state = {"terminated": {"reason": terminated[0], "exitCode": terminated[1], "message": terminated[2]}}
    else:
        state = {"running": {"startedAt": "2025-11-29T18:21:00Z"}}
    return {"name": name, "ready": ready, "restartCount": 0, "state": state, "image": f"img/{name}"}


@dataclass
class Cluster:
    """Live objects by (kind, namespace, name), plus the probes' recent observations."""

    objects: dict[tuple[str, str | None, str], dict[str, Any]] = field(default_factory=dict)
    observations: list[Observation] = field(default_factory=list)
    unobserved: dict[str, str] = field(default_factory=dict)
    """Kind → why the daemon could not read it (the informer's ``unobserved()``)."""

    def put(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        o = copy.deepcopy(dict(obj))
        meta = o.get("metadata") or {}
        self.objects[(str(o["kind"]), meta.get("namespace"), str(meta["name"]))] = o
        return o

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        return self.objects[(kind, namespace, name)]

    def drop(self, kind: str, namespace: str | None, name: str) -> None:
        del self.objects[(kind, namespace, name)]

    def world(self) -> World:
        return World.build(copy.deepcopy(list(self.objects.values())), unobserved=self.unobserved)

    def observe(self, obs: Observation) -> None:
        self.observations.append(obs)

    def replace_observations(self, probe: str, obs: Iterable[Observation]) -> None:
        self.observations = [o for o in self.observations if o.probe != probe] + list(obs)

    # convenience
    @property
    def isvc(self) -> dict[str, Any]:
        return self.get("InferenceService", NS, ISVC)

    @property
    def sa(self) -> dict[str, Any]:
        return self.get("ServiceAccount", NS, "iris-sa")

    @property
    def pod(self) -> dict[str, Any]:
        return self.get("Pod", NS, POD)


def obs(
    probe: str,
    target: str,
    outcome: str,
    *,
    ok: bool | None = None,
    at: float = NOW - 1,
    values: Mapping[str, float] | None = None,
    evidence: Iterable[str] = (),
    details: Mapping[str, Any] | None = None,
) -> Observation:
    good = {"ok", "ready"}
    return Observation(
        probe=probe,
        target=target,
        started=at - 0.05,
        finished=at,
        ok=(outcome in good) if ok is None else ok,
        outcome=outcome,
        values=values or {},
        evidence=tuple(evidence),
        details=details or {},
    )


DNS_TARGET = "istiod.istio-system.svc.cluster.local"
MODEL_KEY = f"{NS}/{ISVC}"


def dns_ok(at: float = NOW - 1) -> Observation:
    return obs(
        "dns",
        DNS_TARGET,
        "ok",
        at=at,
        values={"p50_seconds": 0.002, "p95_seconds": 0.004, "max_seconds": 0.005, "timeouts": 0},
    )


def dns_timeout(at: float = NOW - 1) -> Observation:
    return obs(
        "dns",
        DNS_TARGET,
        "timeout",
        at=at,
        values={"p50_seconds": 2.0, "p95_seconds": 2.0, "max_seconds": 2.0, "timeouts": 5},
        evidence=[f"5/5 queries for {DNS_TARGET} timed out after 2 s"],
    )


def storage_obs(
    outcome: str,
    *,
    files: Iterable[str] = ("model",),
    evidence: Iterable[str] = (),
    details: Mapping[str, Any] | None = None,
) -> Observation:
    d = {"files": list(files)} if outcome == "ok" else {}
    d.update(details or {})
    return obs("storage", MODEL_KEY, outcome, evidence=evidence, details=d)


def predictor_obs(
    outcome: str,
    *,
    evidence: Iterable[str] = (),
    details: Mapping[str, Any] | None = None,
) -> Observation:
    return obs("predictor", MODEL_KEY, outcome, evidence=evidence, details=details or {})


def healthy() -> Cluster:
    c = Cluster()
    c.put(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NS, "labels": {"istio-injection": "enabled"}},
        }
    )
    c.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}})
    c.put(inferenceservice_config("kserve"))
    c.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": "mlpipeline-minio-artifact", "namespace": "kubeflow"},
            "data": {"accesskey": b64(ACCESS_KEY), "secretkey": b64(SECRET_KEY)},
        }
    )
    c.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "harbor-credentials", "namespace": NS},
            "data": {
                ".dockerconfigjson": b64(
                    json.dumps({"auths": {"192.168.58.12:30002": {"password": SECRET_VALUES[2]}}})
                )
            },
        }
    )
    c.put(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "spec": {"replicas": 2},
        }
    )
    c.put(
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": PIPELINE_POLICY, "namespace": "kubeflow"},
            "spec": {
                "action": "ALLOW",
                "selector": {"matchLabels": {"app": "seaweedfs"}},
                "rules": [
                    {
                        "from": [
                            {
                                "source": {
                                    "principals": [
                                        "cluster.local/ns/kubeflow/sa/ml-pipeline",
                                        "cluster.local/ns/kubeflow/sa/ml-pipeline-ui",
                                    ]
                                }
                            }
                        ]
                    }
                ],
            },
        }
    )
    # The desired objects, as the server holds them after the daemon applied them.
    rv = 100
    world_for_render = World.build(
        [
            c.get("Secret", "kubeflow", "mlpipeline-minio-artifact"),
            c.get("ConfigMap", "kserve", "inferenceservice-config"),
        ]
    )
    for m in desired_state().manifests_for(world_for_render):
        rv += 1
        o = _server_side(copy_manifest(m), rv)
        if o["kind"] == "Secret":
            # The live derived secret holds the real (base64) values, copied from the source.
            o["data"] = {"AWS_ACCESS_KEY_ID": b64(ACCESS_KEY), "AWS_SECRET_ACCESS_KEY": b64(SECRET_KEY)}
        c.put(o)
    # Server defaults and other managers' fields: none of this is drift.
    c.sa["secrets"].append({"name": "iris-sa-token-x7k2q"})
    c.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {
                "name": "iris-sa-token-x7k2q",
                "namespace": NS,
                "annotations": {"kubernetes.io/service-account.name": "iris-sa"},
            },
            "data": {"token": b64("eyJhbGciOiJSUzI1NiJ9.fake-token-value")},
        }
    )
    c.get("ServingRuntime", NS, "iris-fastapi-runtime")["spec"]["containers"][0]["terminationMessagePath"] = (
        "/dev/termination-log"
    )
    c.isvc["metadata"].setdefault("annotations", {})["serving.kserve.io/deploymentMode"] = "Serverless"
    c.isvc["metadata"]["finalizers"] = ["inferenceservice.finalizers"]
    c.isvc["status"] = {
        "url": f"http://{ISVC}.{NS}.example.com",
        "conditions": [
            _condition("IngressReady", "True"),
            _condition("PredictorReady", "True"),
            _condition("Ready", "True"),
        ],
        "modelStatus": {"states": {"activeModelState": "Loaded", "targetModelState": "Loaded"}},
    }
    c.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": POD,
                "namespace": NS,
                "labels": {"serving.kserve.io/inferenceservice": ISVC},
            },
            "spec": {"serviceAccountName": "iris-sa", "imagePullSecrets": [{"name": "harbor-credentials"}]},
            "status": {
                "phase": "Running",
                "initContainerStatuses": [
                    container_status("storage-initializer", ready=True, terminated=("Completed", 0, ""))
                ],
                "containerStatuses": [
                    container_status("kserve-container"),
                    container_status("istio-proxy"),
                    container_status("queue-proxy"),
                ],
            },
        }
    )
    c.observations = [
        dns_ok(NOW - 21),
        dns_ok(NOW - 11),
        dns_ok(NOW - 1),
        storage_obs("ok", files=("model",)),
        predictor_obs("ready", details={"canary": {"expected": [0], "predicted": [0]}}),
    ]
    return c


def set_isvc_unready(
    c: Cluster, *, reason: str = "", message: str = "", failure: tuple[str, str] | None = None
) -> None:
    c.isvc["status"]["conditions"] = [
        _condition("IngressReady", "False", reason, message),
        _condition("PredictorReady", "False", reason, message),
        _condition("Ready", "False", reason, message),
    ]
    if failure is not None:
        c.isvc["status"]["modelStatus"] = {"lastFailureInfo": {"reason": failure[0], "message": failure[1]}}


@dataclass(frozen=True)
class Outcome:
    findings: list[Finding]
    drifts: list[Drift]
    desired: list[dict[str, Any]]

    @property
    def codes(self) -> list[str]:
        return [f.code.value for f in self.findings]

    def one(self, code: str) -> Finding:
        found = [f for f in self.findings if f.code.value == code]
        assert len(found) == 1, f"expected one {code}, got {self.codes}"
        return found[0]

    @property
    def desired_index(self) -> dict[ObjectRef, Mapping[str, Any]]:
        return index_by_ref(self.desired)


def run(c: Cluster, *, s: Settings | None = None, now: float = NOW) -> Outcome:
    """desired → diff → diagnose, as the loop runs it, on this cluster."""
    world = c.world()
    desired = desired_state().manifests_for(world)
    drifts = []
    for d in desired:
        r = ObjectRef.of(d)
        drifts.append(diff(d, world.get(r.kind, r.namespace, r.name)))
    findings = diagnose(
        world=world,
        desired=desired,
        drifts=drifts,
        observations=c.observations,
        settings=s or settings(),
        now=now,
    )
    return Outcome(findings=findings, drifts=drifts, desired=desired)


# --- the seed's failures, one breaker each (DESIGN.md's table rows in the comments) ---------

ISVC_REF = ObjectRef(
    api_version="serving.kserve.io/v1beta1", kind="InferenceService", namespace=NS, name="iris-model"
)
SA_REF = ObjectRef(api_version="v1", kind="ServiceAccount", namespace=NS, name="iris-sa")
SR_REF = ObjectRef(
    api_version="serving.kserve.io/v1alpha1", kind="ServingRuntime", namespace=NS, name="iris-fastapi-runtime"
)
AP_REF = ObjectRef(
    api_version="security.istio.io/v1",
    kind="AuthorizationPolicy",
    namespace="kubeflow",
    name="minio-user-namespace-access",
)
SECRET_REF = ObjectRef(api_version="v1", kind="Secret", namespace=NS, name="minio-s3-secret")
COREDNS_REF = ObjectRef(api_version="apps/v1", kind="Deployment", namespace="kube-system", name="coredns")
POD_REF = ObjectRef(api_version="v1", kind="Pod", namespace=NS, name=POD)
HELM_KEY = "serving.kserve.io/secretName"
KUSTOMIZE_KEY = "serving.kserve.io/storageSecretName"


# --- breakers -----------------------------------------------------------------------------


def no_runtime(c: Cluster) -> None:  # row 1
    c.drop("ServingRuntime", NS, "iris-fastapi-runtime")
    c.drop("Pod", NS, POD)
    msg = "no runtime found to support predictor with model type: {xgboost <nil>}"
    set_isvc_unready(c, reason="InternalError", message=msg, failure=("NoSupportingRuntime", msg))
    c.replace_observations(
        "predictor",
        [
            predictor_obs(
                "not-ready",
                evidence=[f"lastFailureInfo: NoSupportingRuntime: {msg}"],
                details={"failure_reason": "NoSupportingRuntime"},
            )
        ],
    )
    c.replace_observations("storage", [])


def runtime_lacks_format(c: Cluster) -> None:  # row 1, the runtime exists but lists only sklearn
    sr = c.get("ServingRuntime", NS, "iris-fastapi-runtime")
    sr["spec"]["supportedModelFormats"] = [{"name": "sklearn", "autoSelect": True}]


def wrong_secret_referenced(c: Cluster) -> None:  # row 2: annotation names MinIO's own secret format
    c.isvc["metadata"]["annotations"][KUSTOMIZE_KEY] = "mlpipeline-minio-artifact"
    src = c.get("Secret", "kubeflow", "mlpipeline-minio-artifact")
    copy_ = json.loads(json.dumps(src))
    copy_["metadata"]["namespace"] = NS
    c.put(copy_)
    set_isvc_unready(c, reason="ContainerFailed", message="storage-initializer failed")
    c.replace_observations(
        "predictor",
        [
            predictor_obs(
                "pod-failing",
                evidence=[
                    "storage-initializer| botocore.exceptions.NoCredentialsError: "
                    "Unable to locate credentials"
                ],
                details={
                    "container": "storage-initializer",
                    "reason": "Error",
                    "log_tail": ["botocore.exceptions.NoCredentialsError: Unable to locate credentials"],
                },
            )
        ],
    )
    c.replace_observations(
        "storage",
        [
            storage_obs(
                "no-credentials",
                details={"problem": "wrong-key-names"},
                evidence=["secret mlpipeline-minio-artifact has keys accesskey, secretkey"],
            )
        ],
    )


def derived_secret_missing(c: Cluster) -> None:  # row 2: the storage secret is gone
    c.drop("Secret", NS, "minio-s3-secret")
    set_isvc_unready(c, reason="ContainerFailed", message="storage-initializer failed")


def annotation_trap_helm(c: Cluster) -> None:  # row 2, the trap: Helm KServe reads secretName
    cm = c.get("ConfigMap", "kserve", "inferenceservice-config")
    cm["data"]["credentials"] = json.dumps({"storageSecretNameAnnotation": HELM_KEY})
    c.sa["secrets"] = []  # as in the seed: the SA did not list the secret


def annotation_trap_kustomize(c: Cluster) -> None:  # the reverse: annotation written as Helm's key
    ann = c.isvc["metadata"]["annotations"]
    ann[HELM_KEY] = ann.pop(KUSTOMIZE_KEY)
    c.sa["secrets"] = []


def dns_slow(c: Cluster) -> None:  # row 3 + the correlation: one root cause, not three alerts
    c.replace_observations("dns", [dns_timeout(NOW - 21), dns_timeout(NOW - 11), dns_timeout(NOW - 1)])
    for cs in c.pod["status"]["containerStatuses"]:
        if cs["name"] == "istio-proxy":
            cs["ready"] = False
        if cs["name"] == "kserve-container":
            cs["ready"] = False
    set_isvc_unready(c, reason="RevisionMissing", message="Revision is not ready")
    line = (
        "error cache resource:default failed to sign: create certificate: rpc error: code = Unavailable "
        'desc = "transport: Error while dialing: dial tcp: lookup istiod.istio-system.svc: i/o timeout"'
    )
    c.replace_observations(
        "predictor",
        [
            predictor_obs(
                "pod-failing",
                evidence=[f"istio-proxy| {line}"],
                details={"container": "istio-proxy", "reason": "NotReady", "log_tail": [line]},
            )
        ],
    )


def policy_missing(c: Cluster) -> None:  # row 4: only the pipelines' policy admits to MinIO
    c.drop("AuthorizationPolicy", "kubeflow", "minio-user-namespace-access")
    c.replace_observations(
        "storage",
        [
            storage_obs(
                "mesh-denied", evidence=["HeadBucket mlpipeline → 403 RBAC: access denied (server: envoy)"]
            )
        ],
    )


def policy_denies_via_deny_rule(c: Cluster) -> None:  # row 4, variant: someone's DENY rule
    c.put(
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": "deny-users", "namespace": "kubeflow"},
            "spec": {
                "action": "DENY",
                "selector": {"matchLabels": {"app": "seaweedfs"}},
                "rules": [{"from": [{"source": {"namespaces": [NS]}}]}],
            },
        }
    )


def policy_too_broad(c: Cluster) -> None:  # the seed's whole-namespace rule: drift, not a denial
    ap = c.get("AuthorizationPolicy", "kubeflow", "minio-user-namespace-access")
    ap["spec"]["rules"].append({"from": [{"source": {"namespaces": [NS]}}]})


def sidecar_disabled(c: Cluster) -> None:  # row 4b
    c.isvc["metadata"]["annotations"]["sidecar.istio.io/inject"] = "false"
    c.pod["metadata"]["annotations"] = {"sidecar.istio.io/inject": "false"}
    c.pod["status"]["containerStatuses"] = [
        container_status("kserve-container", ready=False),
        container_status("queue-proxy"),
    ]
    set_isvc_unready(c, reason="ContainerFailed", message="storage-initializer failed")
    c.replace_observations(
        "storage",
        [
            storage_obs(
                "unreachable", evidence=["connect to minio-service.kubeflow:9000: connection reset by peer"]
            )
        ],
    )


def model_file_not_found(c: Cluster) -> None:  # row 5 as the seed's server logged it
    line = "WARNING:serve:Model file not found at /mnt/models/model.pkl, using dummy model"
    c.replace_observations(
        "predictor",
        [
            predictor_obs(
                "pod-failing",
                evidence=[f"kserve-container| {line}"],
                details={"container": "kserve-container", "reason": "CrashLoopBackOff", "log_tail": [line]},
            )
        ],
    )


def model_object_missing(c: Cluster) -> None:  # row 5: nothing at the storageUri
    c.replace_observations(
        "storage",
        [
            storage_obs(
                "not-found",
                evidence=["no object under s3://mlpipeline/private-artifacts/user-example-com/iris/model"],
            )
        ],
    )


def model_wrong_format(c: Cluster) -> None:  # row 5: files there, none a model
    c.replace_observations("storage", [storage_obs("ok", files=("executor-logs",))])


def dummy_model(c: Cluster) -> None:  # row 5: the silent dummy model, caught by the canary
    c.replace_observations(
        "predictor",
        [
            predictor_obs(
                "wrong-model",
                evidence=["canary: expected [0], got [2]"],
                details={
                    "reason": "CanaryMismatch",
                    "canary": {"instances": [[5.1, 3.5, 1.4, 0.2]], "expected": [0], "predicted": [2]},
                },
            )
        ],
    )


def image_pull_401(c: Cluster) -> None:  # row 6
    del c.sa["imagePullSecrets"]
    del c.pod["spec"]["imagePullSecrets"]
    msg = (
        'Back-off pulling image "192.168.58.12:30002/kubeflow-iris/iris-serve:v1.0": '
        "unexpected status code 401 Unauthorized"
    )
    c.pod["status"]["containerStatuses"][0] = container_status(
        "kserve-container", ready=False, waiting=("ImagePullBackOff", msg)
    )
    set_isvc_unready(c, reason="RevisionFailed", message=f"Unable to fetch image: {msg}")


def image_pull_sa_already_fixed(c: Cluster) -> None:  # row 6 after the SA fix: the old pod stays stuck
    image_pull_401(c)
    c.sa["imagePullSecrets"] = [{"name": "harbor-credentials"}]


def image_pull_secret_absent(c: Cluster) -> None:  # row 6, the registry secret itself is missing
    image_pull_401(c)
    c.drop("Secret", NS, "harbor-credentials")


def runtime_image_drift(c: Cluster) -> None:
    c.get("ServingRuntime", NS, "iris-fastapi-runtime")["spec"]["containers"][0]["image"] = "evil/img:latest"


def derived_secret_stale(c: Cluster) -> None:
    c.get("Secret", NS, "minio-s3-secret")["data"]["AWS_SECRET_ACCESS_KEY"] = b64("rotated-away-value")


def source_secret_missing(c: Cluster) -> None:  # nothing to derive the storage secret from
    c.drop("Secret", "kubeflow", "mlpipeline-minio-artifact")
    c.drop("Secret", NS, "minio-s3-secret")


def storage_down(c: Cluster) -> None:
    c.replace_observations(
        "storage",
        [storage_obs("unreachable", evidence=["connect to minio-service.kubeflow:9000: connection refused"])],
    )


def storage_tls(c: Cluster) -> None:
    c.replace_observations(
        "storage",
        [
            storage_obs(
                "tls-error", evidence=["SSL: WRONG_VERSION_NUMBER connecting to minio-service.kubeflow:9000"]
            )
        ],
    )


def predictor_unreachable(c: Cluster) -> None:
    c.replace_observations(
        "predictor",
        [
            predictor_obs(
                "unreachable",
                evidence=["model server unreachable: connection refused"],
                details={"reason": "Unreachable"},
            )
        ],
    )


def isvc_missing(c: Cluster) -> None:
    c.drop("InferenceService", NS, "iris-model")
    c.drop("Pod", NS, POD)
    c.replace_observations("predictor", [])
    c.replace_observations("storage", [])
