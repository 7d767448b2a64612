"""Syntax check of a Kubernetes label selector (``scope.selector``), before any request.

The API server is the judge of a selector (the informer sends it as ``labelSelector`` and a
refusal stops ``run``/``check`` with exit 2), but a typo in the settings should be reported at
load time with every other settings problem, not after connecting. This is the grammar of
apimachinery's ``labels.Parse``, reduced to a check: comma-separated requirements, each
``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``, ``key in (v1,v2)``,
``key notin (v1,v2)``; keys are qualified names (optional DNS-subdomain prefix and ``/``),
values are label values (at most 63 characters, possibly empty).

Pure: text in, a problem (or ``None``) out.
"""

from __future__ import annotations

import re

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


def selector_problem(text: str) -> str | None:
    """Why ``text`` is not a label selector, or ``None`` when it is one."""
    parts = _split(text)
    if parts is None:
        return "unbalanced parentheses"
    for raw in parts:
        req = raw.strip()
        if not req:
            return "empty requirement (a stray comma?)"
        if (m := _SET.match(req)) is not None:
            values = [v.strip() for v in m["values"].split(",")]
            problem = _key_problem(m["key"]) or next(filter(None, map(_value_problem, values)), None)
            if problem:
                return problem
            continue
        for op in ("!=", "==", "="):
            if op in req:
                key, _, value = req.partition(op)
                problem = _key_problem(key.strip()) or _value_problem(value.strip())
                if problem:
                    return problem
                break
        else:
            key = req[1:].strip() if req.startswith("!") else req
            problem = _key_problem(key)
            if problem:
                return f"cannot parse {req!r}: {problem}"
    return None
