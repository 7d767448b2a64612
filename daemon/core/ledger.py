"""The ledger: what the daemon did, when, and what it is waiting to see.

``plan()`` reads it (pure); the loop writes it, through explicit methods, after acting:

* :meth:`Ledger.record` — an action carried out (or decided in dry-run) for a finding:
  feeds the per-target back-off, the per-kind budget window, and opens a *pending
  verification* for the finding (due ``verify_after_seconds`` later);
* :meth:`Ledger.settle` — called with the findings of each pass: pending verifications
  whose finding is gone are closed (the heal worked) and returned; those whose finding's
  *inputs* changed are dropped (see below);
* :meth:`Ledger.seed` — guard state restored from the cluster on start-up (the last CoreDNS
  restart is kept in an annotation, so a restarted daemon does not blow the budget).

No clock inside: every method takes ``now``. Old records are pruned past ``horizon``.

A pending verification (and the escalation it turns into) belongs to one finding *with the
inputs it had when the daemon acted*: it is keyed by ``(code, subject)`` and carries the
finding's fingerprint (:func:`daemon.core.plan.fingerprint`: a hash of its evidence and of the
desired objects its actions would write, a derived secret's hashed source values included).
When the inputs change (the source secret is restored, the derived secret is deleted, the
desired manifest changes), the old verification says nothing about the new situation: it
is dropped, the finding is judged afresh, and the daemon may heal again at once (the
per-target back-off and the budgets still bound how often). So an escalation never locks a
target until the daemon restarts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from daemon.core.actions import Action, ActionKind
from daemon.core.objects import ObjectRef

FindingKey = tuple[str, str]


@dataclass(frozen=True, kw_only=True)
class ActionRecord:
    kind: ActionKind
    target: ObjectRef
    at: float
    finding: FindingKey | None = None
    ok: bool = True


@dataclass(frozen=True, kw_only=True)
class PendingVerification:
    finding: FindingKey
    acted_at: float
    verify_at: float
    actions: tuple[str, ...]
    """``kind target`` of what was done, for the escalation message."""
    fingerprint: str | None = None
    """The finding's inputs when the daemon acted (None: not known, matches any)."""

    def matches(self, fingerprint: str | None) -> bool:
        return self.fingerprint is None or fingerprint is None or self.fingerprint == fingerprint


class Ledger:
    """Action history and pending verifications (small, mutable, explicit)."""

    def __init__(self, *, horizon_seconds: float = 86_400.0) -> None:
        self._horizon = horizon_seconds
        self._records: list[ActionRecord] = []
        self._pending: dict[FindingKey, PendingVerification] = {}

    # -- writes (the loop) --------------------------------------------------------------

    def record(self, action: Action, *, now: float, finding: FindingKey | None = None,
               verify_after_seconds: float | None = None, ok: bool = True,
               fingerprint: str | None = None) -> None:
        """An action was attempted at ``now`` (``ok=False``: the API refused it).

        Failed attempts count for the back-off and the budget too: a refused write must not be
        retried in a tight loop.
        """
        self._records.append(ActionRecord(kind=action.kind, target=action.target, at=now,
                                          finding=finding, ok=ok))
        if finding is not None and verify_after_seconds is not None and ok:
            prev = self._pending.get(finding)
            acted = f"{action.kind.value} {action.target}"
            actions = (*prev.actions, acted) if prev and prev.acted_at == now else (acted,)
            self._pending[finding] = PendingVerification(
                finding=finding, acted_at=now, verify_at=now + verify_after_seconds, actions=actions,
                fingerprint=fingerprint)
        self._prune(now)

    def seed(self, kind: ActionKind, target: ObjectRef, *, at: float) -> None:
        """Restore a past action (e.g. the CoreDNS ``restartedAt`` annotation) after a restart."""
        if not any(r.kind == kind and r.target == target and r.at == at for r in self._records):
            self._records.append(ActionRecord(kind=kind, target=target, at=at))
            self._records.sort(key=lambda r: r.at)

    def settle(self, active: Iterable[FindingKey] | Mapping[FindingKey, str | None]
               ) -> list[PendingVerification]:
        """Close the pending verifications whose finding is no longer present; return them.

        With ``active`` a mapping to each finding's fingerprint, a verification whose finding
        is still there but with other inputs is dropped too (not returned: nothing was healed).
        """
        prints: Mapping[FindingKey, str | None] = (
            active if isinstance(active, Mapping) else dict.fromkeys(active))
        healed = [p for k, p in self._pending.items() if k not in prints]
        for p in healed:
            del self._pending[p.finding]
        for k in [k for k, p in self._pending.items() if not p.matches(prints.get(k))]:
            del self._pending[k]
        return healed

    # -- reads (plan) -------------------------------------------------------------------

    def times(self, kind: ActionKind, target: ObjectRef) -> list[float]:
        """When ``kind`` was done to ``target`` (attempts included), oldest first."""
        return sorted(r.at for r in self._records if r.kind == kind and r.target == target)

    def last(self, kind: ActionKind, target: ObjectRef) -> float | None:
        times = [r.at for r in self._records if r.kind == kind and r.target == target]
        return max(times) if times else None

    def in_window(self, kind: ActionKind, *, now: float, window_seconds: float) -> list[float]:
        """Times of ``kind`` actions within ``(now - window, now]``, oldest first."""
        return sorted(r.at for r in self._records if r.kind == kind and now - window_seconds < r.at <= now)

    def pending(self, finding: FindingKey, fingerprint: str | None = None) -> PendingVerification | None:
        """The open verification of ``finding``; None if there is none or its inputs differ."""
        p = self._pending.get(finding)
        return p if p is not None and p.matches(fingerprint) else None

    @property
    def records(self) -> tuple[ActionRecord, ...]:
        return tuple(self._records)

    def _prune(self, now: float) -> None:
        cutoff = now - self._horizon
        if self._records and self._records[0].at < cutoff:
            self._records = [r for r in self._records if r.at >= cutoff]
