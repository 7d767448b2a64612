"""Structural checks a model file passes before XGBoost's parser sees it.

XGBoost's JSON and UBJSON readers (``src/common/json.cc``) are recursive-descent parsers for
files XGBoost itself wrote. On other input they usually raise an ordinary error, but not always,
and when they do not, the whole server process dies with every request in flight. Measured with
xgboost-cpu 3.2.0 (``tests/unit/test_serving_wellformed.py`` keeps the cases):

* an empty buffer ends in ``std::terminate`` ("terminate called without an active exception");
* a UBJSON file cut short does the same, or segfaults reading past the buffer, at some cut
  points (most raise an ordinary error): exactly what ``--wait-for-model`` finds while a storage
  initializer or a copy is still writing the file;
* a document nested 100,000 deep (JSON or UBJSON) overflows the C stack: a segmentation fault.

So the loader hands XGBoost a buffer only once it is one complete value, at most
:data:`MAX_DEPTH` containers deep, and otherwise reports why as an ordinary load failure:

* UBJSON is walked with an explicit stack, never recursion. Typed arrays (``[$d#L<n>``, how
  XGBoost stores every per-node vector) are skipped by arithmetic, so the walk costs about 75 steps
  per tree, not one per number. Markers follow the UBJSON draft XGBoost writes; a marker
  XGBoost cannot read either is refused here with its offset.
* JSON is scanned only for brackets outside strings (one regular expression); the text inside
  is left to XGBoost, whose errors on malformed JSON are ordinary exceptions.

The checks are deliberately no stricter than that: a file XGBoost wrote always passes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# XGBoost's own files nest 6 deep (learner > gradient_booster > model > trees > [i] > tree_param);
# its parser survived 1,000 levels and crashed at 100,000. 128 leaves room for future layouts.
MAX_DEPTH = 128


class MalformedModel(ValueError):
    """The file is not one complete, reasonably nested JSON/UBJSON document."""


# UBJSON (draft 12) payload sizes of the markers with a fixed-size payload.
_FIXED = {
    ord("Z"): 0, ord("T"): 0, ord("F"): 0,
    ord("i"): 1, ord("U"): 1, ord("C"): 1, ord("I"): 2, ord("l"): 4, ord("L"): 8, ord("d"): 4, ord("D"): 8,
}
_LENGTH = {ord("i"): (1, True), ord("U"): (1, False), ord("I"): (2, True), ord("l"): (4, True),
           ord("L"): (8, True)}
_STRINGS = frozenset(b"SH")  # a length, then that many bytes
_OPEN = {ord("["): ord("]"), ord("{"): ord("}")}
_OBJECT_END, _TYPED, _COUNT = ord("}"), ord("$"), ord("#")


def _fail(why: str, pos: int, size: int) -> MalformedModel:
    return MalformedModel(f"not a complete UBJSON document: {why} at byte {pos} of {size}")


def _length(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """The length ``what`` starts with at ``pos`` (an integer marker, then big-endian bytes)."""
    n = len(data)
    if pos >= n:
        raise _fail(f"file ends inside the length of {what}", pos, n)
    spec = _LENGTH.get(data[pos])
    if spec is None:
        raise _fail(f"{chr(data[pos])!r} is not an integer marker for the length of {what}", pos, n)
    size, signed = spec
    if pos + 1 + size > n:
        raise _fail(f"file ends inside the length of {what}", n, n)
    value = int.from_bytes(data[pos + 1:pos + 1 + size], "big", signed=signed)
    if value < 0:
        raise _fail(f"negative length {value} for {what}", pos, n)
    return value, pos + 1 + size


def _skip(data: bytes, pos: int, size: int, what: str) -> int:
    if pos + size > len(data):
        raise _fail(f"file ends inside {what}", len(data), len(data))
    return pos + size


def check_ubjson(buf: bytes | bytearray | memoryview, *, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`MalformedModel` unless ``buf`` is exactly one complete UBJSON value.

    One flat loop with local state (no recursion, no per-byte method calls). Measured on a
    1,000-tree model (0.9 MB, about 75,000 values): 43 ms, where XGBoost loads it in 8 ms; the
    price of never handing XGBoost a file that would kill the process.
    """
    data = bytes(buf)
    n, pos = len(data), 0
    # One frame per open container: [closing marker, items left (-1: until the closing marker)].
    stack: list[list[int]] = []
    while True:
        if stack:
            frame = stack[-1]
            if frame[1] == 0 or (frame[1] < 0 and pos < n and data[pos] == frame[0]):
                pos += frame[1] < 0  # an uncounted container ends with its closing marker
                stack.pop()
                if not stack:
                    break
                continue
            if frame[1] > 0:
                frame[1] -= 1
            if frame[0] == _OBJECT_END:
                size, pos = _length(data, pos, "an object key")
                pos = _skip(data, pos, size, "an object key")
        if pos >= n:
            raise _fail("file ends inside a value", pos, n)
        m = data[pos]
        pos += 1
        fixed = _FIXED.get(m)
        if fixed is not None:
            pos = _skip(data, pos, fixed, f"a {chr(m)!r} value")
        elif m in _STRINGS:
            size, pos = _length(data, pos, "a string")
            pos = _skip(data, pos, size, "a string")
        elif m in _OPEN:
            if len(stack) >= max_depth:
                raise _fail(f"containers nested deeper than {max_depth}", pos - 1, n)
            typed = None
            if pos < n and data[pos] == _TYPED:
                if pos + 1 >= n:
                    raise _fail("file ends inside a container type", n, n)
                typed = data[pos + 1]
                if typed not in _FIXED:
                    raise _fail(f"typed container of {chr(typed)!r} (only fixed-size types are read)",
                                pos + 1, n)
                pos += 2
                if pos >= n or data[pos] != _COUNT:
                    raise _fail("a typed container without a '#' count", pos, n)
            count = -1
            if pos < n and data[pos] == _COUNT:
                count, pos = _length(data, pos + 1, "a container count")
            if typed is None:
                stack.append([_OPEN[m], count])
            elif m == ord("["):
                pos = _skip(data, pos, count * _FIXED[typed], f"a typed array of {count} {chr(typed)!r}")
            else:
                for _ in range(count):
                    size, pos = _length(data, pos, "an object key")
                    pos = _skip(data, pos, size + _FIXED[typed], "an object key and its value")
        else:
            raise _fail(f"unknown marker {chr(m)!r}", pos - 1, n)
        if not stack:
            break
    if pos != n:
        raise _fail("trailing bytes after the document", pos, n)


