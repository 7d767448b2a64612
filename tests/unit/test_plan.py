"""plan(): every guard, with a fake ``now`` and a ledger written the way the loop writes it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from daemon.core.actions import ActionKind, Decision, Verdict
from daemon.core.findings import Code, Finding, Severity
from daemon.core.ledger import Ledger
from daemon.core.objects import ObjectRef
from daemon.core.plan import actions_for, backoff_until, fingerprint, plan, with_escalations
from daemon.core.settings import Budget, RemediationPolicy
from tests.unit import factories as cases
from tests.unit import factories as fx

NOW = fx.NOW
POLICY = RemediationPolicy()  # defaults: all allowed, back-off 2 s..300 s, 3 restarts/h, K=3, verify 120 s
COREDNS = cases.COREDNS_REF


def findings_for(breaker: Any) -> tuple[list[Finding], dict[ObjectRef, Mapping[str, Any]]]:
    c = fx.healthy()
    breaker(c)
    out = fx.run(c)
    return out.findings, out.desired_index


def dns_finding(bad: int = 3) -> Finding:
    return Finding(
        code=Code.DNS_LATENCY_HIGH,
        severity=Severity.CRITICAL,
        subject=COREDNS,
        evidence=("x",),
        explanation="e",
        remedy="kubectl rollout restart deployment coredns -n kube-system",
        data={"restart": COREDNS, "consecutive_bad": bad},
    )


def act(ledger: Ledger, decisions: list[Decision], now: float, policy: RemediationPolicy = POLICY) -> None:
    """What the loop does after carrying out the allowed decisions."""
    for d in decisions:
        if d.action is not None and d.verdict is Verdict.ALLOWED:
            ledger.record(
                d.action, now=now, finding=d.finding_key, verify_after_seconds=policy.verify_after_seconds,
                fingerprint=d.fingerprint,
            )


def only(decisions: list[Decision]) -> Decision:
    assert len(decisions) == 1, decisions
    return decisions[0]


# --- what each seed finding asks for ------------------------------------------------------

PLANS = [
    ("1-no-serving-runtime", cases.no_runtime, [(ActionKind.APPLY, cases.SR_REF)]),
    ("2-wrong-secret-format", cases.wrong_secret_referenced, [(ActionKind.APPLY, cases.ISVC_REF)]),
    (
        "2-derived-secret-missing",
        cases.derived_secret_missing,
        [(ActionKind.DERIVE_SECRET, cases.SECRET_REF)],
    ),
    (
        "2-trap",
        cases.annotation_trap_helm,
        [(ActionKind.APPLY, cases.ISVC_REF), (ActionKind.APPLY, cases.SA_REF)],
    ),
    ("3-dns", cases.dns_slow, [(ActionKind.RESTART_COREDNS, COREDNS)]),
    ("4-policy-missing", cases.policy_missing, [(ActionKind.APPLY, cases.AP_REF)]),
    ("4b-sidecar", cases.sidecar_disabled, [(ActionKind.REMOVE_ANNOTATION, cases.ISVC_REF)]),
    (
        "6-image-pull",
        cases.image_pull_401,
        [(ActionKind.APPLY, cases.SA_REF), (ActionKind.DELETE_POD, cases.POD_REF)],
    ),
    ("drift-secret-stale", cases.derived_secret_stale, [(ActionKind.DERIVE_SECRET, cases.SECRET_REF)]),
]


@pytest.mark.parametrize(("name", "breaker", "want"), PLANS, ids=[p[0] for p in PLANS])
def test_each_healable_finding_plans_its_actions_in_order(
    name: str, breaker: Any, want: list[tuple[ActionKind, ObjectRef]]
) -> None:
    findings, desired = findings_for(breaker)
    decisions = plan(findings=findings, ledger=Ledger(), policy=POLICY, desired=desired, now=NOW)
    got = [(d.action.kind, d.action.target) for d in decisions if d.action is not None]
    assert got == want
    assert all(d.verdict is Verdict.ALLOWED for d in decisions), [d.why for d in decisions]
    assert all(d.finding_key == findings[0].key for d in decisions)


def test_apply_carries_the_desired_manifest_and_remove_annotation_its_key() -> None:
    findings, desired = findings_for(cases.policy_missing)
    (d,) = plan(findings=findings, ledger=Ledger(), policy=POLICY, desired=desired, now=NOW)
    assert d.action is not None and d.action.payload["manifest"]["kind"] == "AuthorizationPolicy"
    findings, desired = findings_for(cases.sidecar_disabled)
    (d,) = plan(findings=findings, ledger=Ledger(), policy=POLICY, desired=desired, now=NOW)
    assert d.action is not None and d.action.payload == {"key": "sidecar.istio.io/inject"}


HUMAN = [
    ("5-dummy", cases.dummy_model),
    ("5-not-found", cases.model_object_missing),
    ("storage-down", cases.storage_down),
    ("4-deny-rule", cases.policy_denies_via_deny_rule),
    ("6-no-registry-secret", cases.image_pull_secret_absent),
    ("predictor", cases.predictor_unreachable),
]


@pytest.mark.parametrize(("name", "breaker"), HUMAN, ids=[h[0] for h in HUMAN])
def test_findings_without_a_safe_fix_go_to_a_person(name: str, breaker: Any) -> None:
    findings, desired = findings_for(breaker)
    d = only(plan(findings=findings, ledger=Ledger(), policy=POLICY, desired=desired, now=NOW))
    assert d.verdict is Verdict.HUMAN and d.action is None and not d.allowed
    assert findings[0].remedy in d.why


def test_unknown_desired_object_is_not_invented() -> None:
    ref = ObjectRef(api_version="v1", kind="ConfigMap", namespace="x", name="nope")
    f = replace(dns_finding(), code=Code.DRIFT, data={"apply": [ref]})
    assert isinstance(actions_for(f, {}), str)
    d = only(plan(findings=[f], ledger=Ledger(), policy=POLICY, desired={}, now=NOW))
    assert d.verdict is Verdict.HUMAN and "not in the desired state" in d.why


# --- guards -------------------------------------------------------------------------------


def test_allow_list() -> None:
    policy = replace(POLICY, allowed_actions=frozenset({ActionKind.APPLY}))
    d = only(plan(findings=[dns_finding()], ledger=Ledger(), policy=policy, desired={}, now=NOW))
    assert d.verdict is Verdict.NOT_ALLOWED and "allowed_actions" in d.why and not d.allowed


def test_dry_run_still_decides() -> None:
    policy = replace(POLICY, dry_run=True)
    d = only(plan(findings=[dns_finding()], ledger=Ledger(), policy=policy, desired={}, now=NOW))
    assert d.verdict is Verdict.DRY_RUN and d.allowed and d.action is not None
    assert "dry-run" in d.why


@pytest.mark.parametrize(
    ("bad", "verdict"),
    [(1, Verdict.HYSTERESIS), (2, Verdict.HYSTERESIS), (3, Verdict.ALLOWED), (7, Verdict.ALLOWED)],
)
def test_hysteresis_k_consecutive_bad_probes(bad: int, verdict: Verdict) -> None:
    d = only(plan(findings=[dns_finding(bad)], ledger=Ledger(), policy=POLICY, desired={}, now=NOW))
    assert d.verdict is verdict, d.why
    if verdict is Verdict.HYSTERESIS:
        assert f"{bad} consecutive bad DNS probe(s), 3 needed" in d.why


def test_hysteresis_from_the_diagnosis_of_two_bad_probes() -> None:
    c = fx.healthy()
    cases.dns_slow(c)
    c.replace_observations("dns", [fx.dns_ok(NOW - 21), fx.dns_timeout(NOW - 11), fx.dns_timeout(NOW - 1)])
    out = fx.run(c)
    d = only(plan(findings=out.findings, ledger=Ledger(), policy=POLICY, desired=out.desired_index, now=NOW))
    assert d.verdict is Verdict.HYSTERESIS


BACKOFF = [
    # (past action times relative to NOW, now offset, expected "not before" or None = at once)
    ("first action ever goes at once", [], 0.0, None),
    ("one action 1 s ago: wait the initial 2 s", [-1.0], 0.0, 1.0),
    ("one action 2 s ago: the initial wait is over", [-2.0], 0.0, None),
    ("second repeat doubles: 4 s after the last", [-10.0, -1.0], 0.0, 3.0),
    ("third repeat: 8 s", [-20.0, -10.0, -1.0], 0.0, 7.0),
    ("a long streak is capped at 300 s", [-100.0 - 290 * (9 - i) for i in range(10)], 0.0, 200.0),
    ("quiet for twice the cap: fresh start", [-1000.0, -999.0, -601.0], 0.0, None),
    ("an old streak does not count once a quiet gap broke it", [-2000.0, -1999.0, -1.0], 0.0, 1.0),
]


@pytest.mark.parametrize(("name", "past", "offset", "want"), BACKOFF, ids=[b[0] for b in BACKOFF])
def test_backoff_until(name: str, past: list[float], offset: float, want: float | None) -> None:
    got = backoff_until([NOW + t for t in past], now=NOW + offset, initial=2.0, cap=300.0)
    assert got == (None if want is None else NOW + want)


def test_backoff_disabled_with_a_zero_initial_delay() -> None:
    assert backoff_until([NOW - 0.1, NOW], now=NOW, initial=0.0, cap=300.0) is None


def test_backoff_per_target() -> None:
    ledger = Ledger()
    findings, desired = findings_for(cases.runtime_image_drift)
    first = plan(findings=findings, ledger=ledger, policy=POLICY, desired=desired, now=NOW)
    assert only(first).verdict is Verdict.ALLOWED, "the first heal after a quiet period goes out at once"
    # Record without a verification (e.g. a dry-run pass), then the same drift comes back.
    assert first[0].action is not None
    ledger.record(first[0].action, now=NOW)
    d = only(plan(findings=findings, ledger=ledger, policy=POLICY, desired=desired, now=NOW + 1))
    assert d.verdict is Verdict.COOLDOWN and d.retry_at == NOW + 2
    assert "back-off 2 s" in d.why
    # Another target is not held by this one's back-off.
    other, desired2 = findings_for(cases.policy_too_broad)
    d2 = only(plan(findings=other, ledger=ledger, policy=POLICY, desired=desired2, now=NOW + 1))
    assert d2.verdict is Verdict.ALLOWED
    # Repeats double: 2 s, then 4 s, then 8 s after the last one.
    t = NOW
    for wait in (2.0, 4.0, 8.0):
        assert only(plan(findings=findings, ledger=ledger, policy=POLICY, desired=desired,
                         now=t + wait - 0.5)).verdict is Verdict.COOLDOWN
        t += wait
        d3 = only(plan(findings=findings, ledger=ledger, policy=POLICY, desired=desired, now=t))
        assert d3.verdict is Verdict.ALLOWED and d3.action is not None
        ledger.record(d3.action, now=t)
    # Quiet for twice the cap: the next one goes out at once again.
    quiet = t + 2 * POLICY.backoff_max_seconds
    assert only(plan(findings=findings, ledger=ledger, policy=POLICY, desired=desired,
                     now=quiet)).verdict is Verdict.ALLOWED


def test_budget_still_caps_what_the_backoff_lets_through() -> None:
    policy = replace(POLICY, budgets={ActionKind.APPLY: Budget(max_actions=2, window_seconds=3600)})
    ledger = Ledger()
    findings, desired = findings_for(cases.runtime_image_drift)
    t = NOW
    for _ in range(2):
        d = only(plan(findings=findings, ledger=ledger, policy=policy, desired=desired, now=t))
        assert d.verdict is Verdict.ALLOWED and d.action is not None
        ledger.record(d.action, now=t)
        t += 1000.0  # quiet: the back-off alone would allow it
    assert only(plan(findings=findings, ledger=ledger, policy=policy, desired=desired,
                     now=t)).verdict is Verdict.BUDGET


def test_budget_three_coredns_restarts_an_hour() -> None:
    ledger = Ledger()
    policy = replace(POLICY, backoff_initial_seconds=0.0)
    times = [NOW, NOW + 600, NOW + 1200]
    for t in times:
        ledger.record(
            only(plan(findings=[dns_finding()], ledger=ledger, policy=policy, desired={}, now=t)).action
            or pytest.fail("no action"),
            now=t,
        )
    d = only(plan(findings=[dns_finding()], ledger=ledger, policy=policy, desired={}, now=NOW + 1800))
    assert d.verdict is Verdict.BUDGET and "3 restart-coredns in the last 3600 s (max 3)" in d.why
    assert d.retry_at == NOW + 3600
    assert (
        only(plan(findings=[dns_finding()], ledger=ledger, policy=policy, desired={}, now=NOW + 3601)).verdict
        is Verdict.ALLOWED
    )


def test_budget_seeded_from_the_cluster_annotation_survives_a_restart() -> None:
    ledger = Ledger()
    policy = replace(POLICY, budgets={ActionKind.RESTART_COREDNS: Budget(max_actions=1, window_seconds=3600)})
    ledger.seed(ActionKind.RESTART_COREDNS, COREDNS, at=NOW - 100)
    d = only(plan(findings=[dns_finding()], ledger=ledger, policy=policy, desired={}, now=NOW))
    assert d.verdict is Verdict.BUDGET


def test_budget_counts_actions_planned_in_the_same_pass() -> None:
    policy = replace(POLICY, budgets={ActionKind.APPLY: Budget(max_actions=1, window_seconds=60)})
    findings, desired = findings_for(cases.annotation_trap_helm)  # two APPLYs
    ds = plan(findings=findings, ledger=Ledger(), policy=policy, desired=desired, now=NOW)
    assert [d.verdict for d in ds] == [Verdict.ALLOWED, Verdict.BUDGET]


def test_a_held_action_holds_the_rest_of_its_chain() -> None:
    policy = replace(POLICY, allowed_actions=frozenset({ActionKind.DELETE_POD}))
    findings, desired = findings_for(cases.image_pull_401)
    apply_sa, delete = plan(findings=findings, ledger=Ledger(), policy=policy, desired=desired, now=NOW)
    assert apply_sa.verdict is Verdict.NOT_ALLOWED
    assert delete.verdict is Verdict.COOLDOWN and "waits for apply" in delete.why


def test_verify_then_escalate_without_a_retry_storm() -> None:
    ledger = Ledger()
    f = dns_finding()
    first = plan(findings=[f], ledger=ledger, policy=POLICY, desired={}, now=NOW)
    act(ledger, first, NOW)
    # Before the verification is due: wait, do nothing else.
    d = only(plan(findings=[f], ledger=ledger, policy=POLICY, desired={}, now=NOW + 60))
    assert d.verdict is Verdict.COOLDOWN and d.retry_at == NOW + 120 and d.action is None
    # Due, and the finding is still there: escalate, no action, severity up.
    for t in (NOW + 120, NOW + 500, NOW + 5000):
        d = only(plan(findings=[f], ledger=ledger, policy=POLICY, desired={}, now=t))
        assert d.verdict is Verdict.ESCALATED and d.action is None
        assert "did not help" in d.why and f.remedy in d.why
    assert with_escalations([f], ledger=ledger, now=NOW + 120)[0].severity is Severity.CRITICAL
    drift = replace(f, severity=Severity.WARNING)
    assert with_escalations([drift], ledger=ledger, now=NOW + 120)[0].severity is Severity.CRITICAL
    assert with_escalations([drift], ledger=ledger, now=NOW + 10)[0].severity is Severity.WARNING
    # It clears: the verification closes and the next occurrence may be healed again.
    healed = ledger.settle([])
    assert [p.finding for p in healed] == [f.key]
    d = only(plan(findings=[f], ledger=ledger, policy=POLICY, desired={}, now=NOW + 5000))
    assert d.verdict is Verdict.ALLOWED


def test_dry_run_never_escalates() -> None:
    policy = replace(POLICY, dry_run=True, backoff_initial_seconds=0.0)
    ledger = Ledger()
    f = dns_finding()
    (d,) = plan(findings=[f], ledger=ledger, policy=policy, desired={}, now=NOW)
    assert d.verdict is Verdict.DRY_RUN and d.action is not None
    # The loop records dry-run decisions like real ones (cooldown, budget).
    ledger.record(d.action, now=NOW, finding=d.finding_key, verify_after_seconds=policy.verify_after_seconds)
    later = only(plan(findings=[f], ledger=ledger, policy=policy, desired={}, now=NOW + 1000))
    assert later.verdict is Verdict.DRY_RUN
    assert (
        with_escalations(
            [replace(f, severity=Severity.WARNING)], ledger=ledger, now=NOW + 1000, dry_run=True
        )[0].severity
        is Severity.WARNING
    )


def test_a_successful_heal_settles() -> None:
    ledger = Ledger()
    findings, desired = findings_for(cases.runtime_image_drift)
    act(ledger, plan(findings=findings, ledger=ledger, policy=POLICY, desired=desired, now=NOW), NOW)
    assert ledger.pending(findings[0].key) is not None
    assert ledger.settle([]) and ledger.pending(findings[0].key) is None


def test_two_findings_asking_the_same_action_plan_it_once() -> None:
    f1 = dns_finding()
    f2 = replace(dns_finding(), subject=ObjectRef(api_version="v1", kind="Pod", namespace="a", name="b"))
    ds = plan(findings=[f1, f2], ledger=Ledger(), policy=POLICY, desired={}, now=NOW)
    assert [d.action.kind for d in ds if d.action is not None] == [ActionKind.RESTART_COREDNS]


# --- escalation never locks a target (issue 13 item 1) --------------------------------


def escalate(ledger: Ledger, f: Finding, desired: Mapping[ObjectRef, Mapping[str, Any]]) -> None:
    act(ledger, plan(findings=[f], ledger=ledger, policy=POLICY, desired=desired, now=NOW), NOW)
    d = only(plan(findings=[f], ledger=ledger, policy=POLICY, desired=desired, now=NOW + 200))
    assert d.verdict is Verdict.ESCALATED


def derived_secret_finding() -> tuple[Finding, dict[ObjectRef, Mapping[str, Any]]]:
    findings, desired = findings_for(cases.derived_secret_missing)
    (f,) = [f for f in findings if f.data.get("derive")]
    return f, desired


Desired = dict[ObjectRef, Mapping[str, Any]]


def with_source(desired: Mapping[ObjectRef, Mapping[str, Any]], value: str) -> Desired:
    """The desired state as rendered after the source secret changed (its hashed values)."""
    out = dict(desired)
    m = dict(out[cases.SECRET_REF])
    m["data"] = {k: f"sha256:{value}" for k in (m.get("data") or {"AWS_SECRET_ACCESS_KEY": ""})}
    out[cases.SECRET_REF] = m
    return out


INPUT_CHANGES = [
    ("source secret restored", lambda f, d: (f, with_source(d, "restored"))),
    ("derived secret deleted (other evidence)",
     lambda f, d: (replace(f, evidence=(*f.evidence, "secret minio-s3-secret not found")), d)),
]


@pytest.mark.parametrize(("name", "change"), INPUT_CHANGES, ids=[c[0] for c in INPUT_CHANGES])
def test_an_escalation_ends_when_the_findings_inputs_change(name: str, change: Any) -> None:
    f, desired = derived_secret_finding()
    ledger = Ledger()
    escalate(ledger, f, desired)
    f2, desired2 = change(f, desired)
    assert fingerprint(f2, desired2) != fingerprint(f, desired)
    d = only(plan(findings=[f2], ledger=ledger, policy=POLICY, desired=desired2, now=NOW + 210))
    assert d.verdict is Verdict.ALLOWED and d.action is not None and d.action.kind is ActionKind.DERIVE_SECRET
    assert with_escalations([f2], ledger=ledger, now=NOW + 210, desired=desired2)[0].severity is f2.severity
    # The ledger forgets the old verification once it sees the new inputs.
    ledger.settle({f2.key: fingerprint(f2, desired2)})
    assert ledger.pending(f2.key) is None
    # Unchanged inputs: still escalated, no retry storm.
    ledger2 = Ledger()
    escalate(ledger2, f, desired)
    ledger2.settle({f.key: fingerprint(f, desired)})
    assert only(plan(findings=[f], ledger=ledger2, policy=POLICY, desired=desired,
                     now=NOW + 5000)).verdict is Verdict.ESCALATED


def test_an_escalated_finding_does_not_hold_another_cause_on_the_same_target() -> None:
    f, desired = derived_secret_finding()
    ledger = Ledger()
    escalate(ledger, f, desired)
    other = replace(f, code=Code.DRIFT, evidence=("data.AWS_ACCESS_KEY_ID: differs",))
    ds = plan(findings=[f, other], ledger=ledger, policy=POLICY, desired=desired, now=NOW + 210)
    assert [d.verdict for d in ds] == [Verdict.ESCALATED, Verdict.ALLOWED]


def test_the_fingerprint_never_holds_a_secret_value() -> None:
    f, desired = derived_secret_finding()
    fp = fingerprint(f, desired)
    assert fp.startswith("sha256:") and len(fp) == len("sha256:") + 32
