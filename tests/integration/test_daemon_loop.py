"""The reconciler against a control plane: converge, heal, survive faults, never repeat.

Real ``kubernetes_asyncio`` over loopback: a writer client plays the humans and controllers,
the daemon's own objects (informer, reconciler, ledger, metrics) run in-process. Probe
observations are fed in as data where a test needs one (DNS), the rest is live.

Each test runs on both control planes (``plane``: the stand-in, :mod:`sandbox.apiserver`, and the
session's real kube-apiserver + kube-controller-manager, :mod:`tests.integration.control_planes`)
unless it needs the stand-in's fault hooks; those take ``server`` and say why. The desired state
is the seed's (fixed namespaces: user-example-com, kubeflow, ...), so on the shared real server a
test first resets it as a Sandbox does (:func:`sandbox.realcp.reset`: every namespace a previous
user left is deleted and waited for) and deletes what it seeded at teardown. What only the real
cluster adds — kube-controller-manager's ReplicaSets, Pods and Events for the seeded CoreDNS
Deployment, each namespace's ``default`` ServiceAccount — is left out where a test looks at
everything (Events by ``source.component``, objects by the daemon's field manager).
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
from kubernetes_asyncio import client
from prometheus_client import CollectorRegistry

from daemon.core.actions import ActionKind
from daemon.core.desired import DesiredState
from daemon.core.ledger import Ledger
from daemon.core.logs import Redactor
from daemon.core.objects import ObjectRef
from daemon.core.resources import resource_for
from daemon.core.settings import Settings
from daemon.kube.effects import FIELD_MANAGER, RESTARTED_AT, Kube
from daemon.kube.informer import Informer
from daemon.process.config_files import load_desired, load_settings
from daemon.process.loop import LAST_RESTART_ANNOTATION, RESTARTS_ANNOTATION, Reconciler
from daemon.process.metrics import WardenMetrics
from daemon.process.probing import ObservationStore
from daemon.process.server import HealthState
from probes.observation import Observation
from sandbox.apiserver import ApiServer
from sandbox.realcp import ControlPlane, admin_client, api_call, install_crds, reset
from sandbox.realcp import injector as realcp_injector
from sandbox.realcp.kserve import KServe, remove_webhooks
from tests.conftest import SEED_DESIRED, b64, free_port
from tests.integration.control_planes import CONTROL_PLANES, kube_on
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


Target = ApiServer | ControlPlane
"""What the daemon runs against: the stand-in's server or the session's real control plane."""

SEEDED_NAMESPACES = ("kubeflow", "kserve", "istio-system", NS)


@dataclass
class Running:
    server: Target
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
async def kube_via(target: Target, url: str, **kwargs: Any) -> AsyncIterator[Kube]:
    """A :class:`Kube` whose requests go to ``url`` (a plain-HTTP proxy in front of ``target``),
    authenticated as ``target`` expects (the real server: the admin's bearer token)."""
    cfg = client.Configuration(host=url)
    if isinstance(target, ControlPlane):
        cfg.api_key = {"BearerToken": target.admin_token}
        cfg.api_key_prefix = {"BearerToken": "Bearer"}
    api = client.ApiClient(configuration=cfg)
    try:
        yield Kube(api, redactor=kwargs.pop("redactor", Redactor()), **kwargs)
    finally:
        await api.close()


@contextlib.asynccontextmanager
async def running(server: Target, *, settings: Settings | None = None, dry_run: bool = False,
                  leading: bool = True, ledger: Ledger | None = None,
                  desired: DesiredState | None = None, act_via: str | None = None) -> AsyncIterator[Running]:
    """The daemon's objects in-process; ``act_via``: a URL the reconciler's writes go through."""
    settings = settings or make_settings()
    acting_kube = (kube_via(server, act_via, dry_run=dry_run, redactor=Redactor()) if act_via
                   else kube_on(server, dry_run=dry_run, redactor=Redactor()))
    async with kube_on(server, field_manager="tester") as writer, \
            kube_on(server, dry_run=dry_run, redactor=Redactor()) as kube, acting_kube as acting:
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
    """The stand-in only, seeded: for the tests that need its fault hooks."""
    async with api_server() as s, kube_for(s.url, field_manager="seed") as w:
        await seed_world(w)
        yield s


_CRDS_INSTALLED: set[str] = set()


async def fresh_real(cp: ControlPlane) -> None:
    """The shared real server as a Sandbox finds it: emptied of what earlier tests left (waited
    for), the CRDs the desired state uses (KServe's and the project's Istio ones) served, and no
    admission webhook of a KServe manager or sidecar injector that is gone."""
    async with admin_client(cp) as api:
        await reset(api)
        kserve = KServe(control_plane=cp, workdir=cp.dir)  # its CRDs and webhooks only: no process
        await remove_webhooks(api, kserve.module)
        await realcp_injector.uninstall(api)
        # Once per control plane (10-15 s: KServe's CRDs are large); nothing removes CRDs.
        if cp.url not in _CRDS_INSTALLED:
            await install_crds(api, also_wait_for=await kserve.install_crds(api))
            _CRDS_INSTALLED.add(cp.url)


async def unseed_real(cp: ControlPlane) -> None:
    """Delete what :func:`seed_world` and the daemon made (namespaces in the background: the next
    user's reset waits for them); the seeded CoreDNS goes with its ReplicaSets and Pods."""
    async with admin_client(cp) as api:
        for ns in SEEDED_NAMESPACES:
            with contextlib.suppress(client.ApiException):
                await api_call(api, "DELETE", f"/api/v1/namespaces/{ns}")
        with contextlib.suppress(client.ApiException):
            await api_call(api, "DELETE", "/apis/apps/v1/namespaces/kube-system/deployments/coredns",
                           {"propagationPolicy": "Background"})
        await api_call(api, "DELETE", "/api/v1/namespaces/kube-system/events")


@pytest.fixture(params=CONTROL_PLANES)
async def plane(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    """The seeded world on each control plane: the stand-in, and the session's real one."""
    if request.param == "embedded":
        async with api_server() as s, kube_for(s.url, field_manager="seed") as w:
            await seed_world(w)
            yield s
        return
    cp: ControlPlane = request.getfixturevalue("real_control_plane")
    await fresh_real(cp)
    try:
        async with kube_on(cp, field_manager="seed") as w:
            await seed_world(w)
        yield cp
    finally:
        await unseed_real(cp)


DERIVED = ObjectRef(api_version="v1", kind="Secret", namespace=NS, name="minio-s3-secret")
# The kinds the daemon can write in these tests (the desired state's, restarts, pod deletes).
WRITABLE = (("v1", "Secret"), ("v1", "ServiceAccount"), ("v1", "Pod"), ("apps/v1", "Deployment"),
            ("serving.kserve.io/v1alpha1", "ServingRuntime"),
            ("serving.kserve.io/v1beta1", "InferenceService"),
            ("security.istio.io/v1", "AuthorizationPolicy"))
SEEDED = (ObjectRef(api_version="v1", kind="Secret", namespace="kubeflow", name="mlpipeline-minio-artifact"),
          COREDNS)
ISVC = ObjectRef(api_version="serving.kserve.io/v1beta1", kind="InferenceService", namespace=NS,
                 name="iris-model")


def warden_events(plane: Target, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The daemon's Events among ``items``. Everything else must be kube-controller-manager's or
    kube-scheduler's, about the seeded CoreDNS (the real tier only: the stand-in runs no such
    controllers; the scheduler's Events, written through events.k8s.io, carry
    ``reportingComponent`` and no ``source``)."""

    def component(e: dict[str, Any]) -> str:
        return str((e.get("source") or {}).get("component") or e.get("reportingComponent") or "")

    others = [e for e in items if component(e) != FIELD_MANAGER]
    if isinstance(plane, ApiServer):
        assert others == [], others
    for e in others:
        involved = e["involvedObject"]
        assert involved["namespace"] == "kube-system", e
        assert (involved["kind"], component(e)) in {
            ("Deployment", "deployment-controller"), ("ReplicaSet", "replicaset-controller"),
            ("Pod", "default-scheduler")}, e
    return [e for e in items if component(e) == FIELD_MANAGER]


async def untouched(plane: Target) -> tuple[object, ...]:
    """What a daemon that writes nothing leaves as it was: on the stand-in its store's revision (any
    write bumps it); on both, every object the daemon's field manager has written (none after a
    dry run: each write records it in managedFields), the seeded objects' identities and the
    daemon's Events (none)."""
    async with kube_on(plane) as k:
        written = []
        for api_version, kind in WRITABLE:
            for obj in (await k.list_objects(resource_for(api_version, kind))).items:
                managers = {m["manager"] for m in obj["metadata"].get("managedFields") or []}
                if FIELD_MANAGER in managers:
                    written.append((kind, obj["metadata"].get("namespace"), obj["metadata"]["name"]))
        seeded = [(await k.get(ref))["metadata"]["uid"] for ref in SEEDED]
        events = warden_events(plane, (await k.list_objects(resource_for("v1", "Event"))).items)
    revision = plane.store.revision if isinstance(plane, ApiServer) else None
    return revision, tuple(sorted(written)), tuple(seeded), len(events)