# A JSON string (escapes included, possibly cut off by the end of the file) or one bracket.
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*("?)|[\[\]{}]', re.S)
_JSON_CLOSE = {ord("]"): ord("["), ord("}"): ord("{")}
WINDOW = 1 << 20  # bytes per regex call in check_json (~1 ms each)


def _tokens(data: bytes, window: int) -> Iterator[re.Match[bytes]]:
    """:data:`_JSON_TOKEN` over ``data``, one window of bytes per regex call.

    One call over a 600 MB file holds the GIL for seconds (10-19 s measured on the shared
    machine), and the server's event loop, health probes included, waits for it; between
    windows other threads run. A string the window cuts is matched again against the whole
    buffer; the scan never starts inside a string, since each window starts where a token ended
    or where the window before, holding no token, ended."""
    pos, n = 0, len(data)
    while pos < n:
        end = min(pos + window, n)
        for tok in _JSON_TOKEN.finditer(data, pos, end):
            if end < n and tok.group(0)[:1] == b'"' and not tok.group(1):
                whole = _JSON_TOKEN.match(data, tok.start())
                assert whole is not None  # the same pattern matched there on a shorter buffer
                yield whole
                pos = whole.end()
                break
            yield tok
        else:
            pos = end


def check_json(buf: bytes | bytearray | memoryview, *, max_depth: int = MAX_DEPTH,
               window: int = WINDOW) -> None:
    """Raise :class:`MalformedModel` unless ``buf``'s brackets close, at most ``max_depth`` deep.

    Only the structure is checked; numbers, literals and commas are XGBoost's to judge.
    """
    data = bytes(buf)
    open_: list[int] = []
    seen = False
    for tok in _tokens(data, window):
        c = data[tok.start()]
        if c == ord('"'):
            if not tok.group(1):
                raise MalformedModel(f"not a complete JSON document: file ends inside a string "
                                     f"that starts at byte {tok.start()} of {len(data)}")
        elif c in _JSON_CLOSE:
            if not open_ or open_.pop() != _JSON_CLOSE[c]:
                raise MalformedModel(f"not a JSON document: unmatched {chr(c)!r} at byte {tok.start()}")
            if not open_ and data[tok.end():].strip():
                raise MalformedModel(f"not a JSON document: trailing bytes after byte {tok.end()}")
        else:
            seen = True
            open_.append(c)
            if len(open_) > max_depth:
                raise MalformedModel(f"not a JSON document XGBoost can read: brackets nested deeper "
                                     f"than {max_depth} at byte {tok.start()}")
    if not seen:
        raise MalformedModel(f"not a complete JSON document: no JSON object in the file ({len(data)} bytes)")
    if open_:
        raise MalformedModel(f"not a complete JSON document: file ends with {len(open_)} "
                             f"bracket(s) still open ({len(data)} bytes)")
