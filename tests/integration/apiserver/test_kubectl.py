"""kubectl against the sandbox API server, through a kubeconfig from ``write_kubeconfig``.

kubectl asks for aggregated discovery and Table output; the stand-in answers legacy discovery
and real ``meta.k8s.io/v1`` Tables (with the CRDs' printer columns), and kubectl uses both.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client, config

from sandbox.apiserver import ApiServer
from sandbox.kubeconfig import write_kubeconfig
from tests.conftest import find_tool

ISVC_YAML = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris
  namespace: user-example-com
spec:
  predictor:
    model:
      modelFormat:
        name: sklearn
      storageUri: s3://mlpipeline/models/iris
"""


@pytest.fixture
def kubeconfig(server: ApiServer, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, server=server.url)
    return path


async def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        find_tool("kubectl"),
        "--kubeconfig",
        str(kubeconfig),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_kubeconfig_file_is_private(kubeconfig: Path) -> None:
    assert kubeconfig.stat().st_mode & 0o777 == 0o600


async def test_kubeconfig_works_for_kubernetes_asyncio(server: ApiServer, kubeconfig: Path) -> None:
    api = await config.new_client_from_config(config_file=str(kubeconfig))
    async with api:
        assert (await client.CoreV1Api(api).read_namespace("default")).metadata.name == "default"


async def test_kubectl_get_and_apply_inferenceservices(server: ApiServer, kubeconfig: Path) -> None:
    code, _, err = await kubectl(kubeconfig, "create", "namespace", "user-example-com")
    assert code == 0, err
    code, out, err = await kubectl(
        kubeconfig, "apply", "--server-side", "--validate=false", "-f", "-", stdin=ISVC_YAML
    )
    assert code == 0 and "serverside-applied" in out, err
    async with client.ApiClient(client.Configuration(host=server.url)) as api:
        await client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
            "serving.kserve.io",
            "v1beta1",
            "user-example-com",
            "inferenceservices",
            "iris",
            {
                "status": {
                    "url": "http://iris.user-example-com.example.com",
                    "conditions": [{"type": "Ready", "status": "False"}],
                }
            },
            _content_type="application/merge-patch+json",
        )
    code, out, err = await kubectl(kubeconfig, "get", "inferenceservices", "-A")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["NAMESPACE", "NAME", "URL", "READY", "AGE"]
    assert row.split()[:4] == [
        "user-example-com",
        "iris",
        "http://iris.user-example-com.example.com",
        "False",
    ]
    # Client-side apply (last-applied annotation, merge patch for a CR) works too.
    # Without --validate=false: kubectl finds server-side field validation in /openapi/v3.
    code, out, err = await kubectl(
        kubeconfig, "apply", "-f", "-", stdin=ISVC_YAML.replace("sklearn", "xgboost")
    )
    assert code == 0, err
    code, out, err = await kubectl(
        kubeconfig,
        "get",
        "isvc",
        "iris",
        "-n",
        "user-example-com",
        "-o",
        "jsonpath={.spec.predictor.model.modelFormat.name}",
    )
    assert (code, out) == (0, "xgboost"), err


async def test_kubectl_rollout_restart_and_logs(server: ApiServer, kubeconfig: Path) -> None:
    async with client.ApiClient(client.Configuration(host=server.url)) as api:
        await client.AppsV1Api(api).create_namespaced_deployment(
            "kube-system",
            {
                "metadata": {"name": "coredns"},
                "spec": {
                    "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    "template": {
                        "metadata": {"labels": {"k8s-app": "kube-dns"}},
                        "spec": {"containers": [{"name": "coredns", "image": "coredns"}]},
                    },
                },
            },
        )
        await client.CoreV1Api(api).create_namespaced_pod(
            "kube-system", {"metadata": {"name": "coredns-1"}, "spec": {"containers": [{"name": "coredns"}]}}
        )
        server.set_pod_log("kube-system", "coredns-1", "coredns", "a\nb\nc\n")
        code, out, err = await kubectl(
            kubeconfig, "rollout", "restart", "deployment", "coredns", "-n", "kube-system"
        )
        assert code == 0 and "restarted" in out, err
        dep = await client.AppsV1Api(api).read_namespaced_deployment("coredns", "kube-system")
        assert "kubectl.kubernetes.io/restartedAt" in dep.spec.template.metadata.annotations
        assert dep.metadata.generation == 2
    code, out, err = await kubectl(kubeconfig, "logs", "coredns-1", "-n", "kube-system", "--tail", "2")
    assert (code, out) == (0, "b\nc\n"), err
    code, out, err = await kubectl(kubeconfig, "get", "pods", "-n", "kube-system")
    assert code == 0 and out.split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], err


