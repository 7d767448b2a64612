"""kubectl through a kubeconfig, on both tiers (``tier``): the stand-in's from
``sandbox.kubeconfig.write_kubeconfig``, the real server's with the admin token and its CA.

kubectl asks for aggregated discovery and Table output; the stand-in answers legacy discovery
and real ``meta.k8s.io/v1`` Tables (with the CRDs' printer columns), and kubectl uses both. The
kubectl is the one the control-plane build made on the real tier, the system one on the stand-in.
The InferenceService printer columns are checked only as far as both CRDs (the project's minimal
one on the stand-in, KServe's own on the real tier) agree: NAME, URL, READY first, AGE last.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes_asyncio import client, config

from tests.integration.apiserver.objects import ISVC, isvc
from tests.integration.apiserver.tiers import NODE_NAME, Tier

IMAGE = "registry.example.com/app:1"


def isvc_yaml(ns: str, fmt: str = "sklearn") -> str:
    return f"""\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris
  namespace: {ns}
spec:
  predictor:
    model:
      modelFormat:
        name: {fmt}
      storageUri: s3://mlpipeline/models/iris
"""


async def kubectl(tier: Tier, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        tier.kubectl,
        "--kubeconfig",
        str(tier.kubeconfig),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_kubeconfig_file_is_private(tier: Tier) -> None:
    assert tier.kubeconfig.stat().st_mode & 0o777 == 0o600


async def test_kubeconfig_works_for_kubernetes_asyncio(tier: Tier) -> None:
    api = await config.new_client_from_config(config_file=str(tier.kubeconfig))
    async with api:
        assert (await client.CoreV1Api(api).read_namespace(tier.ns)).metadata.name == tier.ns


async def test_kubectl_get_and_apply_inferenceservices(tier: Tier) -> None:
    ns = f"{tier.ns}-user"
    code, _, err = await kubectl(tier, "create", "namespace", ns)
    assert code == 0, err
    tier.adopt(ns)
    code, out, err = await kubectl(tier, "apply", "--server-side", "--validate=false", "-f", "-",
                                   stdin=isvc_yaml(ns))
    assert code == 0 and "serverside-applied" in out, err
    await client.CustomObjectsApi(tier.api).patch_namespaced_custom_object_status(
        "serving.kserve.io",
        "v1beta1",
        ns,
        "inferenceservices",
        "iris",
        {
            "status": {
                "url": f"http://iris.{ns}.example.com",
                "conditions": [{"type": "Ready", "status": "False"}],
            }
        },
        _content_type="application/merge-patch+json",
    )
    code, out, err = await kubectl(tier, "get", "inferenceservices", "-n", ns)
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split()[:3] == ["NAME", "URL", "READY"] and header.split()[-1] == "AGE"
    assert row.split()[:3] == ["iris", f"http://iris.{ns}.example.com", "False"]
    code, out, err = await kubectl(tier, "get", "inferenceservices", "-A")
    assert code == 0, err
    assert out.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [ns, "iris"] in [line.split()[:2] for line in out.splitlines()[1:]]
    # Client-side apply (last-applied annotation, merge patch for a CR) works too.
    # Without --validate=false: kubectl finds server-side field validation in /openapi/v3.
    code, out, err = await kubectl(tier, "apply", "-f", "-", stdin=isvc_yaml(ns, "xgboost"))
    assert code == 0, err
    code, out, err = await kubectl(
        tier, "get", "isvc", "iris", "-n", ns, "-o", "jsonpath={.spec.predictor.model.modelFormat.name}")
    assert (code, out) == (0, "xgboost"), err


async def test_kubectl_rollout_restart_and_logs(tier: Tier) -> None:
    ns = tier.ns
    await client.AppsV1Api(tier.api).create_namespaced_deployment(
        ns,
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
    pod: Any = {"metadata": {"name": "coredns-1"},
                "spec": {"nodeName": NODE_NAME, "containers": [{"name": "coredns", "image": "coredns"}]}}
    await client.CoreV1Api(tier.api).create_namespaced_pod(ns, pod)
    await tier.set_pod_log(ns, "coredns-1", "coredns", "a\nb\nc\n")
    code, out, err = await kubectl(tier, "rollout", "restart", "deployment", "coredns", "-n", ns)
    assert code == 0 and "restarted" in out, err
    dep = await client.AppsV1Api(tier.api).read_namespaced_deployment("coredns", ns)
    assert "kubectl.kubernetes.io/restartedAt" in dep.spec.template.metadata.annotations
    assert dep.metadata.generation == 2
    code, out, err = await kubectl(tier, "logs", "coredns-1", "-n", ns, "--tail", "2")
    assert (code, out) == (0, "b\nc\n"), err
    code, out, err = await kubectl(tier, "get", "pods", "-n", ns)
    assert code == 0 and out.split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"], err


async def test_kubectl_tables_for_events_and_describe(tier: Tier) -> None:
    ns = tier.ns
    created = await client.CustomObjectsApi(tier.api).create_namespaced_custom_object(
        *ISVC[:2], ns, ISVC[2], isvc("iris")
    )
    await client.CoreV1Api(tier.api).create_namespaced_event(
        ns,
        {
            "metadata": {"name": "iris.1"},
            "involvedObject": {
                "apiVersion": "serving.kserve.io/v1beta1",
                "kind": "InferenceService",
                "name": "iris",
                "namespace": ns,
                "uid": created["metadata"]["uid"],
            },
            "reason": "InternalError",
            "message": "no runtime found to support predictor with model type: {sklearn <nil>}",
            "type": "Warning",
            "source": {"component": "v1beta1Controllers"},
        },
    )
    code, out, err = await kubectl(tier, "get", "events", "-n", ns)
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert row.split()[1:4] == ["Warning", "InternalError", "inferenceservice/iris"]
    # describe finds the events by involvedObject field selectors.
    code, out, err = await kubectl(tier, "describe", "isvc", "iris", "-n", ns)
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


async def test_kubectl_shows_the_failing_init_container_not_pod_initializing(tier: Tier) -> None:
    ns = tier.ns
    core = client.CoreV1Api(tier.api)
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
    code, out, err = await kubectl(tier, "get", "pods", "-n", ns, "--no-headers")
    assert code == 0, err
    rows = {cols[0]: cols[1:4] for cols in (ln.split() for ln in out.splitlines())}
    assert rows == {
        "failed": ["0/1", "Init:Error", "0"],
        "backoff": ["0/1", "Init:CrashLoopBackOff", "3"],
        "running": ["0/1", "Init:0/1", "0"],
    }
