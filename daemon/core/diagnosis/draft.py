"""``Draft``: a finding while the pass is still assembling it.

Findings are frozen, but a root cause learns about its symptoms after it is found: the DNS
finding is drafted before any model is looked at and collects the symptoms it explains as
the models are diagnosed; the sidecar finding collects the storage errors the missing mesh
identity causes. So the pass works on mutable drafts and freezes them once, at the end
(:meth:`Draft.build`), de-duplicating evidence and symptoms in their first-seen order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daemon.core.diagnosis.text import EXPLAIN
from daemon.core.findings import Code, Finding, Severity
from daemon.core.objects import ObjectRef


@dataclass
class Draft:
    """A finding being assembled (mutable until the end of the pass)."""

    code: Code
    severity: Severity
    subject: ObjectRef
    evidence: list[str]
    remedy: str
    data: dict[str, Any] = field(default_factory=dict)
    caused: list[str] = field(default_factory=list)
    inferenceservice: str | None = None

    def build(self) -> Finding:
        return Finding(
            code=self.code,
            severity=self.severity,
            subject=self.subject,
            evidence=tuple(dict.fromkeys(self.evidence)),
            explanation=EXPLAIN[self.code],
            remedy=self.remedy,
            caused=tuple(dict.fromkeys(self.caused)),
            data=self.data,
            inferenceservice=self.inferenceservice,
        )
