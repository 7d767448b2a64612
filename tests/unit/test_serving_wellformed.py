"""serving.wellformed: what XGBoost wrote passes; anything that would crash its parser does not.

The refused cases include what killed the process when handed to xgboost-cpu 3.2.0's
``Booster.load_model``: ``std::terminate`` for an empty buffer, that or a segmentation fault for
UBJSON cut at some points, a segmentation fault for deep nesting. So these tests never pass a
refused buffer to XGBoost.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from serving.wellformed import MAX_DEPTH, MalformedModel, check_json, check_ubjson
from tests.unit.model_files import MODELS

Check = Callable[..., None]


def _key(name: bytes) -> bytes:
    return b"L" + struct.pack(">q", len(name)) + name


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_xgboost_writes_passes(name: str) -> None:
    booster = MODELS[name]
    check_ubjson(bytes(booster.save_raw("ubj")))
    check_json(bytes(booster.save_raw("json")))


@pytest.mark.parametrize(("fmt", "check"), [("ubj", check_ubjson), ("json", check_json)])
def test_every_prefix_of_a_model_is_refused(fmt: str, check: Check) -> None:
    """What --wait-for-model sees while a file is still being written: every cut point."""
    raw = bytes(MODELS["binary"].save_raw(fmt))
    assert len(raw) > 500
    for cut in range(len(raw)):
        with pytest.raises(MalformedModel, match="not a complete"):
            check(raw[:cut])


@pytest.mark.parametrize(("buf", "fragment"), [
    (b"", "file ends inside a value"),
    (b"{", "file ends inside the length of an object key"),
    (b"{L", "file ends inside the length of an object key"),
    (b"{L" + struct.pack(">q", 7) + b"lea", "file ends inside an object key"),
    (b"{" + _key(b"a") + b"S", "file ends inside the length of a string"),
    (b"{" + _key(b"a") + b"Si\x05ab", "file ends inside a string"),
    (b"{" + _key(b"a") + b"[$d#L" + struct.pack(">q", 3) + b"\x00" * 11, "typed array of 3 'd'"),
    (b"{" + _key(b"a") + b"[#L" + struct.pack(">q", 2) + b"T", "file ends inside a value"),
    (b"{" + _key(b"a") + b"d\x00\x00", "file ends inside a 'd' value"),
    (b"{" + _key(b"a") + b"[TT", "file ends inside a value"),
    (b"{" + _key(b"a") + b"Si\xff", "negative length -1 for a string"),
    (b"{" + _key(b"a") + b"Sd\x00\x00\x00\x01", "'d' is not an integer marker"),
    (b"{" + _key(b"a") + b"X}", "unknown marker 'X'"),
    (b"{" + _key(b"a") + b"[$d" + struct.pack(">q", 3), "without a '#' count"),
    (b"{" + _key(b"a") + b"[$S#i\x01", "typed container of 'S'"),
    (b"{" + _key(b"a") + b"T}}", "trailing bytes"),
    (b"{}{}", "trailing bytes"),
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH}"),
    (b"{" + _key(b"a") + b"[" * 100_000 + b"]" * 100_000 + b"}", f"nested deeper than {MAX_DEPTH}"),
])
def test_ubjson_refusals(buf: bytes, fragment: str) -> None:
    with pytest.raises(MalformedModel) as err:
        check_ubjson(buf)
    assert fragment in str(err.value)


@pytest.mark.parametrize("buf", [
    b"{}",
    b"[" * MAX_DEPTH + b"]" * MAX_DEPTH,
    b"{" + _key(b"a") + b"[$d#L" + struct.pack(">q", 3) + b"\x00" * 12 + _key(b"b") + b"{}}",
    b"{" + _key(b"a") + b"[#i\x02TF" + _key(b"b") + b"{#U\x01" + _key(b"c") + b"Z}",  # counted: no closer
    b"{$d#i\x02" + _key(b"x") + b"\x00" * 4 + _key(b"y") + b"\x00" * 4,  # typed object
    b"{" + _key(b"s") + b"SU\x00" + _key(b"h") + b"HU\x0212" + _key(b"n") + b"D" + b"\x00" * 8 + b"}",
])
def test_ubjson_accepts(buf: bytes) -> None:
    check_ubjson(buf)


@pytest.mark.parametrize(("buf", "fragment"), [
    (b'{"a": "b', "ends inside a string"),
    (b'{"a": "b\\"}', "ends inside a string"),  # the quote is escaped
    (b'{"a": [1, 2}', "unmatched '}'"),
    (b'{"a": 1]', "unmatched ']'"),
    (b'{"a": 1}}', "trailing bytes"),
    (b"  \n ", "no JSON object"),
    (b'{"a": 1} {', "trailing bytes"),
    (b'{"a": [' + b"[" * MAX_DEPTH, f"nested deeper than {MAX_DEPTH}"),
    (b'{"learner":' + b"[" * 100_000 + b"]" * 100_000 + b"}", f"nested deeper than {MAX_DEPTH}"),
    (b'{"a": {"b": [1, 2]', "2 bracket(s) still open"),
])
def test_json_refusals(buf: bytes, fragment: str) -> None:
    with pytest.raises(MalformedModel) as err:
        check_json(buf)
    assert fragment in str(err.value)


@pytest.mark.parametrize("buf", [
    b'{"a": "]}[{ brackets inside a string are text"}',
    b'{"a": "an escaped \\" quote ]"}\n  ',
    b'{"a": [' + b"[" * (MAX_DEPTH - 2) + b"]" * (MAX_DEPTH - 1) + b"}",
])
def test_json_accepts(buf: bytes) -> None:
    check_json(buf)


@pytest.mark.parametrize("window", [1, 2, 3, 7, 64])
def test_json_scanned_in_small_windows_gives_the_same_answers(window: int) -> None:
    """check_json reads a window of bytes per regex call (so a huge file does not hold the GIL
    for seconds); strings cut by a window edge, escapes included, are matched whole."""
    for booster in MODELS.values():
        check_json(bytes(booster.save_raw("json")), window=window)
    for buf in (b'{"a": "]}[{ brackets inside a string are text"}', b'{"a": "an escaped \\" quote ]"}\n  ',
                b'{"k\\\\": "\\\\", "x": ["\\"]", "}"]}'):
        check_json(buf, window=window)
    raw = bytes(MODELS["strings"].save_raw("json"))
    for cut in range(0, len(raw), 97):
        with pytest.raises(MalformedModel, match="not a complete"):
            check_json(raw[:cut], window=window)
    with pytest.raises(MalformedModel, match="unmatched"):
        check_json(b'{"a": "b\\"}"]', window=window)
