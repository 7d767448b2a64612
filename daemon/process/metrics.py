"""The daemon's Prometheus metrics, on a registry built in ``main``.

:class:`WardenMetrics` owns every family the daemon exports: the probe families (through
:class:`probes.metrics.ProbeMetrics`) plus findings, remediations, leadership, drift,
reconcile timing and API errors. It is created once per process with the registry the
health server scrapes; nothing here touches prometheus_client's global ``REGISTRY``, so
tests and several in-process replicas each get their own.

The methods are the daemon's vocabulary ("a remediation succeeded", "these are the
findings now") rather than raw ``labels().inc()`` calls, so label values are checked in one
place: an unknown remediation result or held-back verdict is a programming error and
raises ``ValueError`` instead of silently creating a series no alert matches.

Names, types and labels are the ones listed in ``daemon/process/metric_names.py``; a unit test
scrapes a fresh registry and compares.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from daemon.core.findings import Finding
from daemon.process.metric_names import HELD_VERDICTS, REMEDIATION_RESULTS
from probes.metrics import ProbeMetrics
from probes.observation import Observation

# A reconcile pass over a handful of objects takes milliseconds; a full resync of a large
# cluster may take seconds (the budget is 5 s for 1,000 InferenceServices).
RECONCILE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Finding first seen -> healed: the budget is p50 0.5 s, p99 2 s in the sandbox; a heal
# that waits on a cooldown or a human may take hours.
HEAL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def daemon_registry() -> CollectorRegistry:
    """The registry ``run`` serves: the process's own health the usual way
    (``process_resident_memory_bytes``, open fds, CPU and start time; ``python_info``; GC counts)
    plus, once :class:`WardenMetrics` is built on it, every ``warden_*`` family. Not
    prometheus_client's global registry: each daemon (and each test) builds its own."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def configure_exposition() -> None:
    """Once, at start-up: no ``<name>_created`` series beside every counter and histogram. They
    double the series count and no alert or dashboard reads them; prometheus_client's switch is
    process-wide, so ``main`` throws it, never a library module at import."""
    disable_created_metrics()  # type: ignore[no-untyped-call]


def isvc_of(f: Finding) -> tuple[str, str] | None:
    """``(namespace, name)`` of the InferenceService a finding concerns, or ``None`` for a
    cluster-wide one: ``Finding.inferenceservice`` when the diagnosis set it, else the subject
    when the subject is an InferenceService."""
    if f.inferenceservice:
        ns, _, name = f.inferenceservice.partition("/")
        if ns and name:
            return ns, name
    if f.subject.kind == "InferenceService" and f.subject.namespace:
        return f.subject.namespace, f.subject.name
    return None


def _finding_labels(f: Finding) -> tuple[str, str, str, str]:
    ns, name = isvc_of(f) or ("", "")
    return f.code.value, f.severity.value, ns, name


