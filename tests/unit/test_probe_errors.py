"""``probe-error``: a probe that cannot run is a WARNING finding with the probe, target and reason."""

from __future__ import annotations

import pytest

from daemon.core.findings import Code, Severity
from probes.observation import PROBE_ERROR, Observation
from tests.unit import factories as fx

NOW = fx.NOW
ERR = ("probe crashed: ValueError: nameserver 'not-an-ip' is not an IP address",)

CASES = [
    # (name, observations, expected (subject kind, subject name, evidence fragment) per finding)
    ("dns probe cannot run", [fx.obs("dns", fx.DNS_TARGET, PROBE_ERROR, evidence=ERR)],
     [("Probe", f"dns:{fx.DNS_TARGET}", "not-an-ip")]),
    ("a model's storage probe cannot run",
     [fx.obs("storage", fx.MODEL_KEY, PROBE_ERROR, evidence=("probe crashed: LookupError: gone",))],
     [("InferenceService", fx.ISVC, "storage probe of user-example-com/iris-model could not run")]),
    ("no reason recorded still says so", [fx.obs("predictor", fx.MODEL_KEY, PROBE_ERROR)],
     [("InferenceService", fx.ISVC, "no reason recorded")]),
    ("an error followed by a good run: nothing", [
        fx.obs("dns", fx.DNS_TARGET, PROBE_ERROR, at=NOW - 5, evidence=ERR), fx.dns_ok(NOW - 1)], []),
    ("a good run followed by an error: reported", [
        fx.dns_ok(NOW - 5), fx.obs("dns", fx.DNS_TARGET, PROBE_ERROR, at=NOW - 1, evidence=ERR)],
     [("Probe", f"dns:{fx.DNS_TARGET}", "not-an-ip")]),
    ("a stale error (older than three periods) is not news", [
        fx.obs("dns", fx.DNS_TARGET, PROBE_ERROR, at=NOW - 3600, evidence=ERR)], []),
    ("failures that did run are other rules' business", [fx.dns_timeout()], []),
]


@pytest.mark.parametrize(("name", "observations", "want"), CASES, ids=[c[0] for c in CASES])
def test_probe_errors(name: str, observations: list[Observation], want: list[tuple[str, str, str]]) -> None:
    c = fx.healthy()
    c.observations = list(observations)
    got = [f for f in fx.run(c).findings if f.code is Code.PROBE_ERROR]
    assert [(f.subject.kind, f.subject.name) for f in got] == [(k, n) for k, n, _ in want]
    for f, (_, _, fragment) in zip(got, want, strict=True):
        assert f.severity is Severity.WARNING
        assert any(fragment in e for e in f.evidence), f.evidence
        assert "human" in f.data  # no automatic action on a probe that cannot run
