"""Label and field selector parsing and matching, table-driven."""

from __future__ import annotations

import pytest

from sandbox.apiserver.selectors import SelectorError, parse_field_selector, parse_label_selector

LABELS = {"app": "iris", "tier": "web", "example.com/team": "ml"}

LABEL_CASES = [
    ("", True),
    ("app=iris", True),
    ("app==iris", True),
    ("app=other", False),
    ("app!=other", True),
    ("missing!=x", True),  # != matches objects without the label
    ("app in (iris, x)", True),
    ("app in (x,y)", False),
    ("app notin (x,y)", True),
    ("missing notin (x)", True),
    ("app notin (iris)", False),
    ("tier", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("app=iris,tier=web", True),
    ("app=iris,tier=db", False),
    ("example.com/team=ml", True),
    ("app in (iris),!missing,tier", True),
    ("app=", False),
]


@pytest.mark.parametrize(("text", "expected"), LABEL_CASES)
def test_label_selector_matches(text: str, expected: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is expected


def test_empty_value_matches_empty_label() -> None:
    assert parse_label_selector("a=").matches({"a": ""})
    assert parse_label_selector("a").matches({"a": ""})
    assert parse_label_selector("a=x").matches(None) is False


@pytest.mark.parametrize(
    "text", ["app in x", "app in ()", "app=(x", "a b", "a=b c", "-bad=x", ",", "a in (x,,"]
)
def test_label_selector_rejects(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(text)


EVENT = {
    "metadata": {"name": "iris.1", "namespace": "user-example-com"},
    "involvedObject": {"kind": "InferenceService", "name": "iris"},
    "reason": "InternalError",
    "type": "Warning",
}
ALLOWED = (
    "metadata.name",
    "metadata.namespace",
    "involvedObject.name",
    "involvedObject.kind",
    "reason",
    "type",
)

FIELD_CASES = [
    ("metadata.name=iris.1", True),
    ("metadata.namespace==user-example-com", True),
    ("metadata.namespace!=user-example-com", False),
    ("involvedObject.name=iris,type=Warning", True),
    ("involvedObject.kind=Pod", False),
    ("reason!=Other", True),
]


@pytest.mark.parametrize(("text", "expected"), FIELD_CASES)
def test_field_selector_matches(text: str, expected: bool) -> None:
    assert parse_field_selector(text, allowed=ALLOWED).matches(EVENT) is expected


@pytest.mark.parametrize("text", ["spec.x=1", "metadata.name", "involvedObject.uid=1"])
def test_field_selector_rejects_unsupported_or_malformed(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_field_selector(text, allowed=ALLOWED)
