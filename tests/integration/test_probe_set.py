"""The daemon's probe set: discovered models, schedules that follow the informer, storage probed
per store and credential, the concurrency cap, ``not-checked`` where Secrets are out of reach.

Real sockets throughout: the real ``kubernetes_asyncio`` client and the daemon's informer on both
control planes (``tier``: the stand-in and the real kube-apiserver, see
``tests/integration/apiserver/tiers.py``); moto (auth on) behind a counting HTTP forwarder for S3.
The real server is shared by the session, so the informer reads only the test's own namespace
(``tier.ns``). Two tests need no API server at all (the concurrency cap runs fake schedules, the
jitter is arithmetic): they run once, on the stand-in.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from kubernetes_asyncio import client

from daemon.core.logs import Redactor
from daemon.core.settings import Settings
from daemon.kube.effects import Kube
from daemon.kube.informer import Informer, run_until_synced
from daemon.process.config_files import load_settings
from daemon.process.probing import ObservationStore, ProbeSet, Schedule, jitter
from probes.observation import Observation
from sandbox.s3 import S3Server
from tests.conftest import b64, free_port
from tests.integration.apiserver.tiers import Tier, tier, tier_for
from tests.integration.daemon_fixtures import eventually, serve, stop_task

__all__ = ["tier"]  # the fixture, imported

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
BUCKET = "models"


def settings_for(*, secrets: tuple[str, ...] = (), max_concurrency: int = 16) -> Settings:
    s = load_settings(None, environ={})
    p = s.probes
    return replace(
        s, models=(), secrets=replace(s.secrets, namespaces=secrets),
        probes=replace(
            p, max_concurrency=max_concurrency,
            # DNS: a port nothing answers on, a long period (not what these tests look at).
            dns=replace(p.dns, nameserver="127.0.0.1", port=free_port(), period_seconds=3600,
                        timeout_seconds=0.2, queries=1),
            predictor=replace(p.predictor, period_seconds=3600, timeout_seconds=2),
            storage=replace(p.storage, period_seconds=3600, timeout_seconds=5),
        ),
    )


def isvc(name: str, *, sa: str = "models-sa", uri: str = f"s3://{BUCKET}/iris",
         annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """An InferenceService (its namespace is the rig's: :meth:`Rig.create` sets it)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"predictor": {"serviceAccountName": sa,
                               "model": {"modelFormat": {"name": "sklearn"}, "storageUri": uri}}},
    }


@dataclass
class Rig:
    ns: str
    kube: Kube
    informer: Informer
    store: ObservationStore

    async def create(self, obj: dict[str, Any]) -> None:
        api, ns = self.kube.api, self.ns
        obj = {**obj, "metadata": {**obj["metadata"], "namespace": ns}}
        if obj["kind"] == "InferenceService":
            await client.CustomObjectsApi(api).create_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, obj)
        elif obj["kind"] == "Secret":
            await client.CoreV1Api(api).create_namespaced_secret(ns, obj)
        elif obj["kind"] == "ServiceAccount":
            await client.CoreV1Api(api).create_namespaced_service_account(ns, obj)
        else:
            raise ValueError(obj["kind"])

    async def delete_isvc(self, name: str) -> None:
        await client.CustomObjectsApi(self.kube.api).delete_namespaced_custom_object(
            GROUP, VERSION, self.ns, PLURAL, name)

    def probes(self, settings: Settings) -> ProbeSet:
        return ProbeSet(settings=settings, kube=self.kube, informer=self.informer, api=self.kube.api,
                        store=self.store, redactor=Redactor(), debounce=0.05)


@contextlib.asynccontextmanager
async def rig_on(t: Tier) -> AsyncIterator[Rig]:
    """The daemon's informer (the test's namespace only) and an empty store, on ``t``."""
    kube = Kube(t.api, redactor=Redactor())
    informer = Informer(kube, namespaces={t.ns})
    task = await run_until_synced(informer)
    try:
        yield Rig(ns=t.ns, kube=kube, informer=informer, store=ObservationStore())
    finally:
        await stop_task(task)


@pytest.fixture
async def rig(tier: Tier) -> AsyncIterator[Rig]:
    async with rig_on(tier) as r:
        yield r


@pytest.fixture
async def standin_rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    """A rig on the stand-in only, for a test whose schedules never reach the server."""
    async with tier_for("embedded", test_name=request.node.name, tmp_path=tmp_path) as t, rig_on(t) as r:
        yield r


def latest(store: ObservationStore, probe: str, target: str) -> Observation | None:
    found = [o for o in store.latest() if (o.probe, o.target) == (probe, target)]
    return found[0] if found else None


# -- schedules follow the informer -------------------------------------------------------------


