"""Shared helpers for the daemon's integration tests: a sandbox API server, real clients, and
the daemon as a ``kserve-warden run`` subprocess (:class:`Daemon`) watched from the outside.

Everything goes over loopback through the real clients (``kubernetes_asyncio``, aiohttp for
``/metrics`` and the predictor); the daemon is observed only through its log lines, its
metrics and what it writes to the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from kubernetes_asyncio import client
from prometheus_client.parser import text_string_to_metric_families

from daemon.core.logs import Redactor
from daemon.kube.effects import Kube
from sandbox.apiserver import ApiServer
from tests.conftest import free_port


@contextlib.asynccontextmanager
async def api_server() -> AsyncIterator[ApiServer]:
    server = ApiServer(host="127.0.0.1", port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run an aiohttp app on a free loopback port; yields its base URL (``http://127.0.0.1:P``)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


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


async def leaked_tasks(before: set[asyncio.Task[Any]]) -> list[str]:
    """Names of the tasks started since ``before`` that are still running, cancelled and awaited.

    For module-scoped fixtures: the suite's autouse leak check runs on each test's own event
    loop, so it does not see tasks on a module's loop (``loop_scope="module"``).
    """
    await asyncio.sleep(0)  # let tasks cancelled just now finish
    alive = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]
    for t in alive:
        t.cancel()
    await asyncio.gather(*alive, return_exceptions=True)
    return [t.get_name() for t in alive]


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


NS = "user-example-com"


class Daemon:
    """One ``kserve-warden run`` subprocess; its JSON log lines are collected as they come."""

    def __init__(self, *, config: Path, kubeconfig: Path, name: str) -> None:
        self.config, self.kubeconfig, self.name = config, kubeconfig, name
        self.port = free_port()
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.extra_args: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        env = dict(os.environ, WARDEN_METRICS_PORT=str(self.port), POD_NAME=self.name, PYTHONUNBUFFERED="1")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "run", "--config", str(self.config), "--kubeconfig",
            str(self.kubeconfig), *self.extra_args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            text = raw.decode(errors="replace")
            self.raw.append(text)
            with contextlib.suppress(ValueError):
                line = json.loads(text)
                if isinstance(line, dict):
                    self.lines.append(line)

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{self.port}/metrics",
                                                        timeout=aiohttp.ClientTimeout(total=2)) as r:
            return await r.text()

    async def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every sample of metric ``name`` as (labels, value); empty when /metrics is not up."""
        try:
            text = await self.metrics()
        except (aiohttp.ClientError, TimeoutError):
            return []
        return [(dict(s.labels), s.value) for fam in text_string_to_metric_families(text)
                for s in fam.samples if s.name == name]

    async def sample(self, name: str, **labels: str) -> float:
        """The value of the sample with exactly these labels (0 when absent)."""
        return next((v for lab, v in await self.series(name) if lab == labels), 0.0)

    def logged(self, event: str, *, since: int = 0, **match: Any) -> list[dict[str, Any]]:
        """Log lines with this ``event`` (from line ``since`` on) whose fields equal ``match``."""
        return [ln for ln in self.lines[since:]
                if ln.get("event") == event and all(ln.get(k) == v for k, v in match.items())]

    def acted(self, target: str) -> list[dict[str, Any]]:
        return [ln for ln in self.lines if ln.get("event") == "acted" and ln.get("target") == target]

    def tail(self, n: int = 40) -> str:
        """The last ``n`` lines the daemon printed: the evidence when it misbehaves."""
        return "".join(self.raw[-n:])

    async def stop(self, *, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            await self._reader
        assert self.proc.returncode is not None
        return self.proc.returncode


async def runtime_exists(api: client.ApiClient) -> bool:
    try:
        await client.CustomObjectsApi(api).get_namespaced_custom_object(
            "serving.kserve.io", "v1alpha1", NS, "servingruntimes", "iris-fastapi-runtime")
    except client.ApiException:
        return False
    return True


async def events(api: client.ApiClient) -> list[dict[str, Any]]:
    # The raw response (_preload_content=False): the typed models drop fields a test reads.
    resp: Any = await client.CoreV1Api(api).list_event_for_all_namespaces(_preload_content=False)
    body = json.loads(await resp.read())
    return list(body.get("items") or [])
