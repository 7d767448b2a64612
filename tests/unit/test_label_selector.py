"""scope.selector: the label-selector grammar checked at settings load (table-driven, pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.core.label_selector import parse_selector, selector_matches, selector_problem
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


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    ("app=iris", {"app": "iris"}, True),
    ("app=iris", {}, False),
    ("app==iris", {"app": "other"}, False),
    ("app!=iris", {}, True),  # apimachinery: != matches an object without the key
    ("app!=iris", {"app": "iris"}, False),
    ("app in (iris,rose)", {"app": "rose"}, True),
    ("app in (iris,rose)", {}, False),
    ("app notin (iris)", {}, True),
    ("app notin (iris)", {"app": "iris"}, False),
    ("app", {"app": ""}, True),
    ("!app", {"app": "x"}, False),
    ("!app", {}, True),
    ("app=iris,tier!=dev", {"app": "iris", "tier": "prod"}, True),
    ("app=iris,tier!=dev", {"app": "iris", "tier": "dev"}, False),
    ("team=", {"team": ""}, True),
])
def test_matching_follows_apimachinery(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert selector_matches(parse_selector(selector), labels) is matches


def test_parse_refuses_what_selector_problem_names() -> None:
    with pytest.raises(ValueError, match="unbalanced"):
        parse_selector("team in (a")
