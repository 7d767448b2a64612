"""Kubernetes label selectors (``scope.selector``, ``check -l``): syntax check and matching.

The API server is the judge of a selector (the informer sends it as ``labelSelector`` and a
refusal stops ``run``/``check`` with exit 2), but a typo in the settings should be reported at
load time with every other settings problem, not after connecting. This is the grammar of
apimachinery's ``labels.Parse``, reduced to a check: comma-separated requirements, each
``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``, ``key in (v1,v2)``,
``key notin (v1,v2)``; keys are qualified names (optional DNS-subdomain prefix and ``/``),
values are label values (at most 63 characters, possibly empty).

:func:`parse_selector` also gives the requirements, and :meth:`Requirement.matches` applies one
to a set of labels the way apimachinery does: ``key!=v`` and ``key notin (...)`` match an object
without the key, ``key=v`` and ``key in (...)`` need it. ``check`` uses that to narrow the desired
state by the manifests' own labels (kubectl's rule for ``apply -l``), since the API server
applies the selector only to what it lists.

Pure: text in, requirements or a problem out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SET = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")


def _key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _SUBDOMAIN.match(prefix)):
        return f"{key!r}: the prefix before '/' must be a DNS subdomain"
    if not _NAME.match(name):
        return (f"{key!r}: a label key is at most 63 characters of letters, digits, '-', '_', '.', "
                "starting and ending with a letter or digit")
    return None


def _value_problem(value: str) -> str | None:
    if not _VALUE.match(value):
        return f"{value!r}: a label value is at most 63 characters of letters, digits, '-', '_', '.'"
    return None


def _split(text: str) -> list[str] | None:
    """Split on commas outside parentheses; ``None`` when the parentheses do not balance."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return None
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        return None
    parts.append("".join(cur))
    return parts


Operator = Literal["exists", "!exists", "=", "!=", "in", "notin"]


@dataclass(frozen=True, kw_only=True)
class Requirement:
    """One comma-separated part of a selector."""

    key: str
    op: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = str(labels[self.key]) if present else None
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return value in self.values
        return value not in self.values  # != and notin: an object without the key matches


def parse_selector(text: str) -> tuple[Requirement, ...]:
    """The selector's requirements; :class:`ValueError` saying why ``text`` is not a selector."""
    parts = _split(text)
    if parts is None:
        raise ValueError("unbalanced parentheses")
    out: list[Requirement] = []
    for raw in parts:
        req = raw.strip()
        if not req:
            raise ValueError("empty requirement (a stray comma?)")
        if (m := _SET.match(req)) is not None:
            values = [v.strip() for v in m["values"].split(",")]
            problem = _key_problem(m["key"]) or next(filter(None, map(_value_problem, values)), None)
            if problem:
                raise ValueError(problem)
            op: Operator = "in" if m["op"] == "in" else "notin"
            out.append(Requirement(key=m["key"], op=op, values=frozenset(values)))
            continue
        for sep in ("!=", "==", "="):
            if sep in req:
                key, _, value = req.partition(sep)
                problem = _key_problem(key.strip()) or _value_problem(value.strip())
                if problem:
                    raise ValueError(problem)
                out.append(Requirement(key=key.strip(), op="!=" if sep == "!=" else "=",
                                       values=frozenset({value.strip()})))
                break
        else:
            negated = req.startswith("!")
            key = req[1:].strip() if negated else req
            problem = _key_problem(key)
            if problem:
                raise ValueError(f"cannot parse {req!r}: {problem}")
            out.append(Requirement(key=key, op="!exists" if negated else "exists"))
    return tuple(out)


def selector_problem(text: str) -> str | None:
    """Why ``text`` is not a label selector, or ``None`` when it is one."""
    try:
        parse_selector(text)
    except ValueError as exc:
        return str(exc)
    return None


def selector_matches(requirements: tuple[Requirement, ...], labels: Mapping[str, str]) -> bool:
    """Whether every requirement holds for ``labels`` (an empty selector matches everything)."""
    return all(r.matches(labels) for r in requirements)