async def test_schedules_follow_a_new_and_a_deleted_inferenceservice(rig: Rig) -> None:
    probes = rig.probes(settings_for())
    task = asyncio.create_task(probes.run())
    try:
        await eventually(lambda: any(p == "dns" for p, _ in probes.active), what="the DNS schedule")
        assert not any(p == "predictor" for p, _ in probes.active)
        await rig.create(isvc("fresh"))
        await eventually(lambda: ("predictor", f"{rig.ns}/fresh") in probes.active,
                         what="a predictor schedule for the new InferenceService")
        # Secrets are not readable in the namespace: its storage is a not-checked group, no request.
        assert ("storage", f"not-checked|{rig.ns}") in probes.active
        await rig.delete_isvc("fresh")
        await eventually(lambda: ("predictor", f"{rig.ns}/fresh") not in probes.active,
                         what="the schedule stopped")
        assert ("storage", f"not-checked|{rig.ns}") not in probes.active
    finally:
        await stop_task(task)
    assert probes.active == frozenset()


async def test_readiness_only_without_canary_and_canary_by_annotation(rig: Rig) -> None:
    await rig.create(isvc("plain"))
    canary = '{"instances": [[5.1, 3.5, 1.4, 0.2]], "expected": [0]}'
    await rig.create(isvc("opted-in", annotations={"kserve-warden.io/canary": canary}))
    await eventually(lambda: len(rig.informer.list_kind("InferenceService")) == 2, what="both cached")
    probes = rig.probes(settings_for())
    by_target = {s.target: s for s in probes.schedules() if s.probe == "predictor"}
    plain = await by_target[f"{rig.ns}/plain"].run()
    opted = await by_target[f"{rig.ns}/opted-in"].run()
    assert isinstance(plain, Observation) and isinstance(opted, Observation)
    assert plain.details["canary_configured"] is False
    assert opted.details["canary_configured"] is True


async def test_not_checked_without_secret_access(rig: Rig) -> None:
    await rig.create(isvc("locked"))
    await eventually(lambda: rig.informer.get("InferenceService", rig.ns, "locked") is not None,
                     what="cached")
    probes = rig.probes(settings_for(secrets=()))
    observations = await probes.run_once()
    storage = [o for o in observations if o.probe == "storage"]
    assert [(o.target, o.outcome, o.ok) for o in storage] == [(f"{rig.ns}/locked", "not-checked", True)]
    assert storage[0].details["reason"] == f"no access to secrets in {rig.ns}"
    assert storage[0].details["inferenceservice"] == f"{rig.ns}/locked"


async def test_non_s3_schemes_get_no_storage_probe(rig: Rig) -> None:
    for name, uri in [("gcs", "gs://b/m"), ("pvc", "pvc://claim/m"), ("hf", "hf://org/m"),
                      ("web", "https://example.com/m.tgz")]:
        await rig.create(isvc(name, uri=uri))
    await eventually(lambda: len(rig.informer.list_kind("InferenceService")) == 4, what="cached")
    probes = rig.probes(settings_for(secrets=("*",)))
    assert [s for s in probes.schedules() if s.probe == "storage"] == []


# -- storage per store and credential ----------------------------------------------------------


