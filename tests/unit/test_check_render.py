"""``check``'s two renderings of one evaluation: the terminal table and the JSON document."""

from __future__ import annotations

import json

from daemon.core.actions import Action, ActionKind, Decision, Verdict
from daemon.core.findings import Code, Finding, Severity
from daemon.core.objects import ObjectRef
from daemon.core.world import World
from daemon.process.check import render_json, render_text
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
    table = [ln for ln in lines if ln and ln[0] in "#12"]
    assert table[0].split() == ["#", "SEVERITY", "CODE", "SUBJECT"]
    assert table[1].split()[:3] == ["1", "CRITICAL", "dns-latency-high"]
    assert table[2].split()[:3] == ["2", "WARNING", "wrong-model"]
    assert "also explains:" in text and "istio-proxy not ready" in text
    assert "the daemon would: restart-coredns Deployment/kube-system/coredns [hysteresis]" in text
    assert all(len(ln) <= 80 for ln in lines if not ln.startswith(("#", "-", "1", "2")))


def test_text_when_healthy() -> None:
    text = render_text(evaluation([]), [], width=80)
    assert "healthy: nothing to report" in text


def test_json_document() -> None:
    doc = json.loads(render_json(evaluation([WRONG, SLOW]), OBS))
    assert doc["healthy"] is False
    assert [f["code"] for f in doc["findings"]] == ["dns-latency-high", "wrong-model"]
    assert doc["findings"][1]["subject"]["name"] == "iris-model"
    assert doc["observations"][0]["outcome"] == "timeout"
