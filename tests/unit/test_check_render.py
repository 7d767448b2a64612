"""``check``'s two renderings of one evaluation: the terminal table and the JSON document."""

from __future__ import annotations

import json

import pytest

from daemon.core.actions import Action, ActionKind, Decision, Verdict
from daemon.core.findings import Code, Finding, Severity
from daemon.core.objects import ObjectRef
from daemon.core.settings import ModelSettings
from daemon.core.world import World
from daemon.process.check import Thresholds, ready_of, render_json, render_text
from daemon.process.loop import Evaluation
from probes.observation import Observation

ISVC = ObjectRef(api_version="serving.kserve.io/v1beta1", kind="InferenceService",
                 namespace="user-example-com", name="iris-model")
DNS = ObjectRef(api_version="apps/v1", kind="Deployment", namespace="kube-system", name="coredns")


def evaluation(findings: list[Finding], decisions: list[Decision] | None = None) -> Evaluation:
    return Evaluation(now=0.0, world=World.build([]), manifests=[], drifts=[], findings=findings,
                      decisions=decisions or [])


WRONG = Finding(code=Code.WRONG_MODEL, severity=Severity.WARNING, subject=ISVC,
                evidence=("canary [5.1, 3.5, 1.4, 0.2]: expected class 0, got 2",),
                explanation="The server answers, but not with the model you trained.",
                remedy="store the model as model.bst")
SLOW = Finding(code=Code.DNS_LATENCY_HIGH, severity=Severity.CRITICAL, subject=DNS,
               evidence=("dns probe: timeout (3 consecutive bad run(s))",), caused=("istio-proxy not ready",),
               explanation="Cluster DNS is slow.",
               remedy="kubectl rollout restart deployment coredns -n kube-system")
OBS = [Observation(probe="dns", target="istiod", started=0.0, finished=0.1, ok=False, outcome="timeout")]


def test_text_orders_by_severity_and_shows_evidence_why_fix_and_the_plan() -> None:
    restart = Decision(action=Action(kind=ActionKind.RESTART_COREDNS, target=DNS, reason="dns-latency-high"),
                       verdict=Verdict.HYSTERESIS, why="2 of 3", finding_code="dns-latency-high",
                       finding_key=SLOW.key)
    text = render_text(evaluation([WRONG, SLOW], [restart]), OBS, width=80)
    lines = text.splitlines()
    assert lines[0] == "kserve-warden check: 2 finding(s); 0/1 probe(s) ok; 0 drifted object(s)"
    assert lines[2] == "failing: 2 finding(s) at or above warning (--failure-threshold)"
    table = [ln for ln in lines[3:] if ln and ln[0] in "12"]
    assert lines[4] == "== cluster-wide"
    assert lines[5].split() == ["#", "SEVERITY", "CODE", "SUBJECT"]
    # cluster-wide first (DNS), then the InferenceService's section
    assert table[0].split()[:3] == ["1", "CRITICAL", "dns-latency-high"]
    assert table[1].split()[:3] == ["2", "WARNING", "wrong-model"]
    assert lines.index("== user-example-com/iris-model  unknown  1 finding(s)") > lines.index(
        "[1] dns-latency-high (critical) on Deployment/kube-system/coredns")
    assert "also explains:" in text and "istio-proxy not ready" in text
    assert "the daemon would: restart-coredns Deployment/kube-system/coredns [hysteresis]" in text
    assert all(len(ln) <= 80 for ln in lines if not ln.startswith(("#", "-", "1", "2", "==")))


def test_text_when_healthy() -> None:
    text = render_text(evaluation([]), [], width=80)
    assert "healthy: nothing to report" in text


def test_json_document() -> None:
    doc = json.loads(render_json(evaluation([WRONG, SLOW]), OBS))
    assert doc["healthy"] is False
    assert [f["code"] for f in doc["findings"]] == ["dns-latency-high", "wrong-model"]
    assert doc["findings"][1]["subject"]["name"] == "iris-model"
    assert doc["observations"][0]["outcome"] == "timeout"
    # per InferenceService: the wrong model under iris-model, DNS cluster-wide
    assert [(r["namespace"], r["name"], r["ready"]) for r in doc["inferenceservices"]] == \
        [("user-example-com", "iris-model", None)]
    assert [f["code"] for f in doc["inferenceservices"][0]["findings"]] == ["wrong-model"]
    assert [f["code"] for f in doc["cluster_findings"]] == ["dns-latency-high"]


def isvc_obj(ns: str, name: str, ready: str | None) -> dict[str, object]:
    status = {"conditions": [{"type": "Ready", "status": ready}]} if ready is not None else {}
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": ns}, "status": status}


