"""Settings: the embedded defaults, overrides, and one clear message per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from daemon.core.actions import ActionKind
from daemon.core.settings import Budget, Settings, SettingsError
from daemon.process.config_files import default_settings_text, load_settings
from tests.conftest import SEED_DESIRED

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "warden.yaml"
    p.write_text(text)
    return p


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(SettingsError) as exc:
        load_settings(write(tmp_path, text), environ=environ or {})
    return exc.value.problems


def test_embedded_defaults_load_and_match_the_schema_defaults() -> None:
    s = load_settings(None, environ={})
    assert isinstance(s, Settings)
    # No configuration: every InferenceService in scope, nothing applied, no Secret read.
    assert s.models == () and s.secrets.namespaces == ()
    assert s.scope.namespaces == () and s.scope.selector is None
    assert s.remediation.budgets[ActionKind.RESTART_COREDNS] == Budget(max_actions=3, window_seconds=3600)
    assert s.remediation.dns_hysteresis == 3 and s.remediation.dry_run is False
    assert s.remediation.allowed_actions == frozenset(ActionKind)
    assert s.kube.field_manager == "kserve-warden"
    assert (s.kserve_config.namespace, s.kserve_config.name) == ("kserve", "inferenceservice-config")
    assert (s.coredns.namespace, s.coredns.deployment) == ("kube-system", "coredns")
    assert s.probes.dns.nameserver is None  # the caller reads /etc/resolv.conf
    assert s.desired.dir is None


def test_configured_example_differs_from_the_embedded_default_only_where_documented() -> None:
    """config/warden.yaml is the embedded default plus a configured desired layer: the seed's
    Secret namespaces, the iris model's canary override and ``desired.dir: desired``. Every other
    key is identical, so the example documents the defaults too."""
    default = yaml.safe_load(default_settings_text())
    example = yaml.safe_load((ROOT / "config" / "warden.yaml").read_text())
    configured = {"secrets", "models", "desired"}
    assert {k: v for k, v in example.items() if k not in configured} == \
        {k: v for k, v in default.items() if k not in configured}
    assert default["secrets"] == {"namespaces": []} and default["models"] == []
    assert default["desired"] == {"dir": None}
    assert example["desired"] == {"dir": "desired"}
    assert example["secrets"]["namespaces"] == ["user-example-com", "kubeflow"]
    s = load_settings(ROOT / "config" / "warden.yaml", environ={})
    assert s.desired.dir == ROOT / "config" / "desired"
    assert [m.key for m in s.models] == ["user-example-com/iris-model"]
    assert s.models[0].canary is not None
    assert s.models[0].canary.instances == ((5.1, 3.5, 1.4, 0.2),) and s.models[0].canary.expected == (0,)
    shipped = sorted(p.name for p in (ROOT / "config" / "desired").glob("*.yaml"))
    demo = sorted(p.name for p in SEED_DESIRED.glob("*.yaml"))
    assert shipped == demo and shipped
    for name in shipped:
        assert (ROOT / "config" / "desired" / name).read_text() == (SEED_DESIRED / name).read_text(), name


def test_a_partial_file_merges_over_the_defaults(tmp_path: Path) -> None:
    s = load_settings(
        write(tmp_path, "remediation:\n  backoff_initial_seconds: 5\nprobes:\n  dns:\n    port: 5353\n"),
        environ={},
    )
    assert s.remediation.backoff_initial_seconds == 5.0
    assert s.probes.dns.port == 5353
    assert s.probes.dns.queries == 5  # untouched default
    assert s.remediation.budgets[ActionKind.RESTART_COREDNS].max_actions == 3


def test_relative_desired_dir_is_next_to_the_file(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "desired:\n  dir: desired\n"), environ={})
    assert s.desired.dir == tmp_path / "desired"


def test_environment_overrides() -> None:
    s = load_settings(
        None,
        environ={
            "WARDEN_DRY_RUN": "true",
            "WARDEN_NAMESPACES": "user-example-com, kubeflow,other",
            "WARDEN_LOG_LEVEL": "debug",
            "WARDEN_METRICS_PORT": "9191",
            "WARDEN_DNS_NAMESERVER": "10.96.0.10",
            "WARDEN_LEADER_ELECTION": "0",
            "UNRELATED": "x",
        },
    )
    assert s.remediation.dry_run is True
    assert s.scope.namespaces == ("user-example-com", "kubeflow", "other")
    assert s.log.level == "debug" and s.server.port == 9191
    assert s.probes.dns.nameserver == "10.96.0.10"
    assert s.leader_election.enabled is False


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        ({"WARDEN_DRY_RUN": "maybe"}, "$WARDEN_DRY_RUN: expected a boolean"),
        ({"WARDEN_METRICS_PORT": "http"}, "$WARDEN_METRICS_PORT: expected an integer, got 'http'"),
        ({"WARDEN_METRICS_PORT": "70000"}, "server.port: must be 0..65535, got 70000"),
        (
            {"WARDEN_LOG_LEVEL": "loud"},
            "log.level: must be one of 'debug', 'info', 'warning', 'error', got 'loud'",
        ),
    ],
)
def test_bad_environment_values(environ: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(None, environ=environ)
    assert any(needle in p for p in exc.value.problems), exc.value.problems


BAD = [
    (
        "unknown key with a suggestion",
        "remediation:\n  backoff_initial_secnds: 5\n",
        "remediation.backoff_initial_secnds: unknown key (did you mean 'backoff_initial_seconds'?)",
    ),
    ("unknown top-level key", "modles: []\n", "modles: unknown key (did you mean 'models'?)"),
    (
        "unknown key, nothing close",
        "probes:\n  zzz: 1\n",
        "probes.zzz: unknown key (known: dns, max_concurrency, predictor, storage)",
    ),
    (
        "wrong type",
        "probes:\n  dns:\n    port: fifty\n",
        "probes.dns.port: expected an integer, got a string",
    ),
    (
        "bool is not a number",
        "remediation:\n  backoff_initial_seconds: true\n",
        "remediation.backoff_initial_seconds: expected a number, got a boolean",
    ),
    (
        "negative period",
        "probes:\n  storage:\n    period_seconds: -5\n",
        "probes.storage.period_seconds: must be > 0, got -5",
    ),
    (
        "negative back-off",
        "remediation:\n  backoff_initial_seconds: -1\n",
        "remediation.backoff_initial_seconds: must be >= 0",
    ),
    (
        "budget 0 with restart allowed",
        "remediation:\n  budgets:\n    restart-coredns: {max_actions: 0, window_seconds: 3600}\n",
        "remediation.budgets.restart-coredns.max_actions: 0 while 'restart-coredns'",
    ),
    (
        "unknown action kind",
        "remediation:\n  allowed_actions: [apply, reboot-node]\n",
        "remediation.allowed_actions[1]: unknown value 'reboot-node'; expected one of: apply, derive-secret",
    ),
    (
        "unknown budget kind",
        "remediation:\n  budgets:\n    nuke: {max_actions: 1, window_seconds: 1}\n",
        "remediation.budgets key 'nuke': unknown value",
    ),
    (
        "hysteresis 0",
        "remediation:\n  dns_hysteresis: 0\n",
        "remediation.dns_hysteresis: must be >= 1, got 0",
    ),
    (
        "timeout over period",
        "probes:\n  dns:\n    period_seconds: 1\n    timeout_seconds: 5\n",
        "probes.dns.timeout_seconds: must not exceed period_seconds (5 > 1)",
    ),
    (
        "bad protocol",
        "models:\n- {namespace: user-example-com, name: m, protocol: v3}\n",
        "models[0].protocol: must be one of 'v1', 'v2', got 'v3'",
    ),
    ("model missing name", "models:\n- {namespace: user-example-com}\n", "models[0].name: required"),
    (
        "model outside watched namespaces",
        "scope: {namespaces: [user-example-com]}\nmodels:\n- {namespace: elsewhere, name: m}\n",
        "models[0]: namespace 'elsewhere' is not in scope.namespaces",
    ),
    (
        "canary answers mismatch",
        "models:\n- namespace: user-example-com\n  name: m\n  canary:\n"
        "    instances: [[1, 2, 3, 4], [1, 2, 3, 4]]\n    expected: [0]\n",
        "models[0].canary.expected: 1 answers for 2 instances",
    ),
    (
        "lease timings",
        "leader_election:\n  renew_deadline_seconds: 20\n",
        "leader_election.renew_deadline_seconds: must be less than lease_duration_seconds (20 >= 15)",
    ),
    (
        "endpoint override shape",
        "probes:\n  storage:\n    endpoint_overrides: {'minio:9000': 'localhost'}\n",
        "probes.storage.endpoint_overrides: value 'localhost' must be host:port",
    ),
    (
        "empty string",
        "kube:\n  field_manager: ''\n",
        "kube.field_manager: expected a non-empty string, got an empty string",
    ),
    ("not a mapping", "- a\n- b\n", "the top level must be a mapping, got a list"),
    ("invalid yaml", "probes: [unclosed\n", "not valid YAML (line"),
]


@pytest.mark.parametrize(("name", "text", "needle"), BAD, ids=[b[0] for b in BAD])
def test_each_problem_gets_one_clear_message(tmp_path: Path, name: str, text: str, needle: str) -> None:
    got = problems(tmp_path, text)
    assert any(needle in p for p in got), got


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    got = problems(
        tmp_path,
        "remediation:\n  backoff_initial_secnds: 5\n  dns_hysteresis: 0\nprobes:\n  dns:\n    port: fifty\n",
    )
    assert len(got) == 3, got
    assert "invalid settings:" in str(SettingsError(got))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as exc:
        load_settings(tmp_path / "missing.yaml", environ={})
    assert "cannot read" in exc.value.problems[0]
