"""The predictor probe against real servers on loopback.

Kubernetes side: the sandbox API server (``sandbox.apiserver.ApiServer``) driven by the real
``kubernetes_asyncio`` client; objects and their status are written through the API as a
controller would (status via merge-patch on the ``/status`` subresource), container logs through
the sandbox's kubelet hook. Model side: the project's real model server
(``serving.app.build_app`` with a model trained by ``serving.train``) for the healthy cases; a
small aiohttp app answering class 2 plays the seed's silent dummy model, a delaying proxy in
front of the real server plays a slow one, and a closed port or a server that never answers
plays an unreachable one.

Every outcome is reached at least once and asserted with its evidence. The last section reaches
the in-cluster address only through a proxy (``proxy=``; the sandbox's cluster network), and
shows the proxy's own failures becoming probe errors that name it, never a CRITICAL finding.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from kubernetes_asyncio import client
from prometheus_client import CollectorRegistry

from daemon.core.findings import Code, Finding, Severity
from daemon.core.logs import Redactor
from daemon.kube.effects import Kube
from daemon.kube.informer import Informer, run_until_synced
from daemon.process.probe_sources import InformerPredictorSource
from probes.metrics import ProbeMetrics
from probes.observation import Observation
from probes.predictor import PredictorOutcome, PredictorProbe
from probes.predictor_source import ApiPredictorSource
from sandbox.apiserver import ApiServer
from sandbox.clusternet import ClusterNetwork
from sandbox.controllers.predictor_pod import URL_ANNOTATION
from serving.app import build_app
from serving.train import train
from tests.conftest import free_port
from tests.integration.daemon_fixtures import eventually, serve, stop_task
from tests.unit import factories as fx

NS = "user-example-com"
NAME = "iris-model"
GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
MERGE = "application/merge-patch+json"
SECRET = "minio-S3cr3t-Value-9f32"  # what the sandbox's MinIO secret would hold
POD = f"{NAME}-predictor-00001-deployment-7d9c8"
SETOSA = [5.1, 3.5, 1.4, 0.2]


def redact(text: str) -> str:
    return text.replace(SECRET, "<redacted>")


# -- the Kubernetes side -------------------------------------------------------------------------


@dataclass
class Cluster:
    server: ApiServer
    api: client.ApiClient

    async def isvc(self, *, status: dict[str, Any] | None = None,
                   annotations: dict[str, str] | None = None) -> None:
        co = client.CustomObjectsApi(self.api)
        await co.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService",
            "metadata": {"name": NAME, "namespace": NS, "annotations": annotations or {}},
            "spec": {"predictor": {"serviceAccountName": "iris-sa",
                                   "model": {"modelFormat": {"name": "sklearn"},
                                             "storageUri": "s3://mlpipeline/models/iris"}}},
        })
        if status is not None:
            await co.patch_namespaced_custom_object_status(
                GROUP, VERSION, NS, PLURAL, NAME, {"status": status}, _content_type=MERGE
            )

    async def pod(self, *, init: list[dict[str, Any]] | None = None, main: list[dict[str, Any]],
                  phase: str = "Pending", name: str = POD) -> None:
        core = client.CoreV1Api(self.api)
        spec: dict[str, Any] = {"containers": [{"name": c["name"], "image": "img"} for c in main]}
        if init:
            spec["initContainers"] = [{"name": c["name"], "image": "img"} for c in init]
        await core.create_namespaced_pod(NS, {
            "metadata": {"name": name, "labels": {"serving.kserve.io/inferenceservice": NAME,
                                                  "component": "predictor"}},
            "spec": spec,
        })
        # Raw response: a status without image/imageID (see the minimal-status test) would not
        # survive the client's model validation on the way back.
        resp = await core.patch_namespaced_pod_status(name, NS, {"status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "False"}],
            "initContainerStatuses": [_status(c) for c in init or []],
            "containerStatuses": [_status(c) for c in main],
        }}, _content_type=MERGE, _preload_content=False)
        assert resp.status == 200, await resp.text()
        resp.release()

    def log(self, container: str, text: str, *, pod: str = POD) -> None:
        self.server.set_pod_log(NS, pod, container, text)

    def probe(self, **kw: Any) -> PredictorProbe:
        """A probe with the iris canary unless the test says otherwise (``canary_instances=None``:
        readiness only)."""
        kw.setdefault("redact", redact)
        kw.setdefault("canary_instances", [SETOSA])
        if kw["canary_instances"] is not None:
            kw.setdefault("expected", [0])
        return PredictorProbe(api=self.api, namespace=NS, name=NAME, **kw)


def _status(c: dict[str, Any]) -> dict[str, Any]:
    if c.get("minimal"):
        return {"name": c["name"], "state": c["state"]}
    return {"name": c["name"], "ready": c.get("ready", False), "restartCount": c.get("restarts", 0),
            "image": "img", "imageID": "", "state": c["state"]}


def ready_status(*, address: str | None, url: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [
        {"type": "IngressReady", "status": "True"},
        {"type": "PredictorReady", "status": "True"},
        {"type": "Ready", "status": "True"},
    ]}
    if address:
        status["address"] = {"url": address}
    if url:
        status["url"] = url
    return status


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    server = ApiServer(host="127.0.0.1", port=0)
    await server.start()
    api = client.ApiClient(configuration=client.Configuration(host=server.url))
    try:
        await client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
        yield Cluster(server, api)
    finally:
        await api.close()
        await server.stop()


# -- the model side --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("iris")
    train(out=out)
    return out


@pytest.fixture
async def model_server(model_dir: Path) -> AsyncIterator[str]:
    """The project's real model server, serving the real iris model."""
    async with serve(build_app(model_name=NAME, model_dir=model_dir)) as url:
        yield url


