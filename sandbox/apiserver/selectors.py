"""Label and field selectors: parsing the query-string syntax and matching objects.

Label selectors follow ``k8s.io/apimachinery/pkg/labels``: comma-separated requirements, each
``k=v`` / ``k==v`` / ``k!=v`` / ``k in (a,b)`` / ``k notin (a,b)`` / ``k`` / ``!k``. Field
selectors support ``=``, ``==`` and ``!=`` on the dotted paths each kind declares (the real server
answers 400 for any other field label; so does this one).

Both parse once into frozen requirement tuples and match against plain dicts: no I/O, so they
are table-tested in ``tests/unit/test_apiserver_selectors.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_KEY_RE = re.compile(rf"^{_KEY}$")
_VALUE_RE = re.compile(rf"^{_VALUE}$")


class SelectorError(ValueError):
    """The selector text does not parse (the server answers 400 BadRequest)."""


@dataclass(frozen=True, kw_only=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects that lack the label, as in Kubernetes.
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        have = labels or {}
        return all(r.matches(have) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced parentheses in selector {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise SelectorError(f"unbalanced parentheses in selector {text!r}")
    parts.append("".join(cur))
    return parts


def _check_key(key: str, text: str) -> str:
    if not _KEY_RE.match(key) or len(key) > 316:
        raise SelectorError(f"unable to parse requirement: invalid label key {key!r} in {text!r}")
    return key


def _check_value(value: str, text: str) -> str:
    if not _VALUE_RE.match(value) or len(value) > 63:
        raise SelectorError(f"unable to parse requirement: invalid label value {value!r} in {text!r}")
    return value


_SET_RE = re.compile(r"^\s*(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")


def parse_label_selector(text: str | None) -> LabelSelector:
    if text is None or not text.strip():
        return LabelSelector()
    reqs: list[Requirement] = []
    for raw in _split_top(text):
        part = raw.strip()
        if not part:
            raise SelectorError(f"unable to parse requirement: empty requirement in {text!r}")
        m = _SET_RE.match(part)
        if m:
            values = [v.strip() for v in m.group("values").split(",")]
            if values == [""]:
                raise SelectorError(f"unable to parse requirement: empty value set in {text!r}")
            reqs.append(
                Requirement(
                    key=_check_key(m.group("key"), text),
                    op=m.group("op"),
                    values=frozenset(_check_value(v, text) for v in values),
                )
            )
            continue
        for op_text, op in (("!=", "!="), ("==", "="), ("=", "=")):
            if op_text in part:
                key, _, value = part.partition(op_text)
                reqs.append(
                    Requirement(
                        key=_check_key(key.strip(), text),
                        op=op,
                        values=frozenset([_check_value(value.strip(), text)]),
                    )
                )
                break
        else:
            if part.startswith("!"):
                reqs.append(Requirement(key=_check_key(part[1:].strip(), text), op="!exists"))
            else:
                if " " in part:
                    raise SelectorError(f"unable to parse requirement: {part!r}")
                reqs.append(Requirement(key=_check_key(part, text), op="exists"))
    return LabelSelector(tuple(reqs))


@dataclass(frozen=True, kw_only=True)
class FieldRequirement:
    path: str
    op: str  # "=" or "!="
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        actual = field_value(obj, self.path)
        return (actual == self.value) if self.op == "=" else (actual != self.value)


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string form of a dotted path's value ("" when absent), as field selectors see it."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def parse_field_selector(text: str | None, *, allowed: Iterable[str]) -> FieldSelector:
    if text is None or not text.strip():
        return FieldSelector()
    allowed_set = set(allowed)
    reqs: list[FieldRequirement] = []
    for raw in text.split(","):
        part = raw.strip()
        for op_text, op in (("!=", "!="), ("==", "="), ("=", "=")):
            if op_text in part:
                path, _, value = part.partition(op_text)
                path = path.strip()
                if path not in allowed_set:
                    raise SelectorError(_unsupported_field(path, allowed_set))
                reqs.append(FieldRequirement(path=path, op=op, value=value.strip()))
                break
        else:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
    return FieldSelector(tuple(reqs))


_META_ONLY = frozenset({"metadata.name", "metadata.namespace"})


def _unsupported_field(path: str, allowed: set[str]) -> str:
    """The real server's words: kinds with only the metadata fields use the generic conversion
    (``"x" is not a known field selector: only ...``); kinds with their own fields (pods, events,
    secrets...) their conversion function's ``field label not supported: x``."""
    if allowed <= _META_ONLY:
        return f'"{path}" is not a known field selector: only "metadata.name", "metadata.namespace"'
    return f"field label not supported: {path}"
