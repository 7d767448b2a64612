"""The Prometheus metrics the daemon exports: names, types and label names, in one place.

Alerts (``config/prometheus/``), the Grafana dashboard (``config/grafana/``) and the daemon's
own metrics module are all checked against this table, so a metric renamed in one place and
not the others fails a test instead of silently breaking an alert at 3 a.m.

Naming follows Prometheus conventions: base units (``_seconds``), ``_total`` on counters,
``_timestamp_seconds`` for Unix times. Histograms are exposed as ``<name>_bucket`` (with
``le``), ``<name>_sum`` and ``<name>_count``; :func:`series_names` lists those.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class MetricType(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    name: str
    """The name as registered with prometheus_client (counters: with ``_total``)."""
    type: MetricType
    labels: tuple[str, ...]
    help: str


# The result / verdict label values are fixed too: alerts match on them.
REMEDIATION_RESULTS: Final = frozenset({"success", "failure", "dry-run", "held-back"})
HELD_VERDICTS: Final = frozenset({"cooldown", "budget", "hysteresis", "not-allowed", "escalated"})

SPECS: Final[tuple[MetricSpec, ...]] = (
    MetricSpec(name="warden_probe_success", type=MetricType.GAUGE, labels=("probe", "target"),
               help="1 if the last run of the probe against the target succeeded, else 0."),
    MetricSpec(name="warden_probe_duration_seconds", type=MetricType.HISTOGRAM, labels=("probe",),
               help="Wall time of one probe run."),
    MetricSpec(name="warden_dns_latency_seconds", type=MetricType.HISTOGRAM, labels=(),
               help="Latency of one DNS query to the cluster resolver (istiod's name)."),
    MetricSpec(name="warden_findings", type=MetricType.GAUGE,
               labels=("code", "severity", "namespace", "inferenceservice"),
               help="Current findings by code and severity, per InferenceService "
                    "(empty labels: cluster-wide)."),
    MetricSpec(name="warden_remediations_total", type=MetricType.COUNTER, labels=("action", "result"),
               help="Remediations decided, by action kind and result."),
    MetricSpec(name="warden_remediation_held_total", type=MetricType.COUNTER, labels=("action", "verdict"),
               help="Remediations held back by a guard, by action kind and verdict."),
    MetricSpec(name="warden_leader", type=MetricType.GAUGE, labels=(),
               help="1 while this replica holds the leader Lease, else 0."),
    MetricSpec(name="warden_drift_objects", type=MetricType.GAUGE, labels=(),
               help="Number of desired objects whose live state differs."),
    MetricSpec(name="warden_reconcile_duration_seconds", type=MetricType.HISTOGRAM, labels=(),
               help="Wall time of one reconcile pass (diff, diagnose, plan, act)."),
    MetricSpec(name="warden_last_success_timestamp_seconds", type=MetricType.GAUGE, labels=("loop",),
               help="Unix time of the last successful pass of a loop."),
    MetricSpec(name="warden_probe_last_run_timestamp_seconds", type=MetricType.GAUGE, labels=("probe",),
               help="Unix time of the last run of the probe, whatever its outcome."),
    MetricSpec(name="warden_heal_duration_seconds", type=MetricType.HISTOGRAM, labels=("code",),
               help="Time from a finding first seen to the finding healed."),
    MetricSpec(name="warden_api_errors_total", type=MetricType.COUNTER, labels=("code",),
               help="Kubernetes API errors seen by the daemon, by HTTP status code."),
    MetricSpec(name="warden_kind_unobserved", type=MetricType.GAUGE, labels=("kind", "reason"),
               help="1 for each watched kind the daemon does not observe (reason: not-served, "
                    "forbidden); no series for the kinds it observes."),
    MetricSpec(name="warden_build_info", type=MetricType.GAUGE, labels=("version",),
               help="The running kserve-warden build."),
)

METRICS: Final = MappingProxyType({s.name: s for s in SPECS})
EXPORTED_METRICS: Final[frozenset[str]] = frozenset(METRICS)
METRIC_LABELS: Final = MappingProxyType({s.name: frozenset(s.labels) for s in SPECS})


def series_names(name: str) -> frozenset[str]:
    """The sample names a metric appears under on ``/metrics`` (histograms: three)."""
    spec = METRICS[name]
    if spec.type is MetricType.HISTOGRAM:
        return frozenset({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    return frozenset({name})


def base_metric(series: str) -> str | None:
    """Which exported metric a sample name belongs to (``x_bucket`` → ``x``), or None."""
    if series in METRICS:
        return series
    for suffix in ("_bucket", "_sum", "_count"):
        base = series.removesuffix(suffix)
        if base != series and base in METRICS and METRICS[base].type is MetricType.HISTOGRAM:
            return base
    return None


def series_labels(series: str) -> frozenset[str]:
    """Label names a sample may carry (``le`` on histogram buckets)."""
    base = base_metric(series)
    if base is None:
        raise KeyError(series)
    extra = {"le"} if series.endswith("_bucket") and base != series else set()
    return METRIC_LABELS[base] | extra
