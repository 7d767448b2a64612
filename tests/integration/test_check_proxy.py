"""``kserve-warden check`` outside the cluster, through ``probes.predictor.proxy``.

The setting travels from the settings file through the daemon's probe set to every predictor
probe: a real ``check`` subprocess against the stand-in API reaches an InferenceService whose
address is its in-cluster Service URL through the sandbox's cluster network
(:class:`sandbox.clusternet.ClusterNetwork`), and a wrong proxy makes the predictor "not
checked, because of the proxy", not CRITICAL.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from sandbox.apiserver import ApiServer
from sandbox.clusternet import ClusterNetwork
from sandbox.controllers.predictor_pod import URL_ANNOTATION
from sandbox.kubeconfig import write_kubeconfig
from serving.app import build_app
from serving.train import train
from tests.conftest import free_port
from tests.integration.daemon_fixtures import serve

pytestmark = pytest.mark.timeout(120)

NS, NAME = "team-a", "iris"
SERVICE = f"{NAME}-predictor"
ADDRESS = f"http://{SERVICE}.{NS}.svc.cluster.local"
MERGE = "application/merge-patch+json"
SELECTOR = {"app": f"isvc.{SERVICE}"}


async def check(*args: str) -> tuple[int, dict[str, Any], str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "check", *args, "-o", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, json.loads(out or b"{}"), err.decode()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[ApiServer, client.ApiClient, str]]:
    """The stand-in API with one Ready InferenceService at its Service address, a Ready pod whose
    predictor (the project's model server, the real iris model) listens on loopback."""
    model_dir = tmp_path / "model"
    train(out=model_dir)
    server = ApiServer(host="127.0.0.1", port=0)
    await server.start()
    api = client.ApiClient(configuration=client.Configuration(host=server.url))
    try:
        async with serve(build_app(model_name=NAME, model_dir=model_dir)) as model_url:
            core = client.CoreV1Api(api)
            await core.create_namespace({"metadata": {"name": NS}})
            await core.create_namespaced_service(NS, {"metadata": {"name": SERVICE}, "spec": {
                "selector": SELECTOR, "ports": [{"port": 80, "targetPort": 8080}]}})
            await core.create_namespaced_pod(NS, {
                "metadata": {"name": f"{SERVICE}-0", "annotations": {URL_ANNOTATION: model_url},
                             "labels": {"serving.kserve.io/inferenceservice": NAME, **SELECTOR}},
                "spec": {"containers": [{"name": "kserve-container", "image": "img"}]}})
            resp = await core.patch_namespaced_pod_status(f"{SERVICE}-0", NS, {"status": {
                "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
                _content_type=MERGE, _preload_content=False)
            resp.release()
            co = client.CustomObjectsApi(api)
            await co.create_namespaced_custom_object("serving.kserve.io", "v1alpha1", NS, "servingruntimes", {
                "apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
                "metadata": {"name": "sklearn-runtime", "namespace": NS},
                "spec": {"supportedModelFormats": [{"name": "sklearn", "autoSelect": True}],
                         "protocolVersions": ["v1"],
                         "containers": [{"name": "kserve-container", "image": "sklearnserver:v0.15.2"}]}})
            isvcs = ("serving.kserve.io", "v1beta1", NS, "inferenceservices")
            await co.create_namespaced_custom_object(*isvcs, {
                "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                "metadata": {"name": NAME, "namespace": NS},
                "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                                 "storageUri": "pvc://models/iris"}}}})
            await co.patch_namespaced_custom_object_status(*isvcs, NAME, {"status": {
                    "address": {"url": ADDRESS}, "url": f"http://{NAME}-{NS}.example.com",
                    "conditions": [{"type": t, "status": "True"}
                                   for t in ("IngressReady", "PredictorReady", "Ready")]}},
                _content_type=MERGE)
            yield server, api, str(tmp_path)
    finally:
        await api.close()
        await server.stop()


def settings(tmp: str, proxy: str) -> Path:
    cfg = Path(tmp) / "warden.yaml"
    cfg.write_text(
        f"models:\n  - namespace: {NS}\n    name: {NAME}\n    protocol: v1\n"
        "    canary: {instances: [[5.1, 3.5, 1.4, 0.2]], expected: [0]}\n"
        f"probes:\n  predictor:\n    proxy: {proxy}\n")
    return cfg


def predictor(doc: dict[str, Any]) -> dict[str, Any]:
    [obs] = [o for o in doc["observations"] if o["probe"] == "predictor"]
    return obs


async def test_check_reaches_the_service_address_through_the_proxy(
        world: tuple[ApiServer, client.ApiClient, str]) -> None:
    server, api, tmp = world
    kubeconfig = Path(tmp) / "kubeconfig"
    write_kubeconfig(kubeconfig, server=server.url)
    network = ClusterNetwork(api)
    await network.start()
    proxy = network.url
    try:
        _, doc, err = await check("--config", str(settings(tmp, proxy)), "--kubeconfig", str(kubeconfig))
    finally:
        await network.stop()
    obs = predictor(doc)
    assert obs["outcome"] == "ready", (obs, err)
    assert obs["details"]["url"] == ADDRESS and obs["details"]["proxy"] == proxy
    assert obs["details"]["canary"]["predicted"] == [0]
    assert not [f for f in doc["findings"] if f["severity"] == "critical"], doc["findings"]

    # A proxy that is not there: the predictor is not judged, the proxy is named, nothing critical.
    gone = f"http://127.0.0.1:{free_port()}"
    code, doc, err = await check("--config", str(settings(tmp, gone)), "--kubeconfig", str(kubeconfig))
    obs = predictor(doc)
    assert obs["outcome"] == "probe-error" and obs["details"]["proxy"] == gone, obs
    assert code == 1, err
    assert not [f for f in doc["findings"] if f["severity"] == "critical"], doc["findings"]
    [probe_error] = [f for f in doc["findings"] if f["code"] == "probe-error"]
    assert f"proxy {gone} unreachable" in probe_error["evidence"][0]
