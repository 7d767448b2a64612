"""A TCP relay on loopback for tests: bytes forwarded both ways to an upstream host:port.

Used in front of an API server (TLS passes through untouched, so the server's certificate,
valid for 127.0.0.1, still verifies; the connections made through it are counted) and, with
``ssl``, to terminate TLS in front of a plain upstream. Every pipe is cancelled at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections.abc import AsyncIterator
from dataclasses import dataclass

__all__ = ["Relay", "tcp_relay"]


@dataclass
class Relay:
    port: int
    connections: int = 0
    """Connections accepted so far."""


@contextlib.asynccontextmanager
async def tcp_relay(host: str, port: int, *,
                    ssl: ssl_module.SSLContext | None = None) -> AsyncIterator[Relay]:
    """Listen on a free loopback port (TLS with ``ssl``); forward each connection to ``host:port``."""
    pipes: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl_module.SSLError):
            pass
        finally:
            writer.close()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        relay.connections += 1
        up_reader, up_writer = await asyncio.open_connection(host, port)
        for task in (asyncio.create_task(pipe(reader, up_writer)),
                     asyncio.create_task(pipe(up_reader, writer))):
            pipes.add(task)
            task.add_done_callback(pipes.discard)

    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=ssl)
    relay = Relay(port=server.sockets[0].getsockname()[1])
    try:
        yield relay
    finally:
        server.close()
        for task in list(pipes):
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        await server.wait_closed()
