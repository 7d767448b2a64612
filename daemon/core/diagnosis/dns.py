"""``dns-latency-high``: cluster DNS is slow or failing, and what it explains.

The DNS finding is judged once per pass, before any model, from the DNS probe's recent runs:
the target whose latest run is bad with the longest streak of consecutive bad runs (the
streak feeds the restart hysteresis in :mod:`daemon.core.plan`). NXDOMAIN is not a slow CoreDNS,
so it gets a human remedy instead of a restart.

Then :func:`fold_into_dns` correlates, model by model: an unready istio-proxy is always
DNS's doing (it cannot reach istiod for its certificate), and the model's other symptoms
are DNS's when no more specific rule explained them: one root cause, not one alert per
symptom. The symptoms are collected in :attr:`Pass.dns_symptoms` and attached at the end.
"""

from __future__ import annotations

import math
import re
from typing import Any

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.draft import Draft
from daemon.core.diagnosis.fields import ref
from daemon.core.diagnosis.model import Model
from daemon.core.findings import Code, Severity
from probes.observation import Observation

_DNS_LINE = re.compile(r"lookup \S+.*(i/o timeout|no such host|server misbehaving)|dial tcp: lookup", re.I)


def _bad(o: Observation) -> bool:
    # A probe error says nothing about DNS: it neither starts nor extends a bad streak.
    return not o.ok and o.outcome != "probe-error"


def _worst(observations: list[Observation]) -> tuple[int, Observation] | None:
    """The bad-streak length and latest run of the DNS target that is worst off now."""
    by_target: dict[str, list[Observation]] = {}
    for o in observations:
        if o.probe == "dns":
            by_target.setdefault(o.target, []).append(o)
    worst: tuple[int, Observation] | None = None
    for runs in by_target.values():
        if not _bad(runs[-1]):
            continue
        bad = 0
        for o in reversed(runs):
            if not _bad(o):
                break
            bad += 1
        if worst is None or bad > worst[0]:
            worst = (bad, runs[-1])
    return worst


def dns_not_checked(ctx: Pass) -> Draft | None:
    """INFO ``not-checked`` when the latest DNS run could not judge (no cluster nameserver known)."""
    runs = [o for o in ctx.obs if o.probe == "dns"]
    if not runs or runs[-1].outcome != "not-checked":
        return None
    cd = ctx.settings.coredns
    return ctx.add(Draft(
        code=Code.NOT_CHECKED, severity=Severity.INFO,
        subject=ref("apps/v1", "Deployment", cd.namespace, cd.deployment),
        evidence=list(runs[-1].evidence),
        remedy="set probes.dns.nameserver (and port) to the cluster DNS, or run the daemon in the cluster",
    ))


def dns_latency(ctx: Pass) -> Draft | None:
    worst = _worst(ctx.obs)
    if worst is None:
        return None
    bad, latest = worst
    cd = ctx.settings.coredns
    target = ref("apps/v1", "Deployment", cd.namespace, cd.deployment)
    v = latest.values
    # Percentiles exist only over answered queries: when every query timed out there are none.
    lat = ", ".join(
        f"{k} {v[f'{k}_seconds']:.3f} s"
        for k in ("p50", "p95", "max")
        if math.isfinite(v.get(f"{k}_seconds", math.nan))
    )
    ev = [
        f"dns probe {latest.target}: {latest.outcome} ({bad} consecutive bad run(s)); "
        f"{lat + ', ' if lat else 'no answers, '}timeouts {v.get('timeouts', 0):g} "
        f"(threshold {ctx.settings.probes.dns.latency_threshold_seconds:g} s)",
        *latest.evidence,
    ]
    if latest.outcome == "nxdomain":
        data: dict[str, Any] = {"human": True, "consecutive_bad": bad}
        remedy = (
            f"{latest.target} does not exist (NXDOMAIN): a restart will not help. Check istiod: "
            "kubectl -n istio-system get svc istiod; and the probe's names in warden.yaml"
        )
    else:
        data = {"restart": target, "consecutive_bad": bad}
        remedy = (
            f"kubectl rollout restart deployment {cd.deployment} -n {cd.namespace} "
            f"(after {ctx.settings.remediation.dns_hysteresis} consecutive bad probes; "
            "keep sidecar injection on)"
        )
    return Draft(
        code=Code.DNS_LATENCY_HIGH,
        severity=Severity.CRITICAL,
        subject=target,
        evidence=ev,
        data=data,
        remedy=remedy,
    )


def fold_into_dns(ctx: Pass, m: Model, dns: Draft) -> None:
    """Correlate: what slow DNS explains is one root cause, not one alert per symptom.

    An unready istio-proxy is always DNS's (it cannot reach istiod); the model's other
    symptoms are DNS's when no more specific cause explains them.
    """
    dns.evidence.extend([ln for ln in m.log_lines() if _DNS_LINE.search(ln)][:3])
    if m.explained:
        ctx.dns_symptoms.extend(m.take(("proxy",)))
    else:
        ctx.dns_symptoms.extend(m.take())
        m.explained = True
