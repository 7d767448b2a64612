"""Shared helpers for the daemon's integration tests: a sandbox API server and real clients.

Everything goes over loopback through the real ``kubernetes_asyncio`` client; nothing here
reaches into the daemon's modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from kubernetes_asyncio import client

from daemon.kube import Kube
from daemon.logs import Redactor
from sandbox.apiserver import ApiServer


@contextlib.asynccontextmanager
async def api_server() -> AsyncIterator[ApiServer]:
    server = ApiServer(host="127.0.0.1", port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def api_client(url: str) -> AsyncIterator[client.ApiClient]:
    cfg = client.Configuration(host=url)
    api = client.ApiClient(configuration=cfg)
    try:
        yield api
    finally:
        await api.close()


@contextlib.asynccontextmanager
async def kube_for(url: str, **kwargs: Any) -> AsyncIterator[Kube]:
    async with api_client(url) as api:
        yield Kube(api, redactor=kwargs.pop("redactor", Redactor()), **kwargs)


async def eventually(cond: Callable[[], Awaitable[bool] | bool], *, timeout: float = 10.0,
                     interval: float = 0.01, what: str = "condition") -> None:
    """Wait until ``cond()`` holds (polled on the test side only), else fail with ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        r = cond()
        ok = await r if asyncio.iscoroutine(r) or isinstance(r, Awaitable) else r
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