async def exists(kube: Kube, ref: ObjectRef) -> bool:
    try:
        await kube.get(ref)
    except Exception:
        return False
    return True


async def test_converges_the_desired_state_once_and_emits_events(plane: Target) -> None:
    async with running(plane) as r:
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
        events = warden_events(plane, (await r.writer.list_objects(resource_for("v1", "Event"))).items)
        assert events, "no Events emitted"
        reasons = {(e["type"], e["reason"]) for e in events}
        assert ("Warning", "drift") in reasons and ("Normal", "drift") in reasons
        # Quiet afterwards: nothing more to do.
        before = len(r.rec.stats.actions)
        r.rec.queue.add("pass")
        await r.idle()
        assert len(r.rec.stats.actions) == before


FAST = {"backoff_initial_seconds": 0.0, "verify_after_seconds": 0.5}


async def test_heals_a_deleted_runtime_with_one_action(plane: Target) -> None:
    async with running(plane, settings=make_settings(**FAST)) as r:
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


# Stand-in only: injected 500/429/reset answers, dropped watches and a compacted history are its
# fault hooks (server.faults); a real server cannot be made to fail on cue.
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


async def test_dry_run_writes_nothing(plane: Target) -> None:
    before = await untouched(plane)
    async with running(plane, dry_run=True) as r:
        await r.idle()
        assert await untouched(plane) == before, "a dry-run daemon changed the cluster"
        for ref in (SR, AP, SA, DERIVED):
            assert not await exists(r.writer, ref)
        assert sample(r.registry, "warden_remediations_total", action="apply", result="dry-run") >= 4
        assert sample(r.registry, "warden_remediations_total", action="apply", result="success") == 0


