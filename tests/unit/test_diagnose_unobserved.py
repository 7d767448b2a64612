"""diagnose() with kinds the daemon could not read (issue 23 item 1): a kind RBAC forbids is
"not checked" — never the ground for a critical — and a kind the cluster does not serve is the
truth (none exists), no finding of its own."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from daemon.core.findings import Code, Severity
from tests.unit.factories import NS, Cluster, healthy, no_runtime, run


def _forbid_runtimes(c: Cluster) -> None:
    no_runtime(c)
    runtimes = ("ServingRuntime", "ClusterServingRuntime")
    c.objects = {k: v for k, v in c.objects.items() if k[0] not in runtimes}
    c.isvc["status"].pop("modelStatus", None)  # KServe has not said it either
    c.isvc["status"]["conditions"] = []
    c.unobserved = {"ServingRuntime": f"forbidden in {NS}", "ClusterServingRuntime": "forbidden"}


def _forbid_runtimes_kserve_said(c: Cluster) -> None:
    no_runtime(c)  # KServe's own lastFailureInfo: NoSupportingRuntime
    c.unobserved = {"ServingRuntime": f"forbidden in {NS}", "ClusterServingRuntime": "forbidden"}


def _peer_authentication_not_served(c: Cluster) -> None:
    c.unobserved = {"PeerAuthentication": "not served"}


@pytest.mark.parametrize(
    ("breaker", "codes", "not_checked_about"),
    [
        # Runtimes unreadable and KServe silent: no guess (neither the runtime nor the desired
        # runtime's drift), INFO lines for the kinds and the model; the predictor's own
        # not-ready observation stands.
        (_forbid_runtimes, {"not-checked", "predictor-not-ready"},
         ["ClusterServingRuntime", "ServingRuntime", "runtime selection"]),
        # KServe itself said no runtime: its word stands, the kinds are still said not checked.
        (_forbid_runtimes_kserve_said, {"not-checked", "no-serving-runtime"},
         ["ClusterServingRuntime", "ServingRuntime"]),
        # A kind not served: nothing to say at all.
        (_peer_authentication_not_served, set(), []),
    ],
)
def test_unobserved_kinds(breaker: Callable[[Cluster], None], codes: set[str],
                          not_checked_about: list[str]) -> None:
    c = healthy()
    breaker(c)
    out = run(c)
    assert set(out.codes) == codes, out.codes
    notes = [f for f in out.findings if f.code is Code.NOT_CHECKED]
    assert all(f.severity is Severity.INFO for f in notes)
    about = sorted(f.subject.kind if f.subject.kind != "InferenceService" else "runtime selection"
                   for f in notes)
    assert about == sorted(not_checked_about), [f.evidence for f in notes]
    for f in notes:
        if f.subject.kind != "InferenceService":
            assert "forbidden" in f.evidence[0] and "get/list/watch" in f.remedy
