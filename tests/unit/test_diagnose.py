"""diagnose(): the seed's cluster broken one way per case → exactly the root cause, with its fix.

A row per failure of DESIGN.md's table (1, 2 incl. the storageSecretName/secretName trap,
3, 4, 4b, 5, 6) plus the codes without a seed row (drift, storage-unreachable,
predictor-not-ready), the DNS correlation case, and a check that every ``Code`` is produced
by some case and that no secret value appears in any finding.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from daemon.core.findings import Code, Finding, Severity
from daemon.core.objects import ObjectRef
from tests.unit import factories as fx
from tests.unit.factories import (
    AP_REF,
    COREDNS_REF,
    HELM_KEY,
    ISVC_REF,
    KUSTOMIZE_KEY,
    NS,
    POD,
    POD_REF,
    SA_REF,
    SECRET_REF,
    SR_REF,
    Cluster,
    annotation_trap_helm,
    annotation_trap_kustomize,
    derived_secret_missing,
    derived_secret_stale,
    dns_slow,
    dummy_model,
    image_pull_401,
    image_pull_sa_already_fixed,
    image_pull_secret_absent,
    isvc_missing,
    model_file_not_found,
    model_object_missing,
    model_wrong_format,
    no_runtime,
    policy_denies_via_deny_rule,
    policy_missing,
    policy_too_broad,
    predictor_unreachable,
    runtime_image_drift,
    runtime_lacks_format,
    sidecar_disabled,
    source_secret_missing,
    storage_down,
    storage_tls,
    wrong_secret_referenced,
)

# --- the table ----------------------------------------------------------------------------


NO_RUNTIME_VERDICT = {"reason": "NoSupportingRuntime",
                      "message": "No runtime found to support specified framework/version"}


def stale_no_runtime_verdict(c: Cluster) -> None:
    """KServe v0.20 once found no runtime, then one was created and it deployed the predictor:
    ``lastFailureInfo`` stays (KServe never clears it), ``transitionStatus`` is ``UpToDate``."""
    c.isvc["status"]["modelStatus"] = {
        "transitionStatus": "UpToDate", "lastFailureInfo": dict(NO_RUNTIME_VERDICT),
        "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"}}


def stale_model_load_failure(c: Cluster) -> None:
    """The model failed to load, was fixed, and a new pod serves it: KServe leaves its
    ``ModelLoadFailed`` behind with ``transitionStatus`` ``UpToDate`` (v0.20, RawDeployment)."""
    c.isvc["status"]["modelStatus"] = {
        "transitionStatus": "UpToDate",
        "lastFailureInfo": {"reason": "ModelLoadFailed", "exitCode": 1,
                            "message": "serving.loader.ModelLoadError: no model in /mnt/models"},
        "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"}}


def current_model_load_failure(c: Cluster) -> None:
    """The same failure while it holds (``BlockedByFailedLoad``): KServe's words count."""
    stale_model_load_failure(c)
    c.isvc["status"]["modelStatus"] |= {
        "transitionStatus": "BlockedByFailedLoad",
        "states": {"activeModelState": "", "targetModelState": "FailedToLoad"}}


def current_no_runtime_verdict(c: Cluster) -> None:
    """The same verdict while it holds (``InvalidSpec``): it counts although a runtime looks right."""
    c.isvc["status"]["modelStatus"] = {
        "transitionStatus": "InvalidSpec", "lastFailureInfo": dict(NO_RUNTIME_VERDICT),
        "states": {"activeModelState": "", "targetModelState": "FailedToLoad"}}


@dataclass(frozen=True)
class Case:
    id: str
    breaker: Callable[[Cluster], None]
    codes: list[str]
    """Exactly the findings expected, in any order."""
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    """For some codes: the plan data expected (key → value; ``human`` True or actions)."""
    subject: dict[str, ObjectRef] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    """A substring some evidence line of that finding must hold."""


