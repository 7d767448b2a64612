"""The stand-in the informer tests need for its fault hooks, written once.

The informer tests run on both tiers (``tier``) except where they inject faults (drops, 5xx,
429, 410): a real kube-apiserver cannot be told to fail the next request, so those tests take a
fresh stand-in of their own (``server``) and a client that writes to it (:func:`writer_for`).
A module imports ``server`` (pytest finds a fixture by its name in the module) and builds its
``writer`` fixture from :func:`writer_for` with the namespaces its tests use.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from daemon.kube.effects import Kube
from sandbox.apiserver import ApiServer
from tests.integration.daemon_fixtures import api_server, kube_for

__all__ = ["server", "writer_for"]


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    """A fresh stand-in on a free loopback port, for one test."""
    async with api_server() as s:
        yield s


@contextlib.asynccontextmanager
async def writer_for(server: ApiServer, *namespaces: str) -> AsyncIterator[Kube]:
    """The field manager ``tester`` on ``server``, with ``namespaces`` created first."""
    async with kube_for(server.url, field_manager="tester") as k:
        for ns in namespaces:
            await k.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, dry_run=False)
        yield k
