"""Actions the daemon may take, and the decisions ``plan()`` makes about them.

``plan()`` is the only place that decides to act; the effects (``daemon.kube.effects``) only carry out
``Decision``s whose ``allowed`` is true. Every held-back decision carries its reason, so
operators can see *why* nothing happened (back-off, budget, hysteresis, dry-run, allow-list).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from daemon.core.objects import ObjectRef


class ActionKind(StrEnum):
    APPLY = "apply"
    """Server-side apply of one desired object (field manager ``kserve-warden``)."""
    DERIVE_SECRET = "derive-secret"
    """Build the storage secret from its declared source secret, through the API."""
    REMOVE_ANNOTATION = "remove-annotation"
    """Drop ``sidecar.istio.io/inject: "false"`` that the desired state does not have."""
    DELETE_POD = "delete-pod"
    """Delete a predictor pod stuck in ImagePullBackOff after its ServiceAccount was fixed."""
    RESTART_COREDNS = "restart-coredns"
    """Rollout restart of CoreDNS (``kubectl.kubernetes.io/restartedAt``)."""


@dataclass(frozen=True, kw_only=True)
class Action:
    kind: ActionKind
    target: ObjectRef
    reason: str
    """The finding code that called for it."""
    payload: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """What to send: the desired manifest for APPLY, the annotation key for REMOVE_ANNOTATION…"""

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind.value, str(self.target))


class Verdict(StrEnum):
    ALLOWED = "allowed"
    DRY_RUN = "dry-run"
    COOLDOWN = "cooldown"
    BUDGET = "budget"
    HYSTERESIS = "hysteresis"
    NOT_ALLOWED = "not-allowed"
    ESCALATED = "escalated"
    REFUSED = "refused"
    """Allowed, tried, and refused by the API (another manager's fields, 403, 422): not tried
    again until the object changes (set by the loop, which knows what the API answered)."""
    HUMAN = "human"
    """No safe automatic fix: the remedy is for a person."""


@dataclass(frozen=True, kw_only=True)
class Decision:
    action: Action | None
    verdict: Verdict
    why: str
    finding_code: str
    finding_key: tuple[str, str] | None = None
    """``Finding.key`` of the finding this decision answers (what the ledger records)."""
    retry_at: float | None = None
    """When a held-back decision may change (back-off/budget end, verification due)."""
    fingerprint: str | None = None
    """The finding's inputs (:func:`daemon.core.plan.fingerprint`), recorded with the action so
    that a verification or an escalation ends when they change."""

    @property
    def allowed(self) -> bool:
        return self.verdict in (Verdict.ALLOWED, Verdict.DRY_RUN)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": None if self.action is None else {
                "kind": self.action.kind.value, "target": str(self.action.target),
            },
            "verdict": self.verdict.value,
            "why": self.why,
            "finding": self.finding_code,
        }
