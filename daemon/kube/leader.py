"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection`` does it.

Every replica observes, diagnoses and serves metrics; only the holder of the Lease acts. The
protocol, and why each part is there:

* The Lease records ``holderIdentity``, ``leaseDurationSeconds``, ``acquireTime``,
  ``renewTime`` and ``leaseTransitions``. Every write is a PUT carrying the resourceVersion we
  read (optimistic concurrency): two candidates racing for an expired Lease both PUT, the API
  server accepts one and answers the other **409** — at most one leader per resourceVersion.
* A candidate takes the Lease only when it is free (no holder) or *expired*. "Expired" is
  judged on **our own clock**: the Lease counts as alive for ``leaseDurationSeconds`` after we
  last *saw its record change*, not after its ``renewTime`` (another node's clock). A skewed
  clock elsewhere therefore cannot make us steal a live Lease.
* The leader renews every ``retry_period``; if it has not renewed successfully for
  ``renew_deadline`` (< lease duration) it **stops leading first** and only then retries, so
  it has stepped down before anyone else may consider the Lease expired.
* On shutdown the leader **releases**: clears ``holderIdentity`` (and shortens the duration),
  so a standby takes over at once instead of waiting a whole lease duration. Only a Lease whose
  last record we saw names us is released (client-go's ``IsLeader`` check): a replica that never
  held it — ``run --once`` against an API that never answered — spends no request on it.

Callbacks (``on_started_leading`` / ``on_stopped_leading``) are plain functions: the loop flips
its "may act" flag and the ``warden_leader`` gauge in them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daemon.core.errors import ConflictError, KubeError, NotFoundError
from daemon.core.logs import get_logger
from daemon.core.settings import LeaderElectionSettings
from daemon.core.timestamps import parse_time, rfc3339_micro
from daemon.kube.effects import Kube

log = get_logger("leader")


_DEFAULTS = LeaderElectionSettings()


@dataclass(frozen=True, kw_only=True)
class LeaseConfig:
    """One replica's campaign; the timing defaults are the settings' (controller-runtime's)."""

    namespace: str
    name: str
    identity: str
    lease_duration: float = _DEFAULTS.lease_duration_seconds
    renew_deadline: float = _DEFAULTS.renew_deadline_seconds
    retry_period: float = _DEFAULTS.retry_period_seconds


class LeaderElector:
    """Campaign for, hold, and release one Lease. ``run()`` until cancelled, then ``release()``."""

    def __init__(self, kube: Kube, config: LeaseConfig, *,
                 on_started_leading: Callable[[], None] | None = None,
                 on_stopped_leading: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        self.kube = kube
        self.config = config
        self._on_start = on_started_leading
        self._on_stop = on_stopped_leading
        self.clock = clock
        self.wall = wall
        self.rng = rng or random.Random()
        self.leading = False
        self.transitions_seen = 0
        self._observed: tuple[str, str, str] | None = None  # (holder, renewTime, rv) last seen
        self._observed_at = 0.0
        self._last_renew = 0.0
        self._lease: dict[str, Any] | None = None
        self.became_leader = asyncio.Event()

    # -- one attempt ----------------------------------------------------------------------

    def _spec(self, *, acquire: bool, transitions: int, now_wall: float,
              acquired_at: str | None) -> dict[str, Any]:
        c = self.config
        stamp = rfc3339_micro(now_wall)
        return {
            "holderIdentity": c.identity,
            "leaseDurationSeconds": max(1, round(c.lease_duration)),
            "acquireTime": stamp if acquire or not acquired_at else acquired_at,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        }

    async def try_acquire_or_renew(self) -> bool:
        """One round: True if we hold the Lease afterwards."""
        c = self.config
        now = self.clock()
        try:
            lease = await self.kube.get_lease(c.namespace, c.name)
        except NotFoundError:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": c.name, "namespace": c.namespace},
                    "spec": self._spec(acquire=True, transitions=0, now_wall=self.wall(), acquired_at=None)}
            try:
                self._lease = await self.kube.create_lease(c.namespace, body)
            except ConflictError:
                return False  # someone created it first
            self._observe(self._lease, now)
            return True
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        record = (holder, str(spec.get("renewTime") or ""),
                  str((lease.get("metadata") or {}).get("resourceVersion") or ""))
        if record[:2] != (self._observed or ("", "", ""))[:2]:
            self._observed = record
            self._observed_at = now
        duration = float(spec.get("leaseDurationSeconds") or c.lease_duration)
        if holder and holder != c.identity and self._observed_at + duration > now:
            return False  # held by someone else and not expired (on our clock)
        transitions = int(spec.get("leaseTransitions") or 0)
        taking = holder != c.identity
        new = dict(lease)
        new["spec"] = self._spec(acquire=taking, transitions=transitions + 1 if taking else transitions,
                                 now_wall=self.wall(), acquired_at=str(spec.get("acquireTime") or "") or None)
        try:
            self._lease = await self.kube.replace_lease(c.namespace, c.name, new)
        except ConflictError:
            return False  # lost the race: someone else wrote the Lease since we read it
        self._observe(self._lease, now)
        return True

    def _observe(self, lease: dict[str, Any], now: float) -> None:
        spec = lease.get("spec") or {}
        self._observed = (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""),
                          str((lease.get("metadata") or {}).get("resourceVersion") or ""))
        self._observed_at = now

    # -- the campaign ---------------------------------------------------------------------

    def _jittered(self, period: float) -> float:
        return period * (1.0 + self.rng.uniform(0.0, 0.2))

    async def run(self) -> None:
        """Acquire, hold, and on losing the Lease go back to campaigning; until cancelled."""
        c = self.config
        try:
            while True:
                # Campaign.
                while True:
                    try:
                        if await self.try_acquire_or_renew():
                            break
                    except KubeError as err:
                        log.warning("lease acquire failed", error=str(err), lease=f"{c.namespace}/{c.name}")
                    await asyncio.sleep(self._jittered(c.retry_period))
                self._last_renew = self.clock()
                self._set_leading(True)
                # Hold: renew every retry_period; step down if the deadline passes.
                while True:
                    await asyncio.sleep(c.retry_period)
                    ok = False
                    try:
                        left = c.renew_deadline - (self.clock() - self._last_renew)
                        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that
                        # lands as the renew finishes, and this loop would outlive SIGTERM.
                        async with asyncio.timeout(max(0.1, left)):
                            ok = await self.try_acquire_or_renew()
                    except (KubeError, TimeoutError) as err:
                        log.warning("lease renew failed", error=str(err) or type(err).__name__)
                    if ok:
                        self._last_renew = self.clock()
                        continue
                    if self.clock() - self._last_renew >= c.renew_deadline or not await self._still_ours():
                        log.warning("lost the lease", lease=f"{c.namespace}/{c.name}", identity=c.identity)
                        self._set_leading(False)
                        break
        finally:
            if self.leading:
                self._set_leading(False)

    async def _still_ours(self) -> bool:
        """After a failed renew: is the Lease still ours (a transient failure) or taken?"""
        try:
            lease = await self.kube.get_lease(self.config.namespace, self.config.name)
        except KubeError:
            return True  # cannot tell; the renew deadline decides
        return str((lease.get("spec") or {}).get("holderIdentity") or "") == self.config.identity

    def _set_leading(self, leading: bool) -> None:
        if leading == self.leading:
            return
        self.leading = leading
        c = self.config
        if leading:
            self.transitions_seen += 1
            self.became_leader.set()
            log.info("started leading", lease=f"{c.namespace}/{c.name}", identity=c.identity)
            if self._on_start is not None:
                self._on_start()
        else:
            self.became_leader.clear()
            log.info("stopped leading", lease=f"{c.namespace}/{c.name}", identity=c.identity)
            if self._on_stop is not None:
                self._on_stop()

    @property
    def holds(self) -> bool:
        """Whether the last record of the Lease we read or wrote names us (client-go's
        ``IsLeader``). Only then is there anything to release: a replica that never took the
        Lease (an API that never answered) asks the API nothing on shutdown."""
        return self._observed is not None and self._observed[0] == self.config.identity

    async def release(self) -> bool:
        """Give the Lease up (clear ``holderIdentity``) if we hold it. True if released."""
        c = self.config
        if not self.holds:
            return False
        try:
            lease = await self.kube.get_lease(c.namespace, c.name)
        except KubeError as err:
            log.warning("lease release: cannot read the lease", error=str(err))
            return False
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != c.identity:
            return False
        spec.update({"holderIdentity": "", "leaseDurationSeconds": 1,
                     "renewTime": rfc3339_micro(self.wall())})
        new = dict(lease)
        new["spec"] = spec
        try:
            self._lease = await self.kube.replace_lease(c.namespace, c.name, new)
        except KubeError as err:
            log.warning("lease release failed", error=str(err))
            return False
        self._observe(self._lease, self.clock())  # no longer ours: a second release asks nothing
        if self.leading:
            self._set_leading(False)
        log.info("released the lease", lease=f"{c.namespace}/{c.name}", identity=c.identity)
        return True


def lease_holder(lease: dict[str, Any]) -> tuple[str, float | None]:
    """(holderIdentity, renewTime as Unix seconds) of a Lease object."""
    spec = lease.get("spec") or {}
    return str(spec.get("holderIdentity") or ""), parse_time(spec.get("renewTime"))
