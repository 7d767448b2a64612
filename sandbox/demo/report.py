"""Rendering the demo's outcome: a terminal table and the ``--json`` document (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.demo.scenarios import SEED_TOTAL, Scenario


@dataclass(kw_only=True)
class Outcome:
    scenario: Scenario
    finding: str | None = None
    detect_seconds: float | None = None
    heal_seconds: float | None = None
    action: str | None = None
    explanation: str = ""
    remedy: str = ""
    evidence: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def detected(self) -> bool:
        return self.finding is not None

    @property
    def healed(self) -> bool:
        return self.heal_seconds is not None

    @property
    def success(self) -> bool:
        if not self.detected:
            return False
        if self.scenario.auto_heal:
            return self.healed
        # No safe automatic heal: detection with the remedy stated is the success.
        return bool(self.remedy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.scenario.name,
            "finding": self.finding,
            "detected": self.detected,
            "healed": self.healed,
            "detect_seconds": None if self.detect_seconds is None else round(self.detect_seconds, 3),
            "heal_seconds": None if self.heal_seconds is None else round(self.heal_seconds, 3),
            "action": self.action,
            "auto_heal": self.scenario.auto_heal,
            "remedy": self.remedy,
            "seed_cost": self.scenario.seed_cost,
            "error": self.error,
        }


def document(outcomes: list[Outcome]) -> dict[str, Any]:
    return {
        "scenarios": [o.to_dict() for o in outcomes],
        "all_healed": bool(outcomes) and all(o.success for o in outcomes),
        "seed_total": SEED_TOTAL,
    }


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def table(outcomes: list[Outcome]) -> str:
    rows = [("scenario", "finding", "detected (s)", "healed (s)", "action", "seed's cost")]
    for o in outcomes:
        healed = _fmt(o.heal_seconds)
        if not o.scenario.auto_heal and o.detected:
            healed = "human (remedy stated)" if not o.healed else healed
        rows.append((o.scenario.name, o.finding or "NOT DETECTED", _fmt(o.detect_seconds), healed,
                     o.action or "-", o.scenario.seed_cost))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(f"The seed: {SEED_TOTAL}.")
    return "\n".join(lines)
