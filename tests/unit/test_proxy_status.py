"""Whose failure is an answer through a proxy (:mod:`probes.proxy_status`): RFC 9209
``Proxy-Status`` parsed, and the table of statuses and error types to authors. Pure."""

from __future__ import annotations

import pytest

from probes.proxy_status import Author, ProxyStatusMember, judge, parse_proxy_status

JUDGE = [
    # (name, status, Proxy-Status, author, reason)
    ("model's own 200", 200, None, Author.SERVER, ""),
    ("model not ready: 503 without the header", 503, None, Author.SERVER, ""),
    ("model's own 404", 404, None, Author.SERVER, ""),
    ("unexplained 502: not blamed on the model", 502, None, Author.PROXY, ""),
    ("unexplained 504", 504, None, Author.PROXY, ""),
    ("no such Service", 502, 'clusternet; error=destination_not_found; details="no service ns/x"',
     Author.PROXY, "clusternet: destination_not_found (no service ns/x)"),
    ("no endpoints", 503, "clusternet; error=destination_unavailable", Author.PROXY,
     "clusternet: destination_unavailable"),
    ("not a cluster host", 403, "clusternet; error=http_request_denied", Author.PROXY,
     "clusternet: http_request_denied"),
    ("proxy's DNS", 502, "squid; error=dns_error; rcode=NXDOMAIN", Author.PROXY, "squid: dns_error"),
    ("unknown error type is the proxy's", 500, "p; error=something_new", Author.PROXY, "p: something_new"),
    ("the pod refused", 502, 'clusternet; error=connection_refused; details="10.0.0.7:8080"',
     Author.SERVER_UNREACHABLE, "clusternet: connection_refused (10.0.0.7:8080)"),
    ("the pod timed out", 504, "clusternet; error=http_response_timeout", Author.SERVER_UNREACHABLE,
     "clusternet: http_response_timeout"),
    ("the pod hung up", 502, "clusternet; error=http_response_incomplete", Author.SERVER_UNREACHABLE,
     "clusternet: http_response_incomplete"),
    ("a chain: the member with the error decides", 503,
     'edge; received-status=503, "inner proxy"; error=destination_unavailable',
     Author.PROXY, "inner proxy: destination_unavailable"),
    ("a member with no error: the server's answer", 503, 'clusternet; next-hop="10.0.0.7"',
     Author.SERVER, ""),
    ("a member with no error and a 502", 502, "clusternet", Author.PROXY, ""),
    ("an unreadable header counts as absent", 503, '; error=destination_unavailable', Author.SERVER, ""),
]


@pytest.mark.parametrize(("name", "status", "header", "author", "reason"), JUDGE, ids=[j[0] for j in JUDGE])
def test_judge(name: str, status: int, header: str | None, author: Author, reason: str) -> None:
    got = judge(status, header)
    assert (got.author, got.reason) == (author, reason)


PARSE = [
    ("absent", None, []),
    ("empty", "", []),
    ("bare name", "clusternet", [ProxyStatusMember(name="clusternet", params={})]),
    ("quoted name, boolean param", '"my proxy"; flag',
     [ProxyStatusMember(name="my proxy", params={"flag": "?1"})]),
    ("quoted details with separators and escapes",
     'p; error=x; details="a, b; c \\"q\\""',
     [ProxyStatusMember(name="p", params={"error": "x", "details": 'a, b; c "q"'})]),
    ("two members", "a; error=e1, b",
     [ProxyStatusMember(name="a", params={"error": "e1"}), ProxyStatusMember(name="b", params={})]),
    ("upper-case key", "p; Error=e", [ProxyStatusMember(name="p", params={"error": "e"})]),
    ("empty key", "p; =e", []),
]


@pytest.mark.parametrize(("name", "header", "members"), PARSE, ids=[p[0] for p in PARSE])
def test_parse(name: str, header: str | None, members: list[ProxyStatusMember]) -> None:
    assert parse_proxy_status(header) == members
