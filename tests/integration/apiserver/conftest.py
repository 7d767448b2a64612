"""Fixtures of the wire-level API tests.

``tier`` runs a test on both control planes (the stand-in and the session's real
kube-apiserver; see :mod:`tests.integration.apiserver.tiers`). ``server``/``api`` are the
stand-in alone, for the tests that need its fault hooks or its sandbox-only endpoints; each such
test says why. A module that needs the stand-in configured differently (a short watch history)
overrides ``server`` locally.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client

from sandbox.apiserver import ApiServer
from tests.integration.apiserver.tiers import tier

__all__ = ["api", "server", "tier"]


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