CASES = [
    Case(
        "1-no-serving-runtime",
        no_runtime,
        ["no-serving-runtime"],
        data={"no-serving-runtime": {"apply": [SR_REF]}},
        subject={"no-serving-runtime": SR_REF},
        evidence={"no-serving-runtime": "no runtime found to support predictor"},
    ),
    Case(
        "1-runtime-lacks-format",
        runtime_lacks_format,
        ["no-serving-runtime"],
        data={"no-serving-runtime": {"apply": [SR_REF]}},
        evidence={"no-serving-runtime": "spec.supportedModelFormats"},
    ),
    Case("1-stale-no-runtime-verdict", stale_no_runtime_verdict, []),
    Case("5-stale-model-load-failure", stale_model_load_failure, []),
    Case(
        "5-current-model-load-failure",
        current_model_load_failure,
        ["model-wrong-format"],
        evidence={"model-wrong-format": "lastFailureInfo ModelLoadFailed: serving.loader.ModelLoadError"},
    ),
    Case(
        "1-current-no-runtime-verdict",
        current_no_runtime_verdict,
        ["no-serving-runtime"],
        evidence={"no-serving-runtime": "lastFailureInfo NoSupportingRuntime: No runtime found"},
    ),
    Case(
        "2-wrong-secret-format",
        wrong_secret_referenced,
        ["storage-secret-format"],
        data={"storage-secret-format": {"apply": [ISVC_REF]}},
        subject={
            "storage-secret-format": ObjectRef(
                api_version="v1", kind="Secret", namespace=NS, name="mlpipeline-minio-artifact"
            )
        },
        evidence={"storage-secret-format": "['accesskey', 'secretkey']"},
    ),
    Case(
        "2-derived-secret-missing",
        derived_secret_missing,
        ["storage-credentials-missing"],
        data={"storage-credentials-missing": {"derive": [SECRET_REF]}},
        subject={"storage-credentials-missing": SECRET_REF},
        evidence={"storage-credentials-missing": "does not exist"},
    ),
    Case(
        "2-trap-helm-secretName",
        annotation_trap_helm,
        ["storage-secret-annotation"],
        data={"storage-secret-annotation": {"apply": [ISVC_REF, SA_REF]}},
        evidence={"storage-secret-annotation": f"{KUSTOMIZE_KEY}=minio-s3-secret is ignored"},
    ),
    Case(
        "2-trap-kustomize-storageSecretName",
        annotation_trap_kustomize,
        ["storage-secret-annotation"],
        data={"storage-secret-annotation": {"apply": [ISVC_REF, SA_REF]}},
        evidence={"storage-secret-annotation": f"{HELM_KEY}=minio-s3-secret is ignored"},
    ),
    Case(
        "3-dns-correlated",
        dns_slow,
        ["dns-latency-high"],
        data={"dns-latency-high": {"restart": COREDNS_REF, "consecutive_bad": 3}},
        subject={"dns-latency-high": COREDNS_REF},
        evidence={"dns-latency-high": "lookup istiod.istio-system.svc: i/o timeout"},
    ),
    Case(
        "4-policy-missing",
        policy_missing,
        ["mesh-policy-denies"],
        data={"mesh-policy-denies": {"apply": [AP_REF]}},
        subject={"mesh-policy-denies": AP_REF},
        evidence={"mesh-policy-denies": "RBAC: access denied"},
    ),
    Case(
        "4-deny-rule",
        policy_denies_via_deny_rule,
        ["mesh-policy-denies"],
        data={"mesh-policy-denies": {"human": True}},
        subject={
            "mesh-policy-denies": ObjectRef(
                api_version="security.istio.io/v1",
                kind="AuthorizationPolicy",
                namespace="kubeflow",
                name="deny-users",
            )
        },
        evidence={"mesh-policy-denies": "DENY policy kubeflow/deny-users"},
    ),
    Case(
        "4-policy-too-broad",
        policy_too_broad,
        ["drift"],
        data={"drift": {"apply": [AP_REF]}},
        evidence={"drift": "spec.rules"},
    ),
    Case(
        "4b-sidecar-disabled",
        sidecar_disabled,
        ["sidecar-disabled-policy-unenforced"],
        data={
            "sidecar-disabled-policy-unenforced": {
                "remove_annotation": {"target": ISVC_REF, "key": "sidecar.istio.io/inject"}
            }
        },
        evidence={
            "sidecar-disabled-policy-unenforced": "meant to admit cluster.local/ns/user-example-com/sa/iris"
        },
    ),
    Case(
        "5-model-file-not-found-log",
        model_file_not_found,
        ["model-not-found"],
        data={"model-not-found": {"human": True}},
        evidence={"model-not-found": "Model file not found at /mnt/models/model.pkl"},
    ),
    Case(
        "5-model-object-missing",
        model_object_missing,
        ["model-not-found"],
        data={"model-not-found": {"human": True}},
    ),
    Case(
        "5-model-wrong-format",
        model_wrong_format,
        ["model-wrong-format"],
        data={"model-wrong-format": {"human": True}},
        evidence={"model-wrong-format": "holds: executor-logs"},
    ),
    Case(
        "5-dummy-model",
        dummy_model,
        ["wrong-model"],
        data={"wrong-model": {"human": True}},
        evidence={"wrong-model": "expected [0], got [2]"},
    ),
    Case(
        "6-image-pull-401",
        image_pull_401,
        ["image-pull-unauthorized"],
        data={"image-pull-unauthorized": {"apply": [SA_REF], "delete_pods": [POD_REF]}},
        subject={"image-pull-unauthorized": SA_REF},
        evidence={"image-pull-unauthorized": "401 Unauthorized"},
    ),
    Case(
        "6-sa-fixed-pod-stuck",
        image_pull_sa_already_fixed,
        ["image-pull-unauthorized"],
        data={"image-pull-unauthorized": {"apply": [], "delete_pods": [POD_REF]}},
    ),
    Case(
        "6-registry-secret-absent",
        image_pull_secret_absent,
        ["image-pull-unauthorized"],
        data={"image-pull-unauthorized": {"human": True}},
    ),
    Case(
        "drift-runtime-image",
        runtime_image_drift,
        ["drift"],
        data={"drift": {"apply": [SR_REF]}},
        subject={"drift": SR_REF},
        evidence={"drift": "evil/img"},
    ),
    Case(
        "drift-derived-secret-stale",
        derived_secret_stale,
        ["drift"],
        data={"drift": {"derive": [SECRET_REF]}},
        evidence={"drift": "<hash differs>"},
    ),
    Case(
        "drift-source-secret-missing",
        source_secret_missing,
        ["storage-credentials-missing"],
        data={"storage-credentials-missing": {"human": True}},
        evidence={"storage-credentials-missing": "minio-s3-secret does not exist"},
    ),
    Case("drift-isvc-missing", isvc_missing, ["drift"], data={"drift": {"apply": [ISVC_REF]}}),
    Case(
        "storage-unreachable",
        storage_down,
        ["storage-unreachable"],
        data={"storage-unreachable": {"human": True}},
        evidence={"storage-unreachable": "connection refused"},
    ),
    Case("storage-tls", storage_tls, ["storage-unreachable"], data={"storage-unreachable": {"human": True}}),
    Case(
        "predictor-not-ready",
        predictor_unreachable,
        ["predictor-not-ready"],
        data={"predictor-not-ready": {"human": True}},
    ),
]