def dummy_model_app() -> web.Application:
    """The seed's silent dummy model: ready, answers every prediction with class 2."""

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"name": NAME, "ready": True})

    async def predict(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"predictions": [2 for _ in body["instances"]]})

    async def infer(request: web.Request) -> web.Response:
        body = await request.json()
        n = body["inputs"][0]["shape"][0]
        return web.json_response({"model_name": NAME, "outputs": [
            {"name": "predict", "shape": [n], "datatype": "INT64", "data": [2] * n}]})

    app = web.Application()
    app.router.add_get(f"/v1/models/{NAME}", ready)
    app.router.add_post(f"/v1/models/{NAME}:predict", predict)
    app.router.add_get(f"/v2/models/{NAME}/ready", ready)
    app.router.add_post(f"/v2/models/{NAME}/infer", infer)
    return app


def delaying_proxy(upstream: str, delay: float) -> web.Application:
    """Forwards to the real model server after ``delay`` seconds (a sick node, a cold cache)."""

    async def forward(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        async with aiohttp.ClientSession() as session, session.request(
            request.method, upstream + request.path_qs, data=await request.read(),
            headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
        ) as resp:
            return web.Response(status=resp.status, body=await resp.read(),
                                content_type=resp.content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def hanging_app(release: asyncio.Event) -> web.Application:
    """Accepts connections and never answers (until the test releases it)."""

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hang)
    return app


def log_hanging_proxy(upstream: str, release: asyncio.Event) -> web.Application:
    """The sandbox API behind a proxy whose pod-log endpoint never answers (a wedged kubelet)."""

    async def forward(request: web.Request) -> web.Response:
        if request.path.endswith("/log"):
            await release.wait()
        async with aiohttp.ClientSession() as session, session.get(upstream + request.path_qs) as resp:
            return web.Response(status=resp.status, body=await resp.read(), content_type=resp.content_type)

    app = web.Application()
    app.router.add_get("/{tail:.*}", forward)
    return app


def no_secret_anywhere(obs: Observation) -> None:
    text = json.dumps(obs.to_dict())
    assert SECRET not in text
    assert "minio123" not in text


# -- ready / wrong-model / slow / unreachable ------------------------------------------------------


async def test_ready_v1_real_server_prefers_the_in_cluster_address(
    cluster: Cluster, model_server: str
) -> None:
    # status.url (the external one) points at a closed port: the probe must use address.url.
    await cluster.isvc(status=ready_status(address=model_server, url=f"http://127.0.0.1:{free_port()}"))
    obs = await cluster.probe()()
    assert obs.outcome == PredictorOutcome.READY and obs.ok, obs.evidence
    assert obs.probe == "predictor" and obs.target == f"{NS}/{NAME}"
    assert obs.details["url"] == model_server
    assert obs.details["canary"] == {"instances": [[5.1, 3.5, 1.4, 0.2]], "expected": [0], "predicted": [0]}
    assert any(e.startswith("canary [5.1,3.5,1.4,0.2] → predicted 0, as expected") for e in obs.evidence)
    assert obs.values["request_seconds"] > 0 and obs.values["canary_seconds"] > 0


async def test_ready_v2_real_server_with_several_canaries(cluster: Cluster, model_server: str) -> None:
    await cluster.isvc(status=ready_status(address=None, url=model_server))
    probe = cluster.probe(protocol="v2", canary_instances=[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]],
                          expected=[0, 2])
    obs = await probe()
    assert obs.outcome == PredictorOutcome.READY, obs.evidence
    assert obs.details["url"] == model_server  # no address: falls back to status.url
    assert obs.details["canary"]["predicted"] == [0, 2]


@pytest.mark.parametrize("protocol", ["v1", "v2"])
async def test_wrong_model_is_the_dummy_model(cluster: Cluster, protocol: str) -> None:
    async with serve(dummy_model_app()) as url:
        await cluster.isvc(status=ready_status(address=url))
        obs = await cluster.probe(protocol=protocol)()
    assert obs.outcome == PredictorOutcome.WRONG_MODEL and not obs.ok
    assert "canary [5.1,3.5,1.4,0.2] → predicted 2, expected 0" in obs.evidence
    assert obs.details["reason"] == "CanaryMismatch"
    assert obs.details["canary"]["predicted"] == [2]


async def test_wrong_model_real_server_answering_the_wrong_class(cluster: Cluster, model_server: str) -> None:
    # The real iris model is right; a canary that expects versicolor for a setosa sample
    # is the same failure seen from the other side: the answer, not the server, is wrong.
    await cluster.isvc(status=ready_status(address=model_server))
    obs = await cluster.probe(expected=[1])()
    assert obs.outcome == PredictorOutcome.WRONG_MODEL
    assert "canary [5.1,3.5,1.4,0.2] → predicted 0, expected 1" in obs.evidence


async def test_slow_real_server_behind_a_delay(cluster: Cluster, model_server: str) -> None:
    async with serve(delaying_proxy(model_server, 0.15)) as url:
        await cluster.isvc(status=ready_status(address=url))
        obs = await cluster.probe(slow_threshold=0.1)()
    assert obs.outcome == PredictorOutcome.SLOW and not obs.ok, obs.evidence
    assert obs.values["canary_seconds"] >= 0.15
    assert obs.details["canary"]["predicted"] == [0]  # right answer, just late
    assert any(e.startswith("slowest call took ") and e.endswith("threshold 0.1 s") for e in obs.evidence)


