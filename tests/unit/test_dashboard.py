"""The Grafana dashboard is valid JSON whose queries use only what the daemon exports.

Every panel query is (1) held to ``daemon.process.metric_names`` (metric and label names), and
(2) parsed by the real Prometheus parser: the queries, with Grafana's ``$__…`` variables
replaced, become recording rules that ``promtool check rules`` must accept.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from daemon.process.metric_names import base_metric, series_labels
from tests.conftest import ROOT, find_tool
from tests.promql import TARGET_LABELS, names

DASHBOARD = ROOT / "config/grafana/warden-dashboard.json"
GRAFANA_VARS = {"$__rate_interval": "2m", "$__interval": "1m", "$__range": "6h"}


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def panels() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in dashboard()["panels"]:
        out.append(p)
        out.extend(p.get("panels") or [])
    return out


def queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana variables substituted)."""
    out = []
    for p in panels():
        for t in p.get("targets") or []:
            expr = t["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            assert "$" not in expr, f"{p['title']}: unknown variable in {t['expr']!r}"
            out.append((p["title"], expr))
    return out


def test_dashboard_shape() -> None:
    d = dashboard()
    assert d["uid"] and d["title"] and isinstance(d["schemaVersion"], int)
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    assert [v["name"] for v in d["templating"]["list"]] == ["datasource"]
    for p in panels():
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
            assert p["targets"], f"{p['title']}: a panel without a query"
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs)), p["title"]


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for p in panels():
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


def test_queries_use_only_exported_metrics_and_labels() -> None:
    for title, expr in queries():
        n = names(expr)
        assert n.metrics, f"{title}: no metric in {expr!r}"
        available: set[str] = set(TARGET_LABELS)
        for metric, labels in n.metrics.items():
            if metric == "up":
                assert labels <= {"job"}, title
                continue
            assert base_metric(metric) is not None, f"{title}: {metric} is not exported by the daemon"
            assert labels <= series_labels(metric) | TARGET_LABELS, f"{title}: {metric} {labels}"
            available |= series_labels(metric)
        assert n.grouping <= available, f"{title}: groups by {n.grouping - available}"


def test_legends_name_only_labels_the_query_keeps() -> None:
    for p in panels():
        for t in p.get("targets") or []:
            legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")))
            n = names(t["expr"].replace("$__rate_interval", "2m").replace("$__range", "6h"))
            assert legend_labels <= n.grouping | {"le"} or not n.grouping, (p["title"], legend_labels)


def test_the_panels_the_issue_asks_for_exist() -> None:
    used = {base_metric(m) or m for _, e in queries() for m in names(e).metrics}
    for metric in ("warden_probe_success", "warden_probe_duration_seconds", "warden_findings",
                   "warden_remediations_total", "warden_heal_duration_seconds"):
        assert metric in used, f"no panel shows {metric}"


def test_queries_parse_with_promtool(tmp_path: Path) -> None:
    rules = [{"record": f"dashboard:query:{i}", "expr": expr} for i, (_, expr) in enumerate(queries())]
    f = tmp_path / "dashboard-queries.yaml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run([find_tool("promtool"), "check", "rules", str(f)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout
