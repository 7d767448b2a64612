"""Format sniffing and input validation: pure functions, table-driven."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from serving.jsonio import RequestError, to_array, to_features
from serving.loader import sniff


@pytest.mark.parametrize(("head", "expected"), [
    (b'{"learner":{"attr', "xgboost-json"),
    (b'  \n{ "learner"', "xgboost-json"),
    (b"{L\x00\x00\x00\x00\x00\x00\x00\x07le", "xgboost-ubjson"),
    (b"{$U#i\x03", "xgboost-ubjson"),
    (pickle.dumps({"a": 1})[:16], "pickle"),
    (b"\x1f\x8b\x08\x00", "pickle"),        # gzip-compressed joblib
    (b"x\x9c\xed\x9d", "pickle"),           # zlib-compressed joblib
    (b"binf\x00\x00\x00\x00", "xgboost-binary"),
    (b"", "xgboost-binary"),
])
def test_sniff(head: bytes, expected: str) -> None:
    assert sniff(head) == expected


@pytest.mark.parametrize(("data", "fragment"), [
    ("5.1,3.5", "must be a list"),
    ([[5.1, 3.5, "x", 0.2]], "non-numeric"),
    ([[True, False, True, False]], "non-numeric"),
    ([[5.1, 3.5, None, 0.2]], "non-numeric"),
    ([[5.1, 3.5, 1.4, 0.2], [1.0]], "regular array"),
    ([[{"a": 1}, 2, 3, 4]], "non-numeric"),
])
def test_to_array_refuses(data: Any, fragment: str) -> None:
    with pytest.raises(RequestError) as err:
        to_array(data, what="instances")
    assert err.value.status == 400 and fragment in err.value.message


@pytest.mark.parametrize(("data", "fragment"), [
    ([5.1, 3.5, 1.4, 0.2], "shape [N, features]"),
    ([], "shape [N, features]"),
    ([[5.1, 3.5, 1.4]], "4 features per row, got 3"),
    ([[[5.1, 3.5, 1.4, 0.2]]], "shape [N, features]"),
    ([[5.1, 3.5, 1.4, float("nan")]], "NaN"),
    ([[5.1, 3.5, float("inf"), 0.2]], "NaN"),
    ([[5.1, 3.5, 1e39, 0.2]], "float32 range"),
])
def test_to_features_refuses(data: Any, fragment: str) -> None:
    with pytest.raises(RequestError) as err:
        to_features(np.array(data, dtype=np.float64), what="instances", n_features=4)
    assert err.value.status == 400 and fragment in err.value.message


def test_to_features_accepts_ints_and_floats() -> None:
    x = to_features(to_array([[5, 3.5, 1, 0.2]], what="instances"), what="instances", n_features=4)
    assert x.dtype == np.float32 and x.tolist() == [[5.0, 3.5, 1.0, np.float32(0.2)]]
