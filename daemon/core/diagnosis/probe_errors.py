"""``probe-error``: a probe that could not run is reported, never taken as healthy.

A probe that crashes, cannot be built (the InferenceService it reads is gone, a Secret it may
not read) or cannot reach what it must ask (a nameserver that is not an address) returns an
observation with the outcome ``probe-error`` (:func:`probes.observation.probe_error`). The other
rules rightly ignore such a run (it says nothing about DNS, storage or the predictor), so
without this rule the daemon and ``check`` would report "healthy" while nothing was checked.

One WARNING per probe target whose latest fresh run errored, naming the probe, the target and
the reason (the run's evidence: an exception's type and message, never a credential). The
``warden_findings`` gauge carries it like any finding (code ``probe-error``), so it also is the
metric. Not a root cause of anything and no action: a person looks at why the probe cannot run.

The subject is the InferenceService for a model's probe (target ``namespace/name[/...]``), else
a ``Probe`` reference named after the probe and target (no object of the cluster to blame).
"""

from __future__ import annotations

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.fields import ISVC_API
from daemon.core.findings import Code, Finding, Severity
from daemon.core.objects import ObjectRef
from probes.observation import PROBE_ERROR, Observation

_EXPLANATION = (
    "A probe could not run, so what it checks is unknown: it is not healthy, it is not checked. "
    "Nothing is healed on its account."
)


def _subject(o: Observation) -> ObjectRef:
    parts = o.target.split("/")
    if o.probe in ("predictor", "storage") and len(parts) >= 2 and all(parts[:2]):
        return ObjectRef(api_version=ISVC_API, kind="InferenceService", namespace=parts[0], name=parts[1])
    return ObjectRef(api_version="kserve-warden.io/v1", kind="Probe", namespace=None,
                     name=f"{o.probe}:{o.target}")


def probe_errors(ctx: Pass) -> list[Finding]:
    """A ``probe-error`` finding per probe target whose latest fresh run could not run."""
    latest: dict[tuple[str, str], Observation] = {}
    for o in ctx.obs:  # oldest first: the last one per target wins
        latest[(o.probe, o.target)] = o
    out: list[Finding] = []
    for (probe, target), o in sorted(latest.items()):
        if o.outcome != PROBE_ERROR:
            continue
        subject = _subject(o)
        reason = "; ".join(o.evidence) or "no reason recorded"
        isvc = f"{subject.namespace}/{subject.name}" if subject.kind == "InferenceService" else None
        out.append(Finding(
            code=Code.PROBE_ERROR,
            severity=Severity.WARNING,
            subject=subject,
            evidence=(f"{probe} probe of {target} could not run: {reason}",),
            explanation=_EXPLANATION,
            remedy=(f"make the {probe} probe runnable: fix what the reason names (its settings under "
                    f"probes.{probe}, the daemon's access, the target {target}); until then it is "
                    "not checked"),
            data={"human": True},
            inferenceservice=isvc,
        ))
    return out
