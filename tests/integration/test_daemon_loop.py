"""The reconciler against the sandbox API server: converge, heal, survive faults, never repeat.

Real ``kubernetes_asyncio`` over loopback: a writer client plays the humans and controllers,
the daemon's own objects (informer, reconciler, ledger, metrics) run in-process. Probe
observations are fed in as data where a test needs one (DNS), the rest is live.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from daemon.core.actions import ActionKind
from daemon.core.desired import DesiredState
from daemon.core.ledger import Ledger
from daemon.core.logs import Redactor
from daemon.core.objects import ObjectRef
from daemon.core.resources import resource_for
from daemon.core.settings import Settings
from daemon.kube.effects import RESTARTED_AT, Kube
from daemon.kube.informer import Informer
from daemon.process.config_files import load_desired, load_settings
from daemon.process.loop import LAST_RESTART_ANNOTATION, RESTARTS_ANNOTATION, Reconciler
from daemon.process.metrics import WardenMetrics
from daemon.process.probing import ObservationStore
from daemon.process.server import HealthState
from probes.observation import Observation
from sandbox.apiserver import ApiServer
from tests.conftest import SEED_DESIRED, b64, free_port
from tests.integration.daemon_fixtures import api_server, eventually, kube_for

NS = "user-example-com"
ACCESS = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLE"
SR = ObjectRef(api_version="serving.kserve.io/v1alpha1", kind="ServingRuntime", namespace=NS,
               name="iris-fastapi-runtime")
AP = ObjectRef(api_version="security.istio.io/v1", kind="AuthorizationPolicy", namespace="kubeflow",
               name="minio-user-namespace-access")
SA = ObjectRef(api_version="v1", kind="ServiceAccount", namespace=NS, name="iris-sa")
COREDNS = ObjectRef(api_version="apps/v1", kind="Deployment", namespace="kube-system", name="coredns")



def sample(reg: CollectorRegistry, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` carrying these labels (others, e.g. ``namespace``, any)."""
    return sum(s.value for fam in reg.collect() for s in fam.samples
               if s.name == name and labels.items() <= s.labels.items())


async def seed_world(w: Kube) -> None:
    """The parts of the seed's cluster the desired state builds on."""
    for ns in ("kubeflow", "kserve", "istio-system"):
        await w.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, dry_run=False)
    await w.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": NS, "labels": {"istio-injection": "enabled"}}}, dry_run=False)
    await w.apply({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "mlpipeline-minio-artifact", "namespace": "kubeflow"},
                   "data": {"accesskey": b64(ACCESS), "secretkey": b64(SECRET)}}, dry_run=False)
    await w.apply({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system"},
        "spec": {"selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                 "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                              "spec": {"containers": [{"name": "coredns", "image": "coredns:1.11"}]}}}},
        dry_run=False)


@dataclass
class Running:
    server: ApiServer
    writer: Kube
    kube: Kube
    informer: Informer
    rec: Reconciler
    registry: CollectorRegistry
    store: ObservationStore
    ledger: Ledger
    informer_task: asyncio.Task[None]

    async def idle(self) -> None:
        # Let watch events for our own writes arrive, then drain the queue.
        for _ in range(3):
            await asyncio.sleep(0.05)
            await self.rec.idle(timeout=15)

    def actions(self, kind: str, target: ObjectRef) -> list[str]:
        return [r for k, t, r in self.rec.stats.actions if k == kind and t == str(target)]


def make_settings(**remediation: Any) -> Settings:
    s = load_settings(None, environ={})
    return replace(s, models=(), remediation=replace(s.remediation, **remediation))


