"""Settings that would make the daemon misbehave silently are refused at start-up (issue 13 items
6, 7, 8, 9): a nameserver that is not an IP address, invalid Kubernetes names, back-off and
timeouts out of range. Pure: :func:`parse_settings` on texts, no files."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.core.settings import LeaderElectionSettings, SettingsError, parse_settings
from daemon.process.config_files import default_settings_text

FILE = Path("warden.yaml")

BAD = [
    # (name, settings text, environment, the one problem expected)
    ("nameserver not an IP", "probes:\n  dns:\n    nameserver: not-an-ip\n", {},
     "probes.dns.nameserver: must be an IP address, got 'not-an-ip'"),
    ("nameserver octet out of range (env)", "", {"WARDEN_DNS_NAMESERVER": "999.1.1.1"},
     "probes.dns.nameserver: must be an IP address, got '999.1.1.1'"),
    ("scope namespace with capitals and punctuation", "scope:\n  namespaces: [Invalid_NS!]\n", {},
     "scope.namespaces[0]: 'Invalid_NS!' is not a valid namespace name"),
    ("scope namespace with a path", "scope:\n  namespaces: [ok, UPPER/../x]\n", {},
     "scope.namespaces[1]: 'UPPER/../x' is not a valid namespace name"),
    ("secrets namespace", "secrets:\n  namespaces: ['a b']\n", {},
     "secrets.namespaces[0]: 'a b' is not a valid namespace name"),
    ("env namespaces", "", {"WARDEN_NAMESPACES": "good,Bad_One"},
     "scope.namespaces[1]: 'Bad_One' is not a valid namespace name"),
    ("model namespace", "models:\n  - {namespace: Invalid_NS!, name: m}\n", {},
     "models[0].namespace: 'Invalid_NS!' is not a valid namespace name"),
    ("model name", "models:\n  - {namespace: ns, name: UPPER/../x}\n", {},
     "models[0].name: 'UPPER/../x' is not a valid object name"),
    ("coredns deployment", "coredns:\n  deployment: Core_DNS\n", {},
     "coredns.deployment: 'Core_DNS' is not a valid object name"),
    ("kserve config namespace", "kserve_config:\n  namespace: -kserve\n", {},
     "kserve_config.namespace: '-kserve' is not a valid namespace name"),
    ("lease namespace too long", f"leader_election:\n  lease_namespace: {'a' * 64}\n", {},
     "leader_election.lease_namespace: '" + "a" * 64 + "' is longer than 63 characters"),
    ("lease name", "leader_election:\n  lease_name: 'x/y'\n", {},
     "leader_election.lease_name: 'x/y' is not a valid object name"),
    ("negative initial back-off", "remediation:\n  backoff_initial_seconds: -1\n", {},
     "remediation.backoff_initial_seconds: must be >= 0, got -1"),
    ("max back-off below the initial",
     "remediation:\n  backoff_initial_seconds: 10\n  backoff_max_seconds: 5\n", {},
     "remediation.backoff_max_seconds: must be >= backoff_initial_seconds (5 < 10)"),
    ("the old cooldown key is gone", "remediation:\n  cooldown_seconds: 30\n", {},
     "remediation.cooldown_seconds: unknown key"),
    ("request timeout", "kube:\n  request_timeout_seconds: 0\n", {},
     "kube.request_timeout_seconds: must be > 0, got 0"),
    ("cache staleness bound", "kube:\n  cache_stale_seconds: -3\n", {},
     "kube.cache_stale_seconds: must be > 0, got -3"),
    # The Lease: client-go's NewLeaderElector rules (issue 23 item 10).
    ("lease duration 0", "leader_election:\n  lease_duration_seconds: 0\n", {},
     "leader_election.lease_duration_seconds: must be > 0, got 0"),
    ("negative retry period", "leader_election:\n  retry_period_seconds: -2\n", {},
     "leader_election.retry_period_seconds: must be > 0, got -2"),
    ("renew deadline equal to the duration", "leader_election:\n  renew_deadline_seconds: 15\n", {},
     "leader_election.renew_deadline_seconds: must be less than lease_duration_seconds (15 >= 15)"),
    ("renew deadline over the duration",
     "leader_election:\n  lease_duration_seconds: 5\n  renew_deadline_seconds: 8\n"
     "  retry_period_seconds: 1\n", {},
     "leader_election.renew_deadline_seconds: must be less than lease_duration_seconds (8 >= 5)"),
    ("renew deadline within 1.2 retry periods",
     "leader_election:\n  renew_deadline_seconds: 6\n  retry_period_seconds: 5\n", {},
     "leader_election.renew_deadline_seconds: must be greater than 1.2 x retry_period_seconds (6 <= 6)"),
    ("retry period longer than the renew deadline",
     "leader_election:\n  retry_period_seconds: 12\n", {},
     "leader_election.renew_deadline_seconds: must be greater than 1.2 x retry_period_seconds (10 <= 14.4)"),
    ("fractional lease duration", "leader_election:\n  lease_duration_seconds: 15.5\n", {},
     "leader_election.lease_duration_seconds: must be whole seconds"),
]


@pytest.mark.parametrize(("name", "text", "environ", "problem"), BAD, ids=[b[0] for b in BAD])
def test_refused(name: str, text: str, environ: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError) as exc:
        parse_settings(default_settings_text(), (FILE, text) if text else None, environ=environ)
    assert any(p.startswith(problem) for p in exc.value.problems), exc.value.problems
    assert all("\n" not in p for p in exc.value.problems)  # one line each


GOOD = [
    ("IPv4 nameserver", "probes:\n  dns:\n    nameserver: 10.96.0.10\n"),
    ("IPv6 nameserver", "probes:\n  dns:\n    nameserver: 'fd00::a'\n"),
    ("dotted object names and all-namespace secrets",
     "secrets:\n  namespaces: ['*', kubeflow]\nmodels:\n  - {namespace: user-example-com, name: iris.v2}\n"),
    ("back-off disabled", "remediation:\n  backoff_initial_seconds: 0\n"),
    ("client-go's example of a skew-tolerant lease",
     "leader_election:\n  lease_duration_seconds: 60\n  renew_deadline_seconds: 30\n"
     "  retry_period_seconds: 5\n"),
    ("a short lease with sub-second retries",
     "leader_election:\n  lease_duration_seconds: 4\n  renew_deadline_seconds: 2.5\n"
     "  retry_period_seconds: 0.5\n"),
]


@pytest.mark.parametrize(("name", "text"), GOOD, ids=[g[0] for g in GOOD])
def test_accepted(name: str, text: str) -> None:
    parse_settings(default_settings_text(), (FILE, text), environ={})


def test_defaults() -> None:
    s = parse_settings(default_settings_text(), None, environ={})
    assert (s.remediation.backoff_initial_seconds, s.remediation.backoff_max_seconds) == (2.0, 300.0)
    assert s.kube.request_timeout_seconds == 10.0 and s.kube.cache_stale_seconds == 60.0
    # controller-runtime's manager defaults (LeaseDuration, RenewDeadline, RetryPeriod).
    le = s.leader_election
    timing = (le.lease_duration_seconds, le.renew_deadline_seconds, le.retry_period_seconds)
    assert timing == (15.0, 10.0, 2.0)
    assert le == LeaderElectionSettings()
