"""Lease-based leader election against the sandbox API: one leader at a time, fast hand-over."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable

import pytest
from kubernetes_asyncio import client

from daemon.kube.effects import Kube
from daemon.kube.leader import LeaderElector, LeaseConfig, lease_holder
from sandbox.apiserver import ApiServer
from sandbox.realcp import ControlPlane
from tests.integration.control_planes import CONTROL_PLANES, kube_on
from tests.integration.daemon_fixtures import api_server, eventually, kube_for, stop_task

NS = "kserve-warden"


def config(identity: str, *, lease_duration: float = 1.0) -> LeaseConfig:
    return LeaseConfig(namespace=NS, name="kserve-warden", identity=identity, lease_duration=lease_duration,
                       renew_deadline=0.6 * lease_duration, retry_period=0.1)


NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}
Server = ApiServer | ControlPlane


@pytest.fixture
async def standin() -> AsyncIterator[ApiServer]:
    """The stand-in alone: for the test that needs its fault hooks."""
    async with api_server() as s, kube_for(s.url) as k:
        await k.apply(NAMESPACE, dry_run=False)
        yield s


@pytest.fixture(params=CONTROL_PLANES)
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    """The stand-in, or the session's real control plane with no Lease left from a previous test."""
    if request.param == "embedded":
        async with api_server() as s, kube_for(s.url) as k:
            await k.apply(NAMESPACE, dry_run=False)
            yield s
        return
    cp: ControlPlane = request.getfixturevalue("real_control_plane")
    async with kube_on(cp) as k:
        await k.apply(NAMESPACE, dry_run=False)
        with contextlib.suppress(client.ApiException):
            await client.CoordinationV1Api(k.api).delete_namespaced_lease("kserve-warden", NS)
        yield cp


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
async def electors(server: Server, *names: str, lease_duration: float = 1.0,
                   on_start: Callable[[str], None] | None = None,
                   on_stop: Callable[[str], None] | None = None,
                   ) -> AsyncIterator[list[tuple[LeaderElector, Kube]]]:
    """One elector per name, each with its own client; callbacks get the elector's name."""
    async with contextlib.AsyncExitStack() as stack:
        out = []
        for n in names:
            kube = await stack.enter_async_context(kube_on(server))
            elector = LeaderElector(
                kube, config(n, lease_duration=lease_duration),
                on_started_leading=None if on_start is None else functools.partial(on_start, n),
                on_stopped_leading=None if on_stop is None else functools.partial(on_stop, n),
            )
            out.append((elector, kube))
        yield out


async def test_two_electors_never_lead_at_once_and_hand_over_on_release(server: Server) -> None:
    started: list[str] = []
    async with electors(server, "a", "b", on_start=started.append) as pair:
        (a, ka), (b, _) = pair
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

            # Graceful hand-over: stop and release; the other takes over (that it does so without
            # waiting the lease out is test_release_hands_over_long_before_the_lease_would_expire).
            idx = 0 if first is a else 1
            await stop_task(tasks[idx])
            assert await first.release()
            await eventually(lambda: second.leading, what="take-over after release")
            lease = await ka.get_lease(NS, "kserve-warden")
            assert lease_holder(lease)[0] == second.config.identity
            assert int(lease["spec"]["leaseTransitions"]) == transitions + 1
        finally:
            for t in tasks:
                await stop_task(t)
        assert dog.both == 0 and dog.samples > 100
        assert started[:2] == [first.config.identity, second.config.identity]


async def test_release_hands_over_long_before_the_lease_would_expire(server: Server) -> None:
    # A lease far longer than `eventually`'s timeout: a standby that waited for expiry instead of
    # noticing the release would fail the wait, so no wall-clock assertion is needed.
    async with electors(server, "a", "b", lease_duration=60.0) as pair:
        (a, _), (b, _) = pair
        ta = asyncio.create_task(a.run())
        tb: asyncio.Task[None] | None = None
        try:
            await eventually(lambda: a.leading, what="a leads")
            tb = asyncio.create_task(b.run())
            await stop_task(ta)
            assert await a.release()
            await eventually(lambda: b.leading, timeout=5, what="take-over after release")
        finally:
            await stop_task(ta)
            await stop_task(tb)


async def test_a_crashed_leader_is_replaced_after_the_lease_expires(server: Server) -> None:
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


async def test_racing_candidates_one_wins_by_resource_version(server: Server) -> None:
    async with electors(server, "a", "b", "c") as trio:
        results = await asyncio.gather(*(e.try_acquire_or_renew() for e, _ in trio))
        assert sum(results) == 1, results


async def test_leader_steps_down_when_it_cannot_renew(standin: ApiServer) -> None:
    server = standin  # the stand-in's fault hooks make the API fail
    stopped: list[bool] = []
    async with electors(server, "a", on_stop=lambda _name: stopped.append(True)) as one:
        (a, _), = one
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