def models(*keys: str) -> list[ModelSettings]:
    return [ModelSettings(namespace=k.split("/")[0], name=k.split("/")[1]) for k in keys]


@pytest.mark.parametrize(("status", "expected"), [("True", True), ("False", False), ("Unknown", None),
                                                  (None, None)])
def test_ready_from_the_live_condition(status: str | None, expected: bool | None) -> None:
    assert ready_of(isvc_obj("a", "m", status)) is expected
    assert ready_of(None) is None


def test_every_inferenceservice_in_scope_is_listed_and_findings_map_by_field_or_subject() -> None:
    world = World.build([isvc_obj("a", "ok", "True"), isvc_obj("b", "sick", "False")])
    sick = ObjectRef(api_version="serving.kserve.io/v1beta1", kind="InferenceService", namespace="b",
                     name="sick")
    by_subject = Finding(code=Code.PREDICTOR_NOT_READY, severity=Severity.CRITICAL, subject=sick,
                         evidence=(), explanation="x", remedy="y")
    pod = ObjectRef(api_version="v1", kind="ServiceAccount", namespace="b", name="sa")
    by_field = Finding(code=Code.IMAGE_PULL_UNAUTHORIZED, severity=Severity.CRITICAL, subject=pod,
                       evidence=(), explanation="x", remedy="y", inferenceservice="b/sick")
    ev = Evaluation(now=0.0, world=world, manifests=[], drifts=[], findings=[by_subject, by_field, SLOW],
                    decisions=[])
    doc = json.loads(render_json(ev, [], models=models("a/ok", "b/sick", "c/not-yet")))
    got = {(r["namespace"], r["name"]): (r["ready"], sorted(f["code"] for f in r["findings"]))
           for r in doc["inferenceservices"]}
    assert got == {("a", "ok"): (True, []),
                   ("b", "sick"): (False, ["image-pull-unauthorized", "predictor-not-ready"]),
                   ("c", "not-yet"): (None, [])}
    for r in doc["inferenceservices"]:
        for f in r["findings"]:
            assert {"code", "severity"} <= set(f)
    assert [f["code"] for f in doc["cluster_findings"]] == ["dns-latency-high"]


def test_text_with_many_models_keeps_healthy_ones_on_one_line() -> None:
    keys = [f"ns-{i:03d}/model-{i:03d}" for i in range(200)]
    world = World.build([isvc_obj(*k.split("/"), "True") for k in keys])
    broken = ObjectRef(api_version="serving.kserve.io/v1beta1", kind="InferenceService",
                       namespace="ns-007", name="model-007")
    f = Finding(code=Code.PREDICTOR_NOT_READY, severity=Severity.CRITICAL, subject=broken,
                evidence=(), explanation="x", remedy="y")
    ev = Evaluation(now=0.0, world=world, manifests=[], drifts=[], findings=[f], decisions=[])
    lines = render_text(ev, [], width=100, models=models(*keys)).splitlines()
    assert lines[1] == "200 InferenceService(s) in scope, 1 with findings"
    ok_lines = [ln for ln in lines if ln.endswith("  ready  ok")]
    assert len(ok_lines) == 199 and ok_lines[0].split() == ["ns-000/model-000", "ready", "ok"]
    assert "== ns-007/model-007  ready  1 finding(s)" in lines
    assert len(lines) < 199 + 25


NOTE = Finding(code=Code.NOT_CHECKED, severity=Severity.INFO, subject=ISVC,
               evidence=("not checked: storage credentials (no access to secrets in user-example-com)",),
               explanation="Could not be judged.", remedy="list user-example-com under secrets.namespaces")