class WardenMetrics:
    """Every metric family the daemon exports, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry, *, version: str = "unknown") -> None:
        self.registry = registry
        self.probes = ProbeMetrics(registry)
        self.findings = Gauge(
            "warden_findings",
            "Current findings by code and severity, per InferenceService (empty labels: cluster-wide).",
            ("code", "severity", "namespace", "inferenceservice"), registry=registry,
        )
        self.remediations = Counter(
            "warden_remediations_total", "Remediations decided, by action kind and result.",
            ("action", "result"), registry=registry,
        )
        self.held = Counter(
            "warden_remediation_held_total", "Remediations held back by a guard, by action kind and verdict.",
            ("action", "verdict"), registry=registry,
        )
        self.leader = Gauge(
            "warden_leader", "1 while this replica holds the leader Lease, else 0.", registry=registry,
        )
        self.drift_objects = Gauge(
            "warden_drift_objects", "Number of desired objects whose live state differs.", registry=registry,
        )
        self.reconcile_duration = Histogram(
            "warden_reconcile_duration_seconds",
            "Wall time of one reconcile pass (diff, diagnose, plan, act).",
            buckets=RECONCILE_BUCKETS, registry=registry,
        )
        self.last_success = Gauge(
            "warden_last_success_timestamp_seconds", "Unix time of the last successful pass of a loop.",
            ("loop",), registry=registry,
        )
        self.heal_duration = Histogram(
            "warden_heal_duration_seconds", "Time from a finding first seen to the finding healed.",
            ("code",), buckets=HEAL_BUCKETS, registry=registry,
        )
        self.api_errors = Counter(
            "warden_api_errors_total", "Kubernetes API errors seen by the daemon, by HTTP status code.",
            ("code",), registry=registry,
        )
        self.unobserved = Gauge(
            "warden_kind_unobserved",
            "1 for each watched kind the daemon does not observe (reason: not-served, forbidden); "
            "no series for the kinds it observes.",
            ("kind", "reason"), registry=registry,
        )
        self._unobserved: dict[str, str] = {}
        # Info exposes ``warden_build_info{version="..."} 1``: the usual way to join a
        # version onto other series in PromQL.
        self.build_info = Info("warden_build", "The running kserve-warden build.", registry=registry)
        self.build_info.info({"version": version})
        self._finding_keys: set[tuple[str, str, str, str]] = set()
        # Scrapes before the first election should read 0, not "no data".
        self.leader.set(0)
        self.drift_objects.set(0)

    # -- probes ---------------------------------------------------------------------------

    def record_probe(self, obs: Observation) -> None:
        self.probes.record(obs)

    def forget_probe(self, *, probe: str, target: str) -> None:
        """Drop ``warden_probe_success{probe, target}`` when a probe's schedule stops (its
        InferenceService was deleted or left the scope), so series stay bounded by what exists."""
        try:
            self.probes.success.remove(probe, target)
        except KeyError:
            pass  # never recorded

    def set_unobserved(self, unobserved: Mapping[str, str]) -> None:
        """``warden_kind_unobserved``: one series per kind not observed, with its reason
        (``not-served`` or ``forbidden``); removed once the kind is observed again."""
        now = {kind: "forbidden" if why.startswith("forbidden") else "not-served"
               for kind, why in unobserved.items()}
        for kind, reason in self._unobserved.items():
            if now.get(kind) != reason:
                self.unobserved.remove(kind, reason)
        for kind, reason in now.items():
            self.unobserved.labels(kind, reason).set(1)
        self._unobserved = now

    # -- findings -------------------------------------------------------------------------

    def set_findings(self, findings: Iterable[Finding]) -> None:
        """Make ``warden_findings`` reflect exactly the current findings, per InferenceService.

        Labels: ``code``, ``severity`` (fixed vocabularies) and ``namespace``/``inferenceservice``
        of the InferenceService the finding concerns (both ``""`` for a cluster-wide finding) —
        names of live objects, never free text. Bounded: a per-InferenceService label set whose
        finding is gone is *removed*, so 1,000 models that were once sick leave no 1,000 zero
        series behind; a cluster-wide (code, severity) series drops to 0 instead, which an
        alert's ``for:`` and a dashboard read as "cleared" (there are only codes x severities).
        """
        counts = Tally(_finding_labels(f) for f in findings)
        for key in self._finding_keys - counts.keys():
            if key[2] or key[3]:
                self.findings.remove(*key)
            else:
                self.findings.labels(*key).set(0)
        for key, n in counts.items():
            self.findings.labels(*key).set(n)
        self._finding_keys = {k for k in self._finding_keys | counts.keys()
                              if k in counts or not (k[2] or k[3])}

    # -- remediation ----------------------------------------------------------------------

    def remediation(self, *, action: str, result: str) -> None:
        if result not in REMEDIATION_RESULTS:
            raise ValueError(
                f"unknown remediation result {result!r}; expected one of {sorted(REMEDIATION_RESULTS)}"
            )
        self.remediations.labels(action, result).inc()

    def remediation_held(self, *, action: str, verdict: str) -> None:
        if verdict not in HELD_VERDICTS:
            raise ValueError(
                f"unknown held-back verdict {verdict!r}; expected one of {sorted(HELD_VERDICTS)}"
            )
        self.held.labels(action, verdict).inc()

    def observe_heal(self, *, code: str, seconds: float) -> None:
        self.heal_duration.labels(code).observe(max(0.0, seconds))

    # -- loop -----------------------------------------------------------------------------

    def set_leader(self, leader: bool) -> None:
        self.leader.set(1 if leader else 0)

    def set_drift(self, count: int) -> None:
        self.drift_objects.set(count)

    def observe_reconcile(self, seconds: float) -> None:
        self.reconcile_duration.observe(max(0.0, seconds))

    def mark_success(self, *, loop: str, now: float) -> None:
        self.last_success.labels(loop).set(now)

    def api_error(self, *, code: int | str) -> None:
        # Dropped connections and timeouts have no HTTP status: callers pass a word.
        self.api_errors.labels(str(code)).inc()
