"""Metric and label names used by a PromQL expression: a small tokenizer, enough for our queries.

Used by the alert-rule and dashboard tests to hold every query to ``daemon.process.metric_names``: a
metric renamed in the daemon and not in an alert (or the reverse) fails a test. Syntax itself
is promtool's job (``promtool check rules``); this only has to find names reliably:

- an identifier followed by ``(`` is a function, an aggregation name is one even when its
  ``by (...)`` comes first; ``by``/``on``/… open a list
  of *grouping* labels; identifiers inside ``{...}`` before an operator are *matcher* labels of
  the selector just before the brace; anything inside ``[...]`` is a range or subquery duration;
- every other identifier is a metric name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      | (?P<num>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:ms|s|m|h|d|w|y)?)
      | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
      | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){}\[\],@])
    """,
    re.VERBOSE,
)
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
# Aggregations may take their grouping before the parenthesis: ``sum by (le) (...)``.
AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                          "bottomk", "topk", "quantile", "limitk", "limit_ratio"})
KEYWORDS = frozenset({"bool", "and", "or", "unless", "offset", "inf", "nan", "atan2", "start", "end"})
# Labels Prometheus attaches to every scraped series (target labels), usable in any query.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "endpoint", "container",
                           "cluster"})


class PromQLNameError(ValueError):
    pass


@dataclass
class Names:
    metrics: dict[str, set[str]] = field(default_factory=dict)
    """metric name → label names its selectors match on."""
    grouping: set[str] = field(default_factory=set)
    """label names in by/without/on/ignoring/group_* lists."""


def names(expr: str) -> Names:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise PromQLNameError(f"cannot tokenize {expr[pos:pos + 20]!r} in {expr!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append((kind, m.group()))
    out = Names()
    i = 0
    last_metric: str | None = None
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if text == "[":
            depth = 1
            while depth and i + 1 < len(tokens):
                i += 1
                depth += {"[": 1, "]": -1}.get(tokens[i][1], 0)
        elif text == "{":
            labels: set[str] = set()
            while i + 1 < len(tokens) and tokens[i + 1][1] != "}":
                i += 1
                k, t = tokens[i]
                if k == "ident" and i + 1 < len(tokens) and tokens[i + 1][1] in ("=", "!=", "=~", "!~"):
                    labels.add(t)
            i += 1
            if last_metric is None:
                raise PromQLNameError(f"selector without a metric name in {expr!r}")
            out.metrics[last_metric] |= labels
        elif kind == "ident" and text in GROUPING:
            if nxt == "(":
                i += 1
                while i + 1 < len(tokens) and tokens[i + 1][1] != ")":
                    i += 1
                    if tokens[i][0] == "ident":
                        out.grouping.add(tokens[i][1])
                i += 1
        elif kind == "ident" and nxt != "(" and text.lower() not in KEYWORDS and text not in AGGREGATIONS:
            out.metrics.setdefault(text, set())
            last_metric = text
            i += 1
            continue
        last_metric = None
        i += 1
    return out
