"""The sandbox's DNS server (dnslib) over real UDP/TCP sockets, driven by dnspython."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from sandbox.dns import ISTIOD_IP, DnsServer


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    s = DnsServer(seed=7)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


async def ask(
    server: DnsServer, name: str, *, rdtype: str = "A", timeout: float = 1.0, tcp: bool = False
) -> dns.message.Message:
    host, port = server.address
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return await dns.asyncquery.tcp(query, host, port=port, timeout=timeout)
    return await dns.asyncquery.udp(query, host, port=port, timeout=timeout)


def addresses(msg: dns.message.Message) -> list[str]:
    return [r.to_text() for rrset in msg.answer for r in rrset]


@pytest.mark.parametrize(
    "name",
    [
        "istiod.istio-system.svc.cluster.local",
        "istiod.istio-system.svc",
        "istiod.istio-system",
        "ISTIOD.istio-system.SVC.",
    ],
)
async def test_answers_istiod_and_its_short_forms(server: DnsServer, name: str) -> None:
    msg = await ask(server, name)
    assert msg.rcode() == dns.rcode.NOERROR
    assert addresses(msg) == [ISTIOD_IP]
    assert msg.answer[0].ttl == server.ttl


async def test_unknown_name_is_nxdomain_and_other_types_are_nodata(server: DnsServer) -> None:
    assert (await ask(server, "minio-service.kubeflow.svc")).rcode() == dns.rcode.NXDOMAIN
    aaaa = await ask(server, "istiod.istio-system.svc", rdtype="AAAA")
    assert aaaa.rcode() == dns.rcode.NOERROR and aaaa.answer == []


async def test_set_and_remove_records(server: DnsServer) -> None:
    server.set_record("minio-service.kubeflow.svc.cluster.local", "10.96.1.2")
    assert addresses(await ask(server, "minio-service.kubeflow.svc.cluster.local")) == ["10.96.1.2"]
    server.remove_record("minio-service.kubeflow.svc.cluster.local.")
    assert (await ask(server, "minio-service.kubeflow.svc.cluster.local")).rcode() == dns.rcode.NXDOMAIN


async def test_tcp_answers_too(server: DnsServer) -> None:
    assert addresses(await ask(server, "istiod.istio-system.svc", tcp=True)) == [ISTIOD_IP]


async def test_servfail_mode(server: DnsServer) -> None:
    server.servfail = True
    assert (await ask(server, "istiod.istio-system.svc")).rcode() == dns.rcode.SERVFAIL
    server.servfail = False
    assert (await ask(server, "istiod.istio-system.svc")).rcode() == dns.rcode.NOERROR


async def test_delay_is_added_without_blocking_other_queries(server: DnsServer) -> None:
    # Ordering, not the clock: a delayed query is still unanswered when a later, undelayed
    # one has been answered, so the delay neither blocks the server nor is skipped.
    server.delay = 0.5
    slow = asyncio.create_task(ask(server, "istiod.istio-system.svc", timeout=5.0))
    try:
        await _received(server, 1)
        server.delay = 0.0
        fast = await ask(server, "istiod.istio-system.svc")
        assert addresses(fast) == [ISTIOD_IP]
        assert not slow.done(), "the delayed answer came before the undelayed one"
        assert addresses(await slow) == [ISTIOD_IP]
    finally:
        slow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slow


async def _received(server: DnsServer, n: int) -> None:
    # The server counts what it receives; it has no event to await, so poll (bounded) briefly.
    for _ in range(1000):
        if server.queries >= n:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"the DNS server received {server.queries} queries, not {n}")


async def test_degraded_times_out_then_recovers(server: DnsServer) -> None:
    server.degraded = True
    with pytest.raises(dns.exception.Timeout):
        await ask(server, "istiod.istio-system.svc", timeout=0.3)
    server.degraded = False
    assert addresses(await ask(server, "istiod.istio-system.svc")) == [ISTIOD_IP]


async def test_loss_is_seeded_and_deterministic() -> None:
    outcomes: list[list[bool]] = []
    for _ in range(2):
        s = DnsServer(seed=42)
        s.loss = 0.5
        await s.start()
        try:
            outcomes.append(await _answered(s, 12))
            assert s.queries == 12 + 1
        finally:
            await s.stop()
    assert outcomes[0] == outcomes[1]
    assert 0 < outcomes[0].count(False) < 12


async def _answered(server: DnsServer, n: int) -> list[bool]:
    """Which of ``n`` queries sent back to back (one socket, so in order) were answered.

    Instead of a client timeout per lost query: once the server has drawn for all ``n``,
    loss is turned off and a last query is sent; answers leave in order, so when the last
    one's arrives, every answer that is coming has come.
    """
    loop = asyncio.get_running_loop()
    answered: set[int] = set()
    last = loop.create_future()
    sentinel = 0xFFFF

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
            msg_id = dns.message.from_wire(data).id
            if msg_id == sentinel:
                last.set_result(None)
            else:
                answered.add(msg_id)

    def query(msg_id: int) -> bytes:
        q = dns.message.make_query("istiod.istio-system.svc", "A")
        q.id = msg_id
        return q.to_wire()

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=server.address)
    try:
        for i in range(1, n + 1):
            transport.sendto(query(i))
        await _received(server, n)
        server.loss = 0.0
        transport.sendto(query(sentinel))
        await asyncio.wait_for(last, 5.0)
    finally:
        transport.close()
    return [i in answered for i in range(1, n + 1)]


async def test_garbage_is_ignored_and_stop_cancels_pending_answers(server: DnsServer) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=server.address)
    try:
        transport.sendto(b"\x00garbage")
    finally:
        transport.close()
    assert addresses(await ask(server, "istiod.istio-system.svc")) == [ISTIOD_IP]
    server.delay = 10.0
    with pytest.raises(dns.exception.Timeout):
        await ask(server, "istiod.istio-system.svc", timeout=0.1)
    await server.stop()  # the pending 10 s answer must not outlive the server (leak check)
