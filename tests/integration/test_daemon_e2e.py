"""The real ``kserve-warden run`` (a subprocess, via ``--kubeconfig``) against the full sandbox.

Injected seed failures are found and healed, Events and metrics show it, two replicas never act
at once (the Lease hands over on SIGTERM), and no secret value appears in any log line, Event,
metric or ``check`` output produced on the way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from sandbox import Sandbox
from tests.integration.control_planes import CONTROL_PLANES, make_sandbox
from tests.integration.daemon_fixtures import Daemon, events, runtime_exists

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


async def until(cond: Callable[[], Awaitable[bool]], *, timeout: float = 30.0, what: str = "") -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if await cond():
            return time.monotonic() - t0
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(params=CONTROL_PLANES)
async def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Sandbox, Path]]:
    """The sandbox on the stand-in and on the real control plane (shared, reset per test)."""
    plane = str(request.param)
    cp = request.getfixturevalue("real_control_plane") if plane == "real" else None
    async with make_sandbox(plane, workdir=tmp_path / "sandbox", cp=cp) as sb:
        cfg = tmp_path / "warden.yaml"
        sb.write_warden_config(cfg)
        yield sb, cfg


@contextlib.asynccontextmanager
async def daemons(sb: Sandbox, cfg: Path, *names: str) -> AsyncIterator[list[Daemon]]:
    ds = [Daemon(config=cfg, kubeconfig=sb.kubeconfig_path, name=n) for n in names]
    try:
        for d in ds:
            await d.start()
        yield ds
    finally:
        for d in ds:
            if d.proc is not None:
                await d.stop()


async def lease_holder(api: client.ApiClient) -> str:
    lease = await client.CoordinationV1Api(api).read_namespaced_lease("kserve-warden", "kserve-warden")
    return str(lease.spec.holder_identity or "")


def secret_values(sb: Sandbox) -> list[str]:
    creds = sb._creds
    assert creds is not None
    vals = [creds.access_key_id, creds.secret_access_key]
    return vals + [base64.b64encode(v.encode()).decode() for v in vals]


async def test_daemon_heals_injected_failures_and_never_prints_a_secret(
        sandbox: tuple[Sandbox, Path]) -> None:
    sb, cfg = sandbox
    api = sb.new_api_client()
    try:
        async with daemons(sb, cfg, "warden-a") as (d,):
            await until(lambda: _true(d.sample("warden_leader")), what="leadership")
            await until(lambda: runtime_exists(api), what="desired state applied")

            # 1. no-serving-runtime: the runtime is re-applied.
            before = await d.sample("warden_remediations_total", action="apply", result="success")
            await sb.inject("no-serving-runtime")
            await until(lambda: _gt(d.sample("warden_remediations_total", action="apply", result="success"),
                                    before), what="runtime re-applied")
            await until(lambda: runtime_exists(api), what="runtime back")

            # 2. dns-timeout: CoreDNS restarted after the hysteresis, its budget kept on the Deployment.
            await sb.inject("dns-timeout")
            await until(lambda: _gt(d.sample("warden_remediations_total", action="restart-coredns",
                                             result="success"), 0), timeout=40, what="CoreDNS restart")
            dep = await client.AppsV1Api(api).read_namespaced_deployment("coredns", "kube-system")
            assert "kubectl.kubernetes.io/restartedAt" in dep.spec.template.metadata.annotations
            assert "warden.kserve.io/last-restart" in dep.metadata.annotations
            await sb.undo("dns-timeout")

            # 3. sidecar-disabled: the annotation the desired state does not have is removed.
            await sb.inject("sidecar-disabled")
            await until(lambda: _gt(d.sample("warden_remediations_total", action="remove-annotation",
                                             result="success"), 0), what="annotation removed")

            evs = await events(api)
            # (kube-scheduler's Events, on the real tier, carry reportingComponent and no source)
            assert any(e["type"] == "Normal" and (e.get("source") or {}).get("component") == "kserve-warden"
                       for e in evs)
            assert any(e["type"] == "Warning" and e["reason"] == "dns-latency-high" for e in evs)
            findings = [ln for ln in d.lines if ln.get("event") == "finding"]
            assert {"code", "subject", "evidence", "explanation", "remedy"} <= set(findings[0])
            decisions = [ln for ln in d.lines if ln.get("event") == "decision"]
            assert decisions and all("verdict" in ln and "why" in ln for ln in decisions)
            metrics_text = await d.metrics()
            code = await d.stop()
            assert code == 0, d.tail()
            assert any(ln.get("event") == "released the lease" for ln in d.lines)
            assert await lease_holder(api) == ""

        # The secrets scan: every log line, Event, metric and a check run.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "check", "--config", str(cfg), "--kubeconfig",
            str(sb.kubeconfig_path), "-o", "json", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        produced = "".join(d.raw) + json.dumps(await events(api)) + metrics_text + out.decode() + err.decode()
        assert len(produced) > 10_000
        for v in secret_values(sb):
            assert v not in produced, "a secret value was printed"
    finally:
        await api.close()


async def _true(x: Awaitable[float]) -> bool:
    return bool(await x)


async def _gt(x: Awaitable[float], than: float) -> bool:
    return (await x) > than


async def test_two_replicas_never_act_at_once_and_hand_over_on_sigterm(sandbox: tuple[Sandbox, Path]) -> None:
    sb, cfg = sandbox
    api = sb.new_api_client()
    try:
        async with daemons(sb, cfg, "warden-a", "warden-b") as (a, b):
            await until(lambda: runtime_exists(api), what="desired state applied")
            await until(lambda: _true(_sum(a, b)), what="a leader")
            leaders = [await a.sample("warden_leader"), await b.sample("warden_leader")]
            assert sorted(leaders) == [0.0, 1.0]
            leader, standby = (a, b) if leaders[0] else (b, a)
            assert await lease_holder(api) == leader.name

            sr = "ServingRuntime/user-example-com/iris-fastapi-runtime"
            acted_before = len(leader.acted(sr))
            await sb.inject("no-serving-runtime")
            await until(lambda: runtime_exists(api), what="runtime re-applied")
            # Both replicas watch the same objects: by the time the leader has logged its action,
            # a standby that (wrongly) acted on the same event would have too.
            await until(lambda: _const(len(leader.acted(sr)) > acted_before),
                        what="the leader's action logged")
            assert standby.acted(sr) == [], "the standby acted"

            # SIGTERM the leader: it releases the Lease; the standby takes over well before expiry
            # (the lease lasts 15 s, longer than the wait below: waiting it out would fail the wait).
            assert await leader.stop() == 0, leader.tail()
            await until(lambda: _true(standby.sample("warden_leader")), timeout=10, what="take-over")
            assert await lease_holder(api) == standby.name
            n = len(standby.acted(sr))
            await sb.inject("no-serving-runtime")
            await until(lambda: runtime_exists(api), what="runtime re-applied by the new leader")
            await until(lambda: _true(_const(len(standby.acted(sr)) > n)), what="new leader acted")
            # Every action in both logs: never the same target twice for one injection.
            acted_at = sorted(ln["timestamp"] for d in (a, b) for ln in d.acted(sr))
            assert len(acted_at) == len(set(acted_at))
    finally:
        await api.close()


async def _sum(*ds: Daemon) -> float:
    total = 0.0
    for d in ds:
        total += await d.sample("warden_leader")
    assert total <= 1.0, "two replicas lead at once"
    return total


async def _const(x: bool) -> bool:
    return x


async def test_dry_run_daemon_decides_but_writes_nothing(sandbox: tuple[Sandbox, Path]) -> None:
    sb, cfg = sandbox
    api = sb.new_api_client()
    try:
        d = Daemon(config=cfg, kubeconfig=sb.kubeconfig_path, name="warden-dry")
        d.extra_args = ["--dry-run"]
        await d.start()
        try:
            # Wait for the decision that would create the ServingRuntime: the assertion below that
            # it does not exist then means something (no fixed sleep needed).
            sr = "ServingRuntime/user-example-com/iris-fastapi-runtime"
            await until(lambda: _const(bool(d.acted(sr))), what="the dry-run apply of the runtime")
        finally:
            assert await d.stop() == 0, d.tail()
        acted = [ln for ln in d.lines if ln.get("event") == "acted"]
        assert acted and all(ln["result"] == "dry-run" for ln in acted)
        assert not await runtime_exists(api), "a dry-run daemon created the ServingRuntime"
        assert [e for e in await events(api) if e["source"].get("component") == "kserve-warden"] == []
        with pytest.raises(client.ApiException):
            await lease_holder(api)  # not even the Lease
    finally:
        await api.close()