@contextlib.asynccontextmanager
async def running(server: ApiServer, *, settings: Settings | None = None, dry_run: bool = False,
                  leading: bool = True, ledger: Ledger | None = None,
                  desired: DesiredState | None = None, act_via: str | None = None) -> AsyncIterator[Running]:
    """The daemon's objects in-process; ``act_via``: a URL the reconciler's writes go through."""
    settings = settings or make_settings()
    async with kube_for(server.url, field_manager="tester") as writer, \
            kube_for(server.url, dry_run=dry_run, redactor=Redactor()) as kube, \
            kube_for(act_via or server.url, dry_run=dry_run, redactor=Redactor()) as acting:
        registry = CollectorRegistry()
        metrics = WardenMetrics(registry)
        kube.on_error = lambda err: metrics.api_error(code=err.status or "unavailable")
        acting.on_error = kube.on_error
        informer = Informer(kube, namespaces={NS, "kubeflow", "kserve", "istio-system", "kube-system"})
        store = ObservationStore()
        ledger = ledger or Ledger()
        rec = Reconciler(settings=settings, desired=desired or load_desired(SEED_DESIRED), kube=acting,
                         informer=informer, metrics=metrics, health=HealthState(clock=time.time),
                         ledger=ledger, observations=store, dry_run=dry_run, leading=leading)
        informer.subscribe(rec.on_change)
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        rec.restore_ledger()
        rec.start()
        try:
            yield Running(server=server, writer=writer, kube=kube, informer=informer, rec=rec,
                          registry=registry, store=store, ledger=ledger, informer_task=task)
        finally:
            await rec.shutdown(deadline=5)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with api_server() as s, kube_for(s.url, field_manager="seed") as w:
        await seed_world(w)
        yield s


async def exists(kube: Kube, ref: ObjectRef) -> bool:
    try:
        await kube.get(ref)
    except Exception:
        return False
    return True


async def test_converges_the_desired_state_once_and_emits_events(server: ApiServer) -> None:
    async with running(server) as r:
        await r.idle()
        for ref in (SR, AP, SA):
            assert await exists(r.writer, ref), ref
        secret = await r.writer.core.read_namespaced_secret("minio-s3-secret", NS)
        assert base64.b64decode(secret.data["AWS_SECRET_ACCESS_KEY"]).decode() == SECRET
        kinds = sorted(k for k, _, res in r.rec.stats.actions if res == "success")
        assert kinds == ["apply", "apply", "apply", "apply", "derive-secret"], r.rec.stats.actions
        # Each object exactly once: no duplicate actions.
        targets = [t for _, t, _ in r.rec.stats.actions]
        assert len(targets) == len(set(targets))
        assert sample(r.registry, "warden_remediations_total", action="apply", result="success") == 4
        assert sample(r.registry, "warden_drift_objects") == 0
        events = (await r.writer.list_objects(resource_for("v1", "Event"))).items
        assert events, "no Events emitted"
        assert all(e["source"]["component"] == "kserve-warden" for e in events)
        reasons = {(e["type"], e["reason"]) for e in events}
        assert ("Warning", "drift") in reasons and ("Normal", "drift") in reasons
        # Quiet afterwards: nothing more to do.
        before = len(r.rec.stats.actions)
        r.rec.queue.add("pass")
        await r.idle()
        assert len(r.rec.stats.actions) == before


FAST = {"backoff_initial_seconds": 0.0, "verify_after_seconds": 0.5}


async def test_heals_a_deleted_runtime_with_one_action(server: ApiServer) -> None:
    async with running(server, settings=make_settings(**FAST)) as r:
        await r.idle()
        assert r.actions("apply", SR) == ["success"]
        # How fast the heal is belongs to bench/heal_latency.py; here: that it happens, once.
        await r.writer.custom.delete_namespaced_custom_object("serving.kserve.io", "v1alpha1", NS,
                                                             "servingruntimes", SR.name)
        await eventually(lambda: len(r.actions("apply", SR)) == 2, what="ServingRuntime re-applied")
        assert await exists(r.writer, SR)
        await r.idle()
        assert r.actions("apply", SR) == ["success", "success"]
        assert sample(r.registry, "warden_findings", code="drift", severity="warning") == 0
        events = (await r.writer.list_objects(resource_for("v1", "Event"))).items
        warned = [e for e in events if e["involvedObject"]["name"] == SR.name and e["type"] == "Warning"]
        # The same finding twice on the same object: one Event, counted twice (like the recorder).
        # From start-up on, the runtime's absence is named as the (desired, then discovered)
        # InferenceService's root cause, which claims the drift: never reported as plain drift.
        assert sorted((e["reason"], e["count"]) for e in warned) == [("no-serving-runtime", 2)]