class CountingS3:
    """Forwards to moto and counts S3 operations (HEAD bucket, list) as seen on the wire."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.ops: Counter[str] = Counter()

    def app(self) -> web.Application:
        async def forward(request: web.Request) -> web.StreamResponse:
            op = "list" if "list-type" in request.query else request.method
            self.ops[op] += 1
            # The Host header stays the client's: it is part of the SigV4 signature moto checks.
            headers = dict(request.headers)
            async with aiohttp.ClientSession(auto_decompress=False) as session, session.request(
                request.method, self.upstream + request.path_qs, data=await request.read(), headers=headers,
            ) as resp:
                body = await resp.read()
                out = {k: v for k, v in resp.headers.items()
                       if k.lower() not in ("transfer-encoding", "content-length", "connection")}
                return web.Response(status=resp.status, body=body, headers=out)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        return app


async def test_two_models_sharing_a_store_and_secret_make_one_auth_check(rig: Rig) -> None:
    s3 = S3Server()
    await s3.start()
    try:
        creds = s3.seed(bucket=BUCKET, objects={"iris/model.joblib": b"m", "wine/model.joblib": b"w"})
        counting = CountingS3(s3.url)
        async with serve(counting.app()) as url:
            endpoint = url.removeprefix("http://")  # the s3-endpoint annotation is host:port
            await rig.create({"apiVersion": "v1", "kind": "Secret", "metadata": {
                "name": "s3-creds",
                "annotations": {"serving.kserve.io/s3-endpoint": endpoint,
                                "serving.kserve.io/s3-usehttps": "0"}},
                "data": {"AWS_ACCESS_KEY_ID": b64(creds.access_key_id),
                         "AWS_SECRET_ACCESS_KEY": b64(creds.secret_access_key)}})
            await rig.create({"apiVersion": "v1", "kind": "ServiceAccount",
                              "metadata": {"name": "models-sa"},
                              "secrets": [{"name": "s3-creds"}]})
            await rig.create(isvc("iris", uri=f"s3://{BUCKET}/iris"))
            await rig.create(isvc("wine", uri=f"s3://{BUCKET}/wine"))
            await eventually(lambda: len(rig.informer.list_kind("InferenceService")) == 2
                             and rig.informer.get("Secret", rig.ns, "s3-creds") is not None, what="cached")
            probes = rig.probes(settings_for(secrets=(rig.ns,)))
            storage_schedules = [s for s in probes.schedules() if s.probe == "storage"]
            assert len(storage_schedules) == 1  # one store, one credential: one group
            observations = [o for o in await probes.run_once() if o.probe == "storage"]
    finally:
        await s3.stop()
    by_target = {o.target: o for o in observations}
    assert set(by_target) == {f"{rig.ns}/iris", f"{rig.ns}/wine"}
    for name, o in by_target.items():
        assert o.outcome == "ok", o.evidence
        assert o.details["inferenceservice"] == name
        assert o.details["files"] == ["model.joblib"]
    stores = {o.details["store"] for o in observations}
    assert stores == {f"{endpoint}|{rig.ns}/s3-creds"}
    assert creds.secret_access_key not in repr([o.to_dict() for o in observations])
    assert counting.ops["HEAD"] == 1  # one reachability + auth check for the group
    assert counting.ops["list"] == 2  # one listing per model


async def test_a_group_failure_is_copied_to_every_member(rig: Rig) -> None:
    # Credentials point at an endpoint where nothing listens: both models say unreachable.
    port = free_port()
    await rig.create({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": "s3-creds",
        "annotations": {"serving.kserve.io/s3-endpoint": f"127.0.0.1:{port}",
                        "serving.kserve.io/s3-usehttps": "0"}},
        "data": {"AWS_ACCESS_KEY_ID": b64("AKIAEXAMPLE"), "AWS_SECRET_ACCESS_KEY": b64("s3cr3t-value")}})
    await rig.create({"apiVersion": "v1", "kind": "ServiceAccount",
                      "metadata": {"name": "models-sa"}, "secrets": [{"name": "s3-creds"}]})
    await rig.create(isvc("one"))
    await rig.create(isvc("two"))
    await eventually(lambda: len(rig.informer.list_kind("InferenceService")) == 2
                     and rig.informer.get("ServiceAccount", rig.ns, "models-sa") is not None, what="cached")
    probes = rig.probes(settings_for(secrets=(rig.ns,)))
    storage = [o for o in await probes.run_once() if o.probe == "storage"]
    assert sorted((o.target, o.outcome) for o in storage) == [
        (f"{rig.ns}/one", "unreachable"), (f"{rig.ns}/two", "unreachable")]
    assert all(o.details["reason"] == "refused" for o in storage)
    assert "s3cr3t-value" not in repr([o.to_dict() for o in storage])


# -- bounded concurrency and spreading ---------------------------------------------------------


async def test_concurrency_cap_is_respected(standin_rig: Rig) -> None:
    # Stand-in only: its schedules are fakes that never reach the API server.
    probes = standin_rig.probes(settings_for(max_concurrency=3))
    gate = asyncio.Event()
    started = 0

    def schedule(i: int) -> Schedule:
        async def run() -> Observation:
            nonlocal started
            started += 1
            await gate.wait()
            return Observation(probe="fake", target=str(i), started=0.0, finished=0.0, ok=True, outcome="ok")

        return Schedule(probe="fake", target=str(i), period=1.0, timeout=5.0, run=run)

    task = asyncio.create_task(probes.run_once([schedule(i) for i in range(10)]))
    try:
        await eventually(lambda: started == 3, what="three runs in flight")
        await asyncio.sleep(0)  # give any over-the-cap run its chance to start
        assert probes.in_flight == 3 and started == 3
        gate.set()
        observations = await task
    finally:
        await stop_task(task)
    assert len(observations) == 10
    assert probes.max_in_flight == 3


def test_jitter_is_stable_and_spread_over_the_period() -> None:
    # No server: arithmetic on names.
    offsets = [jitter(probe="predictor", target=f"ns/m{i}", period=30.0) for i in range(1000)]
    assert offsets == [jitter(probe="predictor", target=f"ns/m{i}", period=30.0) for i in range(1000)]
    assert all(0.0 <= o < 30.0 for o in offsets)
    # Spread: every 3-second slice of the period holds some first runs, none holds most.
    buckets = Counter(int(o // 3) for o in offsets)
    assert set(buckets) == set(range(10))
    assert max(buckets.values()) < 200
