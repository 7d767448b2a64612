"""serving.ubjson reads every model XGBoost writes, exactly; a broken buffer is a MalformedModel."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from serving.ubjson import decode
from serving.wellformed import MalformedModel
from tests.unit.model_files import MODELS, encode_ubjson


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("name", sorted(MODELS))
def test_decodes_what_xgboost_writes_value_for_value(name: str) -> None:
    raw = bytes(MODELS[name].save_raw("ubj"))
    doc = decode(raw)
    assert encode_ubjson(doc) == raw  # every marker, length and typed array read back as written
    text = json.loads(bytes(MODELS[name].save_raw("json")))
    trees = doc["learner"]["gradient_booster"].get("model", {}).get("trees", [])
    for mine, theirs in zip(trees, text["learner"]["gradient_booster"].get("model", {}).get("trees", []),
                            strict=True):
        for key in ("left_children", "right_children", "parents", "split_indices"):
            assert mine[key].tolist() == theirs[key]
        assert np.allclose(mine["split_conditions"], theirs["split_conditions"])
    assert _plain(doc["learner"]["learner_model_param"]) == text["learner"]["learner_model_param"]


@pytest.mark.parametrize(("buf", "fragment"), [
    (b"{", "not a UBJSON document XGBoost wrote"),
    (b"[#i\x02i\x01", "not a UBJSON document XGBoost wrote"),
    (b"[$l#i\x02\x00\x00\x00\x01", "typed array of 2 'l' runs past the end"),
    (b"SU\x05ab", "a string of 5 bytes at byte 3 runs past the end"),
    (b"TT", "trailing bytes at byte 1 of 2"),
    (b"X", "unknown marker 'X'"),
    (b"Sd\x00\x00\x00\x01", "'d' is not an integer marker for a length"),
])
def test_a_broken_buffer_is_a_malformed_model_not_a_python_error(buf: bytes, fragment: str) -> None:
    with pytest.raises(MalformedModel, match=fragment.replace("(", r"\(")):
        decode(buf)


def test_typed_arrays_are_numpy_and_counted_containers_close_themselves() -> None:
    buf = b"{" + b"L" + (1).to_bytes(8, "big") + b"a" + b"[$l#i\x02" + (7).to_bytes(4, "big") + \
        (2**31 - 1).to_bytes(4, "big") + b"L" + (1).to_bytes(8, "big") + b"b" + b"{#i\x01i\x01cT}"
    doc = decode(buf)
    assert doc["a"].tolist() == [7, 2**31 - 1] and doc["b"] == {"c": True}
