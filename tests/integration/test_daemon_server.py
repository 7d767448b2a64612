"""The daemon's HTTP port over a real socket: /metrics (checked by promtool), /healthz, /readyz.

Time is a list the test moves by hand (``HealthState`` takes its clock as a callable), so the
stale-heartbeat transition needs no sleeping.

No API server is involved (the health state is set by hand), so these tests run once, on
neither control plane: there is no stand-in answer here that the real server could contradict.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from daemon.core.findings import Code, Finding, Severity
from daemon.core.objects import ObjectRef
from daemon.process.metrics import WardenMetrics
from daemon.process.server import HealthServer, HealthState
from probes.observation import Observation
from tests.conftest import ROOT, find_tool

ISVC = ObjectRef(api_version="serving.kserve.io/v1beta1", kind="InferenceService",
                 namespace="user-example-com", name="iris-model")


class Clock:
    def __init__(self, start: float = 10_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    server: HealthServer
    health: HealthState
    clock: Clock
    metrics: WardenMetrics
    session: aiohttp.ClientSession

    async def get(self, path: str, **headers: str) -> tuple[int, str, str]:
        async with self.session.get(self.server.url + path, headers=headers) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.text()

    async def get_json(self, path: str) -> tuple[int, dict[str, object]]:
        async with self.session.get(self.server.url + path) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    registry = CollectorRegistry()
    metrics = WardenMetrics(registry, version="0.1.0")
    clock = Clock()
    health = HealthState(clock=clock, heartbeat_timeout=30.0)
    server = HealthServer(host="127.0.0.1", port=0, registry=registry, health=health)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Served(server, health, clock, metrics, session)
    finally:
        await server.stop()


def _populate(m: WardenMetrics) -> None:
    now = time.time()
    m.record_probe(Observation(probe="predictor", target="user-example-com/iris-model", started=now,
                               finished=now + 0.05, ok=False, outcome="wrong-model"))
    m.record_probe(Observation(probe="dns", target="istiod.istio-system.svc", started=now,
                               finished=now + 0.01, ok=True, outcome="ok",
                               details={"latencies": [0.0004, 0.0011]}))
    m.set_findings([Finding(code=Code.WRONG_MODEL, severity=Severity.CRITICAL, subject=ISVC, evidence=(),
                            explanation="", remedy="")])
    m.remediation(action="restart-coredns", result="success")
    m.remediation_held(action="restart-coredns", verdict="budget")
    m.set_leader(True)
    m.observe_reconcile(0.003)
    m.mark_success(loop="reconcile", now=now)
    m.observe_heal(code="drift", seconds=0.4)
    m.api_error(code=500)


async def test_metrics_text_passes_promtool(served: Served) -> None:
    _populate(served.metrics)
    status, content_type, body = await served.get("/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    assert 'warden_probe_success{probe="predictor",target="user-example-com/iris-model"} 0.0' in body
    assert ('warden_findings{code="wrong-model",inferenceservice="iris-model",namespace="user-example-com",'
            'severity="critical"} 1.0') in body
    assert "warden_leader 1.0" in body
    # Only the registry passed in: nothing from prometheus_client's global one.
    assert "python_gc_objects_collected_total" not in body
    assert "process_cpu_seconds_total" not in body

    promtool = find_tool("promtool")
    proc = await asyncio.create_subprocess_exec(
        promtool, "check", "metrics",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(body.encode())
    assert proc.returncode == 0, out.decode()
    assert out.decode().strip() == "", out.decode()  # no lint complaints either


async def test_metrics_honours_openmetrics_accept(served: Served) -> None:
    _populate(served.metrics)
    status, content_type, body = await served.get(
        "/metrics", Accept="application/openmetrics-text; version=1.0.0,text/plain;q=0.5"
    )
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")
    names = {f.name for f in text_string_to_metric_families(
        (await served.get("/metrics"))[2])}
    assert "warden_remediations" in names  # counter family name as the text parser reports it
    assert 'warden_remediations_total{action="restart-coredns",result="success"} 1.0' in body


async def test_healthz_goes_stale_and_recovers(served: Served) -> None:
    status, body = await served.get_json("/healthz")
    assert status == 200 and body["status"] == "ok"

    # Within the threshold since start, even before the first beat.
    served.clock.now += 29.0
    assert (await served.get_json("/healthz"))[0] == 200

    served.clock.now += 2.0
    status, body = await served.get_json("/healthz")
    assert status == 503
    assert body["status"] == "stale"
    assert body["reason"] == "no loop heartbeat since start: 31.0 s old, threshold 30.0 s"

    served.health.beat(served.clock.now)
    status, body = await served.get_json("/healthz")
    assert status == 200 and body["beats"] == 1

    served.clock.now += 45.0
    status, body = await served.get_json("/healthz")
    assert status == 503
    assert body["reason"] == "loop heartbeat: 45.0 s old, threshold 30.0 s"
    assert body["heartbeat_age_seconds"] == 45.0


async def test_readyz_names_each_missing_condition(served: Served) -> None:
    status, body = await served.get_json("/readyz")
    assert status == 503
    assert body["missing"] == ["caches-synced", "config-valid"]

    served.health.set_config_valid(True)
    status, body = await served.get_json("/readyz")
    assert status == 503
    assert body["missing"] == ["caches-synced"]
    assert body["reason"] == "waiting for: caches-synced"

    served.health.set_synced(True)
    status, body = await served.get_json("/readyz")
    assert status == 200
    assert body["status"] == "ready" and body["leader"] is False

    # Leadership is reported, never required: followers are ready too.
    served.health.set_leader(True)
    assert (await served.get_json("/readyz"))[1]["leader"] is True

    # A relist after a 410 unsyncs the caches: not ready again until synced.
    served.health.set_synced(False)
    status, body = await served.get_json("/readyz")
    assert status == 503 and body["missing"] == ["caches-synced"]


async def test_unknown_path_and_method(served: Served) -> None:
    assert (await served.get("/nope"))[0] == 404
    async with served.session.post(served.server.url + "/metrics") as resp:
        assert resp.status == 405


async def test_stop_releases_the_port() -> None:
    registry = CollectorRegistry()
    server = HealthServer(host="127.0.0.1", port=0, registry=registry,
                          health=HealthState(clock=time.monotonic))
    await server.start()
    url = server.url
    with pytest.raises(RuntimeError, match="already started"):
        await server.start()
    await server.stop()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(url + "/healthz"):
                pass
    await server.stop()  # idempotent


async def test_the_daemons_registry_has_process_metrics_and_no_created_series() -> None:
    """What ``run`` serves (``daemon_registry`` + ``configure_exposition``, as ``run_command``
    calls them), in a process of its own: the ``_created`` switch is process-wide."""
    code = (
        "from prometheus_client import generate_latest\n"
        "from daemon.process.metrics import WardenMetrics, configure_exposition, daemon_registry\n"
        "configure_exposition()\n"
        "r = daemon_registry()\n"
        "m = WardenMetrics(r)\n"
        "m.remediation(action='restart-coredns', result='success')\n"
        "m.observe_reconcile(0.01)\n"
        "print(generate_latest(r).decode())\n"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    names = {f.name for f in text_string_to_metric_families(out.decode())}
    assert {"process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds",
            "python_info", "python_gc_objects_collected"} <= names, sorted(names)
    assert not [n for n in names if n.endswith("_created")], sorted(names)
    assert 'warden_remediations_total{action="restart-coredns",result="success"} 1.0' in out.decode()