def _data(f: Finding) -> dict[str, Any]:
    return dict(f.data)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_failure_gives_its_root_cause(case: Case) -> None:
    c = fx.healthy()
    case.breaker(c)
    out = fx.run(c)
    assert sorted(out.codes) == sorted(case.codes), [f.to_dict() for f in out.findings]
    for code, want in case.data.items():
        got = _data(out.one(code))
        for k, v in want.items():
            assert got.get(k) == v, (code, k, got)
    for code, subj in case.subject.items():
        assert out.one(code).subject == subj
    for code, needle in case.evidence.items():
        f = out.one(code)
        assert any(needle in e for e in f.evidence), (needle, f.evidence)
    for f in out.findings:
        assert f.explanation and f.remedy, f
        assert f.severity in Severity


def test_healthy_world_has_no_findings() -> None:
    out = fx.run(fx.healthy())
    assert out.findings == []
    assert not any(d.drifted for d in out.drifts)


# Codes of clusters other than the seed's (other formats, storage schemes, mesh setups): the
# corpus (tests/corpus, tests/unit/test_diagnose_corpus.py) produces each of them.
CORPUS_CODES = {
    Code.NOT_CHECKED, Code.RUNTIME_DISABLED, Code.RUNTIME_VERSION_UNSUPPORTED, Code.PVC_NOT_BOUND,
    Code.PEER_AUTHENTICATION_STRICT_NO_SIDECAR, Code.MESH_POLICY_NOT_EVALUATED,
    Code.ISTIO_REVISION_MISSING, Code.COMPONENT_NOT_READY,
    Code.PROBE_ERROR,  # table-tested in tests/unit/test_probe_errors.py
    # The storage-initializer's own failures: KServe's samples (tests/samples,
    # tests/unit/test_diagnose_samples.py) and the download table (tests/unit/test_download.py).
    Code.STORAGE_ACCESS_DENIED, Code.STORAGE_URI_UNSUPPORTED, Code.STORAGE_DOWNLOAD_FAILED,
    # Pod-level families, table-tested in tests/unit/test_diagnose_resources.py and
    # tests/unit/test_diagnose_scheduling.py.
    Code.OOM_KILLED, Code.EVICTED_EPHEMERAL_STORAGE, Code.CRASH_LOOP, Code.READY_BUT_CRASH_LOOPING,
    Code.UNSCHEDULABLE_INSUFFICIENT_RESOURCES, Code.UNSCHEDULABLE_UNTOLERATED_TAINT,
    Code.UNSCHEDULABLE_NO_MATCHING_NODE, Code.UNSCHEDULABLE,
}