async def test_a_replica_that_is_not_leading_observes_but_never_acts(plane: Target) -> None:
    before = await untouched(plane)
    async with running(plane, leading=False) as r:
        await r.idle()
        assert r.rec.stats.actions == []
        assert await untouched(plane) == before
        # The starting world's causes are named at once (e.g. the missing runtime), each claiming
        # the drift it explains; a non-leader reports them all the same.
        assert sample(r.registry, "warden_findings", code="no-serving-runtime", severity="critical") >= 1
        r.rec.set_leading(True)
        await eventually(lambda: exists(r.writer, SR), what="acts once leading")


async def claim_policy_as_istio_admin(server: Target) -> None:
    """Another field manager (istio-admin) sets the policy's rules first: the daemon's apply conflicts."""
    async with kube_on(server, field_manager="istio-admin") as admin:
        await admin.apply({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                           "metadata": {"name": AP.name, "namespace": AP.namespace},
                           "spec": {"action": "ALLOW", "selector": {"matchLabels": {"app": "seaweedfs"}},
                                    "rules": [{"from": [{"source": {"namespaces": ["kubeflow"]}}]}]}},
                          dry_run=False)


async def test_conflict_with_another_manager_is_reported_not_forced(plane: Target) -> None:
    await claim_policy_as_istio_admin(plane)
    async with running(plane, settings=make_settings(take_back_fields=False)) as r:
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


