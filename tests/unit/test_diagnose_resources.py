"""diagnose() on the resources and staleness families: the seed's healthy cluster with one pod
status changed the way the kubelet records it (OOMKilled, Evicted, CrashLoopBackOff), and KServe's
``Ready`` left as it stands. Exactly one root cause each, with the limit hit and the remedy that
raises it where it is set; nothing above INFO for a container that merely restarted long ago
and serves (a warning: it will meet the limit again)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from daemon.core.findings import Severity
from tests.unit import factories as fx
from tests.unit.factories import NS, POD, Cluster

Obj = dict[str, Any]


def _spec(c: Cluster, *, limit: str | None = "1Gi", init_limit: str | None = "1Gi") -> None:
    res = (
        {"limits": {"memory": limit, "cpu": "1"}, "requests": {"memory": "512Mi", "cpu": "500m"}}
        if limit
        else {}
    )
    init_res = {"limits": {"memory": init_limit}, "requests": {"memory": "100Mi"}} if init_limit else {}
    c.pod["spec"]["containers"] = [
        {"name": "kserve-container", "image": "img/kserve-container", "resources": res},
        {"name": "istio-proxy", "image": "img/istio-proxy"},
        {"name": "queue-proxy", "image": "img/queue-proxy"},
    ]
    c.pod["spec"]["initContainers"] = [
        {"name": "storage-initializer", "image": "img/si", "resources": init_res}
    ]


def _status(c: Cluster, name: str, **kw: Any) -> Obj:
    st = c.pod["status"]
    for key in ("initContainerStatuses", "containerStatuses"):
        for s in st.get(key) or []:
            if s["name"] == name:
                s.update(kw)
                return s
    raise KeyError(name)


def _oom(exit_code: int = 137, reason: str = "OOMKilled") -> Obj:
    return {"terminated": {"reason": reason, "exitCode": exit_code, "finishedAt": "2025-11-29T18:25:00Z"}}


def _crash(c: Cluster, name: str, last: Obj, restarts: int = 4) -> None:
    _status(
        c,
        name,
        ready=False,
        restartCount=restarts,
        lastState=last,
        state={
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off 1m20s restarting failed container={name} pod={POD}",
            }
        },
    )


def _unready_pod(c: Cluster) -> None:
    c.pod["status"]["phase"] = "Running"
    c.pod["status"]["conditions"] = [{"type": "Ready", "status": "False"}]


def _failing_probe(c: Cluster, container: str, tail: list[str]) -> None:
    c.replace_observations(
        "predictor",
        [
            fx.predictor_obs(
                "pod-failing",
                evidence=[f"pod {POD}: container {container} CrashLoopBackOff"],
                details={"pod": POD, "container": container, "reason": "CrashLoopBackOff", "log_tail": tail},
            )
        ],
    )


def main_oom(c: Cluster) -> None:
    """kserve/kserve#2290: the server OOM-killed loading the model, KServe records ModelLoadFailed
    with exit code 137, and the server's last lines look like a failed load."""
    _spec(c)
    _crash(c, "kserve-container", _oom())
    _unready_pod(c)
    msg = "failed to load model: Killed"
    fx.set_isvc_unready(
        c, reason="RevisionFailed", message="Container kserve-container is in CrashLoopBackOff"
    )
    c.isvc["status"]["modelStatus"] = {
        "transitionStatus": "BlockedByFailedLoad",
        "lastFailureInfo": {"reason": "ModelLoadFailed", "message": msg, "exitCode": 137},
    }
    _failing_probe(c, "kserve-container", ["loading model", msg])


def init_oom(c: Cluster) -> None:
    """kserve/kserve#5162, #5326: the storage-initializer's 1Gi limit against a large download."""
    _spec(c)
    _status(
        c,
        "storage-initializer",
        ready=False,
        restartCount=3,
        lastState=_oom(),
        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
    )
    for s in c.pod["status"]["containerStatuses"]:
        s.update(ready=False, state={"waiting": {"reason": "PodInitializing"}})
    c.pod["status"]["phase"] = "Pending"
    fx.set_isvc_unready(c, reason="RevisionMissing", message="Revision is not ready")


def oom_no_limit(c: Cluster) -> None:
    _spec(c, limit=None)
    _crash(c, "kserve-container", _oom())
    _unready_pod(c)
    fx.set_isvc_unready(c)


def oom_recorded_by_kserve_only(c: Cluster) -> None:
    """The pod is gone (replaced, Pending); KServe's lastFailureInfo still has the exit code."""
    c.drop("Pod", NS, POD)
    fx.set_isvc_unready(c, failure=("ModelLoadFailed", "Killed"))
    c.isvc["status"]["modelStatus"]["lastFailureInfo"]["exitCode"] = 137


