"""``check``'s two severity thresholds, as ``istioctl analyze`` has them.

* the **failure threshold** (``--failure-threshold``, default ``warning``): ``check`` fails
  (exit 1) when a finding is at or above it. INFO findings are "not checked" notes — what could
  not be judged, said so that silence is never mistaken for health — so by default they alone
  let a CI job pass;
* the **output threshold** (``--output-threshold``, default ``info``): the lowest severity
  printed, in text and JSON alike. It only hides findings and never changes the exit code; one
  above the failure threshold is allowed (istioctl allows it too): ``check`` then fails on a
  finding it does not print, and says how many it hid.

Pure: findings and a severity in, a verdict out.
"""

from __future__ import annotations

from collections.abc import Iterable

from daemon.core.findings import SEVERITY_RANK, Finding, Severity

SEVERITIES: tuple[str, ...] = tuple(s.value for s in sorted(Severity, key=SEVERITY_RANK.__getitem__))
"""``info``, ``warning``, ``critical``: the values the thresholds take, lowest first."""
DEFAULT_FAILURE_THRESHOLD = Severity.WARNING
DEFAULT_OUTPUT_THRESHOLD = Severity.INFO


def at_or_above(findings: Iterable[Finding], threshold: Severity) -> list[Finding]:
    """The findings whose severity is ``threshold`` or higher, in their order."""
    floor = SEVERITY_RANK[threshold]
    return [f for f in findings if SEVERITY_RANK[f.severity] >= floor]


def fails(findings: Iterable[Finding], threshold: Severity) -> bool:
    """Whether any finding is at or above the failure threshold (``check`` exits 1)."""
    return bool(at_or_above(findings, threshold))
