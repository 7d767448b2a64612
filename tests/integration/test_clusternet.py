"""The cluster network's stand-in (:class:`sandbox.clusternet.ClusterNetwork`) on both control planes.

A Service and its pods are written through the API (the sandbox's admin client, no simulated
controller running); the "pod" that serves is a small aiohttp app on loopback whose URL the pod
carries in ``sandbox.kserve-warden.io/predictor-url``, as the simulated kubelet would publish it.
Requests go through the proxy with a real aiohttp client (``proxy=``), exactly as the predictor
probe sends them: the forwarded answer, then each answer the proxy writes itself (503 no
endpoints, 502 no Service or no such port, 403 outside the cluster, 413 past the body cap, 502
for a pod that refuses), each marked with RFC 9209 ``Proxy-Status``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from kubernetes_asyncio import client

from sandbox import Sandbox
from sandbox.clusternet import PROXY_NAME, ClusterNetwork
from sandbox.controllers.predictor_pod import URL_ANNOTATION
from tests.conftest import free_port
from tests.integration.control_planes import CONTROL_PLANES, make_sandbox
from tests.integration.daemon_fixtures import serve

# One sandbox per control plane for the module (a real one costs seconds to reset and start);
# each test works in a namespace of its own.
pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

_NAMESPACES = itertools.count()
SERVICE = "echo-predictor"
SELECTOR = {"app": "isvc.echo-predictor"}
MERGE = "application/merge-patch+json"


def echo_app() -> web.Application:
    """The pod's server: says what reached it; ``/stream`` answers in chunks."""

    async def echo(request: web.Request) -> web.StreamResponse:
        if request.path == "/stream":
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            for i in range(3):
                await resp.write(f"chunk-{i};".encode())
            await resp.write_eof()
            return resp
        return web.json_response({
            "method": request.method, "path_qs": request.path_qs, "host": request.host,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": (await request.read()).decode(),
        }, headers={"X-Served-By": "echo"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@dataclass
class Net:
    api: client.ApiClient
    ns: str
    proxy: str

    async def service(self, name: str = SERVICE, *, selector: dict[str, str] | None = None) -> None:
        await client.CoreV1Api(self.api).create_namespaced_service(self.ns, {
            "metadata": {"name": name},
            "spec": {"selector": SELECTOR if selector is None else selector,
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        })

    async def pod(self, name: str, *, url: str | None, ready: bool = True) -> None:
        core = client.CoreV1Api(self.api)
        annotations = {URL_ANNOTATION: url} if url else {}
        await core.create_namespaced_pod(self.ns, {
            "metadata": {"name": name, "labels": dict(SELECTOR), "annotations": annotations},
            "spec": {"containers": [{"name": "kserve-container", "image": "kserve/sklearnserver:v0.15.2",
                                     "ports": [{"containerPort": 8080}]}],
                     "automountServiceAccountToken": False},
        })
        status = "True" if ready else "False"
        resp = await core.patch_namespaced_pod_status(name, self.ns, {"status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": status},
                           {"type": "ContainersReady", "status": status}],
        }}, _content_type=MERGE, _preload_content=False)
        assert resp.status == 200, await resp.text()
        resp.release()

    @contextlib.asynccontextmanager
    async def get(self, url: str, **kw: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        method = kw.pop("method", "GET")
        async with aiohttp.ClientSession() as session, session.request(
                method, url, proxy=self.proxy, **kw) as resp:
            yield resp


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=CONTROL_PLANES)
async def sandbox(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                  ) -> AsyncIterator[Sandbox]:
    plane = str(request.param)
    cp = request.getfixturevalue("real_control_plane") if plane == "real" else None
    work = tmp_path_factory.mktemp(f"clusternet-{plane}")
    async with make_sandbox(plane, workdir=work / "sandbox", cp=cp, controllers=False) as sb:
        yield sb


@pytest_asyncio.fixture(loop_scope="module")
async def net(sandbox: Sandbox) -> AsyncIterator[Net]:
    assert sandbox.api is not None
    core = client.CoreV1Api(sandbox.api)
    ns = f"clusternet-{next(_NAMESPACES)}"
    await core.create_namespace({"metadata": {"name": ns}})
    # The real apiserver's ServiceAccount admission wants the namespace's default account,
    # which kube-controller-manager creates a moment later: create it now (or find it).
    with contextlib.suppress(client.ApiException):
        await core.create_namespaced_service_account(ns, {"metadata": {"name": "default"}})
    network = ClusterNetwork(sandbox.api)
    await network.start()
    try:
        yield Net(sandbox.api, ns, network.url)
    finally:
        await network.stop()


def own_answer(resp: aiohttp.ClientResponse, error: str) -> str:
    """The Proxy-Status of an answer the proxy wrote itself, checked for its error type."""
    header = resp.headers.get("Proxy-Status", "")
    assert header.startswith(f"{PROXY_NAME}; error={error}; details="), header
    return header