async def test_api_faults_are_survived_without_duplicate_actions(server: ApiServer) -> None:
    async with running(server, settings=make_settings(**FAST)) as r:
        await r.idle()
        server.faults.fail_next(2, status=500, verb="patch", resource="servingruntimes")
        server.faults.fail_next(1, status=429, retry_after=0.2, verb="patch", resource="servingruntimes")
        server.faults.fail_next(1, reset=True, verb="patch", resource="servingruntimes")
        await r.writer.custom.delete_namespaced_custom_object("serving.kserve.io", "v1alpha1", NS,
                                                             "servingruntimes", SR.name)
        await eventually(lambda: exists(r.writer, SR), timeout=20, what="ServingRuntime back after faults")
        await r.idle()
        assert r.actions("apply", SR) == ["success", "success"], r.rec.stats.actions
        assert sample(r.registry, "warden_api_errors_total", code="500") >= 2
        assert sample(r.registry, "warden_api_errors_total", code="429") >= 1
        # A dropped watch and a compacted history (410) lose nothing either.
        server.faults.fail_next(3, status=500, verb="watch", resource="servingruntimes")
        await server.faults.drop_watches()
        await r.writer.custom.delete_namespaced_custom_object("serving.kserve.io", "v1alpha1", NS,
                                                             "servingruntimes", SR.name)
        server.faults.compact()
        await eventually(lambda: len(r.actions("apply", SR)) == 3, timeout=20, what="heal after 410")
        await r.idle()
        assert r.actions("apply", SR) == ["success"] * 3
        assert r.informer.stats.relists >= 1


async def test_dry_run_writes_nothing(server: ApiServer) -> None:
    revision = server.store.revision
    async with running(server, dry_run=True) as r:
        await r.idle()
        assert server.store.revision == revision, "a dry-run daemon changed the cluster"
        for ref in (SR, AP, SA):
            assert not await exists(r.writer, ref)
        assert sample(r.registry, "warden_remediations_total", action="apply", result="dry-run") >= 4
        assert sample(r.registry, "warden_remediations_total", action="apply", result="success") == 0
        assert (await r.writer.list_objects(resource_for("v1", "Event"))).items == []


async def test_a_replica_that_is_not_leading_observes_but_never_acts(server: ApiServer) -> None:
    revision = server.store.revision
    async with running(server, leading=False) as r:
        await r.idle()
        assert r.rec.stats.actions == []
        assert server.store.revision == revision
        # The starting world's causes are named at once (e.g. the missing runtime), each claiming
        # the drift it explains; a non-leader reports them all the same.
        assert sample(r.registry, "warden_findings", code="no-serving-runtime", severity="critical") >= 1
        r.rec.set_leading(True)
        await eventually(lambda: exists(r.writer, SR), what="acts once leading")


async def claim_policy_as_istio_admin(server: ApiServer) -> None:
    """Another field manager (istio-admin) sets the policy's rules first: the daemon's apply conflicts."""
    async with kube_for(server.url, field_manager="istio-admin") as admin:
        await admin.apply({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                           "metadata": {"name": AP.name, "namespace": AP.namespace},
                           "spec": {"action": "ALLOW", "selector": {"matchLabels": {"app": "seaweedfs"}},
                                    "rules": [{"from": [{"source": {"namespaces": ["kubeflow"]}}]}]}},
                          dry_run=False)


async def test_conflict_with_another_manager_is_reported_not_forced(server: ApiServer) -> None:
    await claim_policy_as_istio_admin(server)
    async with running(server, settings=make_settings(take_back_fields=False)) as r:
        await r.idle()
        assert r.actions("apply", AP) == ["failure"]
        live = await r.writer.get(AP)
        assert live["spec"]["rules"] == [{"from": [{"source": {"namespaces": ["kubeflow"]}}]}]
        events = (await r.writer.list_objects(resource_for("v1", "Event"))).items
        refused = [e for e in events if e["involvedObject"]["name"] == AP.name and e["type"] == "Warning"
                   and "istio-admin" in e["message"]]
        assert refused, [e["message"] for e in events]
        # No retry storm: more passes, still one attempt (the refusal holds until the object changes).
        for _ in range(3):
            r.rec.queue.add("pass")
            await r.idle()
        assert r.actions("apply", AP) == ["failure"]


