"""A fresh sandbox API server per test on a free loopback port, and a kubernetes_asyncio client for it.

A test module that needs the server configured differently (a short watch history) overrides
``server`` locally; ``api`` then talks to that one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client

from sandbox.apiserver import ApiServer


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    s = ApiServer()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def api(server: ApiServer) -> AsyncIterator[client.ApiClient]:
    async with client.ApiClient(client.Configuration(host=server.url)) as c:
        yield c