async def test_forwards_to_a_ready_endpoint_and_streams_the_answer(net: Net) -> None:
    async with serve(echo_app()) as pod_url:
        await net.service()
        await net.pod("echo-0", url=pod_url)
        await net.pod("echo-1", url=f"http://127.0.0.1:{free_port()}", ready=False)  # never chosen

        short = f"{SERVICE}.{net.ns}.svc"
        for host in (f"{short}.cluster.local", short, f"{short}:80"):
            async with net.get(f"http://{host}/v1/models/echo?verbose=1&x=%2F", headers={
                    "X-Request-Id": "r-1", "Proxy-Authorization": "Basic c2VjcmV0", "Connection": "X-Hop",
                    "X-Hop": "one hop only"}) as resp:
                assert resp.status == 200, await resp.text()
                assert resp.headers["X-Served-By"] == "echo" and "Proxy-Status" not in resp.headers
                seen = await resp.json()
            assert seen["method"] == "GET" and seen["path_qs"] == "/v1/models/echo?verbose=1&x=/"
            assert seen["host"] == host.removesuffix(":80")  # an L4 hop leaves Host alone
            assert seen["headers"]["x-request-id"] == "r-1"
            assert "proxy-authorization" not in seen["headers"] and "x-hop" not in seen["headers"]

        body = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
        async with net.get(f"http://{SERVICE}.{net.ns}.svc.cluster.local/v1/models/echo:predict",
                           method="POST", json=body) as resp:
            seen = await resp.json()
        assert seen["method"] == "POST" and json.loads(seen["body"]) == body
        assert seen["headers"]["content-type"] == "application/json"

        async with net.get(f"http://{SERVICE}.{net.ns}.svc.cluster.local/stream") as resp:
            assert resp.status == 200 and await resp.text() == "chunk-0;chunk-1;chunk-2;"


async def test_no_ready_endpoint_is_503_and_no_service_is_502(net: Net) -> None:
    await net.service()
    base = f"http://{SERVICE}.{net.ns}.svc.cluster.local"
    async with net.get(f"{base}/v1/models/echo") as resp:  # no pod at all
        assert resp.status == 503
        assert await resp.text() == f"no endpoints available for service {net.ns}/{SERVICE}\n"
        own_answer(resp, "destination_unavailable")
    await net.pod("not-ready", url=f"http://127.0.0.1:{free_port()}", ready=False)
    await net.pod("no-url", url=None)  # Ready, but the kubelet never said where it listens
    async with net.get(f"{base}/v1/models/echo") as resp:
        assert resp.status == 503
        own_answer(resp, "destination_unavailable")

    # Ready and annotated, but terminating (a finalizer holds it): kube-proxy drops it too.
    core = client.CoreV1Api(net.api)
    async with serve(echo_app()) as pod_url:
        await net.pod("terminating", url=pod_url)
        await core.patch_namespaced_pod("terminating", net.ns, {"metadata": {"finalizers": ["test/hold"]}},
                                        _content_type=MERGE)
        try:
            await core.delete_namespaced_pod("terminating", net.ns)
            held = await core.read_namespaced_pod("terminating", net.ns)
            assert held.metadata.deletion_timestamp is not None
            async with net.get(f"{base}/v1/models/echo") as resp:
                assert resp.status == 503
        finally:
            await core.patch_namespaced_pod("terminating", net.ns, {"metadata": {"finalizers": None}},
                                            _content_type=MERGE)

    await net.service("no-selector", selector={})
    async with net.get(f"http://no-selector.{net.ns}.svc/") as resp:
        assert resp.status == 503

    async with net.get(f"http://missing.{net.ns}.svc.cluster.local/v1/models/echo") as resp:
        assert resp.status == 502
        assert await resp.text() == f"no service {net.ns}/missing\n"
        own_answer(resp, "destination_not_found")
    async with net.get(f"http://{SERVICE}.no-such-namespace.svc/") as resp:
        assert resp.status == 502
        own_answer(resp, "destination_not_found")
    async with net.get(f"{base}:8080/v1/models/echo") as resp:  # the targetPort is not the port
        assert resp.status == 502
        assert await resp.text() == f"service {net.ns}/{SERVICE} has no port 8080\n"


async def test_a_refusing_pod_is_502_connection_refused(net: Net) -> None:
    await net.service()
    await net.pod("dead", url=f"http://127.0.0.1:{free_port()}")
    async with net.get(f"http://{SERVICE}.{net.ns}.svc.cluster.local/v1/models/echo") as resp:
        assert resp.status == 502
        own_answer(resp, "connection_refused")


async def test_not_an_open_proxy_and_bodies_are_capped(net: Net) -> None:
    async with serve(echo_app()) as elsewhere:
        for url in (elsewhere + "/", "http://example.com/", f"http://{SERVICE}.{net.ns}.svc.example.org/",
                    f"http://{net.ns}.svc.cluster.local/"):
            async with net.get(url) as resp:
                assert resp.status == 403, url
                own_answer(resp, "http_request_denied")
        # Not a proxy request at all: the proxy's own address asked directly.
        async with aiohttp.ClientSession() as session, session.get(net.proxy + "/v1/models/echo") as resp:
            assert resp.status == 403
            own_answer(resp, "http_request_denied")

        small = ClusterNetwork(net.api, max_body=1024)
        await small.start()
        try:
            await net.service()
            await net.pod("echo-0", url=elsewhere)
            target = f"http://{SERVICE}.{net.ns}.svc.cluster.local/v1/models/echo:predict"
            async with aiohttp.ClientSession() as session:
                async with session.post(target, data=b"x" * 1024, proxy=small.url) as resp:
                    assert resp.status == 200 and len((await resp.json())["body"]) == 1024
                async with session.post(target, data=b"x" * 1025, proxy=small.url) as resp:
                    assert resp.status == 413
                    own_answer(resp, "http_request_error")

                async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as read
                    for _ in range(3):
                        yield b"y" * 512

                async with session.post(target, data=chunks(), proxy=small.url) as resp:
                    assert resp.status == 413
        finally:
            await small.stop()
