"""DNS probe: how long does the cluster's DNS take to answer istiod's name?

The seed's istio-proxy failed with ``lookup istiod.istio-system.svc: i/o timeout`` because
CoreDNS was slow; a rollout restart fixed it. This probe measures what the sidecar
experiences and is what later decides that restart, so it must measure the server, not a
cache:

* dnspython's async API (``dns.asyncquery.udp``) with an explicit nameserver and port —
  no resolver object, so no cache, no search list, no retry to another server; each query
  opens its own UDP socket (as Go's resolver in the sidecar does) and closes it;
* ``queries`` sequential queries per name per run (sequential so they do not queue
  behind each other and inflate each other's latency); the run of a name stops at its first
  timed-out query (``stop_on_timeout``, on by default), since the verdict is already
  ``timeout`` and more waiting only delays the restart decision — pass False to measure
  loss ratios;
* latency per query is ``perf_counter`` around the exchange; p50/p95 are linear
  interpolations over the answered queries; timeouts are counted separately
  (``timeouts``, ``loss_ratio``) and never folded into latency.

Outcomes, worst first: ``timeout`` (any query unanswered within ``timeout``: what the
sidecar reports as ``i/o timeout``), ``servfail`` (SERVFAIL, or any other error rcode such as
REFUSED — the evidence names it), ``nxdomain`` (NXDOMAIN, or NOERROR without an A record),
``slow`` (median latency above ``slow_threshold``), ``ok``; ``probe-error`` if the probe
itself broke (e.g. the nameserver is not an IP address).
Not aiodns: its c-ares cache answers repeats from memory and hides the latency.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from probes.observation import Observation, probe_error

PROBE = "dns"


class DnsOutcome(StrEnum):
    OK = "ok"
    SLOW = "slow"
    TIMEOUT = "timeout"
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    PROBE_ERROR = "probe-error"


_SEVERITY = (DnsOutcome.TIMEOUT, DnsOutcome.SERVFAIL, DnsOutcome.NXDOMAIN, DnsOutcome.SLOW, DnsOutcome.OK)


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in 0..100) of a non-empty sample."""
    if not samples:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def nameserver_from_resolv_conf(path: str | Path = "/etc/resolv.conf") -> str | None:
    """The first ``nameserver`` in a resolv.conf (what a pod's sidecar would ask)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            return fields[1]
    return None


@dataclass
class _NameResult:
    name: str
    latencies: list[float] = field(default_factory=list)
    timeouts: int = 0
    rcodes: dict[str, int] = field(default_factory=dict)
    addresses: set[str] = field(default_factory=set)

    @property
    def sent(self) -> int:
        return len(self.latencies) + self.timeouts


class DnsProbe:
    """Query ``names`` at ``nameserver:port``, ``queries`` times each (see module doc)."""

    name = PROBE

    def __init__(
        self,
        *,
        names: Sequence[str],
        nameserver: str,
        port: int = 53,
        queries: int = 5,
        timeout: float = 1.0,
        slow_threshold: float = 0.2,
        stop_on_timeout: bool = True,
    ) -> None:
        if not names:
            raise ValueError("DnsProbe needs at least one name")
        if queries < 1:
            raise ValueError("queries must be >= 1")
        self.names = tuple(names)
        self.nameserver = nameserver
        self.port = port
        self.queries = queries
        self.timeout = timeout
        self.slow_threshold = slow_threshold
        self.stop_on_timeout = stop_on_timeout
        self.target = ",".join(self.names)

    def __repr__(self) -> str:
        return (
            f"DnsProbe(names={self.names!r}, nameserver='{self.nameserver}:{self.port}', "
            f"queries={self.queries}, timeout={self.timeout})"
        )

    async def __call__(self) -> Observation:
        started = time.time()
        try:
            ipaddress.ip_address(self.nameserver)  # dnspython wants an address, say so clearly
            # Hard cap: every query may use its whole timeout, plus slack for the loop.
            budget = len(self.names) * self.queries * self.timeout + 1.0
            async with asyncio.timeout(budget):
                results = [await self._name(n) for n in self.names]
            return self._observation(started, results)
        except Exception as exc:  # never raise out of a probe
            return probe_error(probe=PROBE, target=self.target, started=started, exc=exc)

    async def _name(self, name: str) -> _NameResult:
        result = _NameResult(name)
        for _ in range(self.queries):
            query = dns.message.make_query(name, dns.rdatatype.A)
            t0 = time.perf_counter()
            try:
                response = await dns.asyncquery.udp(
                    query, self.nameserver, timeout=self.timeout, port=self.port
                )
            except dns.exception.Timeout:
                result.timeouts += 1
                if self.stop_on_timeout:
                    # One unanswered query already makes the run a ``timeout``: waiting out
                    # the others would only delay the CoreDNS decision by (queries-1) x timeout.
                    break
                continue
            result.latencies.append(time.perf_counter() - t0)
            rcode = dns.rcode.to_text(response.rcode())
            result.rcodes[rcode] = result.rcodes.get(rcode, 0) + 1
            for rrset in response.answer:
                for rdata in rrset:
                    if rrset.rdtype == dns.rdatatype.A:
                        result.addresses.add(rdata.to_text())
        return result

    def _classify(self, r: _NameResult) -> tuple[DnsOutcome, str]:
        label = f"lookup {r.name}"
        if r.timeouts:
            return DnsOutcome.TIMEOUT, f"{label}: i/o timeout ({r.timeouts}/{r.sent} timed out)"
        # Any error rcode other than NXDOMAIN (SERVFAIL, REFUSED, ...) is a server failure to
        # the client: Go's resolver reports them all as "server misbehaving".
        failures = {k: v for k, v in r.rcodes.items() if k not in ("NOERROR", "NXDOMAIN")}
        if failures:
            which = ", ".join(f"{k} {v}/{r.sent}" for k, v in sorted(failures.items()))
            return DnsOutcome.SERVFAIL, f"{label}: server misbehaving ({which})"
        if r.rcodes.get("NXDOMAIN"):
            return DnsOutcome.NXDOMAIN, f"{label}: no such host, NXDOMAIN ({r.rcodes['NXDOMAIN']}/{r.sent})"
        if not r.addresses:
            return DnsOutcome.NXDOMAIN, f"{label}: no such host, no A record (NODATA, {r.sent}/{r.sent})"
        p50 = percentile(r.latencies, 50)
        summary = (
            f"{r.sent}/{r.sent} answered, p50 {p50 * 1000:.1f} ms, p95 "
            f"{percentile(r.latencies, 95) * 1000:.1f} ms, max {max(r.latencies) * 1000:.1f} ms"
        )
        if r.addresses:
            summary += " -> " + ",".join(sorted(r.addresses))
        if p50 > self.slow_threshold:
            return (
                DnsOutcome.SLOW,
                f"{label}: slow, {summary} (threshold {self.slow_threshold * 1000:.0f} ms)",
            )
        return DnsOutcome.OK, f"{label}: {summary}"

    def _observation(self, started: float, results: list[_NameResult]) -> Observation:
        per_name: dict[str, object] = {}
        evidence: list[str] = []
        outcomes: list[DnsOutcome] = []
        for r in results:
            outcome, text = self._classify(r)
            outcomes.append(outcome)
            evidence.append(text)
            per_name[r.name] = {
                "outcome": str(outcome),
                "timeouts": r.timeouts,
                "answered": len(r.latencies),
                "rcodes": dict(r.rcodes),
                "addresses": sorted(r.addresses),
            }
        worst = min(outcomes, key=_SEVERITY.index)
        latencies = [x for r in results for x in r.latencies]
        timeouts = sum(r.timeouts for r in results)
        sent = sum(r.sent for r in results)
        values: dict[str, float] = {
            "queries": float(sent),
            "timeouts": float(timeouts),
            "loss_ratio": timeouts / sent if sent else 0.0,
        }
        if latencies:
            values.update(
                p50_seconds=percentile(latencies, 50),
                p95_seconds=percentile(latencies, 95),
                max_seconds=max(latencies),
            )
        return Observation(
            probe=PROBE,
            target=self.target,
            started=started,
            finished=time.time(),
            ok=worst is DnsOutcome.OK,
            outcome=str(worst),
            values=values,
            evidence=tuple(evidence),
            details={
                "nameserver": f"{self.nameserver}:{self.port}",
                "names": per_name,
                "latencies_seconds": [round(x, 6) for x in latencies],
            },
        )
