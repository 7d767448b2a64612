"""What one client can hold of the model server: connections, time to send a request, body memory.

Without these, 3,000 clients that each send half a request header held 3,009 file descriptors
for as long as they liked, 16 concurrent 7.9 MB bodies took the process past 1 GB, 64
concurrent 8 MB gRPC calls took it to 2 GB, and 1,000 connections each sending a body at one
byte every 5 s locked every new client out. The rules, all per process (``--workers N``
multiplies them):

* **Header timeout** (``--header-timeout``, 10 s): a request's line and headers must arrive
  within this time of its first byte — for a new connection, of the accept, so a client that
  connects and says nothing is closed too. Between requests on a keep-alive connection aiohttp's
  own keep-alive timeout (``--keepalive-timeout``, 75 s) closes an idle connection.
* **Body timeout** (``--body-timeout``, 30 s): once the headers are in (and the body budget
  granted, below), the whole body must arrive within this time, or the answer is 408 and the
  connection is closed (:func:`serving.jsonio.read_body`): Go's ``ReadTimeout``.
* **Minimum body rate** (``--body-min-rate``, 500 bytes/s, after ``--body-grace``, 5 s): a body
  still on its way must keep up: by ``grace + received / min_rate`` seconds after its headers
  (:func:`body_due`), more of it must have come, or the answer is 408 and the connection is
  closed. This is Apache's ``mod_reqtimeout`` rule (``body=20,MinRate=500``: a deadline that
  every 500 bytes received pushes back by a second) with Kestrel's 5 s grace
  (``MinRequestBodyDataRate``: 240 bytes/s after 5 s); like nginx's ``client_body_timeout``
  it catches a client that stalls, but a client trickling a byte now and then cannot reset it.
  A real client sends an 8 MB body in well under a second here; at 500 bytes/s a 1 kB body has
  7 s. While the server itself is not reading (aiohttp paused the socket because the handler
  waits for the body budget), the clock starts over: our queue is not the client's slowness.
* **Connection cap** (``--max-connections``, 1000): a connection over the cap first evicts the
  connection nearest its own deadline among those still sending a request — a header (the
  oldest, due at its header timeout) or a body (the slowest: the one whose minimum-rate deadline
  comes first) — so neither a slow-header nor a slow-body flood can lock real clients out; only
  when every open connection has a whole request in hand or sits idle between requests is the
  new one refused, with a 503, ``Retry-After: 1`` and ``Connection: close``.
* **Body budget** (``--max-inflight-body-bytes``, 64 MiB), one for REST and gRPC: a REST request
  whose body is larger than :data:`LARGE_BODY_BYTES` takes its size from a budget before the body
  is read and gives it back when its handler returns; over the budget it waits (FIFO, bodies
  stay in the kernel's socket buffers meanwhile) and gets 503 with ``Retry-After`` if the wait
  outlasts a body timeout. A gRPC message that large takes its size from the same budget before
  it is parsed (:mod:`serving.grpc_server`); over the budget the call gets RESOURCE_EXHAUSTED at
  once — grpc.aio hands over a message only once all of it is in memory, so waiting would hold
  it. Decoding a maximum-size JSON body takes ~10x its size in Python objects for an instant,
  and the numpy arrays after it ~1x for the rest of the request: the budget bounds how many are
  in flight.

How, without touching the hot path: :class:`GuardedSite` listens like aiohttp's ``TCPSite`` but
wraps each connection's aiohttp protocol in :class:`_Conn`, which forwards every call and keeps
one timer per connection, armed only while a request header is incomplete or a body is still on
its way. A request that arrives in one segment (every keep-alive request of a normal client)
arms nothing: the cost is one forwarded call and two attribute checks per received segment, and
one ``is_eof()`` call per request (:func:`track_body`, from the app's middleware). Whether the
header is complete is read from the protocol's ``_waiter`` (pending while aiohttp waits for a
complete request message), the same private state aiohttp's own keep-alive timer reads, and the
only private attribute used here: :data:`AIOHTTP_MAJOR` pins the aiohttp major version it was
checked against (pyproject.toml pins aiohttp below 4), and
``test_the_private_aiohttp_state_the_guard_reads_is_still_there`` in
``tests/integration/test_serving_abuse.py`` fails loudly if the attribute or its meaning
changes. Whether a body is complete is the request's public ``request.content.is_eof()``.
Small bodies that have all arrived (the common case) never touch
the budget, the body timeout or the rate clock: there is nothing to wait for.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextvars
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import StreamReader, web
from aiohttp.web_protocol import RequestHandler

from serving.logs import get_logger
from serving.metrics import ServingMetrics

log = get_logger("serving.limits")

# Bodies up to this size skip the budget and, once fully received, the body timeout.
LARGE_BODY_BYTES = 64 * 1024
# A refused connection: the 503 is written, the write side shut, and what the client still sends
# is read and dropped for up to this long, so that the client reads the 503 instead of a reset.
REFUSE_LINGER_SECONDS = 1.0
# The aiohttp major version whose private RequestHandler._waiter the connection guard reads (see
# the module docstring); a test fails when the installed aiohttp is another one.
AIOHTTP_MAJOR = 3
# What a client over the body budget is told to wait: REST's Retry-After (seconds), gRPC's
# grpc-retry-pushback-ms trailer (the retry pushback of gRPC's retry design, A6).
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    body_min_rate: float = 500.0
    body_grace: float = 5.0
    keepalive_timeout: float = 75.0
    max_connections: int = 1000
    max_inflight_body_bytes: int = 64 * 1024 * 1024


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = Limits()
    p.add_argument("--header-timeout", "--header_timeout", dest="header_timeout", type=float,
                   default=d.header_timeout, help="seconds for a request's line and headers to arrive")
    p.add_argument("--body-timeout", "--body_timeout", dest="body_timeout", type=float,
                   default=d.body_timeout, help="seconds for a request body to arrive once its headers have "
                   "(408 after)")
    p.add_argument("--body-min-rate", "--body_min_rate", dest="body_min_rate", type=float,
                   default=d.body_min_rate, help="bytes per second a request body must keep up after "
                   "--body-grace (408 after; the slowest bodies are evicted first at --max-connections)")
    p.add_argument("--body-grace", "--body_grace", dest="body_grace", type=float, default=d.body_grace,
                   help="seconds a request body may take to start before --body-min-rate applies")
    p.add_argument("--keepalive-timeout", "--keepalive_timeout", dest="keepalive_timeout", type=float,
                   default=d.keepalive_timeout, help="seconds an idle keep-alive connection stays open")
    p.add_argument("--max-connections", "--max_connections", dest="max_connections", type=int,
                   default=d.max_connections, help="open connections per process; over it the oldest one "
                   "still sending its headers is closed, else the new one gets 503")
    p.add_argument("--max-inflight-body-bytes", "--max_inflight_body_bytes", dest="max_inflight_body_bytes",
                   type=int, default=d.max_inflight_body_bytes, help=f"bytes of request bodies over "
                   f"{LARGE_BODY_BYTES // 1024} KiB in flight at once; more wait, then 503")


def from_args(args: argparse.Namespace) -> Limits:
    return Limits(header_timeout=args.header_timeout, body_timeout=args.body_timeout,
                  body_min_rate=args.body_min_rate, body_grace=args.body_grace,
                  keepalive_timeout=args.keepalive_timeout, max_connections=args.max_connections,
                  max_inflight_body_bytes=args.max_inflight_body_bytes)


def check(limits: Limits) -> str | None:
    """Why these limits are unusable, or None."""
    for name in ("header_timeout", "body_timeout", "body_grace", "keepalive_timeout"):
        if not getattr(limits, name) > 0:
            return f"--{name.replace('_', '-')} must be a positive number of seconds"
    if not limits.body_min_rate > 0:
        return "--body-min-rate must be a positive number of bytes per second"
    if limits.max_connections < 1:
        return "--max-connections must be at least 1"
    if limits.max_inflight_body_bytes < 1:
        return "--max-inflight-body-bytes must be at least 1"
    return None


# ---------------------------------------------------------------------------------------------
# Body budget


class Lease:
    """Bytes taken from a :class:`ByteBudget`; :meth:`release` gives them back (once)."""

    __slots__ = ("_budget", "nbytes")

    def __init__(self, budget: ByteBudget, nbytes: int) -> None:
        self._budget: ByteBudget | None = budget
        self.nbytes = nbytes

    def release(self) -> None:
        budget, self._budget = self._budget, None
        if budget is not None:
            budget._give_back(self.nbytes)


class ByteBudget:
    """A FIFO byte semaphore: :meth:`acquire` waits until ``nbytes`` fit (a request larger than
    the whole budget waits until it is alone)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def acquire(self, nbytes: int) -> Lease:
        n = min(nbytes, self.capacity)
        if not self._waiters and self.used + n <= self.capacity:
            self.used += n
            return Lease(self, n)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, fut)
        self._waiters.append(entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._give_back(n)  # granted just as we were cancelled
            else:
                if entry in self._waiters:  # _wake may have dropped it already
                    self._waiters.remove(entry)
                self._wake()  # we may have been the head of the queue, blocking the next ones
            raise
        return Lease(self, n)

    def try_acquire(self, nbytes: int) -> Lease | None:
        """``nbytes`` now, or None when they do not fit now (or others wait: FIFO)."""
        n = min(nbytes, self.capacity)
        if self._waiters or self.used + n > self.capacity:
            return None
        self.used += n
        return Lease(self, n)

    @property
    def waiting(self) -> int:
        """Requests waiting for the budget."""
        return sum(1 for _, fut in self._waiters if not fut.done())

    def _give_back(self, n: int) -> None:
        self.used -= n
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            n, fut = self._waiters[0]
            if fut.done():
                self._waiters.popleft()
                continue
            if self.used + n > self.capacity:
                return
            self._waiters.popleft()
            self.used += n
            fut.set_result(None)


@dataclass(frozen=True)
class BodyLimits:
    """What :func:`serving.jsonio.read_body` needs, kept on the app under :data:`BODY_LIMITS`."""

    timeout: float
    budget: ByteBudget


BODY_LIMITS = web.AppKey("serving_body_limits", BodyLimits)
LIMITS = web.AppKey("serving_limits", Limits)
METRICS = web.AppKey("serving_metrics", ServingMetrics)

# The lease of the request being handled (each aiohttp request runs in its own task, so its own
# context); the app's middleware releases it when the handler returns.
current_lease: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("serving_body_lease",
                                                                            default=None)


# ---------------------------------------------------------------------------------------------
# Connections


class BodyTooSlow(TimeoutError):
    """Set on a request's body stream when the body falls below ``--body-min-rate``: the handler
    reading it answers 408 (:func:`serving.jsonio.read_body`); aiohttp's lingering read after a
    handler that did not read its body ends on it (a ``TimeoutError``) and closes the connection."""


def body_due(*, started: float, received: int, grace: float, min_rate: float) -> float:
    """When a body that started at ``started`` and has ``received`` bytes so far falls below the
    minimum rate: each ``min_rate`` bytes buy one second past the grace (mod_reqtimeout's rule)."""
    return started + grace + received / min_rate


def track_body(request: web.Request) -> None:
    """Put a request whose body is still on its way under the minimum-rate clock of its connection
    (the app's middleware calls this first thing; a body already in memory costs one call)."""
    content = request.content
    if content.is_eof():
        return
    guard = request.app.get(CONNECTIONS)
    transport = request.transport
    if guard is not None and transport is not None:
        conn = guard.by_transport.get(transport)
        if conn is not None:
            conn.start_body(content)


class ConnectionGuard:
    """Counts connections, knows which ones are still sending a request (a header, oldest first;
    a body, with its rate clock), and enforces the header timeout, the minimum body rate and the
    connection cap (see the module docstring)."""

    def __init__(self, limits: Limits, metrics: ServingMetrics | None = None) -> None:
        self.limits = limits
        self.open = 0
        # Connections whose request header is incomplete, oldest first (dict keeps insertion order).
        self.unfinished: dict[_Conn, None] = {}
        # Connections whose request body is still on its way.
        self.bodies: dict[_Conn, None] = {}
        # Every admitted connection by its transport, for track_body (a request knows its transport).
        self.by_transport: dict[asyncio.BaseTransport, _Conn] = {}
        self._metrics = metrics

    def factory(self, make_handler: Callable[[], RequestHandler]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Conn(self, make_handler())

    def dropped(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.connections_dropped.labels(reason).inc()

    def admit(self) -> bool:
        if self.open < self.limits.max_connections:
            return True
        victim = self.victim(asyncio.get_running_loop().time())
        if victim is None:
            return False
        victim.close("evicted" if victim in self.unfinished else "evicted-slow-body")
        return self.open < self.limits.max_connections

    def victim(self, now: float) -> _Conn | None:
        """The connection still sending a request that is nearest its own deadline: the oldest
        unfinished header, or the slowest body, whichever is due first (bodies: a scan, done only
        at the cap)."""
        best: _Conn | None = None
        best_due = float("inf")
        if self.unfinished:
            best = next(iter(self.unfinished))
            best_due = best.header_due
        for conn in self.bodies:
            due = conn.body_due(now)
            if due < best_due:
                best, best_due = conn, due
        return best


CONNECTIONS = web.AppKey("serving_connections", ConnectionGuard)


_REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nRetry-After: %d\r\nContent-Length: %d\r\n\r\n%s")
_REFUSAL_BODY = b'{"error":"too many open connections: the server is at its --max-connections cap"}'


class _Conn(asyncio.Protocol):
    """One connection: aiohttp's protocol behind a forwarding shim that adds the header timer and
    the body's rate clock (one timer handle: a connection is in one phase at a time)."""

    __slots__ = ("_body", "_body_bytes", "_body_started", "_counted", "_guard", "_inner", "_timer",
                 "_transport", "header_due")

    def __init__(self, guard: ConnectionGuard, inner: RequestHandler) -> None:
        self._guard = guard
        self._inner: RequestHandler | None = inner
        self._timer: asyncio.TimerHandle | None = None
        self._counted = False
        self._transport: asyncio.Transport | None = None
        self.header_due = 0.0
        self._body: StreamReader | None = None
        self._body_started = 0.0
        self._body_bytes = 0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        guard = self._guard
        if not guard.admit():
            self._refuse(transport)
            return
        guard.open += 1
        guard.by_transport[transport] = self
        self._counted = True
        assert self._inner is not None
        self._inner.connection_made(transport)
        self._arm()  # a new connection is in its first request's header until that header is in

    def data_received(self, data: bytes) -> None:
        inner = self._inner
        if inner is None:
            return  # refused: drain and drop
        inner.data_received(data)
        body = self._body
        if body is not None:
            self._body_bytes += len(data)
            if body.is_eof():
                self._end_body()
            return
        waiter = inner._waiter
        if waiter is not None and not waiter.done():
            # aiohttp still waits for a complete request message: a header is on its way.
            if self._timer is None:
                self._arm()
        elif self._timer is not None:
            self._disarm()

    def eof_received(self) -> None:
        if self._inner is not None:
            self._inner.eof_received()  # aiohttp's returns None: the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._end_body()
        self._uncount()
        inner, self._inner = self._inner, None
        if inner is not None and self._transport is not None:
            inner.connection_lost(exc)
        self._transport = None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    # -- the header timer

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self.header_due = loop.time() + self._guard.limits.header_timeout
        self._timer = loop.call_at(self.header_due, self._expired)
        self._guard.unfinished[self] = None

    def _disarm(self) -> None:
        if self._timer is not None and self._body is None:
            self._timer.cancel()
            self._timer = None
            self._guard.unfinished.pop(self, None)

    def _expired(self) -> None:
        self._timer = None
        self._guard.unfinished.pop(self, None)
        inner = self._inner
        if inner is None:
            return
        waiter = inner._waiter
        if waiter is not None and not waiter.done():
            self.close("header-timeout")

    # -- the body's rate clock

    def start_body(self, body: StreamReader) -> None:
        """The request's body is on its way (from :func:`track_body`): start its rate clock."""
        if self._inner is None or self._body is not None:
            return
        self._disarm()  # normally disarmed already: the header was complete
        loop = asyncio.get_running_loop()
        self._body, self._body_started, self._body_bytes = body, loop.time(), 0
        self._guard.bodies[self] = None
        self._timer = loop.call_at(self.body_due(self._body_started), self._body_check)

    def body_due(self, now: float) -> float:
        """When this body falls below the minimum rate; while the server is not reading from
        the socket (paused: a full buffer nobody reads yet), a fresh grace from ``now``."""
        lim = self._guard.limits
        transport = self._transport
        if transport is not None and not transport.is_reading():
            return now + lim.body_grace
        return body_due(started=self._body_started, received=self._body_bytes, grace=lim.body_grace,
                        min_rate=lim.body_min_rate)

    def _body_check(self) -> None:
        self._timer = None
        body = self._body
        if body is None:
            return
        if body.is_eof():  # completed by a last segment that data_received saw before this fired
            self._end_body()
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        transport = self._transport
        if transport is not None and not transport.is_reading():
            self._body_started, self._body_bytes = now, 0  # we are the slow side: start over
        due = self.body_due(now)
        if now < due:
            self._timer = loop.call_at(due, self._body_check)
            return
        # Too slow. The handler still reading answers 408 and closes; aiohttp's lingering read
        # after a handler that ignored its body closes. Whatever else holds the request, the
        # connection is closed a moment later, and until then it is the first to be evicted.
        self._guard.dropped("body-too-slow")
        lim = self._guard.limits
        body.set_exception(BodyTooSlow(f"request body slower than {lim.body_min_rate:g} bytes/s"))
        self._body_started = float("-inf")
        self._timer = loop.call_later(REFUSE_LINGER_SECONDS, self.close, "body-too-slow")

    def _end_body(self) -> None:
        if self._body is not None:
            self._body = None
            self._guard.bodies.pop(self, None)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    # -- closing

    def _uncount(self) -> None:
        if self._counted:
            self._counted = False
            self._guard.open -= 1
            if self._transport is not None:
                self._guard.by_transport.pop(self._transport, None)

    def close(self, reason: str) -> None:
        """Close now (header timeout, eviction, a body too slow); the slot is free at once."""
        self._disarm()
        self._end_body()
        if self._counted and reason != "body-too-slow":  # that one was counted when it happened
            self._guard.dropped(reason)
        self._uncount()
        if self._inner is not None:
            self._inner.force_close()
        elif self._transport is not None:
            self._transport.close()

    # -- refusal

    def _refuse(self, transport: asyncio.Transport) -> None:
        self._inner = None
        self._guard.dropped("refused")
        transport.write(_REFUSAL % (RETRY_AFTER_SECONDS, len(_REFUSAL_BODY), _REFUSAL_BODY))
        if transport.can_write_eof():
            transport.write_eof()
        linger = min(REFUSE_LINGER_SECONDS, self._guard.limits.header_timeout)
        self._timer = asyncio.get_running_loop().call_later(linger, transport.close)


class GuardedSite(web.BaseSite):
    """aiohttp's ``TCPSite``, with each connection behind a :class:`_Conn` of one guard."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, guard: ConnectionGuard,
                 reuse_port: bool = False, backlog: int = 128) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port, self._reuse_port = host, port, reuse_port
        self.guard = guard

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.guard.factory(server), self._host, self._port, backlog=self._backlog,
            reuse_address=True, reuse_port=self._reuse_port or None)


async def start(app: web.Application, *, host: str, port: int,
                reuse_port: bool = False) -> tuple[web.AppRunner, GuardedSite]:
    """Start serving ``app`` (built by :func:`serving.app.build_app`) with its limits."""
    if LIMITS not in app:
        app[LIMITS] = Limits()
    limits = app[LIMITS]
    metrics = app.get(METRICS)
    guard = ConnectionGuard(limits, metrics)
    app[CONNECTIONS] = guard  # before setup freezes the app: track_body finds it there
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=limits.keepalive_timeout)
    await runner.setup()
    if metrics is not None:
        metrics.connections.set_function(lambda: guard.open)
    site = GuardedSite(runner, host, port, guard=guard, reuse_port=reuse_port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, site


def run_app(app: web.Application, *, host: str, port: int, reuse_port: bool = False) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (what ``web.run_app`` did, with
    the limits). Raises ``OSError`` when the port cannot be bound."""

    async def main() -> None:
        runner, site = await start(app, host=host, port=port, reuse_port=reuse_port)
        lim = app[LIMITS]
        log.info("listening", host=host, port=port_of(site), header_timeout=lim.header_timeout,
                 body_timeout=lim.body_timeout, body_min_rate=lim.body_min_rate, body_grace=lim.body_grace,
                 keepalive_timeout=lim.keepalive_timeout,
                 max_connections=lim.max_connections, max_inflight_body_bytes=lim.max_inflight_body_bytes)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await runner.cleanup()

    asyncio.run(main())


def port_of(site: GuardedSite) -> int:
    """The port a site listens on (useful with port 0)."""
    server: Any = site._server
    return int(server.sockets[0].getsockname()[1])