def oom_then_recovered(c: Cluster) -> None:
    """OOM-killed once under load, restarted, Ready again: the limit will be met again."""
    _spec(c)
    _status(c, "kserve-container", restartCount=1, lastState=_oom())


def evicted_node_disk(c: Cluster) -> None:
    """kserve/kserve#4852: the model downloaded into the emptyDir on a small system disk."""
    _spec(c)
    c.pod["status"] = {
        "phase": "Failed",
        "reason": "Evicted",
        "message": "The node was low on resource: ephemeral-storage. Threshold quantity: "
        "10Gi, available: 812Mi. Container kserve-container was using 38Gi, request is 0.",
    }
    fx.set_isvc_unready(c)


def evicted_container_limit(c: Cluster) -> None:
    _spec(c)
    c.pod["status"] = {
        "phase": "Failed",
        "reason": "Evicted",
        "message": 'Container kserve-container exceeded its local ephemeral storage limit "8Gi". ',
    }
    fx.set_isvc_unready(c)


def evicted_pod_limit(c: Cluster) -> None:
    _spec(c)
    c.pod["status"] = {
        "phase": "Failed",
        "reason": "Evicted",
        "message": "Pod ephemeral local storage usage exceeds the total limit of containers 10Gi. ",
    }
    fx.set_isvc_unready(c)


def crash_with_last_words(c: Cluster) -> None:
    _spec(c)
    _crash(c, "kserve-container", {"terminated": {"reason": "Error", "exitCode": 1}})
    _unready_pod(c)
    fx.set_isvc_unready(
        c, reason="RevisionFailed", message="Container kserve-container is in CrashLoopBackOff"
    )
    _failing_probe(
        c,
        "kserve-container",
        ["Traceback (most recent call last):", "ModuleNotFoundError: No module named 'xgboost'", ""],
    )


def ready_but_crash_looping(c: Cluster) -> None:
    """kserve/kserve#1859: Ready=True, the restarted pod stuck in Init:CrashLoopBackOff."""
    _spec(c)
    _status(
        c,
        "storage-initializer",
        ready=False,
        restartCount=356,
        lastState={
            "terminated": {
                "reason": "Error",
                "exitCode": 1,
                "message": "RuntimeError: Failed to fetch model. No model found in s3://x.",
            }
        },
        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
    )
    for s in c.pod["status"]["containerStatuses"]:
        s.update(ready=False, state={"waiting": {"reason": "PodInitializing"}})
    c.pod["status"]["conditions"] = [{"type": "Ready", "status": "False"}]


def ready_with_old_pod_serving(c: Cluster) -> None:
    """A rollout stuck behind the old pod: the new pod crash-loops, the old one is ready."""
    old = copy.deepcopy(c.pod)
    old["metadata"]["name"] = "iris-model-predictor-old"
    old["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    c.put(old)
    _spec(c)
    _crash(
        c, "kserve-container", {"terminated": {"reason": "Error", "exitCode": 2, "message": "bad flag --foo"}}
    )
    _unready_pod(c)


@dataclass(frozen=True)
class Case:
    id: str
    breaker: Callable[[Cluster], None]
    code: str
    severity: Severity = Severity.CRITICAL
    evidence: tuple[str, ...] = ()
    remedy: tuple[str, ...] = ()
    absent: tuple[str, ...] = field(default=())


CASES = [
    Case(
        "oom-main",
        main_oom,
        "oom-killed",
        evidence=(
            "container kserve-container: terminated OOMKilled (exit code 137), restarted 4 times",
            "memory limit of kserve-container: 1Gi",
            "lastFailureInfo ModelLoadFailed exitCode 137",
        ),
        remedy=(
            '{"spec":{"predictor":{"model":{"resources":{"limits":{"memory":"2Gi"}}}}}}',
            "kubectl patch inferenceservice iris-model -n user-example-com --type merge",
        ),
    ),
    Case(
        "oom-init",
        init_oom,
        "oom-killed",
        evidence=(
            "init container storage-initializer: terminated OOMKilled",
            "memory limit of storage-initializer: 1Gi",
        ),
        remedy=(
            "ConfigMap kserve/inferenceservice-config",
            '"memoryLimit": "2Gi"',
            f"kubectl delete pod {POD} -n {NS}",
        ),
    ),
    Case(
        "oom-no-limit",
        oom_no_limit,
        "oom-killed",
        evidence=("has no memory limit",),
        remedy=("memory request",),
    ),
    Case(
        "oom-kserve-record",
        oom_recorded_by_kserve_only,
        "oom-killed",
        evidence=("exitCode 137 (killed: out of memory)",),
    ),
    Case(
        "oom-recovered",
        oom_then_recovered,
        "oom-killed",
        severity=Severity.WARNING,
        evidence=("restarted 1 times", "reports Ready=True all the same"),
    ),
    Case(
        "evicted-node-disk",
        evicted_node_disk,
        "evicted-ephemeral-storage",
        evidence=("The node was low on resource: ephemeral-storage",),
        remedy=("pvc://", "ephemeral-storage", f"kubectl delete pod {POD} -n {NS}"),
    ),
    Case(
        "evicted-container-limit",
        evicted_container_limit,
        "evicted-ephemeral-storage",
        remedy=('"limits":{"ephemeral-storage":"16Gi"}',),
    ),
    Case(
        "evicted-pod-limit",
        evicted_pod_limit,
        "evicted-ephemeral-storage",
        remedy=('"limits":{"ephemeral-storage":"20Gi"}', "exceed the ephemeral-storage limit 10Gi"),
    ),
    Case(
        "crash-loop",
        crash_with_last_words,
        "crash-loop",
        evidence=(
            "CrashLoopBackOff, restarted 4 times, last exit code 1 (Error)",
            "last log line of kserve-container: ModuleNotFoundError: No module named 'xgboost'",
        ),
        remedy=(f"kubectl logs {POD} -n {NS} -c kserve-container --previous",),
    ),
    Case(
        # The staleness with a named cause: the download's finding, critical (nothing serves),
        # its evidence saying the status is stale; not also ready-but-crash-looping.
        "ready-but-download-crash-looping",
        ready_but_crash_looping,
        "model-not-found",
        evidence=(
            "reports Ready=True, but no predictor pod is ready",
            "storage-initializer failed: RuntimeError: Failed to fetch model",
        ),
    ),
    Case(
        "ready-old-pod-serving",
        ready_with_old_pod_serving,
        "ready-but-crash-looping",
        severity=Severity.WARNING,
        evidence=("last log line of kserve-container: bad flag --foo", "an older predictor pod still serves"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_one_cause_with_the_limit_and_where_to_raise_it(case: Case) -> None:
    c = fx.healthy()
    case.breaker(c)
    out = fx.run(c)
    assert out.codes == [case.code], [f.to_dict() for f in out.findings]
    f = out.findings[0]
    assert f.severity == case.severity
    for needle in case.evidence:
        assert any(needle in e for e in f.evidence), (needle, f.evidence)
    for needle in case.remedy:
        assert needle in f.remedy, (needle, f.remedy)
    assert f.inferenceservice == f"{NS}/iris-model" and f.explanation


def test_an_oom_killed_server_is_not_also_a_wrong_format_or_not_ready() -> None:
    c = fx.healthy()
    main_oom(c)
    codes = fx.run(c).codes
    assert (
        "model-wrong-format" not in codes and "predictor-not-ready" not in codes and codes == ["oom-killed"]
    )


def test_a_stale_oom_record_of_a_healed_model_is_not_a_finding() -> None:
    """KServe never clears lastFailureInfo: exit code 137 recorded once, the model healthy since
    (``transitionStatus: UpToDate``), must not keep an OOM finding."""
    c = fx.healthy()
    c.isvc["status"]["modelStatus"] = {"transitionStatus": "UpToDate", "lastFailureInfo": {
        "reason": "ModelLoadFailed", "message": "Killed", "exitCode": 137}}
    assert fx.run(c).findings == []
    c.isvc["status"]["modelStatus"]["transitionStatus"] = "BlockedByFailedLoad"
    fx.set_isvc_unready(c)
    assert fx.run(c).codes == ["oom-killed"]


def test_exit_137_without_oomkilled_is_a_crash_not_an_oom() -> None:
    """SIGKILL for another reason (a liveness probe): no OOM claim without the kubelet's word."""
    c = fx.healthy()
    _spec(c)
    _crash(c, "kserve-container", _oom(reason="Error"))
    _unready_pod(c)
    fx.set_isvc_unready(c)
    assert fx.run(c).codes == ["crash-loop"]


def test_evicted_for_memory_is_not_an_ephemeral_storage_finding() -> None:
    c = fx.healthy()
    c.pod["status"] = {
        "phase": "Failed",
        "reason": "Evicted",
        "message": "The node was low on resource: memory.",
    }
    fx.set_isvc_unready(c)
    assert fx.run(c).codes == ["predictor-not-ready"]


def test_a_crash_loop_another_rule_explains_is_not_reported_again() -> None:
    """Credentials missing: the storage-initializer crash-loops on NoCredentialsError while Ready."""
    c = fx.healthy()
    fx.derived_secret_missing(c)
    _spec(c)
    _status(
        c,
        "storage-initializer",
        ready=False,
        restartCount=5,
        lastState={
            "terminated": {
                "reason": "Error",
                "exitCode": 1,
                "message": "botocore.exceptions.NoCredentialsError: Unable to locate credentials",
            }
        },
        state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
    )
    codes = fx.run(c).codes
    assert "crash-loop" not in codes and "ready-but-crash-looping" not in codes, codes
