"""scope.selector: the label-selector grammar checked at settings load (table-driven, pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.core.label_selector import selector_problem
from daemon.core.settings import SettingsError
from daemon.process.config_files import load_settings


@pytest.mark.parametrize("text", [
    "team=a", "team==a", "team!=a", "team", "!team", "team=a,tier!=dev",
    "app.kubernetes.io/name=iris", "team in (a,b)", "team notin (a, b),env", "team=",
    "example.com/team in (x)",
])
def test_valid_selectors(text: str) -> None:
    assert selector_problem(text) is None


@pytest.mark.parametrize(("text", "why"), [
    ("team in (a", "unbalanced"),
    ("team=a,,tier=b", "empty requirement"),
    ("team=a b", "label value"),
    ("-team=a", "label key"),
    ("Bad_Prefix!/x=1", "DNS subdomain"),
    ("team=" + "x" * 64, "label value"),
    ("team in (a,b c)", "label value"),
    ("a)b(", "unbalanced"),
])
def test_invalid_selectors(text: str, why: str) -> None:
    problem = selector_problem(text)
    assert problem is not None and why in problem


def test_a_bad_selector_is_a_settings_error(tmp_path: Path) -> None:
    p = tmp_path / "warden.yaml"
    p.write_text("scope:\n  selector: 'team in (a'\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(p, environ={})
    assert exc.value.problems == ["scope.selector: not a label selector (unbalanced parentheses), "
                                  "got 'team in (a'"]
    with pytest.raises(SettingsError):
        load_settings(None, environ={"WARDEN_SELECTOR": "a=b=c d"})
    assert load_settings(None, environ={"WARDEN_SELECTOR": "team=a"}).scope.selector == "team=a"