def test_every_code_is_producible() -> None:
    produced: set[str] = set()
    for case in CASES:
        c = fx.healthy()
        case.breaker(c)
        produced |= set(fx.run(c).codes)
    assert produced == {code.value for code in Code if code not in CORPUS_CODES}


def test_no_symptom_is_attributed_to_two_findings() -> None:
    for case in CASES:
        c = fx.healthy()
        case.breaker(c)
        seen: dict[str, str] = {}
        for f in fx.run(c).findings:
            for s in f.caused:
                assert s not in seen, f"{case.id}: {s!r} under both {seen[s]} and {f.code.value}"
                seen[s] = f.code.value


def test_model_scoped_findings_carry_their_inferenceservice() -> None:
    for case in CASES:
        c = fx.healthy()
        case.breaker(c)
        for f in fx.run(c).findings:
            if f.subject.kind in ("InferenceService", "Pod") or f.code.value in (
                "no-serving-runtime", "storage-secret-format", "mesh-policy-denies", "model-wrong-format",
                "storage-secret-annotation", "sidecar-disabled-policy-unenforced", "image-pull-unauthorized",
            ):
                assert f.inferenceservice == f"{NS}/iris-model", (case.id, f.code, f.subject)
                assert f.to_dict()["inferenceservice"] == f"{NS}/iris-model"


def test_dns_correlation_folds_sidecar_and_predictor_symptoms() -> None:
    c = fx.healthy()
    dns_slow(c)
    f = fx.run(c).one("dns-latency-high")
    assert f.severity is Severity.CRITICAL
    assert any("istio-proxy not ready" in x for x in f.caused)
    assert any("PredictorReady=False" in x for x in f.caused)
    assert any("predictor probe: pod-failing" in x for x in f.caused)
    assert "kubectl rollout restart deployment coredns -n kube-system" in f.remedy


def test_dns_hysteresis_count_is_the_trailing_run_of_bad_probes() -> None:
    c = fx.healthy()
    c.replace_observations(
        "dns",
        [
            fx.dns_timeout(fx.NOW - 31),
            fx.dns_ok(fx.NOW - 21),
            fx.dns_timeout(fx.NOW - 11),
            fx.dns_timeout(fx.NOW - 1),
        ],
    )
    f = fx.run(c).one("dns-latency-high")
    assert f.data["consecutive_bad"] == 2


def test_stale_observations_are_ignored() -> None:
    c = fx.healthy()
    c.replace_observations("dns", [fx.dns_timeout(fx.NOW - 3600)])
    assert fx.run(c).findings == []


def test_dns_recovered_gives_no_finding() -> None:
    c = fx.healthy()
    c.replace_observations("dns", [fx.dns_timeout(fx.NOW - 21), fx.dns_timeout(fx.NOW - 11), fx.dns_ok()])
    assert fx.run(c).findings == []


def test_dns_not_checked_is_info_never_a_dns_finding() -> None:
    # `check` outside a cluster with no cluster nameserver: the probe judges nothing.
    c = fx.healthy()
    not_checked = replace(fx.dns_ok(), ok=True, outcome="not-checked",
                          evidence=("not checked: not running in a cluster",))
    c.replace_observations("dns", [fx.dns_timeout(fx.NOW - 11), not_checked])
    found = fx.run(c).findings
    assert [(f.code.value, f.severity.value) for f in found] == [("not-checked", "info")]
    assert found[0].evidence == ("not checked: not running in a cluster",)


def test_dns_and_an_unrelated_cause_stay_two_findings() -> None:
    c = fx.healthy()
    dns_slow(c)
    no_runtime(c)
    out = fx.run(c)
    assert sorted(out.codes) == ["dns-latency-high", "no-serving-runtime"]


