"""Raw YAML → frozen dataclasses, by their type hints, collecting every problem on the way.

:func:`convert` walks a dataclass schema (nested dataclasses, ``Literal``, ``Enum``, optional
and scalar unions, ``tuple``/``frozenset``/``Mapping`` of any of those, ``Path`` and the
scalars) and converts the parsed YAML field by field. A bad value is not raised at once: a
line naming its dotted path is appended to ``problems`` (``probes.dns.perod_seconds: unknown
key (did you mean 'period_seconds'?)``) and :data:`INVALID` stands in for it, so one run
reports every problem. Where a field with a default is invalid, the default stands in, so
checks across fields still run. No I/O and nothing specific to the daemon's settings:
:mod:`daemon.core.settings` is the schema and its checks.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping
from dataclasses import MISSING, fields, is_dataclass
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, Union, get_args, get_origin, get_type_hints


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def _where(path: str) -> str:
    return path or "<top level>"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


INVALID: Final = object()
"""What :func:`convert` returns for a value it rejected (the problem is recorded)."""


def convert(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    """Convert raw YAML ``value`` to type ``tp``; on failure record a problem, return INVALID."""
    origin = get_origin(tp)
    args = get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return convert(non_none[0], value, path, problems)
        # A union of scalars (the canary's expected values): accept any that fits exactly.
        for a in non_none:
            if a in (int, float) and isinstance(value, int | float) and not isinstance(value, bool):
                return value
            if a is str and isinstance(value, str):
                return value
        problems.append(f"{_where(path)}: expected a number or a string, got {type_name(value)}")
        return INVALID
    if origin is Literal:
        if value in args:
            return value
        choices = ", ".join(repr(a) for a in args)
        problems.append(f"{_where(path)}: must be one of {choices}, got {value!r}")
        return INVALID
    if isinstance(tp, type) and is_dataclass(tp):
        return _convert_dataclass(tp, value, path, problems)
    if origin is tuple:
        if not isinstance(value, list):
            problems.append(f"{_where(path)}: expected a list, got {type_name(value)}")
            return INVALID
        item_tp = args[0]
        items = [convert(item_tp, v, f"{_where(path)}[{i}]", problems) for i, v in enumerate(value)]
        return INVALID if any(i is INVALID for i in items) else tuple(items)
    if origin is frozenset:
        if not isinstance(value, list):
            problems.append(f"{_where(path)}: expected a list, got {type_name(value)}")
            return INVALID
        items = [convert(args[0], v, f"{_where(path)}[{i}]", problems) for i, v in enumerate(value)]
        return INVALID if any(i is INVALID for i in items) else frozenset(items)
    if origin in (Mapping, dict) or tp is dict:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            problems.append(f"{_where(path)}: expected a mapping, got {type_name(value)}")
            return INVALID
        key_tp, val_tp = args
        out: dict[Any, Any] = {}
        ok = True
        for k, v in value.items():
            ck = convert(key_tp, k, f"{_where(path)} key {k!r}", problems)
            cv = convert(val_tp, v, _join(path, str(k)), problems)
            if ck is INVALID or cv is INVALID:
                ok = False
            else:
                out[ck] = cv
        return MappingProxyType(out) if ok else INVALID
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in tp)
            problems.append(f"{_where(path)}: unknown value {value!r}; expected one of: {choices}")
            return INVALID
    if tp is bool:
        if isinstance(value, bool):
            return value
        problems.append(f"{_where(path)}: expected a boolean, got {type_name(value)}")
        return INVALID
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        problems.append(f"{_where(path)}: expected an integer, got {type_name(value)}")
        return INVALID
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        problems.append(f"{_where(path)}: expected a number, got {type_name(value)}")
        return INVALID
    if tp is str:
        if isinstance(value, str) and value:
            return value
        what = "an empty string" if value == "" else type_name(value)
        problems.append(f"{_where(path)}: expected a non-empty string, got {what}")
        return INVALID
    if tp is Path:
        if isinstance(value, str) and value:
            return Path(value)
        problems.append(f"{_where(path)}: expected a path, got {type_name(value)}")
        return INVALID
    raise TypeError(f"schema uses an unsupported type {tp!r} at {path}")  # a bug, not input


def _convert_dataclass(cls: type[Any], value: Any, path: str, problems: list[str]) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.append(f"{_where(path)}: expected a mapping, got {type_name(value)}")
        return INVALID
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    ok = True
    for key in value:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"
            problems.append(f"{_join(path, str(key))}: unknown key{hint}")
    for name, f in known.items():
        required = f.default is MISSING and f.default_factory is MISSING
        if name in value:
            converted = convert(hints[name], value[name], _join(path, name), problems)
            if converted is not INVALID:
                kwargs[name] = converted
            elif required:
                ok = False
            # else: the problem is recorded; the default stands in so that the checks across
            # fields still run and every problem is reported in one go.
        elif required:
            problems.append(f"{_join(path, name)}: required")
            ok = False
    if not ok:
        return INVALID
    return cls(**kwargs)
