"""Decode the UBJSON XGBoost writes into Python values, typed arrays as numpy arrays.

Why a decoder of our own: :mod:`serving.forest` checks every tree index of a model before
XGBoost sees it, so it needs the document, and no UBJSON reader ships with the server's
dependencies. Only a buffer that :func:`serving.wellformed.check_ubjson` passed is decoded:
that check guarantees one complete value at most :data:`serving.wellformed.MAX_DEPTH` deep,
so this decoder may recurse (at most 128 frames) and never reads past the end; a buffer that
did not pass raises :class:`serving.wellformed.MalformedModel` here too rather than an
``IndexError``.

Shape of the result: objects -> ``dict``, untyped arrays -> ``list``, strings -> ``str``,
integers -> ``int``, floats -> ``float``, and *typed* arrays (``[$l#L<n>``, how XGBoost stores
every per-node vector) -> one ``numpy.frombuffer`` each, converted from big-endian to native
order: a 1,000-tree model is ~15,000 of those, and decoding it element by element would be
the whole cost.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from serving.wellformed import MalformedModel

# Big-endian numpy dtypes of the fixed-size UBJSON number markers (draft 12).
_NUMBER: dict[int, np.dtype[Any]] = {
    ord("i"): np.dtype(">i1"), ord("U"): np.dtype(">u1"), ord("I"): np.dtype(">i2"),
    ord("l"): np.dtype(">i4"), ord("L"): np.dtype(">i8"), ord("d"): np.dtype(">f4"),
    ord("D"): np.dtype(">f8"),
}
_SCALAR = {m: struct.Struct(">" + code) for m, code in zip(b"iUIlLdD", "bBhiqfd", strict=True)}
_LENGTH = {m: s for m, s in _SCALAR.items() if m not in b"dD"}
_CONSTANT: dict[int, Any] = {ord("Z"): None, ord("T"): True, ord("F"): False}
# Markers as ints, compared per value (an ord() call each would be a third of the time).
_C, _S, _H, _ARR, _ARR_END, _OBJ, _OBJ_END, _TYPE, _COUNT = b"CSH[]{}$#"


def decode(buf: bytes | bytearray | memoryview) -> Any:
    """The value ``buf`` holds (see module docstring); ``buf`` must pass ``check_ubjson``."""
    data = bytes(buf)
    try:
        value, pos = _value(data, 0)
    except (IndexError, struct.error, ValueError) as exc:
        raise MalformedModel(f"not a UBJSON document XGBoost wrote: {exc}") from exc
    if pos != len(data):
        raise MalformedModel(f"not a complete UBJSON document: trailing bytes at byte {pos} of {len(data)}")
    return value


def _text(data: bytes, pos: int) -> tuple[str, int]:
    """A length, then that many bytes of UTF-8 (a string value or an object key)."""
    n, pos = _length(data, pos)
    if pos + n > len(data):
        raise ValueError(f"a string of {n} bytes at byte {pos} runs past the end")
    return data[pos:pos + n].decode("utf-8", errors="replace"), pos + n


def _length(data: bytes, pos: int) -> tuple[int, int]:
    s = _LENGTH.get(data[pos])
    if s is None:
        raise ValueError(f"{chr(data[pos])!r} is not an integer marker for a length at byte {pos}")
    (n,) = s.unpack_from(data, pos + 1)
    if n < 0:
        raise ValueError(f"negative length {n} at byte {pos}")
    return int(n), pos + 1 + s.size


def _value(data: bytes, pos: int) -> tuple[Any, int]:
    m = data[pos]
    pos += 1
    s = _SCALAR.get(m)
    if s is not None:
        (v,) = s.unpack_from(data, pos)
        return v, pos + s.size
    if m in _CONSTANT:
        return _CONSTANT[m], pos
    if m == _C:
        return chr(data[pos]), pos + 1
    if m in (_S, _H):
        return _text(data, pos)
    if m == _ARR:
        return _array(data, pos)
    if m == _OBJ:
        return _object(data, pos)
    raise ValueError(f"unknown marker {chr(m)!r} at byte {pos - 1}")


def _header(data: bytes, pos: int) -> tuple[int | None, int, int]:
    """A container's optional ``$type`` and ``#count``: (type marker or None, count or -1, pos)."""
    typed = None
    if data[pos] == _TYPE:
        typed = data[pos + 1]
        pos += 2
    count = -1
    if data[pos] == _COUNT:
        count, pos = _length(data, pos + 1)
    return typed, count, pos


def _array(data: bytes, pos: int) -> tuple[Any, int]:
    typed, count, pos = _header(data, pos)
    if typed is not None:
        dtype = _NUMBER.get(typed)
        if dtype is None:  # a typed array of constants (T, F, Z): no payload
            return [_CONSTANT[typed]] * count, pos
        end = pos + count * dtype.itemsize
        if end > len(data):
            raise ValueError(f"typed array of {count} {chr(typed)!r} runs past the end")
        # Left big-endian: numpy reads it as it is, and the checks convert what they index with.
        return np.frombuffer(data, dtype=dtype, count=count, offset=pos), end
    out: list[Any] = []
    if count >= 0:
        for _ in range(count):
            v, pos = _value(data, pos)
            out.append(v)
        return out, pos
    while data[pos] != _ARR_END:
        v, pos = _value(data, pos)
        out.append(v)
    return out, pos + 1


def _object(data: bytes, pos: int) -> tuple[dict[str, Any], int]:
    typed, count, pos = _header(data, pos)
    out: dict[str, Any] = {}
    i = 0
    while (i < count) if count >= 0 else data[pos] != _OBJ_END:
        key, pos = _text(data, pos)
        if typed is None:
            out[key], pos = _value(data, pos)
        elif typed in _CONSTANT:
            out[key] = _CONSTANT[typed]
        else:
            s = _SCALAR[typed]
            (out[key],) = s.unpack_from(data, pos)
            pos += s.size
        i += 1
    return out, pos if count >= 0 else pos + 1