@pytest.mark.parametrize(("findings", "failure", "output", "healthy", "shown", "hidden", "verdict"), [
    # INFO "not checked" alone passes by default, and is still printed (output threshold info)
    ([NOTE], "warning", "info", True, ["not-checked"], 0,
     "healthy: no finding at or above warning (--failure-threshold)"),
    ([NOTE], "info", "info", False, ["not-checked"], 0,
     "failing: 1 finding(s) at or above info (--failure-threshold)"),
    ([NOTE, WRONG], "warning", "warning", False, ["wrong-model"], 1,
     "failing: 1 finding(s) at or above warning (--failure-threshold)"),
    ([NOTE, WRONG], "critical", "info", True, ["wrong-model", "not-checked"], 0,
     "healthy: no finding at or above critical (--failure-threshold)"),
    # an output threshold above the failure threshold hides what fails, and says so
    ([WRONG, SLOW, NOTE], "warning", "critical", False, ["dns-latency-high"], 2,
     "failing: 2 finding(s) at or above warning (--failure-threshold)"),
    ([], "info", "critical", True, [], 0, "healthy: nothing to report"),
])
def test_thresholds_in_text_and_json(findings: list[Finding], failure: str, output: str, healthy: bool,
                                     shown: list[str], hidden: int, verdict: str) -> None:
    th = Thresholds(failure=Severity(failure), output=Severity(output))
    restart = Decision(action=Action(kind=ActionKind.RESTART_COREDNS, target=DNS, reason="dns-latency-high"),
                       verdict=Verdict.HYSTERESIS, why="2 of 3", finding_code="dns-latency-high",
                       finding_key=SLOW.key)
    ev = evaluation(findings, [restart] if SLOW in findings else [])
    doc = json.loads(render_json(ev, OBS, thresholds=th))
    assert doc["healthy"] is healthy
    assert (doc["failure_threshold"], doc["output_threshold"]) == (failure, output)
    assert [f["code"] for f in doc["findings"]] == shown
    assert doc["hidden_findings"] == hidden
    per_isvc = [f["code"] for r in doc["inferenceservices"] for f in r["findings"]]
    assert sorted(per_isvc + [f["code"] for f in doc["cluster_findings"]]) == sorted(shown)
    assert [d["finding"] for d in doc["decisions"]] == (["dns-latency-high"] if "dns-latency-high" in shown
                                                            else [])
    text = render_text(ev, OBS, width=100, thresholds=th)
    lines = text.splitlines()
    assert verdict in lines
    for f in findings:
        assert (f"({f.severity.value}) on {f.subject}" in text) is (f.code.value in shown)
    if hidden:
        assert f"({hidden} below {output} not shown)" in lines[0]


def test_a_root_cause_is_listed_before_what_it_makes_unenforceable() -> None:
    """Within a severity, the diagnosis's order (root causes first), not the codes' alphabet:
    a disabled sidecar comes before the policy finding it also explains."""
    policy = ObjectRef(api_version="security.istio.io/v1", kind="AuthorizationPolicy", namespace="kubeflow",
                       name="minio-user-namespace-access")
    sidecar = Finding(code=Code.SIDECAR_DISABLED_POLICY_UNENFORCED, severity=Severity.CRITICAL, subject=ISVC,
                      evidence=("e",), explanation="x", remedy="y")
    denies = Finding(code=Code.MESH_POLICY_DENIES, severity=Severity.CRITICAL, subject=policy,
                     evidence=("e",), explanation="x", remedy="y",
                     inferenceservice="user-example-com/iris-model")
    ev = evaluation([NOTE, sidecar, denies])
    assert [f["code"] for f in json.loads(render_json(ev, []))["findings"]] == [
        "sidecar-disabled-policy-unenforced", "mesh-policy-denies", "not-checked"]
    table = [ln.split()[2] for ln in render_text(ev, [], width=100).splitlines()
             if ln[:1].isdigit() and ln.split()[1] in ("CRITICAL", "WARNING", "INFO")]
    assert table == ["sidecar-disabled-policy-unenforced", "mesh-policy-denies", "not-checked"]


def test_fix_commands_and_names_are_never_split_across_lines() -> None:
    """The seed's remedies at a narrow terminal: every command on one line, whole, and no name
    (``harbor-credentials``, ``--server-side``) broken at a hyphen."""
    cmd = "kubectl apply --server-side --field-manager=kserve-warden -f config/desired/"
    pull = ("kubectl patch serviceaccount iris-sa -n user-example-com -p "
            '\'{"imagePullSecrets": [{"name": "harbor-credentials"}]}\'')
    f = Finding(code=Code.IMAGE_PULL_UNAUTHORIZED, severity=Severity.CRITICAL, subject=ISVC,
                evidence=("the registry secret harbor-credentials is not in iris-sa's imagePullSecrets",),
                explanation="The image pull needs the registry's credentials.",
                remedy=f"apply the desired ServiceAccount iris-sa ({pull}); then {cmd} (done automatically)")
    lines = render_text(evaluation([f]), [], width=60).splitlines()
    assert any(ln.strip() == cmd for ln in lines), lines
    assert any(ln.strip().startswith("(" + pull) for ln in lines), lines
    for ln in lines[lines.index("[1] image-pull-unauthorized (critical) on " + str(ISVC)):]:
        assert not ln.rstrip().endswith("-"), ln
        assert not ln.lstrip().startswith(("side", "credentials", "runtime")), ln
