"""Faults of the control plane and of the daemon itself, and how the daemon recovers from each.

Issue 23's fault-injection suite, on the real control plane (etcd, kube-apiserver and
kube-controller-manager supervised as a kubelet supervises static pods:
:mod:`sandbox.realcp.supervise`). ``tests/integration/test_real_faults.py`` asserts on what
:meth:`FaultRig.run` returns; ``bench/faults.py`` prints it as a table. One driver, so the test
and the figures cannot drift apart.

The rig: a :class:`~sandbox.Sandbox` on the real control plane and **two** ``kserve-warden run``
subprocesses with leader election, as ``config/deploy`` runs them (two replicas, one Lease), with
the sandbox's settings except the per-target back-off (``backoff_initial_seconds: 0``): a repeat
action then goes out at once, so a duplicate would show rather than be held back by the guard,
and the figures measure recovery, not the guard. Each daemon is watched from the outside only:
its log lines, its ``/metrics``, what it writes to the API.

One run of a fault (:meth:`FaultRig.run`):

1. wait for a settled world: one leader, no active finding on its ``/metrics``, the predictor
   answering the canary through its InferenceService's address;
2. the fault — :data:`FAULTS`:

   * ``kube-apiserver-restart``: kube-apiserver restarted as a kubelet restarts a static pod —
     SIGTERM, SIGKILL after ``restart_grace`` s (the pod's grace period; the kubelet's default
     is 30 s, and kube-apiserver with watches open takes 60 s to exit on SIGTERM; it stops
     listening at once) — and the supervisor starts it again;
   * ``etcd-sigkill``: SIGKILL to etcd; the supervisor starts it again;
   * ``api-outage``: kube-apiserver stopped for ``outage_seconds`` (60 by default) from its
     SIGTERM, then started again (the static pod's manifest taken away and put back);
   * ``leader-sigkill``: SIGKILL to the daemon holding the Lease (it releases nothing);

3. the seed's first failure injected (the ServingRuntime deleted, ``no-serving-runtime``) as
   soon as the API answers again (``/readyz`` 200) — for the leader's SIGKILL, at once, while
   the Lease is still the dead leader's;
4. **heal**: the ServingRuntime back, read through the API (polled every 20 ms), in seconds from
   the reference — the API answering again, or the SIGKILL;
5. settled again; then every ``acted`` log line of both daemons since the fault is collected, and
   the Events recording an action with reason ``no-serving-runtime`` since (their counts summed).

Budgets (issue 23): heal ≤ 5 s after the API is back; failover ≤ lease duration + 2 s.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from sandbox.cluster import Sandbox
from sandbox.demo.run import DaemonProcess, Demo, active_findings, free_port, scrape_metrics
from sandbox.realcp import ControlPlane, RealApi

__all__ = ["FAULTS", "SEED", "FaultRig", "Recovery"]

FAULTS = ("kube-apiserver-restart", "etcd-sigkill", "api-outage", "leader-sigkill")
SEED = "no-serving-runtime"
"""The seed failure injected with each fault (its finding code has the same name)."""
RUNTIME = "/apis/serving.kserve.io/v1alpha1/namespaces/user-example-com/servingruntimes/iris-fastapi-runtime"
HEAL_BUDGET = 5.0
FAILOVER_SLACK = 2.0
SETTLE_TIMEOUT = 90.0
RECOVER_TIMEOUT = 120.0
POLL = 0.02


@dataclass(frozen=True, kw_only=True)
class Recovery:
    """What one fault cost, read from outside the daemons."""

    fault: str
    down: float
    """Seconds from the fault to the reference: the API answering again (``/readyz`` 200), or 0
    for the leader's SIGKILL (the API never went away)."""
    heal: float
    """Seconds from the reference to the ServingRuntime back in the API."""
    budget: float
    actions: tuple[dict[str, Any], ...]
    """Every ``acted`` log line of both daemons since the fault, with the daemon's name as ``by``."""
    events: int
    """Action records among the Events with reason :data:`SEED` since the fault (summed ``count``)."""
    leader_before: str
    leader_after: str

    @property
    def within_budget(self) -> bool:
        return self.heal <= self.budget


async def until(cond: Callable[[], Awaitable[bool]], *, timeout: float, what: str) -> float:
    """Poll ``cond`` every :data:`POLL` s; the seconds it took, or TimeoutError naming ``what``."""
    t0 = time.monotonic()
    while not await cond():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(POLL)
    return time.monotonic() - t0


