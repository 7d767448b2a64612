"""Suite-wide fixtures: free ports, tool lookup, and a task-leak check on every async test."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED_DESIRED = ROOT / "sandbox" / "demo" / "desired"
"""The seed's desired state (the demo's; the daemon's embedded default has none)."""


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_STREAM) -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def b64(text: str) -> str:
    """Base64 of ``text``, the way Secret ``data`` values travel over the API."""
    return base64.b64encode(text.encode()).decode()


def find_tool(name: str) -> str:
    """Path of an external tool that scripts/system-deps.sh installs; fails (not skips) if missing."""
    candidates = [
        shutil.which(name),
        str(ROOT / ".cache" / "tools" / "bin" / name),
        str(Path(sys.prefix) / "bin" / name),
        f"/usr/sbin/{name}",
        f"/usr/bin/{name}",
    ]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    pytest.fail(f"{name} is not installed: run `bash scripts/system-deps.sh` (CI does)")


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail any test that leaves asyncio tasks running on its loop.

    Tasks alive when the test starts (pytest-asyncio's own) are ignored; anything the test
    started must be finished or cancelled and awaited by teardown.
    """
    before = set(asyncio.all_tasks())
    yield
    # Let cancelled tasks run their final step before judging.
    for _ in range(3):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t not in before and t is not current and not t.done()]
    if leaked:
        for t in leaked:
            t.cancel()
        await asyncio.gather(*leaked, return_exceptions=True)
        pytest.fail(f"test leaked {len(leaked)} asyncio task(s): {[t.get_coro() for t in leaked]}")
