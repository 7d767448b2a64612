"""The alert rules, checked and unit-tested by the real ``promtool``, and held to the daemon's metrics.

- ``promtool check rules`` on the plain file and on the PrometheusRule's ``spec.groups``;
  both carry the same groups;
- ``promtool test rules`` on every ``config/prometheus/*_test.yaml``; every alert has a case
  where it fires and one where it stays quiet;
- mutation checks: remove the DNS fold from the predictor alert, and the suppression test
  fails (the tests would notice a regression, they do not merely run);
- every metric and label an expression names is one the daemon exports
  (``daemon.process.metric_names``); every finding code has an alert; every alert has a severity, a
  summary, a description naming its finding code or runbook step, and a runbook anchor that
  exists in ``docs/runbook.md``;
- the Alertmanager inhibit example only names alerts that exist.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon.core.findings import Code
from daemon.process.metric_names import METRIC_LABELS, base_metric, series_labels
from tests.conftest import ROOT, find_tool
from tests.promql import TARGET_LABELS, names

PROM = ROOT / "config/prometheus"
RULES = PROM / "warden-rules.yaml"
TEST_FILES = sorted(PROM.glob("*_test.yaml"))


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    return subprocess.run([find_tool("promtool"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def plain_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def alerts() -> list[dict[str, Any]]:
    return [r for g in plain_groups() for r in g["rules"] if "alert" in r]


def test_promtool_checks_the_plain_rules() -> None:
    out = promtool("check", "rules", str(RULES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in out.stdout


def test_promtool_checks_the_prometheusrule_groups(tmp_path: Path) -> None:
    rule = yaml.safe_load((PROM / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == plain_groups(), "regenerate: python config/deploy/build.py"
    extracted = tmp_path / "from-prometheusrule.yaml"
    extracted.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    out = promtool("check", "rules", str(extracted))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """Negative control: the check is not a rubber stamp."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"alert": "Broken", "expr": "max by (code (warden_findings) > 0"}]}]}))
    assert promtool("check", "rules", str(bad)).returncode != 0


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    out = promtool("test", "rules", test_file.name)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def _cases() -> dict[str, dict[str, int]]:
    """alertname → {'firing': n, 'quiet': n} over every unit test file."""
    seen: dict[str, dict[str, int]] = {}
    for f in TEST_FILES:
        doc = yaml.safe_load(f.read_text())
        assert doc["rule_files"] == ["warden-rules.yaml"], f.name
        for test in doc["tests"]:
            for case in test.get("alert_rule_test") or []:
                c = seen.setdefault(case["alertname"], {"firing": 0, "quiet": 0})
                c["firing" if case.get("exp_alerts") else "quiet"] += 1
    return seen


def test_every_alert_has_firing_and_quiet_cases() -> None:
    cases = _cases()
    names_ = {a["alert"] for a in alerts()}
    assert set(cases) <= names_, f"tests name unknown alerts: {set(cases) - names_}"
    for a in sorted(names_):
        assert cases.get(a, {}).get("firing"), f"{a}: no case where it fires"
        assert cases.get(a, {}).get("quiet"), f"{a}: no case where it stays quiet"


def _mutated_run(tmp_path: Path, alert: str, mutate: Any) -> subprocess.CompletedProcess[str]:
    doc = yaml.safe_load(RULES.read_text())
    for g in doc["groups"]:
        for r in g["rules"]:
            if r.get("alert") == alert:
                r["expr"] = mutate(r["expr"])
    (tmp_path / "warden-rules.yaml").write_text(yaml.safe_dump(doc))
    for f in TEST_FILES:
        shutil.copy(f, tmp_path / f.name)
    return promtool("test", "rules", *(f.name for f in TEST_FILES), cwd=tmp_path)


def test_the_dns_fold_is_tested(tmp_path: Path) -> None:
    """Drop `unless on() (dns finding)` and the suppression test must fail."""
    def drop_fold(expr: str) -> str:
        assert "unless on()" in expr
        return expr.split("unless on()")[0].strip()

    out = _mutated_run(tmp_path, "WardenPredictorNotReady", drop_fold)
    assert out.returncode != 0
    assert "predictor not ready is suppressed while DNS is the cause" in out.stdout + out.stderr


def test_thresholds_are_tested(tmp_path: Path) -> None:
    """Loosen the stale-probe threshold and the quiet case must fail."""
    out = _mutated_run(tmp_path, "WardenProbesStale", lambda e: e.replace("> 300", "> -1"))
    assert out.returncode != 0


# -- held to the daemon's metrics and codes -------------------------------------------------------------

def test_expressions_use_only_exported_metrics_and_labels() -> None:
    for a in alerts():
        n = names(a["expr"])
        assert n.metrics, a["alert"]
        used_labels: set[str] = set(TARGET_LABELS)
        for metric, labels in n.metrics.items():
            if metric == "up":
                assert labels <= {"job"}, a["alert"]
                continue
            assert base_metric(metric) is not None, f"{a['alert']}: {metric} is not exported by the daemon"
            allowed = series_labels(metric) | TARGET_LABELS
            assert labels <= allowed, f"{a['alert']}: {metric} has no label(s) {labels - allowed}"
            used_labels |= series_labels(metric)
        assert n.grouping <= used_labels, f"{a['alert']}: groups by {n.grouping - used_labels}"


INFO_ONLY_CODES = frozenset({"not-checked", "mesh-policy-not-evaluated"})


def test_every_finding_code_has_an_alert() -> None:
    exprs = " ".join(a["expr"] for a in alerts())
    codes_in_exprs = set(re.findall(r"[a-z]+(?:-[a-z]+)+|drift", exprs))
    # "Not checked" statements are coverage, not problems (INFO): an alert on them would fire for
    # as long as, say, Secrets are not opted in. They show on the dashboard instead.
    missing = {c.value for c in Code} - codes_in_exprs - INFO_ONLY_CODES
    assert not missing, f"finding codes no alert covers: {sorted(missing)}"
    unknown = {c for c in codes_in_exprs if c not in {x.value for x in Code}} - {"kserve-warden"}
    assert not unknown, f"alerts match codes the daemon does not have: {sorted(unknown)}"


def test_every_alert_is_actionable() -> None:
    runbook = (ROOT / "docs/runbook.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#{2,3} (.+)$", runbook, flags=re.M)}
    code_values = {c.value for c in Code}
    for a in alerts():
        name = a["alert"]
        assert a["labels"]["severity"] in ("warning", "critical"), name
        ann = a["annotations"]
        assert set(ann) >= {"summary", "description", "runbook"}, name
        assert "docs/runbook.md#" in ann["description"] and "step" in ann["description"], name
        anchor = ann["runbook"].split("#", 1)[1]
        if anchor == "{{ $labels.code }}":
            # templated: every code the expression can yield needs its runbook section
            for code in code_values:
                if code in a["expr"]:
                    assert code in anchors, f"{name}: docs/runbook.md has no section for {code}"
            assert "{{ $labels.code }}" in ann["description"], name
        else:
            assert anchor in anchors, f"{name}: docs/runbook.md has no section #{anchor}"
    for code in code_values:
        assert code in anchors, f"docs/runbook.md has no section for finding code {code}"


def test_inhibit_example_names_real_alerts() -> None:
    am = yaml.safe_load((PROM / "alertmanager-inhibit.yaml").read_text())
    known = {a["alert"] for a in alerts()}
    assert am["inhibit_rules"]
    for rule in am["inhibit_rules"]:
        for side in ("source_matchers", "target_matchers"):
            for matcher in rule[side]:
                m = re.fullmatch(r'alertname\s*(=~|=)\s*"?([^"]+)"?', matcher)
                assert m, matcher
                named = set(m.group(2).split("|"))
                assert named <= known, f"{matcher}: unknown alert(s) {named - known}"
    dns_rule = next(r for r in am["inhibit_rules"] if "WardenDNSLatencyHigh" in r["source_matchers"][0])
    assert "WardenPredictorNotReady" in dns_rule["target_matchers"][0]


def test_metric_label_table_is_sane() -> None:
    """The table the rules are checked against: histograms get le only on _bucket."""
    assert series_labels("warden_dns_latency_seconds_bucket") == {"le"}
    assert series_labels("warden_heal_duration_seconds_count") == {"code"}
    assert METRIC_LABELS["warden_findings"] == {"code", "severity", "namespace", "inferenceservice"}
    assert base_metric("warden_findings_bucket") is None
