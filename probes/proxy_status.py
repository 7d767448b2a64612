"""Whose failure is an answer that came through an HTTP proxy: the proxy's or the server's? (pure)

The predictor probe may reach an in-cluster address through a forward proxy
(``probes.predictor.proxy``: a daemon or ``check`` run outside the cluster). An error answer then
has two possible authors, and blaming the wrong one is a wrong diagnosis: a proxy that cannot
find the Service is not a CRITICAL predictor failure, and a predictor that refuses the proxy's
connection is not a mere probe problem.

RFC 9209's ``Proxy-Status`` response header is the standard way for a proxy to say what it did:
a list of members, one per proxy, each a name with parameters; the one that generated an error
carries ``error=<type>`` (and optionally ``details="..."``)::

    Proxy-Status: clusternet; error=destination_unavailable; details="no endpoints ..."

:func:`judge` turns a status and that header into a :class:`ProxyJudgement`:

* ``error`` names the **next hop's** behaviour (``connection_refused``, ``connection_timeout``,
  ``http_response_incomplete``, ...): the proxy got as far as the server, which failed. That is
  the server's failure, exactly what a direct request would have shown: :attr:`Author.SERVER_UNREACHABLE`.
* any other ``error`` (``destination_not_found``, ``destination_unavailable``, ``dns_error``,
  ``http_request_denied``, ``proxy_internal_error``, an unknown type...): the proxy could not
  route the request: :attr:`Author.PROXY`.
* no ``error`` and a 502 or 504: gateway statuses no model server sends about itself; the
  proxy did not say, so the predictor is not blamed: :attr:`Author.PROXY`.
* anything else (a 503 without ``Proxy-Status`` included: model servers answer 503 for a model
  that is not ready yet) is the server's own answer, read as if no proxy were there:
  :attr:`Author.SERVER`.

Only the parameters named here are read; a header that does not parse counts as absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

HEADER = "Proxy-Status"

# RFC 9209 section 2.3: the error types that describe the next hop after the proxy chose it.
NEXT_HOP_ERRORS = frozenset({
    "connection_refused",
    "connection_terminated",
    "connection_timeout",
    "connection_read_timeout",
    "connection_write_timeout",
    "http_response_incomplete",
    "http_response_timeout",
    "http_protocol_error",
})

_GATEWAY_STATUSES = frozenset({502, 504})


class Author(StrEnum):
    SERVER = "server"
    """The server's own answer: judge it as if no proxy were in between."""
    SERVER_UNREACHABLE = "server-unreachable"
    """The proxy reached for the server, which did not answer properly."""
    PROXY = "proxy"
    """The proxy's own failure: says nothing about the server."""


@dataclass(frozen=True, kw_only=True)
class ProxyJudgement:
    author: Author
    reason: str
    """``error`` and ``details`` from ``Proxy-Status`` (empty when the header said nothing)."""


@dataclass(frozen=True, kw_only=True)
class ProxyStatusMember:
    name: str
    params: dict[str, str]


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double-quoted strings (backslash escapes inside them)."""
    out: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return out


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out: list[str] = []
        escaped = False
        for ch in inner:
            if escaped or ch != "\\":
                out.append(ch)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


def parse_proxy_status(header: str | None) -> list[ProxyStatusMember]:
    """The members of a ``Proxy-Status`` value, in order (empty for none or an unreadable one)."""
    if not header:
        return []
    members: list[ProxyStatusMember] = []
    for raw in _split(header, ","):
        name, *params = _split(raw, ";")
        name = _unquote(name)
        if not name:
            return []
        parsed: dict[str, str] = {}
        for param in params:
            key, eq, value = param.partition("=")
            key = key.strip().lower()
            if not key:
                return []
            parsed[key] = _unquote(value) if eq else "?1"
        members.append(ProxyStatusMember(name=name, params=parsed))
    return members


def judge(status: int, proxy_status: str | None) -> ProxyJudgement:
    """Who wrote an answer with ``status`` that came back through a proxy (see the module)."""
    for member in parse_proxy_status(proxy_status):
        error = member.params.get("error")
        if not error:
            continue
        details = member.params.get("details", "")
        reason = f"{member.name}: {error}" + (f" ({details})" if details else "")
        author = Author.SERVER_UNREACHABLE if error in NEXT_HOP_ERRORS else Author.PROXY
        return ProxyJudgement(author=author, reason=reason)
    if status in _GATEWAY_STATUSES:
        return ProxyJudgement(author=Author.PROXY, reason="")
    return ProxyJudgement(author=Author.SERVER, reason="")