async def test_declared_fields_are_taken_back_by_default(plane: Target) -> None:
    await claim_policy_as_istio_admin(plane)
    assert make_settings().remediation.take_back_fields
    async with running(plane) as r:
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


async def test_coredns_restart_after_hysteresis_and_budget_survives_a_restart(plane: Target) -> None:
    settings = make_settings(backoff_initial_seconds=0.0, verify_after_seconds=0.2)
    async with running(plane, settings=settings) as r:
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
    async with running(plane, settings=settings, ledger=ledger, leading=False) as r2:
        assert len(ledger.in_window(ActionKind.RESTART_COREDNS, now=time.time(), window_seconds=3600)) == 1
        await r2.idle()


@contextlib.asynccontextmanager
async def slow_proxy(upstream: Target, *, delay: float,
                     slow: Callable[[web.Request], bool]) -> AsyncIterator[str]:
    """A loopback HTTP proxy to the API server that holds matching requests for ``delay`` s
    (to the real one over TLS, verified with its CA; the client's Authorization passes through)."""
    ssl = upstream.ssl_context() if isinstance(upstream, ControlPlane) else None
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl) if ssl else None)
    base = upstream.url

    async def handle(request: web.Request) -> web.Response:
        if slow(request):
            await asyncio.sleep(delay)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with session.request(request.method, base + request.path_qs, data=await request.read(),
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


async def test_shutdown_lets_in_flight_work_finish_within_the_deadline(plane: Target) -> None:
    async with slow_proxy(plane, delay=0.5, slow=slow_runtime_patch) as url, \
            running(plane, act_via=url) as r:
        await eventually(lambda: ("apply", str(SR)) in r.rec.in_flight, what="the runtime apply in flight")
        assert await r.rec.shutdown(deadline=5.0) is True
        assert r.actions("apply", SR) == ["success"], "in-flight work was cut off"
        assert await exists(r.writer, SR)
        # Stopped: no new work is taken after shutdown.
        r.rec.queue.add("pass")
        assert not r.rec.queue.active


async def test_shutdown_deadline_cancels_work_that_takes_too_long(plane: Target) -> None:
    async with slow_proxy(plane, delay=1.0, slow=slow_runtime_patch) as url, \
            running(plane, act_via=url) as r:
        await eventually(lambda: ("apply", str(SR)) in r.rec.in_flight, what="the runtime apply in flight")
        # The outcome, not the clock: had shutdown waited for the 1 s PATCH, the apply would
        # have been recorded as a success.
        assert await r.rec.shutdown(deadline=0.3) is False
        assert r.actions("apply", SR) == []


def slow_model_patch(request: web.Request) -> bool:
    return request.method == "PATCH" and "/inferenceservices/" in request.path


async def test_a_chain_skips_an_action_another_finding_did_meanwhile(plane: Target) -> None:
    """The storage finding's chain is derive-secret, apply the model, apply its ServiceAccount.
    With the model's apply held, the derived secret's watch event starts a pass in which the
    storage finding is gone and the ServiceAccount's own drift takes over, applied at once by
    another worker. The chain, evaluated before that, must not apply it a second time. (Found
    on the real server, whose latency let the pass in between; the held apply makes it certain.)"""
    async with slow_proxy(plane, delay=0.5, slow=slow_model_patch) as url, \
            running(plane, act_via=url) as r:
        await eventually(lambda: len(r.actions("apply", ISVC)) == 1, what="the model applied")
        await r.idle()
        targets = [t for _, t, _ in r.rec.stats.actions]
        assert sorted(targets) == sorted(str(ref) for ref in (SR, AP, SA, ISVC, DERIVED)), r.rec.stats.actions
        assert r.actions("apply", SA) == ["success"], r.rec.stats.actions
        assert sample(r.registry, "warden_remediations_total", action="apply", result="success") == 4