async def test_unreachable_closed_port(cluster: Cluster) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    await cluster.isvc(status=ready_status(address=url))
    obs = await cluster.probe()()
    assert obs.outcome == PredictorOutcome.UNREACHABLE
    where = f"GET {url}/v1/models/{NAME}"
    assert any("connection refused" in e and where in e for e in obs.evidence), obs.evidence
    assert "request_seconds" not in obs.values


async def test_unreachable_server_that_never_answers(cluster: Cluster) -> None:
    release = asyncio.Event()
    async with serve(hanging_app(release)) as url:
        await cluster.isvc(status=ready_status(address=url))
        try:
            obs = await cluster.probe(timeout=1.0)()
        finally:
            release.set()
    assert obs.outcome == PredictorOutcome.UNREACHABLE
    assert f"no answer within 1 s while calling {url}/v1/models/{NAME}" in obs.evidence
    assert obs.details["reason"] == "Timeout"


async def test_url_override_and_no_url(cluster: Cluster, model_server: str) -> None:
    await cluster.isvc(status=ready_status(address=None))
    obs = await cluster.probe()()
    # Ready without a URL yet: nothing wrong was seen, so no failure is claimed.
    assert obs.outcome == PredictorOutcome.NOT_CHECKED and obs.ok
    assert obs.details["reason"] == "NoURL"
    obs = await cluster.probe(url_override=model_server + "/")()
    assert obs.outcome == PredictorOutcome.READY
    assert obs.details["url"] == model_server


async def test_model_server_up_without_a_model_is_not_ready(cluster: Cluster, tmp_path: Path) -> None:
    # The real server with an empty model dir waits for the model: readiness answers 503.
    app = build_app(model_name=NAME, model_dir=tmp_path, wait_for_model=True, poll_seconds=60.0)
    async with serve(app) as url:
        await cluster.isvc(status=ready_status(address=url))
        obs = await cluster.probe()()
    assert obs.outcome == PredictorOutcome.NOT_READY
    assert obs.details["reason"] == "ModelNotReady"
    assert any(e.startswith(f"GET /v1/models/{NAME} → 503") for e in obs.evidence)


# -- not-ready and pod-failing: status, pods, logs ------------------------------------------------


async def test_not_ready_no_supporting_runtime(cluster: Cluster) -> None:
    message = "no runtime found to support predictor with model type: {sklearn <nil>}"
    await cluster.isvc(status={
        "conditions": [
            {"type": "IngressReady", "status": "False", "reason": "PredictorConfigurationReady not ready"},
            {"type": "PredictorReady", "status": "False", "reason": "NoSupportingRuntime",
             "message": message},
            {"type": "Ready", "status": "False", "reason": "NoSupportingRuntime"},
        ],
        "modelStatus": {"transitionStatus": "InvalidSpec", "lastFailureInfo": {
            "reason": "NoSupportingRuntime", "message": message}},
    })
    obs = await cluster.probe()()
    assert obs.outcome == PredictorOutcome.NOT_READY and not obs.ok
    assert obs.details["failure_reason"] == "NoSupportingRuntime"
    assert obs.details["reason"] == "NoSupportingRuntime"
    assert obs.details["conditions"]["PredictorReady"] == {
        "status": "False", "reason": "NoSupportingRuntime", "message": message}
    assert f"lastFailureInfo: NoSupportingRuntime: {message}" in obs.evidence
    assert any("PredictorReady=False (NoSupportingRuntime)" in e for e in obs.evidence)
    assert f"no pods with label serving.kserve.io/inferenceservice={NAME}" in obs.evidence
    assert obs.details["pods"] == []


async def test_not_ready_isvc_missing(cluster: Cluster) -> None:
    obs = await cluster.probe()()
    assert obs.outcome == PredictorOutcome.NOT_READY
    assert obs.details["reason"] == "NotFound"
    assert obs.evidence == (f"InferenceService {NS}/{NAME} not found (404)",)


