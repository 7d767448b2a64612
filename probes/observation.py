"""The one result type every probe returns.

An :class:`Observation` is a frozen record of one probe run: what was looked at
(``probe`` and ``target``), when, whether it was fine (``ok``), a typed ``outcome`` (a
short, stable, kebab-case string such as ``mesh-denied``; each probe module lists its own
outcomes as a ``StrEnum``), numeric ``values`` (latencies in seconds, counts), ``evidence``
lines that are safe to log (never a credential), and ``details``: small JSON-able facts
the diagnosis needs (file names found, condition reasons, container names).

The daemon's pure ``diagnose()`` reads observations and nothing else from the probes, so
this shape is an interface: add fields with defaults, never rename.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

NOT_CHECKED = "not-checked"
PROBE_ERROR = "probe-error"


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True, kw_only=True)
class Observation:
    probe: str
    """Probe kind: ``storage``, ``dns`` or ``predictor``."""
    target: str
    """What was probed, e.g. ``user-example-com/iris-model`` or ``istiod.istio-system.svc``."""
    started: float
    """Wall-clock start (``time.time()``)."""
    finished: float
    ok: bool
    outcome: str
    values: Mapping[str, float] = field(default_factory=lambda: _frozen(None))
    evidence: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=lambda: _frozen(None))

    def __post_init__(self) -> None:
        # Freeze the mappings so an observation can be shared between tasks safely.
        object.__setattr__(self, "values", _frozen(self.values))
        object.__setattr__(self, "details", _frozen(self.details))
        object.__setattr__(self, "evidence", tuple(self.evidence))

    @property
    def duration(self) -> float:
        return max(0.0, self.finished - self.started)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for logs, ``check --output json`` and the demo."""
        return {
            "probe": self.probe,
            "target": self.target,
            "started": self.started,
            "finished": self.finished,
            "duration_seconds": round(self.duration, 6),
            "ok": self.ok,
            "outcome": self.outcome,
            "values": dict(self.values),
            "evidence": list(self.evidence),
            "details": dict(self.details),
        }


class Probe(Protocol):
    """What the daemon schedules: an async callable with a name and a target."""

    @property
    def name(self) -> str: ...

    @property
    def target(self) -> str: ...

    async def __call__(self) -> Observation: ...


def probe_error(*, probe: str, target: str, started: float, exc: BaseException) -> Observation:
    """The observation a probe returns when something inside it crashed.

    Only the exception type and message are kept: the message of an exception raised by
    our own code never carries credentials, and tracebacks are too noisy for evidence.
    """
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return Observation(
        probe=probe,
        target=target,
        started=started,
        finished=time.time(),
        ok=False,
        outcome=PROBE_ERROR,
        evidence=(f"probe crashed: {last}",),
        details={"exception": type(exc).__name__},
    )


def not_checked(*, probe: str, target: str, reason: str,
                details: Mapping[str, Any] | None = None) -> Observation:
    """An observation that judges nothing: ``ok`` (no failure is claimed), outcome ``not-checked``,
    and why in the evidence and ``details["reason"]``."""
    now = time.time()
    return Observation(probe=probe, target=target, started=now, finished=now, ok=True,
                       outcome=NOT_CHECKED, evidence=(f"not checked: {reason}",),
                       details={**(details or {}), "reason": reason})
