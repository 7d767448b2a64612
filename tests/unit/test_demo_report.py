"""The demo's scenario table and its report (pure): selection, success rules, JSON shape."""

from __future__ import annotations

import json

import pytest

from daemon.core.findings import Code
from sandbox.demo.report import Outcome, document, table
from sandbox.demo.scenarios import SCENARIOS, select

SEED_FAILURES = ("no-serving-runtime", "storage-credentials", "dns-timeout", "mesh-policy",
                 "sidecar-disabled", "model-path", "image-pull")


def test_scenarios_cover_the_seed_in_order_with_known_codes() -> None:
    assert tuple(s.name for s in SCENARIOS) == SEED_FAILURES
    codes = {c.value for c in Code}
    for s in SCENARIOS:
        assert s.findings and set(s.findings) <= codes, s.name


@pytest.mark.parametrize(("names", "expected"), [
    ([], SEED_FAILURES),
    (["image-pull", "dns-timeout"], ("dns-timeout", "image-pull")),
])
def test_select_keeps_canonical_order(names: list[str], expected: tuple[str, ...]) -> None:
    assert tuple(s.name for s in select(names)) == expected


def test_select_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        select(["dns", "image-pull"])


@pytest.mark.parametrize(("auto", "finding", "heal", "remedy", "success"), [
    (True, "drift", 1.0, "", True),
    (True, "drift", None, "kubectl ...", False),
    (True, None, None, "", False),
    (False, "model-not-found", None, "upload the model", True),
    (False, "model-not-found", None, "", False),
])
def test_success_rules(auto: bool, finding: str | None, heal: float | None, remedy: str,
                       success: bool) -> None:
    sc = next(s for s in SCENARIOS if s.auto_heal is auto)
    o = Outcome(scenario=sc, finding=finding, detect_seconds=0.5 if finding else None,
                heal_seconds=heal, remedy=remedy)
    assert o.success is success


def test_document_and_table() -> None:
    outs = [Outcome(scenario=SCENARIOS[0], finding="no-serving-runtime", detect_seconds=0.21,
                    heal_seconds=0.43, action="apply:success"),
            Outcome(scenario=SCENARIOS[5], finding="model-not-found", detect_seconds=1.0,
                    remedy="upload the model as model")]
    doc = json.loads(json.dumps(document(outs)))
    assert doc["all_healed"] is True
    first = doc["scenarios"][0]
    keys = {"name", "finding", "detected", "healed", "detect_seconds", "heal_seconds", "action"}
    assert keys <= first.keys()
    assert first["heal_seconds"] == 0.43
    text = table(outs)
    assert "no-serving-runtime" in text and "human (remedy stated)" in text and "~2 h" in text
    assert document([])["all_healed"] is False