async def test_pod_failing_image_pull_401(cluster: Cluster) -> None:
    message = ('Back-off pulling image "harbor.example.com/ml/iris-fastapi:1.0": failed to authorize: '
               "failed to fetch anonymous token: 401 Unauthorized")
    await cluster.isvc(status={"conditions": [{"type": "Ready", "status": "False",
                                               "reason": "PredictorNotReady"}]})
    await cluster.pod(init=[{"name": "storage-initializer", "ready": True,
                             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                      main=[{"name": "kserve-container",
                             "state": {"waiting": {"reason": "ImagePullBackOff", "message": message}}},
                            {"name": "istio-proxy", "ready": True, "state": {"running": {}}}])
    obs = await cluster.probe()()
    assert obs.outcome == PredictorOutcome.POD_FAILING
    assert obs.details["container"] == "kserve-container"
    assert obs.details["reason"] == "ImagePullBackOff"
    assert f"pod {POD}: container kserve-container ImagePullBackOff: {message}" in obs.evidence
    assert obs.details["log_tail"] == []  # it never ran: no log to ask for
    assert cluster.server.stats.count("get", "pods/log") == 0
    pod = obs.details["pods"][0]
    assert pod["name"] == POD and pod["phase"] == "Pending" and pod["ready"] is False
    names = [c["name"] for c in pod["containers"]]
    assert names == ["storage-initializer", "kserve-container", "istio-proxy"]


async def test_pod_failing_init_error_with_redacted_log_tail(cluster: Cluster) -> None:
    await cluster.isvc(status={"conditions": [{"type": "Ready", "status": "False"}]})
    await cluster.pod(init=[{"name": "storage-initializer", "restarts": 3,
                             "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
                      main=[{"name": "kserve-container",
                             "state": {"waiting": {"reason": "PodInitializing"}}}])
    noise = [f"INFO:root:attempt {i}" for i in range(40)]
    cluster.log("storage-initializer", "\n".join([
        *noise,
        f"INFO:root:Using secret key {SECRET} for s3://mlpipeline",  # only the caller knows this one
        "DEBUG env AWS_SECRET_ACCESS_KEY=minio123 AWS_ACCESS_KEY_ID=minio",  # caught by pattern
        "botocore.exceptions.NoCredentialsError: Unable to locate credentials",
    ]) + "\n")
    obs = await cluster.probe(log_tail_lines=5)()
    assert obs.outcome == PredictorOutcome.POD_FAILING
    assert (obs.details["container"], obs.details["reason"]) == ("storage-initializer", "Init:Error")
    tail = obs.details["log_tail"]
    assert len(tail) == 5
    assert tail[-1] == "botocore.exceptions.NoCredentialsError: Unable to locate credentials"
    assert tail[-3] == "INFO:root:Using secret key <redacted> for s3://mlpipeline"
    assert tail[-2] == "DEBUG env AWS_SECRET_ACCESS_KEY=<redacted> AWS_ACCESS_KEY_ID=<redacted>"
    assert ("storage-initializer| botocore.exceptions.NoCredentialsError: Unable to locate credentials"
            in obs.evidence)
    assert f"pod {POD}: init container storage-initializer Init:Error: exit code 1" in obs.evidence
    no_secret_anywhere(obs)


async def test_log_tail_is_bounded_in_bytes_and_keeps_the_end(cluster: Cluster) -> None:
    await cluster.isvc(status={"conditions": [{"type": "Ready", "status": "False"}]})
    await cluster.pod(main=[{"name": "kserve-container", "restarts": 7,
                             "state": {"waiting": {"reason": "CrashLoopBackOff",
                                                   "message": "back-off 5m0s restarting failed container"}}}],
                      phase="Running")
    cluster.log("kserve-container", "x" * 5000 + "\n" + "y" * 300 + "\nValueError: model file not found\n")
    obs = await cluster.probe(log_tail_bytes=200)()
    assert obs.outcome == PredictorOutcome.POD_FAILING
    assert obs.details["reason"] == "CrashLoopBackOff"
    tail = obs.details["log_tail"]
    assert tail == ["ValueError: model file not found"]
    assert sum(len(line.encode()) for line in tail) <= 200


async def test_pod_failing_sidecar_not_ready_shows_the_dns_timeout(cluster: Cluster) -> None:
    await cluster.isvc(status={"conditions": [{"type": "Ready", "status": "False",
                                               "reason": "RevisionMissing"}]})
    await cluster.pod(main=[{"name": "kserve-container", "ready": True, "state": {"running": {}}},
                            {"name": "istio-proxy", "ready": False, "state": {"running": {}}}],
                      phase="Running")
    line = ('warning envoy config StreamAggregatedResources gRPC config stream closed: 14, connection error: '
            'desc = "transport: Error while dialing dial tcp: lookup istiod.istio-system.svc: i/o timeout"')
    cluster.log("istio-proxy", f"info starting\n{line}\n")
    obs = await cluster.probe()()
    assert obs.outcome == PredictorOutcome.POD_FAILING
    assert (obs.details["container"], obs.details["reason"]) == ("istio-proxy", "SidecarNotReady")
    assert obs.details["log_tail"][-1] == line
    assert f"istio-proxy| {line}" in obs.evidence


async def test_half_written_container_status_is_still_read(cluster: Cluster) -> None:
    # No image, imageID, ready or restartCount: kubernetes_asyncio's models would refuse this
    # list; the probe reads raw JSON and still names the failure.
    await cluster.isvc(status={"conditions": [{"type": "Ready", "status": "False"}]})
    await cluster.pod(main=[{"name": "kserve-container", "minimal": True,
                             "state": {"waiting": {"reason": "ErrImagePull",
                                                   "message": "401 Unauthorized"}}}])
    obs = await cluster.probe()()
    assert obs.outcome == PredictorOutcome.POD_FAILING, obs.evidence
    assert (obs.details["container"], obs.details["reason"]) == ("kserve-container", "ErrImagePull")
    assert obs.details["pods"][0]["containers"][0]["restarts"] == 0


async def test_missing_log_does_not_lose_the_diagnosis(cluster: Cluster) -> None:
    await cluster.isvc(status={"conditions": [{"type": "Ready", "status": "False"}]})
    await cluster.pod(init=[{"name": "storage-initializer",
                             "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
                      main=[{"name": "kserve-container",
                             "state": {"waiting": {"reason": "PodInitializing"}}}])
    cluster.server.faults.fail_next(1, status=500, verb="get", resource="pods/log")
    obs = await cluster.probe()()
    assert obs.outcome == PredictorOutcome.POD_FAILING
    assert obs.details["reason"] == "Init:Error"
    assert obs.details["log_tail"] == []
    assert "log of storage-initializer unavailable: 500 Internal Server Error" in obs.evidence


async def probe_at(url: str, *, timeout: float = 5.0, release: asyncio.Event | None = None) -> Observation:
    """One probe run against the API at ``url`` with a client of its own; then ``release`` a
    hanging stand-in so its handler ends before the server stops."""
    api = client.ApiClient(configuration=client.Configuration(host=url))
    try:
        return await PredictorProbe(api=api, namespace=NS, name=NAME, timeout=timeout)()
    finally:
        if release is not None:
            release.set()
        await api.close()


async def test_hanging_log_endpoint_keeps_the_diagnosis(cluster: Cluster) -> None:
    await cluster.isvc(status={"conditions": [{"type": "Ready", "status": "False"}]})
    await cluster.pod(init=[{"name": "storage-initializer",
                             "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
                      main=[{"name": "kserve-container",
                             "state": {"waiting": {"reason": "PodInitializing"}}}])
    release = asyncio.Event()
    async with serve(log_hanging_proxy(cluster.server.url, release)) as url:
        obs = await probe_at(url, timeout=1.0, release=release)
    assert obs.outcome == PredictorOutcome.POD_FAILING
    assert (obs.details["container"], obs.details["reason"]) == ("storage-initializer", "Init:Error")
    assert obs.details["log_tail"] == []
    assert f"no answer within 1 s while reading the log of {POD}/storage-initializer" in obs.evidence


# -- readiness only (no canary configured) ---------------------------------------------------------


class _Counting:
    """Counts the model server's requests by path (readiness-only runs must not infer)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.paths: list[str] = []

    def app(self) -> web.Application:
        async def forward(request: web.Request) -> web.Response:
            self.paths.append(f"{request.method} {request.path}")
            async with aiohttp.ClientSession() as session, session.request(
                request.method, self.upstream + request.path_qs, data=await request.read(),
                headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
            ) as resp:
                return web.Response(status=resp.status, body=await resp.read(),
                                    content_type=resp.content_type)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        return app


@pytest.mark.parametrize(("protocol", "path"),
                         [("v1", f"/v1/models/{NAME}"), ("v2", f"/v2/models/{NAME}/ready")])
async def test_readiness_only_real_server_makes_no_inference(
    cluster: Cluster, model_server: str, protocol: str, path: str
) -> None:
    counting = _Counting(model_server)
    async with serve(counting.app()) as url:
        await cluster.isvc(status=ready_status(address=url))
        obs = await cluster.probe(protocol=protocol, canary_instances=None)()
    assert obs.outcome == PredictorOutcome.READY and obs.ok, obs.evidence
    assert counting.paths == [f"GET {path}"]
    assert obs.details["canary_configured"] is False and "canary" not in obs.details
    assert "canary_seconds" not in obs.values
    assert any(e.startswith(f"GET {path} → 200 ready") for e in obs.evidence), obs.evidence


@pytest.mark.parametrize("protocol", ["v1", "v2"])
async def test_readiness_only_passes_the_dummy_model(cluster: Cluster, protocol: str) -> None:
    # Without an opted-in canary the dummy model cannot be told apart: ready, not wrong-model.
    async with serve(dummy_model_app()) as url:
        await cluster.isvc(status=ready_status(address=url))
        obs = await cluster.probe(protocol=protocol, canary_instances=None)()
    assert obs.outcome == PredictorOutcome.READY, obs.evidence


async def test_readiness_only_not_ready_model(cluster: Cluster, tmp_path: Path) -> None:
    app = build_app(model_name=NAME, model_dir=tmp_path, wait_for_model=True, poll_seconds=60.0)
    async with serve(app) as url:
        await cluster.isvc(status=ready_status(address=url))
        obs = await cluster.probe(protocol="v2", canary_instances=None)()
    assert obs.outcome == PredictorOutcome.NOT_READY and not obs.ok
    assert obs.details["reason"] == "ModelNotReady"


async def test_components_predictor_url_is_the_last_fallback(cluster: Cluster, model_server: str) -> None:
    status = ready_status(address=None)
    status["components"] = {"predictor": {"url": model_server}}
    await cluster.isvc(status=status)
    obs = await cluster.probe(canary_instances=None)()
    assert obs.outcome == PredictorOutcome.READY, obs.evidence
    assert obs.details["url"] == model_server


async def test_canary_with_json_values_strings(cluster: Cluster) -> None:
    # Any JSON values: a text model answering labels.
    async def predict(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"predictions": [{"label": "positive", "score": 0.9}
                                                  for _ in body["instances"]]})

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"name": NAME, "ready": True})

    app = web.Application()
    app.router.add_get(f"/v1/models/{NAME}", ready)
    app.router.add_post(f"/v1/models/{NAME}:predict", predict)
    async with serve(app) as url:
        await cluster.isvc(status=ready_status(address=url))
        ok = await cluster.probe(canary_instances=["great film"],
                                 expected=[{"label": "positive", "score": 0.9001}])()
        wrong = await cluster.probe(canary_instances=["great film"],
                                    expected=[{"label": "negative", "score": 0.9}])()
    assert ok.outcome == PredictorOutcome.READY, ok.evidence
    assert wrong.outcome == PredictorOutcome.WRONG_MODEL, wrong.evidence


async def test_modelmesh_predictor_is_not_checked_not_failed(cluster: Cluster) -> None:
    await cluster.isvc(status=ready_status(address=None),
                       annotations={"serving.kserve.io/deploymentMode": "ModelMesh"})
    obs = await cluster.probe()()
    assert obs.outcome == PredictorOutcome.NOT_CHECKED and obs.ok
    assert obs.details["reason"] == "ModelMesh"


# -- probe-error ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "resource", "what"), [
    (403, "inferenceservices", f"GET inferenceservice {NS}/{NAME}"),
    (500, "inferenceservices", f"GET inferenceservice {NS}/{NAME}"),
    (503, "pods", f"LIST pods in {NS}"),
])
async def test_api_errors_are_probe_errors(cluster: Cluster, status: int, resource: str, what: str) -> None:
    await cluster.isvc(status={"conditions": [{"type": "Ready", "status": "False"}]})
    verb = "list" if resource == "pods" else "get"
    cluster.server.faults.fail_next(1, status=status, verb=verb, resource=resource)
    obs = await cluster.probe()()
    assert obs.outcome == PredictorOutcome.PROBE_ERROR and not obs.ok
    assert obs.details["api_status"] == status
    assert any(e.startswith(f"Kubernetes API answered {status} ") and e.endswith(f"to {what}")
               for e in obs.evidence), obs.evidence


async def test_api_server_down_is_a_probe_error() -> None:
    obs = await probe_at(f"http://127.0.0.1:{free_port()}")
    assert obs.outcome == PredictorOutcome.PROBE_ERROR
    refused = "Kubernetes API unreachable: connection refused"
    assert any(e.startswith(refused) for e in obs.evidence), obs.evidence


async def test_api_server_that_hangs_hits_the_hard_timeout() -> None:
    release = asyncio.Event()
    async with serve(hanging_app(release)) as url:
        obs = await probe_at(url, timeout=0.3, release=release)
    assert obs.outcome == PredictorOutcome.PROBE_ERROR
    assert obs.evidence == ("no answer within 0.3 s while reading the InferenceService",)


async def test_bad_settings_fail_at_construction(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="one expected answer per instance"):
        cluster.probe(canary_instances=[[1.0], [2.0]], expected=[0])
    with pytest.raises(ValueError, match="protocol must be"):
        cluster.probe(protocol="grpc")


# -- metrics ----------------------------------------------------------------------------------------


async def test_observations_feed_the_probe_metrics(cluster: Cluster, model_server: str) -> None:
    registry = CollectorRegistry()
    metrics = ProbeMetrics(registry)
    labels = {"probe": "predictor", "target": f"{NS}/{NAME}"}
    probe = cluster.probe()

    metrics.record(await probe())  # ISVC missing
    assert registry.get_sample_value("warden_probe_success", labels) == 0.0

    await cluster.isvc(status=ready_status(address=model_server))
    obs = await probe()
    metrics.record(obs)
    assert registry.get_sample_value("warden_probe_success", labels) == 1.0
    assert registry.get_sample_value("warden_probe_duration_seconds_count", {"probe": "predictor"}) == 2.0
    assert registry.get_sample_value("warden_probe_last_run_timestamp_seconds",
                                     {"probe": "predictor"}) == obs.finished


# -- reading from the daemon's watch caches ----------------------------------------------------------

CACHED_KINDS = (("v1", "Pod"), ("serving.kserve.io/v1beta1", "InferenceService"))


def reads(server: ApiServer) -> dict[str, int]:
    """The GET/LIST requests the probe could make for its status and pods (watches excluded)."""
    return {f"{verb} {res}": server.stats.count(verb, res)
            for verb in ("get", "list") for res in (PLURAL, "pods")}


@contextlib.asynccontextmanager
async def informer_source(cluster: Cluster, *, start: bool = True) -> AsyncIterator[
        tuple[Informer, InformerPredictorSource]]:
    """The daemon's real Informer on the sandbox API, and the probe source it backs."""
    inf = Informer(Kube(cluster.api, redactor=Redactor()), kinds=CACHED_KINDS, namespaces={NS},
                   watch_timeout_seconds=30)
    task = await run_until_synced(inf) if start else None
    try:
        yield inf, InformerPredictorSource(informer=inf, fallback=ApiPredictorSource(cluster.api))
    finally:
        await stop_task(task)


async def test_cache_backed_runs_make_no_get_or_list(cluster: Cluster, model_server: str) -> None:
    await cluster.isvc(status=ready_status(address=model_server))
    await cluster.pod(main=[{"name": "kserve-container", "ready": True, "state": {"running": {}}}],
                      phase="Running")
    async with informer_source(cluster) as (inf, source):
        probe = cluster.probe(source=source)
        before = reads(cluster.server)
        for _ in range(3):
            obs = await probe()
            assert obs.outcome == PredictorOutcome.READY and obs.ok, obs.evidence
        assert obs.details["pods"][0]["name"] == POD and obs.details["pods"][0]["phase"] == "Running"
        assert reads(cluster.server) == before  # three healthy runs: not one GET or LIST

        # The model breaks: the cache follows by watch, and the probe sees it without a request
        # except the failing container's log tail (pods/log cannot be watched).
        co = client.CoreV1Api(cluster.api)
        resp = await co.patch_namespaced_pod_status(POD, NS, {"status": {"containerStatuses": [
            _status({"name": "kserve-container", "restarts": 4, "state": {"waiting": {
                "reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}}})]}},
            _content_type=MERGE, _preload_content=False)
        assert resp.status == 200, await resp.text()
        resp.release()
        await client.CustomObjectsApi(cluster.api).patch_namespaced_custom_object_status(
            GROUP, VERSION, NS, PLURAL, NAME,
            {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "PredictorNotReady"}]}},
            _content_type=MERGE)
        cluster.log("kserve-container", "loading model\nValueError: model not found at /mnt/models\n")
        before = reads(cluster.server)

        def cached_crashloop() -> bool:
            pod = inf.get("Pod", NS, POD) or {}
            states = [c.get("state") or {} for c in (pod.get("status") or {}).get("containerStatuses") or []]
            isvc = inf.get("InferenceService", NS, NAME) or {}
            conds = (isvc.get("status") or {}).get("conditions") or []
            return any("waiting" in s for s in states) and any(c.get("status") == "False" for c in conds)

        await eventually(cached_crashloop, what="the watch caches to see the crash loop")
        obs = await probe()
        assert obs.outcome == PredictorOutcome.POD_FAILING, obs.evidence
        assert (obs.details["container"], obs.details["reason"]) == ("kserve-container", "CrashLoopBackOff")
        assert obs.details["log_tail"][-1] == "ValueError: model not found at /mnt/models"
        assert reads(cluster.server) == before
        assert cluster.server.stats.count("get", "pods/log") == 1


async def test_cache_backed_missing_isvc_and_foreign_pods(cluster: Cluster) -> None:
    # A pod of another ISVC in the same namespace is not ours; nor is the ISVC there at all.
    other = "other-model"
    await client.CoreV1Api(cluster.api).create_namespaced_pod(NS, {
        "metadata": {"name": f"{other}-predictor-1", "labels": {"serving.kserve.io/inferenceservice": other}},
        "spec": {"containers": [{"name": "kserve-container", "image": "img"}]},
    })
    async with informer_source(cluster) as (_, source):
        before = reads(cluster.server)
        obs = await cluster.probe(source=source)()
        assert obs.outcome == PredictorOutcome.NOT_READY and obs.details["reason"] == "NotFound"
        assert obs.evidence == (f"InferenceService {NS}/{NAME} not found (not in the watch cache)",)
        assert await source.pods(NS, NAME) == []
        assert [p["metadata"]["name"] for p in await source.pods(NS, other)] == [f"{other}-predictor-1"]
        assert reads(cluster.server) == before


async def test_unsynced_cache_falls_back_to_the_api(cluster: Cluster) -> None:
    # Before the first list an empty cache would say "not found" for everything: ask the API.
    await cluster.isvc(status={"conditions": [{"type": "Ready", "status": "False"}]})
    async with informer_source(cluster, start=False) as (inf, source):
        assert not inf.has_synced
        obs = await cluster.probe(source=source)()
        assert obs.outcome == PredictorOutcome.NOT_READY, obs.evidence
        assert obs.details["conditions"]["Ready"]["status"] == "False"
        assert cluster.server.stats.count("get", PLURAL) == 1
        assert cluster.server.stats.count("list", "pods") == 1


# -- through a proxy into the cluster network ---------------------------------------------------------
#
# KServe's real controller publishes the in-cluster Service address; outside the cluster the probe
# reaches it only through ``proxy=`` (``probes.predictor.proxy``). The proxy here is the sandbox's
# stand-in for the cluster network (sandbox.clusternet): the Service, a Ready pod carrying the
# model server's loopback URL, the real model server behind it.

SERVICE = f"{NAME}-predictor"
IN_CLUSTER = f"http://{SERVICE}.{NS}.svc.cluster.local"
PREDICTOR_SELECTOR = {"app": f"isvc.{SERVICE}"}


@pytest.fixture
async def network(cluster: Cluster) -> AsyncIterator[ClusterNetwork]:
    net = ClusterNetwork(cluster.api)
    await net.start()
    try:
        yield net
    finally:
        await net.stop()


async def predictor_service(cluster: Cluster, *, pod_url: str | None, ready: bool = True) -> None:
    """What RawDeployment KServe and the kubelet make: the Service, and (``pod_url``) one pod
    whose predictor listens at ``pod_url``."""
    core = client.CoreV1Api(cluster.api)
    await core.create_namespaced_service(NS, {
        "metadata": {"name": SERVICE},
        "spec": {"selector": PREDICTOR_SELECTOR, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    })
    if pod_url is None:
        return
    await core.create_namespaced_pod(NS, {
        "metadata": {"name": POD, "annotations": {URL_ANNOTATION: pod_url},
                     "labels": {"serving.kserve.io/inferenceservice": NAME, **PREDICTOR_SELECTOR}},
        "spec": {"containers": [{"name": "kserve-container", "image": "img"}]},
    })
    state = "True" if ready else "False"
    main = {"name": "kserve-container", "ready": ready, "state": {"running": {}}}
    resp = await core.patch_namespaced_pod_status(POD, NS, {"status": {
        "phase": "Running", "conditions": [{"type": "Ready", "status": state}],
        "containerStatuses": [_status(main)],
    }}, _content_type=MERGE, _preload_content=False)
    assert resp.status == 200, await resp.text()
    resp.release()


def gateway(status: int, *, proxy_status: str | None = None) -> web.Application:
    """A forward proxy that answers every request itself with ``status`` (a broken one)."""

    async def answer(request: web.Request) -> web.Response:
        headers = {"Proxy-Status": proxy_status} if proxy_status else {}
        return web.Response(status=status, text="upstream trouble", headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def diagnosed(obs: Observation) -> list[Finding]:
    """The daemon's pure diagnosis of the seed's healthy cluster, with this predictor observation."""
    c = fx.healthy()
    retimed = dataclasses.replace(obs, started=fx.NOW - 1.05, finished=fx.NOW - 1)
    c.replace_observations("predictor", [retimed])
    return fx.run(c).findings


@pytest.mark.parametrize("protocol", ["v1", "v2"])
async def test_the_in_cluster_address_is_reached_through_the_proxy_only(
        cluster: Cluster, network: ClusterNetwork, model_server: str, protocol: str) -> None:
    await predictor_service(cluster, pod_url=model_server)
    await cluster.isvc(status=ready_status(address=IN_CLUSTER, url=f"http://{NAME}-{NS}.example.com"))

    obs = await cluster.probe(proxy=network.url, protocol=protocol)()
    assert obs.outcome == PredictorOutcome.READY and obs.ok, obs.evidence
    assert obs.details["url"] == IN_CLUSTER and obs.details["proxy"] == network.url
    assert obs.details["canary"]["predicted"] == [0]  # the canary POST went through it too
    assert obs.values["request_seconds"] > 0 and obs.values["canary_seconds"] > 0
    assert [f for f in diagnosed(obs) if f.severity is Severity.CRITICAL] == []

    # Without the proxy the same address is not reachable from here (no cluster DNS).
    direct = await cluster.probe(timeout=2.0, protocol=protocol)()
    assert direct.outcome == PredictorOutcome.UNREACHABLE, direct.evidence
    assert "proxy" not in direct.details

    # A probe that knows it runs outside the cluster (``check`` on a laptop) does not call that
    # a failure: the address is in-cluster, nothing out here can resolve it. Not checked.
    outside = await cluster.probe(timeout=2.0, protocol=protocol, in_cluster=False)()
    assert outside.outcome == PredictorOutcome.NOT_CHECKED and outside.ok, outside.evidence
    assert outside.details["reason"] == "OutsideCluster"
    assert any("probes.predictor.proxy" in e for e in outside.evidence), outside.evidence
    assert [f for f in diagnosed(outside) if f.severity is Severity.CRITICAL] == []
    # ... and with the proxy it is checked from outside as from inside.
    through = await cluster.probe(proxy=network.url, protocol=protocol, in_cluster=False)()
    assert through.outcome == PredictorOutcome.READY, through.evidence


PROXY_FAILURES = [
    # (name, what the test sets up, a fragment the evidence must hold)
    ("proxy refuses the connection", "refused", "unreachable for GET http://iris-model-predictor"),
    ("no such Service", "no-service", f"clusternet: destination_not_found (no service {NS}/{SERVICE})"),
    ("no ready endpoint", "not-ready",
     f"answered 503 to GET {IN_CLUSTER}/v1/models/{NAME} (clusternet: destination_unavailable "
     f"(no endpoints available for service {NS}/{SERVICE}))"),
    ("an address outside the cluster", "external", "answered 403"),
    ("a proxy's unexplained 502", "gateway-502", "answered 502 to GET"),
    ("a proxy's Proxy-Status error with a 503", "gateway-503",
     f"answered 503 to GET {IN_CLUSTER}/v1/models/{NAME} (squid: dns_error)"),
]


@pytest.mark.parametrize(("name", "setup", "fragment"), PROXY_FAILURES, ids=[p[0] for p in PROXY_FAILURES])
async def test_the_proxys_own_failure_is_a_probe_error_naming_it_never_a_critical(
        cluster: Cluster, network: ClusterNetwork, model_server: str, name: str, setup: str,
        fragment: str) -> None:
    address = IN_CLUSTER
    async with contextlib.AsyncExitStack() as stack:
        proxy = network.url
        if setup == "refused":
            proxy = f"http://127.0.0.1:{free_port()}"
        elif setup == "not-ready":
            await predictor_service(cluster, pod_url=model_server, ready=False)
        elif setup == "external":
            await predictor_service(cluster, pod_url=model_server)
            address = f"http://{NAME}-{NS}.example.com"
        elif setup == "gateway-502":
            proxy = await stack.enter_async_context(serve(gateway(502)))
        elif setup == "gateway-503":
            broken = gateway(503, proxy_status="squid; error=dns_error")
            proxy = await stack.enter_async_context(serve(broken))
        await cluster.isvc(status=ready_status(address=address))
        obs = await cluster.probe(proxy=proxy)()

    assert obs.outcome == PredictorOutcome.PROBE_ERROR and not obs.ok, obs.evidence
    assert obs.details["reason"] == "ProxyError" and obs.details["proxy"] == proxy
    assert len(obs.evidence) == 1 and obs.evidence[0].startswith(f"proxy {proxy} "), obs.evidence
    assert fragment in obs.evidence[0], obs.evidence
    findings = diagnosed(obs)
    assert [f for f in findings if f.severity is Severity.CRITICAL] == [], findings
    [warning] = [f for f in findings if f.code is Code.PROBE_ERROR]
    assert warning.severity is Severity.WARNING
    assert warning.evidence[0].startswith(f"predictor probe of {NS}/{NAME} could not run: proxy {proxy} ")


async def test_what_the_proxy_reports_of_the_predictor_is_the_predictors(
        cluster: Cluster, network: ClusterNetwork) -> None:
    # The proxy reached the pod, which refused: exactly what a direct request would have met.
    await predictor_service(cluster, pod_url=f"http://127.0.0.1:{free_port()}")
    await cluster.isvc(status=ready_status(address=IN_CLUSTER))
    obs = await cluster.probe(proxy=network.url)()
    assert obs.outcome == PredictorOutcome.UNREACHABLE, obs.evidence
    assert any(f"via proxy {network.url}: 502 (clusternet: connection_refused" in e for e in obs.evidence)
    critical = [f for f in diagnosed(obs) if f.severity is Severity.CRITICAL]
    assert [f.code for f in critical] == [Code.PREDICTOR_NOT_READY]


async def test_a_503_the_proxy_does_not_claim_is_the_model_servers(cluster: Cluster) -> None:
    # KServe's model servers answer 503 for a model that is not ready yet; a proxy that relays it
    # adds no Proxy-Status error, so it is read as without a proxy.
    async with serve(gateway(503)) as proxy:
        await cluster.isvc(status=ready_status(address=IN_CLUSTER))
        obs = await cluster.probe(proxy=proxy)()
    assert obs.outcome == PredictorOutcome.NOT_READY, obs.evidence
    assert obs.details["reason"] == "ModelNotReady" and obs.details["proxy"] == proxy
