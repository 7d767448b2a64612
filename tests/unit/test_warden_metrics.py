"""Behaviour of the metric helpers: what one observation or one findings list does to the series."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from daemon.core.findings import Code, Finding, Severity
from daemon.core.objects import ObjectRef
from daemon.process.metrics import WardenMetrics
from probes.metrics import ProbeMetrics
from probes.observation import Observation

ISVC = ObjectRef(api_version="serving.kserve.io/v1beta1", kind="InferenceService",
                 namespace="user-example-com", name="iris-model")


def _obs(*, probe: str, ok: bool, duration: float = 0.2, **kw: object) -> Observation:
    return Observation(probe=probe, target="t", started=1000.0, finished=1000.0 + duration, ok=ok,
                       outcome="ok" if ok else "bad", **kw)  # type: ignore[arg-type]


def _finding(code: Code, severity: Severity = Severity.WARNING) -> Finding:
    return Finding(code=code, severity=severity, subject=ISVC, evidence=(), explanation="", remedy="")


@pytest.mark.parametrize(
    ("ok", "expected"), [(True, 1.0), (False, 0.0)],
)
def test_record_sets_success_duration_and_last_run(ok: bool, expected: float) -> None:
    r = CollectorRegistry()
    ProbeMetrics(r).record(_obs(probe="predictor", ok=ok, duration=0.2))
    assert r.get_sample_value("warden_probe_success", {"probe": "predictor", "target": "t"}) == expected
    assert r.get_sample_value("warden_probe_duration_seconds_count", {"probe": "predictor"}) == 1.0
    assert r.get_sample_value("warden_probe_duration_seconds_bucket",
                              {"probe": "predictor", "le": "0.25"}) == 1.0
    assert r.get_sample_value("warden_probe_duration_seconds_bucket",
                              {"probe": "predictor", "le": "0.1"}) == 0.0
    assert r.get_sample_value("warden_probe_last_run_timestamp_seconds", {"probe": "predictor"}) == 1000.2
    # A non-DNS probe leaves the DNS histogram alone.
    assert r.get_sample_value("warden_dns_latency_seconds_count") == 0.0


@pytest.mark.parametrize(
    ("details", "values", "count", "total"),
    [
        ({"latencies": [0.001, 0.002, 0.02]}, {"p50": 9.0}, 3, 0.023),  # samples win over summary
        ({}, {"p50": 0.004}, 1, 0.004),  # summary only: the median
        ({}, {"p50_seconds": 0.005}, 1, 0.005),
        ({"latencies": [0.001, float("nan"), -1, True, "x"]}, {}, 1, 0.001),  # junk is skipped
        ({}, {}, 0, 0.0),  # a run with no answers (all timeouts) adds no latency sample
    ],
)
def test_dns_latency_histogram(details: dict[str, object], values: dict[str, float], count: int,
                               total: float) -> None:
    r = CollectorRegistry()
    ProbeMetrics(r).record(_obs(probe="dns", ok=True, details=details, values=values))
    assert r.get_sample_value("warden_dns_latency_seconds_count") == count
    assert r.get_sample_value("warden_dns_latency_seconds_sum") == pytest.approx(total)


def test_set_findings_counts_and_zeroes_cleared_codes() -> None:
    r = CollectorRegistry()
    m = WardenMetrics(r)

    def value(code: Code, severity: Severity) -> float | None:
        return r.get_sample_value("warden_findings", {"code": code.value, "severity": severity.value,
                                                      "namespace": "user-example-com",
                                                      "inferenceservice": "iris-model"})

    m.set_findings([
        _finding(Code.DRIFT), _finding(Code.DRIFT), _finding(Code.WRONG_MODEL, Severity.CRITICAL),
    ])
    assert value(Code.DRIFT, Severity.WARNING) == 2.0
    assert value(Code.WRONG_MODEL, Severity.CRITICAL) == 1.0

    m.set_findings([_finding(Code.DRIFT)])
    assert value(Code.DRIFT, Severity.WARNING) == 1.0
    assert value(Code.WRONG_MODEL, Severity.CRITICAL) is None  # a model's cleared finding: series gone

    # Escalation moves a code to another severity: the old series goes.
    m.set_findings([_finding(Code.DRIFT, Severity.CRITICAL)])
    assert value(Code.DRIFT, Severity.WARNING) is None
    assert value(Code.DRIFT, Severity.CRITICAL) == 1.0

    m.set_findings([])
    assert value(Code.DRIFT, Severity.CRITICAL) is None
    assert value(Code.WRONG_MODEL, Severity.CRITICAL) is None


def test_findings_per_inferenceservice_bounded_and_cluster_wide_zeroed() -> None:
    r = CollectorRegistry()
    m = WardenMetrics(r)
    dns = ObjectRef(api_version="apps/v1", kind="Deployment", namespace="kube-system", name="coredns")
    sa = ObjectRef(api_version="v1", kind="ServiceAccount", namespace="team-a", name="sa")

    def series() -> dict[tuple[str, str, str, str], float]:
        return {(s.labels["code"], s.labels["severity"], s.labels["namespace"], s.labels["inferenceservice"]):
                s.value for fam in r.collect() if fam.name == "warden_findings" for s in fam.samples}

    isvc = "serving.kserve.io/v1beta1", "InferenceService"
    many = [Finding(code=Code.PREDICTOR_NOT_READY, severity=Severity.CRITICAL, evidence=(), explanation="",
                    remedy="", subject=ObjectRef(api_version=isvc[0], kind=isvc[1], namespace=f"ns-{i}",
                                                 name=f"m-{i}"))
            for i in range(50)]
    slow = Finding(code=Code.DNS_LATENCY_HIGH, severity=Severity.CRITICAL, subject=dns, evidence=(),
                   explanation="", remedy="")
    by_field = Finding(code=Code.IMAGE_PULL_UNAUTHORIZED, severity=Severity.CRITICAL, subject=sa, evidence=(),
                       explanation="", remedy="", inferenceservice="team-a/alpha")
    m.set_findings([*many, slow, by_field])
    got = series()
    assert len(got) == 52
    assert got[("predictor-not-ready", "critical", "ns-7", "m-7")] == 1.0
    assert got[("dns-latency-high", "critical", "", "")] == 1.0
    assert got[("image-pull-unauthorized", "critical", "team-a", "alpha")] == 1.0
    m.set_findings([many[0]])
    assert series() == {("predictor-not-ready", "critical", "ns-0", "m-0"): 1.0,
                        ("dns-latency-high", "critical", "", ""): 0.0}


def test_remediation_counters_and_label_checks() -> None:
    r = CollectorRegistry()
    m = WardenMetrics(r)
    m.remediation(action="restart-coredns", result="success")
    m.remediation(action="restart-coredns", result="success")
    m.remediation(action="apply", result="dry-run")
    m.remediation_held(action="restart-coredns", verdict="budget")
    assert r.get_sample_value("warden_remediations_total",
                              {"action": "restart-coredns", "result": "success"}) == 2.0
    assert r.get_sample_value("warden_remediations_total", {"action": "apply", "result": "dry-run"}) == 1.0
    assert r.get_sample_value("warden_remediation_held_total",
                              {"action": "restart-coredns", "verdict": "budget"}) == 1.0
    with pytest.raises(ValueError, match="unknown remediation result 'ok'"):
        m.remediation(action="apply", result="ok")
    with pytest.raises(ValueError, match="unknown held-back verdict 'maybe'"):
        m.remediation_held(action="apply", verdict="maybe")


def test_loop_gauges_and_build_info() -> None:
    r = CollectorRegistry()
    m = WardenMetrics(r, version="1.2.3")
    m.set_leader(True)
    m.set_drift(3)
    m.observe_reconcile(0.02)
    m.mark_success(loop="reconcile", now=1234.5)
    m.observe_heal(code="drift", seconds=0.4)
    m.api_error(code=429)
    m.api_error(code="connection-dropped")
    assert r.get_sample_value("warden_leader") == 1.0
    assert r.get_sample_value("warden_drift_objects") == 3.0
    assert r.get_sample_value("warden_reconcile_duration_seconds_count") == 1.0
    assert r.get_sample_value("warden_last_success_timestamp_seconds", {"loop": "reconcile"}) == 1234.5
    assert r.get_sample_value("warden_heal_duration_seconds_bucket", {"code": "drift", "le": "0.5"}) == 1.0
    assert r.get_sample_value("warden_api_errors_total", {"code": "429"}) == 1.0
    assert r.get_sample_value("warden_api_errors_total", {"code": "connection-dropped"}) == 1.0
    assert r.get_sample_value("warden_build_info", {"version": "1.2.3"}) == 1.0
    m.set_leader(False)
    assert r.get_sample_value("warden_leader") == 0.0


def test_two_registries_do_not_share_state() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    WardenMetrics(a).set_leader(True)
    WardenMetrics(b)
    assert a.get_sample_value("warden_leader") == 1.0
    assert b.get_sample_value("warden_leader") == 0.0


def test_a_stopped_probe_leaves_no_series() -> None:
    r = CollectorRegistry()
    m = WardenMetrics(r)
    m.record_probe(_obs(probe="predictor", ok=True))
    assert r.get_sample_value("warden_probe_success", {"probe": "predictor", "target": "t"}) == 1.0
    m.forget_probe(probe="predictor", target="t")
    m.forget_probe(probe="predictor", target="never-recorded")
    assert r.get_sample_value("warden_probe_success", {"probe": "predictor", "target": "t"}) is None


def test_unobserved_kinds_one_series_each_removed_once_observed() -> None:
    r = CollectorRegistry()
    m = WardenMetrics(r)
    m.set_unobserved({"PeerAuthentication": "not served", "Secret": "forbidden in kubeflow"})
    assert r.get_sample_value("warden_kind_unobserved",
                              {"kind": "PeerAuthentication", "reason": "not-served"}) == 1.0
    assert r.get_sample_value("warden_kind_unobserved", {"kind": "Secret", "reason": "forbidden"}) == 1.0
    m.set_unobserved({"Secret": "not served"})
    assert r.get_sample_value("warden_kind_unobserved",
                              {"kind": "PeerAuthentication", "reason": "not-served"}) is None
    assert r.get_sample_value("warden_kind_unobserved", {"kind": "Secret", "reason": "forbidden"}) is None
    assert r.get_sample_value("warden_kind_unobserved", {"kind": "Secret", "reason": "not-served"}) == 1.0
    m.set_unobserved({})
    assert r.get_sample_value("warden_kind_unobserved", {"kind": "Secret", "reason": "not-served"}) is None
