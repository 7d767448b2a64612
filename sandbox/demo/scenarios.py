"""The demo's scenarios: the seed's seven failures, what the daemon should call each, and
what the seed's author paid for it.

Pure data: ``sandbox.demo.run`` runs them; ``tests/unit/test_demo_report.py`` checks the table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    """The sandbox failure injected (``sandbox.Sandbox.inject(name)``)."""
    findings: tuple[str, ...]
    """Finding codes that count as detecting it (the first is the expected one)."""
    auto_heal: bool
    """False when there is no safe automatic fix: detection + the stated remedy is success."""
    seed_cost: str
    """What the same failure cost in the seed's write-up."""


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(name="no-serving-runtime", findings=("no-serving-runtime",), auto_heal=True,
             seed_cost="attempt 1 failed; fixed in attempt 2"),
    Scenario(name="storage-credentials",
             findings=("storage-secret-annotation", "storage-credentials-missing", "storage-secret-format"),
             auto_heal=True, seed_cost="attempts 2-3 failed; fixed in attempt 4"),
    Scenario(name="dns-timeout", findings=("dns-latency-high",), auto_heal=True,
             seed_cost="attempts 5-6 worked around it wrongly; fixed in attempt 7"),
    Scenario(name="mesh-policy", findings=("mesh-policy-denies",), auto_heal=True,
             seed_cost="attempts 4-6 failed; fixed in attempt 7"),
    Scenario(name="sidecar-disabled", findings=("sidecar-disabled-policy-unenforced",), auto_heal=True,
             seed_cost="attempts 5-6 failed; undone in attempt 7"),
    Scenario(name="model-path", findings=("model-not-found", "model-wrong-format", "wrong-model"),
             auto_heal=False, seed_cost="attempt 7 served a dummy model; fixed in attempt 8"),
    Scenario(name="image-pull", findings=("image-pull-unauthorized",), auto_heal=True,
             seed_cost="one failed rollout (401 Unauthorized)"),
)

SEED_TOTAL = "attempts 1-8, ~2 h in all"


def select(names: list[str]) -> tuple[Scenario, ...]:
    """The scenarios named (in the canonical order), or all; unknown names raise ValueError."""
    if not names:
        return SCENARIOS
    known = {s.name for s in SCENARIOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return tuple(s for s in SCENARIOS if s.name in names)