def test_mesh_denial_is_found_statically_before_any_pod_tries() -> None:
    c = fx.healthy()
    c.drop("AuthorizationPolicy", "kubeflow", "minio-user-namespace-access")
    c.drop("Pod", NS, POD)
    c.replace_observations("storage", [])
    f = fx.run(c).one("mesh-policy-denies")
    assert any("static check" in e and "kubeflow/seaweedfs-service" in e for e in f.evidence)
    assert f.data["apply"] == [AP_REF]


def test_sa_losing_its_pull_secret_is_found_before_any_pod_fails() -> None:
    c = fx.healthy()
    del c.sa["imagePullSecrets"]  # the running pod still has its copy: nothing failed yet
    f = fx.run(c).one("image-pull-unauthorized")
    assert any("lacks imagePullSecrets ['harbor-credentials']" in e for e in f.evidence)
    assert f.data["apply"] == [SA_REF] and f.data["delete_pods"] == []


def test_several_models_each_diagnosed_and_an_unknown_one_reported() -> None:
    base = fx.settings()
    other = replace(base.models[0], name="other-model")
    s = replace(base, models=(*base.models, other))
    c = fx.healthy()
    dummy_model(c)
    out = fx.run(c, s=s)
    assert sorted(out.codes) == ["predictor-not-ready", "wrong-model"]
    assert out.one("predictor-not-ready").subject.name == "other-model"
    assert out.one("wrong-model").subject == ISVC_REF


def test_probe_denial_that_no_watched_policy_explains_goes_to_a_person() -> None:
    c = fx.healthy()
    c.replace_observations("storage", [fx.storage_obs("mesh-denied", evidence=["403 RBAC: access denied"])])
    f = fx.run(c).one("mesh-policy-denies")
    assert f.subject == ISVC_REF and f.data == {"human": True}
    assert "kubectl get authorizationpolicy -A" in f.remedy


def test_sidecar_disabled_folds_unreachable_storage_and_does_not_report_it_twice() -> None:
    c = fx.healthy()
    sidecar_disabled(c)
    f = fx.run(c).one("sidecar-disabled-policy-unenforced")
    assert "storage probe: unreachable" in f.caused
    assert "sidecar.istio.io/inject-" in f.remedy


def test_sidecar_disabled_by_namespace_label_needs_a_person() -> None:
    c = fx.healthy()
    c.get("Namespace", None, NS)["metadata"]["labels"] = {"istio-injection": "disabled"}
    f = fx.run(c).one("sidecar-disabled-policy-unenforced")
    assert f.data == {"human": True}
    assert f"kubectl label namespace {NS} istio-injection=enabled --overwrite" in f.remedy


def test_trap_remedy_names_the_configured_key() -> None:
    c = fx.healthy()
    annotation_trap_helm(c)
    out = fx.run(c)
    f = out.one("storage-secret-annotation")
    assert f"{KUSTOMIZE_KEY}-" in f.remedy and f"{HELM_KEY}=minio-s3-secret" in f.remedy
    isvc = next(d for d in out.desired if d["kind"] == "InferenceService")
    assert isvc["metadata"]["annotations"] == {HELM_KEY: "minio-s3-secret"}


def test_a_mismatched_annotation_is_harmless_when_the_sa_lists_a_usable_secret() -> None:
    c = fx.healthy()
    cm = c.get("ConfigMap", "kserve", "inferenceservice-config")
    cm["data"]["credentials"] = json.dumps({"storageSecretNameAnnotation": HELM_KEY})
    out = fx.run(c)
    # Only the annotation key drifts (the desired state writes the configured key).
    assert out.codes == ["drift"]
    assert out.one("drift").subject == ISVC_REF


def test_no_secret_value_in_any_finding() -> None:
    secrets = [
        *fx.SECRET_VALUES,
        *(fx.b64(v) for v in fx.SECRET_VALUES),
        fx.b64("rotated-away-value"),
        "rotated-away-value",
    ]
    for case in CASES:
        c = fx.healthy()
        case.breaker(c)
        out = fx.run(c)
        text = json.dumps([f.to_dict() for f in out.findings]) + repr([f.data for f in out.findings])
        text += json.dumps([d.to_dict() for d in out.drifts]) + json.dumps(out.desired)
        for s in secrets:
            assert s not in text, (case.id, "secret value leaked")
