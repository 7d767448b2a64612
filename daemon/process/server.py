"""The daemon's one HTTP port: ``/metrics``, ``/healthz`` and ``/readyz``.

Like controller-runtime's manager, the daemon serves metrics and both health endpoints from
one small server so a Deployment needs one ``containerPort`` and one probe config:

- ``/metrics``: Prometheus text exposition of the registry passed in (the one built in
  ``main``, never the global one). A scraper that asks for OpenMetrics in ``Accept`` gets
  it (prometheus_client already speaks both; choosing costs nothing).
- ``/healthz`` (liveness): 200 while the reconcile loop is alive, judged by a heartbeat the
  loop writes into :class:`HealthState`. When the heartbeat is older than the threshold the
  loop is wedged, the answer is 503 with the reason in JSON, and the kubelet restarts us.
- ``/readyz`` (readiness): 200 while the informer caches are synced *and current* and the
  configuration is valid; 503 naming each missing condition and why. "Current" is judged by
  the check the loop registers (:meth:`HealthState.watch_caches`, the informer's
  :meth:`~daemon.kube.informer.Informer.stale` with ``kube.cache_stale_seconds``): every watch
  connected, or heard from within the bound. Synced once is not enough: with the API
  unreachable for longer than the bound the caches are stale and the answer is 503 with the
  streams and their last error (so Kubernetes takes the replica out, and the ``no leader`` /
  ``daemon absent`` alerts, which read ``up`` and the leader gauge, see it). Leadership is
  reported but is *not* a readiness condition: every replica observes and serves metrics,
  only the leader acts.

:class:`HealthState` takes its clock as a callable so tests move time by hand instead of
sleeping. The loop and the handlers run on one event loop, so plain attributes suffice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

DEFAULT_HEARTBEAT_TIMEOUT = 60.0
"""Seconds without a heartbeat before ``/healthz`` fails (several resync periods)."""

SYNCED = "caches-synced"
CURRENT = "caches-current"
CONFIG_VALID = "config-valid"


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """One health answer: ok or not, and the JSON body explaining it."""

    ok: bool
    body: dict[str, Any]


class HealthState:
    """What the loop reports about itself; what ``/healthz`` and ``/readyz`` read."""

    def __init__(
        self, *, clock: Callable[[], float], heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT
    ) -> None:
        if heartbeat_timeout <= 0:
            raise ValueError(f"heartbeat_timeout must be positive, got {heartbeat_timeout}")
        self._clock = clock
        self.heartbeat_timeout = heartbeat_timeout
        # Counting from creation gives the loop one full timeout to start, like a
        # liveness probe's initialDelaySeconds, instead of failing before the first beat.
        self._last_beat = clock()
        self._beats = 0
        self._synced = False
        self._config_valid = False
        self._leader = False
        self._stale: Callable[[], list[str]] = list

    def watch_caches(self, stale: Callable[[], list[str]]) -> None:
        """``stale()`` names what is not current (empty: all current); read on each ``/readyz``."""
        self._stale = stale

    def beat(self, now: float) -> None:
        """The loop is alive at ``now`` (same clock as the one passed in)."""
        self._last_beat = max(self._last_beat, now)
        self._beats += 1

    def set_synced(self, synced: bool) -> None:
        self._synced = synced

    def set_config_valid(self, valid: bool) -> None:
        self._config_valid = valid

    def set_leader(self, leader: bool) -> None:
        self._leader = leader

    @property
    def leader(self) -> bool:
        return self._leader

    def liveness(self) -> Verdict:
        age = max(0.0, self._clock() - self._last_beat)
        body: dict[str, Any] = {
            "heartbeat_age_seconds": round(age, 3),
            "heartbeat_timeout_seconds": self.heartbeat_timeout,
            "beats": self._beats,
        }
        if age > self.heartbeat_timeout:
            what = "loop heartbeat" if self._beats else "no loop heartbeat since start"
            body |= {
                "status": "stale",
                "reason": f"{what}: {age:.1f} s old, threshold {self.heartbeat_timeout:.1f} s",
            }
            return Verdict(ok=False, body=body)
        return Verdict(ok=True, body={"status": "ok", **body})

    def readiness(self) -> Verdict:
        stale = self._stale() if self._synced else []
        conditions = {SYNCED: self._synced, CURRENT: not stale,
                      CONFIG_VALID: self._config_valid}
        missing = [name for name, met in conditions.items() if not met]
        body: dict[str, Any] = {
            "status": "not-ready" if missing else "ready",
            "conditions": conditions,
            "leader": self._leader,
        }
        if missing:
            body["missing"] = missing
            body["reason"] = "waiting for: " + ", ".join(missing)
            if stale:
                body["stale"] = stale
                body["reason"] += f"; caches not current: {'; '.join(stale[:5])}"
        return Verdict(ok=not missing, body=body)


def _json(verdict: Verdict) -> web.Response:
    return web.Response(
        status=200 if verdict.ok else 503,
        text=json.dumps(verdict.body, sort_keys=True),
        content_type="application/json",
        # Health answers must never be served from a cache.
        headers={"Cache-Control": "no-store"},
    )


class HealthServer:
    """One aiohttp server for metrics and health; ``port=0`` picks a free port."""

    def __init__(self, *, host: str, port: int, registry: CollectorRegistry, health: HealthState) -> None:
        self._host = host
        self._port = port
        self._registry = registry
        self._health = health
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        return app

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        # Building the text walks every family; small enough to do inline on the loop.
        return web.Response(body=encoder(self._registry), headers={"Content-Type": content_type})

    async def _healthz(self, request: web.Request) -> web.Response:
        return _json(self._health.liveness())

    async def _readyz(self, request: web.Request) -> web.Response:
        return _json(self._health.readiness())

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("HealthServer already started")
        # access_log=None: kubelet probes every few seconds would drown the JSON log.
        # shutdown_timeout bounds stop() so a scrape in flight cannot hold up SIGTERM handling.
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        # With port 0 the OS picked the port: read it back from the bound socket.
        self._bound_port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError("HealthServer not started")
        return self._bound_port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"
