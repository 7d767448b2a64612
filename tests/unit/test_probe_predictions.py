"""Canary answers are any JSON values: how a raw prediction is matched against the expected one."""

from __future__ import annotations

from typing import Any

import pytest

from probes.predictions import prediction_matches, shown, v1_values, v2_values


@pytest.mark.parametrize(
    ("got", "want", "matches"),
    [
        (0, 0, True),
        (2, 0, False),
        (0.0, 0, True),  # an integral float is a class
        ("1", 1, True),
        ([0.1, 0.7, 0.2], 1, True),  # probabilities: the most likely class
        ([0.1, 0.7, 0.2], 0, False),
        (0.5, 0, False),
        (0.30001, 0.3, True),  # floats within a relative 1e-3
        (0.31, 0.3, False),
        ("positive", "positive", True),
        ("negative", "positive", False),
        ({"label": "cat", "score": 0.9001}, {"label": "cat", "score": 0.9}, True),
        ({"label": "cat", "score": 0.9}, {"label": "dog", "score": 0.9}, False),
        ({"label": "cat"}, {"label": "cat", "score": 0.9}, False),
        ([1.0, 2.0], [1.0, 2.0], True),
        ([1.0, 2.0], [1.0], False),
        (True, True, True),
        (1, True, False),  # a bool is not a number here
        (None, 0, False),
    ],
)
def test_prediction_matches(got: Any, want: Any, matches: bool) -> None:
    assert prediction_matches(got, want) is matches


@pytest.mark.parametrize(
    ("got", "want", "expected"),
    [([0.1, 0.7, 0.2], 1, 1), ("x", 1, "x"), ({"a": 1}, {"a": 1}, {"a": 1}), (0.0, 0, 0)],
)
def test_shown(got: Any, want: Any, expected: Any) -> None:
    assert shown(got, want) == expected


def test_raw_values_v1_and_v2() -> None:
    assert v1_values({"predictions": [{"label": "a"}, 2]}) == [{"label": "a"}, 2]
    body = {"outputs": [{"name": "proba", "shape": [2, 2], "data": [0.9, 0.1, 0.2, 0.8]},
                        {"name": "predict", "shape": [2], "data": ["a", "b"]}]}
    assert v2_values(body) == ["a", "b"]
    assert v2_values(body, output="proba") == [[0.9, 0.1], [0.2, 0.8]]
    with pytest.raises(ValueError):
        v1_values({"outputs": []})
    with pytest.raises(ValueError):
        v2_values({"predictions": []})