class FaultRig:
    """The sandbox, its control plane, two daemons; :meth:`run` one fault at a time."""

    def __init__(self, *, sb: Sandbox, workdir: Path, outage_seconds: float = 60.0,
                 restart_grace: float = 30.0, leader_election: dict[str, Any] | None = None) -> None:
        if not isinstance(sb.apiserver, RealApi):
            raise ValueError("the fault rig needs the sandbox on the real control plane")
        self.sb = sb
        self.cp: ControlPlane = sb.apiserver.cp
        self.workdir = workdir
        self.outage_seconds = outage_seconds
        self.restart_grace = restart_grace
        self.config = workdir / "warden.yaml"
        cfg = sb.warden_config()
        cfg["remediation"] = {**cfg["remediation"], "backoff_initial_seconds": 0}
        cfg["leader_election"] = {**cfg.get("leader_election", {}), **(leader_election or {})}
        self.lease_duration = float(cfg["leader_election"].get("lease_duration_seconds", 15))
        workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        self.daemons: list[DaemonProcess] = []
        self._started = 0
        self._session: aiohttp.ClientSession | None = None
        self._demo = Demo(scenarios=(), as_json=True, keep=False)  # its canary check, reused

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(headers=self.sb.api_auth_headers(),
                                              connector=aiohttp.TCPConnector(ssl=self.sb.api_ssl()))
        for _ in range(2):
            await self._start_daemon()
        await until(self.settled, timeout=SETTLE_TIMEOUT, what="a settled world with a leader")

    async def stop(self) -> None:
        for d in self.daemons:
            await d.stop()
        self.daemons = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> FaultRig:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _start_daemon(self) -> DaemonProcess:
        self._started += 1
        name = f"warden-{self._started}"
        d = DaemonProcess(config=self.config, kubeconfig=self.sb.kubeconfig_path, metrics_port=free_port(),
                          log_path=self.workdir / f"{name}.log", name=name)
        await d.start()
        self.daemons.append(d)
        return d

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "FaultRig is not started"
        return self._session

    # -- reading the world from outside --------------------------------------------------------

    async def _metrics(self, d: DaemonProcess) -> dict[Any, float] | None:
        if d.exited is not None:
            return None
        try:
            return dict(await scrape_metrics(self.session, d.metrics_url))
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def leader(self) -> DaemonProcess | None:
        """The one daemon whose ``warden_leader`` is 1 (None: none, or more than one)."""
        leaders = []
        for d in self.daemons:
            m = await self._metrics(d)
            if m is not None and m.get(("warden_leader", ())) == 1.0:
                leaders.append(d)
        return leaders[0] if len(leaders) == 1 else None

    async def settled(self) -> bool:
        leader = await self.leader()
        if leader is None or self.sb.dns.degraded:
            return False
        m = await self._metrics(leader)
        if m is None or active_findings(m):
            return False
        proxy = self.sb.clusternet.url if self.sb.clusternet is not None else None
        return await self._demo.canary_ok(self.session, self.sb.api_url, proxy=proxy)

    async def runtime_present(self) -> bool:
        try:
            timeout = aiohttp.ClientTimeout(total=2)
            async with self.session.get(self.sb.api_url + RUNTIME, timeout=timeout) as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def seed_events(self) -> int:
        """The action records among kserve-warden's Events with reason :data:`SEED` (``Normal``,
        "kserve-warden apply (...)"; not the "resolved after" one), their counts summed."""
        async with self.session.get(self.sb.api_url + "/api/v1/events",
                                    timeout=aiohttp.ClientTimeout(total=5)) as r:
            r.raise_for_status()
            items = (await r.json()).get("items") or []
        return sum(int(e.get("count") or 1) for e in items
                   if (e.get("source") or {}).get("component") == "kserve-warden"
                   and e.get("reason") == SEED and e.get("type") == "Normal"
                   and str(e.get("message") or "").startswith("kserve-warden "))

    # -- the faults --------------------------------------------------------------------------------

    async def _restart(self, name: str) -> None:
        if name == "etcd":
            before = await self.cp.kill(name, signal.SIGKILL)
        else:
            before = await self.cp.restart(name, grace=self.restart_grace)
        await self.cp.restarted(name, after=before, timeout=RECOVER_TIMEOUT)

    async def _outage(self) -> None:
        # Counted from the SIGTERM: kube-apiserver stops listening at once, though with watches
        # open it takes up to a minute to exit (the supervision SIGKILLs it after its grace).
        t0 = time.monotonic()
        await self.cp.suspend("kube-apiserver")
        try:
            # The outage itself: nothing to wait for.
            await asyncio.sleep(max(0.0, self.outage_seconds - (time.monotonic() - t0)))
        finally:
            await self.cp.resume("kube-apiserver")

    async def run(self, fault: str) -> Recovery:
        """One fault, the seed failure after it, the recovery measured (see the module docstring)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(FAULTS)}")
        await until(self.settled, timeout=SETTLE_TIMEOUT, what=f"a settled world before {fault}")
        leader = await self.leader()
        assert leader is not None and leader.name is not None
        marks = {id(d): len(d.lines) for d in self.daemons}
        events_before = await self.seed_events()
        watched = list(self.daemons)
        t0 = time.monotonic()
        if fault == "kube-apiserver-restart":
            await self._restart("kube-apiserver")
        elif fault == "etcd-sigkill":
            await self._restart("etcd")
        elif fault == "api-outage":
            await self._outage()
        else:
            await leader.kill()
        ref = time.monotonic()
        await self.sb.inject(SEED)
        try:
            await until(self.runtime_present, timeout=RECOVER_TIMEOUT, what=f"{SEED} healed after {fault}")
        except TimeoutError:
            await self.sb.undo(SEED)  # the next run starts clean
            raise
        heal = time.monotonic() - ref
        if fault == "leader-sigkill":
            self.daemons.remove(leader)
            await self._start_daemon()  # two replicas again, as the Deployment would have it
        await until(self.settled, timeout=SETTLE_TIMEOUT, what=f"a settled world after {fault}")
        new_leader = await self.leader()
        assert new_leader is not None and new_leader.name is not None  # settled: exactly one
        actions = tuple({**line, "by": d.name} for d in watched
                        for line in d.all(marks[id(d)], event="acted"))
        budget = self.lease_duration + FAILOVER_SLACK if fault == "leader-sigkill" else HEAL_BUDGET
        return Recovery(fault=fault, down=ref - t0, heal=heal, budget=budget, actions=actions,
                        events=await self.seed_events() - events_before, leader_before=leader.name,
                        leader_after=new_leader.name)