async def test_kubectl_tables_for_events_and_describe(server: ApiServer, kubeconfig: Path) -> None:
    async with client.ApiClient(client.Configuration(host=server.url)) as api:
        isvc = await client.CustomObjectsApi(api).create_namespaced_custom_object(
            "serving.kserve.io",
            "v1beta1",
            "default",
            "inferenceservices",
            {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "metadata": {"name": "iris"},
                "spec": {},
            },
        )
        await client.CoreV1Api(api).create_namespaced_event(
            "default",
            {
                "metadata": {"name": "iris.1"},
                "involvedObject": {
                    "apiVersion": "serving.kserve.io/v1beta1",
                    "kind": "InferenceService",
                    "name": "iris",
                    "namespace": "default",
                    "uid": isvc["metadata"]["uid"],
                },
                "reason": "InternalError",
                "message": "no runtime found to support predictor with model type: {sklearn <nil>}",
                "type": "Warning",
                "source": {"component": "v1beta1Controllers"},
            },
        )
    code, out, err = await kubectl(kubeconfig, "get", "events")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert row.split()[1:4] == ["Warning", "InternalError", "inferenceservice/iris"]
    # describe finds the events by involvedObject field selectors.
    code, out, err = await kubectl(kubeconfig, "describe", "isvc", "iris")
    assert code == 0 and "no runtime found to support predictor" in out, err


def _predictor_pod(name: str, init_state: dict[str, Any], restarts: int) -> dict[str, Any]:
    """A predictor pod whose storage-initializer is in ``init_state``; kserve-container waits
    with reason PodInitializing meanwhile, as the kubelet reports it."""
    return {
        "metadata": {"name": name},
        "spec": {"initContainers": [{"name": "storage-initializer", "image": "kserve/storage-initializer"}],
                 "containers": [{"name": "kserve-container", "image": "kserve/sklearnserver"}]},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized"}],
            "initContainerStatuses": [{"name": "storage-initializer", "image": "kserve/storage-initializer",
                                       "imageID": "", "ready": False, "restartCount": restarts,
                                       "state": init_state}],
            "containerStatuses": [{"name": "kserve-container", "image": "kserve/sklearnserver", "imageID": "",
                                   "ready": False, "restartCount": 0,
                                   "state": {"waiting": {"reason": "PodInitializing"}}}],
        },
    }


async def test_kubectl_shows_the_failing_init_container_not_pod_initializing(
        server: ApiServer, kubeconfig: Path) -> None:
    ns = "user-example-com"
    async with client.ApiClient(client.Configuration(host=server.url)) as api:
        core = client.CoreV1Api(api)
        namespace: Any = {"metadata": {"name": ns}}
        await core.create_namespace(namespace)
        cases: list[tuple[str, dict[str, Any], int]] = [
            ("failed", {"terminated": {"exitCode": 1, "reason": "Error"}}, 0),
            ("backoff", {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}, 3),
            ("running", {"running": {"startedAt": "2026-01-01T00:00:00Z"}}, 0),
        ]
        for name, state, restarts in cases:
            pod = _predictor_pod(name, state, restarts)
            created: Any = {k: pod[k] for k in ("metadata", "spec")}
            await core.create_namespaced_pod(ns, created)
            await core.patch_namespaced_pod_status(name, ns, {"status": pod["status"]})
    code, out, err = await kubectl(kubeconfig, "get", "pods", "-n", ns, "--no-headers")
    assert code == 0, err
    rows = {cols[0]: cols[1:4] for cols in (ln.split() for ln in out.splitlines())}
    assert rows == {
        "failed": ["0/1", "Init:Error", "0"],
        "backoff": ["0/1", "Init:CrashLoopBackOff", "3"],
        "running": ["0/1", "Init:0/1", "0"],
    }
