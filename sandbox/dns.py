"""The sandbox's DNS (stand-in for CoreDNS): an asyncio UDP + TCP server built on dnslib.

It answers A queries for a small zone: ``istiod.istio-system.svc.cluster.local`` and the
short forms the seed's sidecar looked up (``istiod.istio-system.svc``,
``istiod.istio-system``) — a real resolver would expand those through its search path; the
stand-in answers them directly so a probe can query them without a search list — plus any
service name added with :meth:`DnsServer.set_record`. Unknown names get NXDOMAIN; known
names asked for another type get an empty NOERROR answer (NODATA), as CoreDNS does.

Faults, all settable while running (tests and failure injection flip them):

* ``delay`` — seconds added to every answer. Applied with ``loop.call_later``, so a slow
  answer never blocks the others: the server keeps answering concurrently, like CoreDNS
  under load.
* ``loss`` — probability that a query is silently dropped (UDP and TCP), drawn from a
  ``random.Random(seed)`` so a test run is reproducible.
* ``degraded`` — "CoreDNS is slow": every answer is delayed by ``degraded_delay``
  (default 5 s, longer than any resolver's timeout), so clients see i/o timeouts.
* ``servfail`` — every query is answered SERVFAIL.

The kernel here has no netem, so latency is injected in the server, not with ``tc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping
from typing import cast

import dnslib

_Send = Callable[[bytes], None]

ISTIOD_IP = "10.96.0.15"
DEFAULT_RECORDS: Mapping[str, str] = {
    "istiod.istio-system.svc.cluster.local": ISTIOD_IP,
    "istiod.istio-system.svc": ISTIOD_IP,
    "istiod.istio-system": ISTIOD_IP,
}


_BIND_ATTEMPTS = 20
"""Ephemeral UDP ports tried before giving up on a TCP listener on the same number."""


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport does not subclass DatagramTransport: cast.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        transport = self.transport
        if transport is None:
            return

        def send(reply: bytes) -> None:
            if not transport.is_closing():
                transport.sendto(reply, addr)

        self._server._handle(data, send)


class DnsServer:
    """A small authoritative DNS server with settable delay, loss, degradation and SERVFAIL."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        records: Mapping[str, str] = DEFAULT_RECORDS,
        ttl: int = 5,
        seed: int = 0,
    ) -> None:
        self._host = host
        self._port = port
        self._records = {_norm(k): v for k, v in records.items()}
        self.ttl = ttl
        self.delay = 0.0
        self.loss = 0.0
        self.degraded = False
        self.degraded_delay = 5.0
        self.servfail = False
        self.queries = 0
        """Queries received (dropped ones included)."""
        self._random = random.Random(seed)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._pending: set[asyncio.TimerHandle] = set()
        self._tcp_tasks: set[asyncio.Task[None]] = set()
        self.address: tuple[str, int] = (host, port)

    def __repr__(self) -> str:
        return (
            f"DnsServer(address={self.address!r}, delay={self.delay}, loss={self.loss}, "
            f"degraded={self.degraded}, servfail={self.servfail})"
        )

    # -- records ---------------------------------------------------------------------

    def set_record(self, name: str, ip: str) -> None:
        self._records[_norm(name)] = ip

    def remove_record(self, name: str) -> None:
        self._records.pop(_norm(name), None)

    @property
    def records(self) -> Mapping[str, str]:
        return dict(self._records)

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        # An ephemeral UDP port can be in use for TCP (another process's outgoing connection
        # holds the same number), so with port 0 try a few until both bind; a fixed port that
        # is taken for TCP keeps UDP alone.
        attempts = _BIND_ATTEMPTS if self._port == 0 else 1
        for attempt in range(1, attempts + 1):
            if await self._bind(udp_alone=attempt == attempts):
                return

    async def _bind(self, *, udp_alone: bool) -> bool:
        """Bind UDP, then TCP on the same number; False (UDP closed again) when TCP failed and
        ``udp_alone`` is not allowed."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=(self._host, self._port)
        )
        self._udp = transport
        host, port = transport.get_extra_info("sockname")[:2]
        self.address = (str(host), int(port))
        # TCP on the same port number (DNS over TCP, RFC 7766), for truncated answers and
        # clients that prefer it.
        try:
            self._tcp = await asyncio.start_server(self._serve_tcp, self.address[0], self.address[1])
        except OSError:
            self._tcp = None
            if not udp_alone:
                transport.close()
                self._udp = None
                return False
        return True

    async def stop(self) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        for task in list(self._tcp_tasks):
            task.cancel()
        if self._tcp_tasks:
            await asyncio.gather(*self._tcp_tasks, return_exceptions=True)
        self._tcp_tasks.clear()

    # -- answering -------------------------------------------------------------------

    def answer(self, data: bytes) -> bytes | None:
        """The wire answer to one query (None when the query cannot be parsed)."""
        try:
            request = dnslib.DNSRecord.parse(data)
        except Exception:  # dnslib raises several types on garbage; CoreDNS ignores it too
            return None
        reply = request.reply()
        if self.servfail:
            reply.header.rcode = dnslib.RCODE.SERVFAIL
            return bytes(reply.pack())
        for question in request.questions:
            name = _norm(str(question.qname))
            ip = self._records.get(name)
            if ip is None:
                reply.header.rcode = dnslib.RCODE.NXDOMAIN
            elif question.qtype in (dnslib.QTYPE.A, dnslib.QTYPE.ANY):
                reply.add_answer(dnslib.RR(question.qname, dnslib.QTYPE.A, rdata=dnslib.A(ip), ttl=self.ttl))
        return bytes(reply.pack())

    def _delay_now(self) -> float:
        return self.degraded_delay if self.degraded else self.delay

    def _handle(self, data: bytes, send: _Send) -> None:
        self.queries += 1
        if self.loss > 0 and self._random.random() < self.loss:
            return
        reply = self.answer(data)
        if reply is None:
            return
        delay = self._delay_now()
        if delay <= 0:
            send(reply)
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._pending.discard(handle)
            send(reply)

        handle = loop.call_later(delay, fire)
        self._pending.add(handle)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tcp_tasks.add(task)
        try:
            while True:
                length = int.from_bytes(await reader.readexactly(2), "big")
                data = await reader.readexactly(length)

                def send(reply: bytes) -> None:
                    if not writer.is_closing():
                        writer.write(len(reply).to_bytes(2, "big") + reply)

                self._handle(data, send)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._tcp_tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
