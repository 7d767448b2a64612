"""``plan()``: the only place that decides to act, and every guard on acting.

Input: the findings of one pass, the :class:`~daemon.core.ledger.Ledger`, the remediation policy,
the desired objects (by ref) and ``now``. Output: ordered :class:`Decision` s, each either
allowed (``ALLOWED``, or ``DRY_RUN`` when writes are off) or held back with its reason.

What a finding asks for is in ``finding.data`` (set by ``diagnose()``):

``derive``: [ObjectRef]      derive these secrets from their declared source
``apply``: [ObjectRef]       server-side apply these desired objects
``remove_annotation``: {"target": ObjectRef, "key": str}
``delete_pods``: [ObjectRef] delete pods stuck in ImagePullBackOff (after the SA is fixed)
``restart``: ObjectRef       rollout-restart this Deployment (CoreDNS)
``consecutive_bad``: int     consecutive bad DNS probes behind a restart (hysteresis)

A finding without any of these has no safe automatic fix: ``HUMAN``, and the remedy says
what a person must do. A finding's actions are a chain, run in order (apply the SA, *then*
delete the stuck pod): when one is held back, the ones after it are too.

Guards, in order: a pending verification (we acted; wait ``verify_after_seconds``, then, if
the finding is still there, ``ESCALATED`` — severity up, no retry until it clears *or its
inputs change*; not in dry-run, where nothing was written), the
allow-list, hysteresis (CoreDNS restarts only after K consecutive bad probes), the
per-target exponential back-off, the per-kind budget over its window, then dry-run.

**Which finding a verification belongs to.** A verification is keyed by the finding's
``(code, subject)`` *and* its :func:`fingerprint`: a hash of its evidence and of the desired
objects its actions would write (a derived secret's manifest carries its source's hashed
values). A source secret rotated badly, derived, rejected by storage (escalated), then
restored: the fingerprint changes, so the escalation no longer holds and the restored
values are derived at once. Likewise the derived secret deleted while escalated. Escalation is
per finding, so it never holds back another finding's action on the same target. If a
fingerprint churns (volatile evidence), the back-off and the budgets still bound the retries.

**Per-target back-off** (Argo CD's self-heal): the first action on a target after a quiet
period goes out at once; a repeat on the same target (same action kind) waits
``backoff_initial_seconds``, doubling per repeat up to ``backoff_max_seconds``. A target with no
action for twice the cap is quiet again (twice, so that repeats at the cap do not reset it).
Refused attempts count: a write the API refuses is not retried in a tight loop.

When to look again (a held-back decision's ``retry_at``, API failures) is decided by
:func:`daemon.core.backoff.retry_delay`, the daemon's one requeue/back-off function.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from daemon.core.actions import Action, ActionKind, Decision, Verdict
from daemon.core.desired import DERIVED_FROM_ANNOTATION
from daemon.core.findings import Finding
from daemon.core.ledger import Ledger
from daemon.core.objects import ObjectRef
from daemon.core.settings import RemediationPolicy


def _ref_key(ref: ObjectRef) -> tuple[str, str | None, str]:
    return (ref.kind, ref.namespace, ref.name)


def _lookup(desired: Mapping[ObjectRef, Mapping[str, Any]], ref: ObjectRef) -> Mapping[str, Any] | None:
    if ref in desired:
        return desired[ref]
    # Tolerate apiVersion differences (security.istio.io/v1 vs v1beta1).
    for r, m in desired.items():
        if _ref_key(r) == _ref_key(ref):
            return m
    return None


def _is_derived(manifest: Mapping[str, Any]) -> bool:
    ann = (manifest.get("metadata") or {}).get("annotations") or {}
    return manifest.get("kind") == "Secret" and DERIVED_FROM_ANNOTATION in ann


def _refs(value: Any) -> list[ObjectRef]:
    if isinstance(value, ObjectRef):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, ObjectRef)]
    return []


def actions_for(finding: Finding, desired: Mapping[ObjectRef, Mapping[str, Any]]) -> list[Action] | str:
    """The chain of actions a finding asks for, or why it cannot be built (a string)."""
    data = finding.data
    code = finding.code.value
    out: list[Action] = []
    for ref in _refs(data.get("derive")) + _refs(data.get("apply")):
        manifest = _lookup(desired, ref)
        if manifest is None:
            return f"{ref} is not in the desired state: nothing to apply"
        kind = ActionKind.DERIVE_SECRET if _is_derived(manifest) else ActionKind.APPLY
        if any(a.kind == kind and a.target == ref for a in out):
            continue
        out.append(Action(kind=kind, target=ref, reason=code, payload={"manifest": manifest}))
    ra = data.get("remove_annotation")
    if isinstance(ra, Mapping) and isinstance(ra.get("target"), ObjectRef):
        out.append(
            Action(
                kind=ActionKind.REMOVE_ANNOTATION,
                target=ra["target"],
                reason=code,
                payload={"key": str(ra.get("key"))},
            )
        )
    for pod in _refs(data.get("delete_pods")):
        out.append(Action(kind=ActionKind.DELETE_POD, target=pod, reason=code))
    for dep in _refs(data.get("restart")):
        out.append(Action(kind=ActionKind.RESTART_COREDNS, target=dep, reason=code))
    return out


def fingerprint(finding: Finding, desired: Mapping[ObjectRef, Mapping[str, Any]]) -> str:
    """A hash of what the finding is judged from: its evidence and the desired objects its
    actions write (secret values in there are already hashes: nothing secret is hashed here)."""
    built = actions_for(finding, desired)
    payloads = [] if isinstance(built, str) else sorted(
        (a.kind.value, str(a.target), a.payload.get("manifest")) for a in built)
    text = json.dumps([finding.code.value, str(finding.subject), list(finding.evidence), payloads],
                      sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def backoff_until(times: Sequence[float], *, now: float, initial: float, cap: float) -> float | None:
    """When the next action on a target may go out, given when the past ones did (oldest
    first); None: at once (no action yet, or the target has been quiet for ``2 * cap``)."""
    if not times or initial <= 0 or now - times[-1] >= 2 * cap:
        return None
    streak = 1
    for before, after in zip(reversed(times[:-1]), reversed(times[1:]), strict=True):
        if after - before >= 2 * cap:
            break
        streak += 1
    until = times[-1] + min(cap, initial * 2 ** (streak - 1))
    return until if until > now else None


def plan(
    *,
    findings: Sequence[Finding],
    ledger: Ledger,
    policy: RemediationPolicy,
    desired: Mapping[ObjectRef, Mapping[str, Any]],
    now: float,
) -> list[Decision]:
    decisions: list[Decision] = []
    planned: dict[ActionKind, int] = {}
    seen: set[tuple[str, str]] = set()
    for f in findings:
        code, fkey = f.code.value, f.key
        fp = fingerprint(f, desired)

        def decide(
            action: Action | None,
            verdict: Verdict,
            why: str,
            retry_at: float | None = None,
            code: str = code,
            fkey: tuple[str, str] = fkey,
            fp: str = fp,
        ) -> None:
            decisions.append(
                Decision(
                    action=action,
                    verdict=verdict,
                    why=why,
                    finding_code=code,
                    finding_key=fkey,
                    retry_at=retry_at,
                    fingerprint=fp,
                )
            )

        # In dry-run nothing was written, so there is nothing to verify: a pending entry
        # (the loop records dry-run decisions too, for back-off and budget) must not escalate.
        pending = None if policy.dry_run else ledger.pending(fkey, fp)
        if pending is not None:
            done = "; ".join(pending.actions)
            if now < pending.verify_at:
                decide(
                    None,
                    Verdict.COOLDOWN,
                    f"acted {now - pending.acted_at:.0f} s ago ({done}); verifying at "
                    f"+{pending.verify_at - pending.acted_at:.0f} s before doing anything else",
                    pending.verify_at,
                )
            else:
                decide(
                    None,
                    Verdict.ESCALATED,
                    f"still present {now - pending.acted_at:.0f} s after {done}: the heal did not help; "
                    f"not retrying (no retry storm) until it clears or its inputs change. "
                    f"A person should: {f.remedy}",
                )
            continue

        built = actions_for(f, desired)
        if isinstance(built, str):
            decide(None, Verdict.HUMAN, f"{built}. {f.remedy}")
            continue
        if not built:
            decide(None, Verdict.HUMAN, f"no safe automatic fix; remedy for a person: {f.remedy}")
            continue

        blocked_by: str | None = None
        for action in built:
            if action.key in seen:
                continue  # another finding already planned exactly this action
            seen.add(action.key)
            if blocked_by is not None:
                decide(action, Verdict.COOLDOWN, f"waits for {blocked_by}, held back above")
                continue
            verdict, why, retry_at = _guard(action, f, ledger=ledger, policy=policy, now=now, planned=planned)
            decide(action, verdict, why, retry_at)
            if verdict in (Verdict.ALLOWED, Verdict.DRY_RUN):
                planned[action.kind] = planned.get(action.kind, 0) + 1
            else:
                blocked_by = f"{action.kind.value} {action.target}"
    return decisions


def _guard(
    action: Action,
    finding: Finding,
    *,
    ledger: Ledger,
    policy: RemediationPolicy,
    now: float,
    planned: Mapping[ActionKind, int],
) -> tuple[Verdict, str, float | None]:
    kind, target = action.kind, action.target
    if not policy.allows(kind):
        allowed = ", ".join(sorted(k.value for k in policy.allowed_actions)) or "none"
        return (
            Verdict.NOT_ALLOWED,
            f"{kind.value} is not in remediation.allowed_actions ({allowed}); remedy: {finding.remedy}",
            None,
        )
    if kind is ActionKind.RESTART_COREDNS:
        bad = int(finding.data.get("consecutive_bad", 0))
        if bad < policy.dns_hysteresis:
            return (
                Verdict.HYSTERESIS,
                f"{bad} consecutive bad DNS probe(s), {policy.dns_hysteresis} needed before a restart",
                None,
            )
    times = ledger.times(kind, target)
    until = backoff_until(times, now=now, initial=policy.backoff_initial_seconds,
                          cap=policy.backoff_max_seconds)
    if until is not None:
        return (
            Verdict.COOLDOWN,
            f"{kind.value} {target} done {now - times[-1]:.0f} s ago; back-off "
            f"{until - times[-1]:g} s (next at +{until - now:.0f} s)",
            until,
        )
    budget = policy.budgets.get(kind)
    if budget is not None:
        times = ledger.in_window(kind, now=now, window_seconds=budget.window_seconds)
        used = len(times) + planned.get(kind, 0)
        if used >= budget.max_actions:
            free_at = (times[0] + budget.window_seconds) if times else None
            return (
                Verdict.BUDGET,
                f"budget spent: {used} {kind.value} in the last {budget.window_seconds:g} s "
                f"(max {budget.max_actions}); remedy for a person meanwhile: {finding.remedy}",
                free_at,
            )
    if policy.dry_run:
        return Verdict.DRY_RUN, f"dry-run: would {kind.value} {target} for {finding.code.value}", None
    return Verdict.ALLOWED, f"{kind.value} {target} for {finding.code.value}", None


def with_escalations(
    findings: Iterable[Finding], *, ledger: Ledger, now: float, dry_run: bool = False,
    desired: Mapping[ObjectRef, Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """The findings, one severity step up where a heal was tried and did not help in time.

    ``dry_run``: nothing was really tried, so nothing escalates. ``desired``: compare the
    findings' fingerprints (a finding whose inputs changed since the heal is not escalated).
    """
    if dry_run:
        return list(findings)
    out = []
    for f in findings:
        p = ledger.pending(f.key, None if desired is None else fingerprint(f, desired))
        out.append(f.escalated() if p is not None and now >= p.verify_at else f)
    return out
