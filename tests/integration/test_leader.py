"""Lease-based leader election against the sandbox API: one leader at a time, fast hand-over."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from daemon.kube import Kube
from daemon.leader import LeaderElector, LeaseConfig, lease_holder
from sandbox.apiserver import ApiServer
from tests.integration.daemon_fixtures import api_server, eventually, kube_for, stop_task

NS = "kserve-warden"


def config(identity: str) -> LeaseConfig:
    return LeaseConfig(namespace=NS, name="kserve-warden", identity=identity, lease_duration=1.0,
                       renew_deadline=0.6, retry_period=0.1)


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with api_server() as s, kube_for(s.url) as k:
        await k.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, dry_run=False)
        yield s


class Watchdog:
    """Samples both electors every few ms; records any moment both claim to lead."""

    def __init__(self, *electors: LeaderElector) -> None:
        self.electors = electors
        self.both = 0
        self.samples = 0

    async def run(self) -> None:
        while True:
            self.samples += 1
            if sum(e.leading for e in self.electors) > 1:
                self.both += 1
            await asyncio.sleep(0.002)


@contextlib.asynccontextmanager
async def electors(server: ApiServer, *names: str) -> AsyncIterator[list[tuple[LeaderElector, Kube]]]:
    async with contextlib.AsyncExitStack() as stack:
        out = []
        for n in names:
            kube = await stack.enter_async_context(kube_for(server.url))
            out.append((LeaderElector(kube, config(n)), kube))
        yield out


async def test_two_electors_never_lead_at_once_and_hand_over_on_release(server: ApiServer) -> None:
    started: list[str] = []
    async with electors(server, "a", "b") as pair:
        (a, ka), (b, _) = pair
        a._on_start = lambda: started.append("a")
        b._on_start = lambda: started.append("b")
        dog = Watchdog(a, b)
        tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run()), asyncio.create_task(dog.run())]
        try:
            await eventually(lambda: a.leading or b.leading, what="a leader")
            first, second = (a, b) if a.leading else (b, a)
            await asyncio.sleep(1.5)  # several renewals and lease durations
            assert first.leading and not second.leading
            lease = await ka.get_lease(NS, "kserve-warden")
            holder, renewed = lease_holder(lease)
            assert holder == first.config.identity
            spec = lease["spec"]
            assert spec["leaseDurationSeconds"] == 1 and spec["acquireTime"] and renewed is not None
            transitions = int(spec.get("leaseTransitions") or 0)

            # Graceful hand-over: stop and release; the other takes over without waiting a lease out.
            idx = 0 if first is a else 1
            await stop_task(tasks[idx])
            assert await first.release()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await eventually(lambda: second.leading, what="take-over after release")
            assert loop.time() - t0 < 0.9, "the standby waited for expiry instead of the release"
            lease = await ka.get_lease(NS, "kserve-warden")
            assert lease_holder(lease)[0] == second.config.identity
            assert int(lease["spec"]["leaseTransitions"]) == transitions + 1
        finally:
            for t in tasks:
                await stop_task(t)
        assert dog.both == 0 and dog.samples > 100
        assert started[:2] == [first.config.identity, second.config.identity]


async def test_a_crashed_leader_is_replaced_after_the_lease_expires(server: ApiServer) -> None:
    async with electors(server, "a", "b") as pair:
        (a, _), (b, _) = pair
        ta = asyncio.create_task(a.run())
        await eventually(lambda: a.leading, what="a leads")
        tb = asyncio.create_task(b.run())
        try:
            await asyncio.sleep(0.3)
            assert not b.leading
            await stop_task(ta)  # no release: a crash
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await eventually(lambda: b.leading, timeout=5, what="take-over after expiry")
            assert loop.time() - t0 >= 0.5, "took a lease that had not expired"
        finally:
            await stop_task(ta)
            await stop_task(tb)


async def test_racing_candidates_one_wins_by_resource_version(server: ApiServer) -> None:
    async with electors(server, "a", "b", "c") as trio:
        results = await asyncio.gather(*(e.try_acquire_or_renew() for e, _ in trio))
        assert sum(results) == 1, results


async def test_leader_steps_down_when_it_cannot_renew(server: ApiServer) -> None:
    stopped: list[bool] = []
    async with electors(server, "a") as one:
        (a, _), = one
        a._on_stop = lambda: stopped.append(True)
        task = asyncio.create_task(a.run())
        try:
            await eventually(lambda: a.leading, what="a leads")
            server.faults.fail_next(50, status=500, resource="leases")
            await eventually(lambda: not a.leading, timeout=5, what="step down")
            assert stopped == [True]
            server.faults.clear()
            await eventually(lambda: a.leading, timeout=5, what="leads again after the API recovers")
        finally:
            await stop_task(task)
