"""WardenMetrics exports exactly the metrics listed in daemon/process/metric_names.py, with their labels.

The registry is scraped the way Prometheus would (``generate_latest``, then the text parser),
so a family registered under a different name, type or label set fails here, not in an alert.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from daemon.core.findings import Code, Finding, Severity
from daemon.core.objects import ObjectRef
from daemon.process.metric_names import EXPORTED_METRICS, METRICS, MetricType, series_labels
from daemon.process.metrics import WardenMetrics
from probes.observation import Observation

ISVC = ObjectRef(api_version="serving.kserve.io/v1beta1", kind="InferenceService",
                 namespace="user-example-com", name="iris-model")


def _populated() -> CollectorRegistry:
    """A registry where every family has at least one sample, so labels can be checked."""
    registry = CollectorRegistry()
    m = WardenMetrics(registry, version="0.1.0")
    now = time.time()
    m.record_probe(Observation(probe="dns", target="istiod.istio-system.svc", started=now,
                               finished=now + 0.01, ok=True, outcome="ok",
                               details={"latencies": [0.001, 0.002]}))
    m.set_findings([Finding(code=Code.WRONG_MODEL, severity=Severity.CRITICAL, subject=ISVC,
                            evidence=(), explanation="", remedy="")])
    m.remediation(action="apply", result="success")
    m.remediation_held(action="restart-coredns", verdict="cooldown")
    m.set_leader(True)
    m.set_drift(2)
    m.observe_reconcile(0.01)
    m.mark_success(loop="reconcile", now=now)
    m.observe_heal(code="drift", seconds=0.3)
    m.api_error(code=500)
    m.set_unobserved({"PeerAuthentication": "not served"})
    return registry


def _scrape(registry: CollectorRegistry) -> dict[str, tuple[str, set[str]]]:
    """Exported name → (type, label names seen on its samples), as a scraper sees them."""
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    typed = {f.name: f.type for f in families}
    out: dict[str, tuple[str, set[str]]] = {}
    for f in families:
        base = f.name.removesuffix("_created")
        # prometheus_client adds a ``<name>_created`` gauge next to every counter and histogram:
        # a companion of that metric, not a metric of its own.
        if base != f.name and typed.get(base) in ("counter", "histogram"):
            continue
        name = f"{f.name}_total" if f.type == "counter" else f.name
        labels: set[str] = set()
        for s in f.samples:
            labels |= set(s.labels)
        out[name] = (f.type, labels)
    return out


def test_exports_exactly_the_listed_metrics() -> None:
    scraped = _scrape(_populated())
    assert set(scraped) == set(EXPORTED_METRICS), (
        f"exported but not listed: {sorted(set(scraped) - set(EXPORTED_METRICS))}; "
        f"listed but not exported: {sorted(set(EXPORTED_METRICS) - set(scraped))}"
    )


def test_types_and_labels_match_the_table() -> None:
    scraped = _scrape(_populated())
    for name in EXPORTED_METRICS & set(scraped):
        kind, labels = scraped[name]
        spec = METRICS[name]
        assert kind == spec.type.value, name
        suffix = "_bucket" if spec.type is MetricType.HISTOGRAM else ""
        assert labels == set(series_labels(name + suffix)), name


def test_a_fresh_registry_starts_with_leader_and_drift_at_zero() -> None:
    registry = CollectorRegistry()
    WardenMetrics(registry)
    assert registry.get_sample_value("warden_leader") == 0.0
    assert registry.get_sample_value("warden_drift_objects") == 0.0