async def test_declared_fields_are_taken_back_by_default(server: ApiServer) -> None:
    await claim_policy_as_istio_admin(server)
    assert make_settings().remediation.take_back_fields
    async with running(server) as r:
        await r.idle()
        assert r.actions("apply", AP) == ["success"]
        live = await r.writer.get(AP)
        principals = live["spec"]["rules"][0]["from"][0]["source"]["principals"]
        assert principals == ["cluster.local/ns/user-example-com/sa/iris-sa"]


def dns_bad(now: float) -> Observation:
    return Observation(probe="dns", target="istiod.istio-system.svc.cluster.local", started=now - 0.5,
                       finished=now, ok=False, outcome="timeout",
                       values={"p50_seconds": 2.0, "p95_seconds": 2.0, "max_seconds": 2.0, "timeouts": 5},
                       evidence=("lookup istiod.istio-system.svc: i/o timeout",))


async def test_coredns_restart_after_hysteresis_and_budget_survives_a_restart(server: ApiServer) -> None:
    settings = make_settings(backoff_initial_seconds=0.0, verify_after_seconds=0.2)
    async with running(server, settings=settings) as r:
        await r.idle()
        def observe(obs: Observation) -> None:
            r.store.add(obs)  # what the probe timer does, then it wakes the loop
            r.rec.on_observation(obs)

        for i in range(2):
            observe(dns_bad(time.time() - 0.01 * (2 - i)))
            await r.idle()
        assert r.actions("restart-coredns", COREDNS) == [], "restarted before K consecutive bad probes"
        observe(dns_bad(time.time()))
        await eventually(lambda: r.actions("restart-coredns", COREDNS) == ["success"], what="CoreDNS restart")
        dep = await r.writer.get(COREDNS)
        assert RESTARTED_AT in dep["spec"]["template"]["metadata"]["annotations"]
        ann = dep["metadata"]["annotations"]
        assert ann[LAST_RESTART_ANNOTATION] and ann[RESTARTS_ANNOTATION]
    # A new daemon (fresh ledger) reads the restart back: the budget is not reset by restarting.
    ledger = Ledger()
    async with running(server, settings=settings, ledger=ledger, leading=False) as r2:
        assert len(ledger.in_window(ActionKind.RESTART_COREDNS, now=time.time(), window_seconds=3600)) == 1
        await r2.idle()


@contextlib.asynccontextmanager
async def slow_proxy(upstream: str, *, delay: float,
                     slow: Callable[[web.Request], bool]) -> AsyncIterator[str]:
    """A loopback HTTP proxy to the API server that holds matching requests for ``delay`` s."""
    session = aiohttp.ClientSession()

    async def handle(request: web.Request) -> web.Response:
        if slow(request):
            await asyncio.sleep(delay)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with session.request(request.method, upstream + request.path_qs, data=await request.read(),
                                   headers=headers) as r:
            body = await r.read()
            return web.Response(status=r.status, body=body,
                                headers={"Content-Type": r.headers.get("Content-Type", "application/json")})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await session.close()


def slow_runtime_patch(request: web.Request) -> bool:
    return request.method == "PATCH" and "/servingruntimes/" in request.path


async def test_shutdown_lets_in_flight_work_finish_within_the_deadline(server: ApiServer) -> None:
    async with slow_proxy(server.url, delay=0.5, slow=slow_runtime_patch) as url, \
            running(server, act_via=url) as r:
        await eventually(lambda: ("apply", str(SR)) in r.rec.in_flight, what="the runtime apply in flight")
        assert await r.rec.shutdown(deadline=5.0) is True
        assert r.actions("apply", SR) == ["success"], "in-flight work was cut off"
        assert await exists(r.writer, SR)
        # Stopped: no new work is taken after shutdown.
        r.rec.queue.add("pass")
        assert not r.rec.queue.active


async def test_shutdown_deadline_cancels_work_that_takes_too_long(server: ApiServer) -> None:
    async with slow_proxy(server.url, delay=1.0, slow=slow_runtime_patch) as url, \
            running(server, act_via=url) as r:
        await eventually(lambda: ("apply", str(SR)) in r.rec.in_flight, what="the runtime apply in flight")
        # The outcome, not the clock: had shutdown waited for the 1 s PATCH, the apply would
        # have been recorded as a success.
        assert await r.rec.shutdown(deadline=0.3) is False
        assert r.actions("apply", SR) == []
