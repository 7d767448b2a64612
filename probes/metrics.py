"""Prometheus metrics fed by probe observations.

:class:`ProbeMetrics` registers its families on a :class:`CollectorRegistry` it is given
(never the process-global one: the daemon builds one registry in ``main`` and tests build
their own, so two daemons in one test process never collide). :meth:`ProbeMetrics.record`
turns one :class:`Observation` into metric updates; the probes themselves know nothing of
Prometheus, which keeps them plain async callables.

Families (names fixed in ``daemon/process/metric_names.py``; alerts depend on them):

- ``warden_probe_success{probe,target}``: 1 if the last run was fine, else 0.
- ``warden_probe_duration_seconds{probe}``: histogram of run wall time.
- ``warden_probe_last_run_timestamp_seconds{probe}``: when the probe last finished, so a
  stuck probe timer shows as an old timestamp rather than a stale ``1``.
- ``warden_dns_latency_seconds``: one sample per DNS query (the DNS probe's
  ``details["latencies"]``); if the probe reported only a summary, its p50.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge, Histogram

from probes.observation import Observation

# Probe runs: from a quick loopback call to a probe that hit its hard timeout.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# DNS queries: a healthy CoreDNS answers in well under a millisecond in-cluster; the seed's
# sick one timed out (istio-proxy gives up after 5 s), so resolve both ends.
DNS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

DNS_PROBE = "dns"


def _finite_seconds(values: Iterable[object]) -> list[float]:
    out: list[float] = []
    for v in values:
        # bool is an int: a stray True must not become a 1 s sample.
        if isinstance(v, int | float) and not isinstance(v, bool):
            f = float(v)
            if math.isfinite(f) and f >= 0.0:
                out.append(f)
    return out


class ProbeMetrics:
    """The probe metric families on one registry, and how an observation updates them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.success = Gauge(
            "warden_probe_success",
            "1 if the last run of the probe against the target succeeded, else 0.",
            ("probe", "target"),
            registry=registry,
        )
        self.duration = Histogram(
            "warden_probe_duration_seconds",
            "Wall time of one probe run.",
            ("probe",),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.last_run = Gauge(
            "warden_probe_last_run_timestamp_seconds",
            "Unix time of the last run of the probe, whatever its outcome.",
            ("probe",),
            registry=registry,
        )
        self.dns_latency = Histogram(
            "warden_dns_latency_seconds",
            "Latency of one DNS query to the cluster resolver (istiod's name).",
            buckets=DNS_BUCKETS,
            registry=registry,
        )

    def record(self, obs: Observation) -> None:
        """Update every family the observation concerns."""
        self.success.labels(obs.probe, obs.target).set(1.0 if obs.ok else 0.0)
        self.duration.labels(obs.probe).observe(obs.duration)
        self.last_run.labels(obs.probe).set(obs.finished)
        if obs.probe == DNS_PROBE:
            for sample in self._dns_samples(obs):
                self.dns_latency.observe(sample)

    @staticmethod
    def _dns_samples(obs: Observation) -> list[float]:
        raw = obs.details.get("latencies")
        if isinstance(raw, list | tuple):
            return _finite_seconds(raw)
        # A summary only: one sample at the median is better than none for the histogram,
        # and never invents a tail that was not measured.
        for key in ("p50", "p50_seconds"):
            if key in obs.values:
                return _finite_seconds([obs.values[key]])
        return []
