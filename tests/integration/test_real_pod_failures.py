"""The resources, scheduling and staleness families on the real tier, through ``kserve-warden check``.

kube-apiserver, kube-controller-manager, kube-scheduler and KServe v0.20's own controller
(Standard mode) run the sandbox (``tests/integration/control_planes.py``), on its Nodes: two CPU
nodes and a GPU node tainted ``nvidia.com/gpu=present:NoSchedule`` (:data:`sandbox.realcp.NODES`).
``Unschedulable`` comes from the real scheduler, with its own message. What only a kubelet writes
(an OOM kill, an eviction) the test writes through ``pods/status`` of the real API, as the kubelet
would; the sandbox's kubelet stand-in only re-sends a status when its own view changes, so the
write stands. Each test then runs ``kserve-warden check -o json`` (a subprocess, no settings) and
asserts that the broken InferenceService gets exactly its one root cause and the healthy ``iris-model``
nothing above INFO.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi

from sandbox import Sandbox
from sandbox.realcp import NODES
from tests.integration.control_planes import make_sandbox
from tests.integration.sandbox_wait import NS, condition, ready_isvc, watch_until

pytestmark = pytest.mark.timeout(240)

Obj = dict[str, Any]
GROUP = "serving.kserve.io"
MERGE: dict[str, Any] = {"_content_type": "application/merge-patch+json"}
GPU_NODE = next(n.name for n in NODES if n.taints)


@pytest.fixture
async def sandbox(real_control_plane: Any, tmp_path: Path) -> AsyncIterator[tuple[Sandbox, ApiClient]]:
    async with (
        make_sandbox("real", workdir=tmp_path / "sandbox", cp=real_control_plane) as sb,
        sb.new_api_client() as api,
    ):
        await sb.apply_healthy_world()
        await ready_isvc(api)
        yield sb, api


async def check(sb: Sandbox) -> dict[str, list[Obj]]:
    """``kserve-warden check -n NS -o json`` with no settings: findings per InferenceService name."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon",
        "check",
        "--kubeconfig",
        str(sb.kubeconfig_path),
        "-n",
        NS,
        "-o",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode in (0, 1), err.decode()[-2000:]
    doc = json.loads(out)
    return {r["name"]: r["findings"] for r in doc["inferenceservices"]}


def above_info(findings: list[Obj]) -> list[tuple[str, str]]:
    return [(f["code"], f["severity"]) for f in findings if f["severity"] != "info"]


async def create_isvc(api: ApiClient, name: str, change: Callable[[Obj], None]) -> None:
    """A copy of the healthy ``iris-model`` named ``name``, its predictor changed by ``change``."""
    custom = CustomObjectsApi(api)
    iris = await custom.get_namespaced_custom_object(GROUP, "v1beta1", NS, "inferenceservices", "iris-model")
    spec = copy.deepcopy(iris["spec"])
    change(spec["predictor"])
    meta = {"name": name, "namespace": NS, "annotations": iris["metadata"].get("annotations") or {}}
    await custom.create_namespaced_custom_object(
        GROUP,
        "v1beta1",
        NS,
        "inferenceservices",
        {"apiVersion": f"{GROUP}/v1beta1", "kind": "InferenceService", "metadata": meta, "spec": spec},
    )


async def pods_of(api: ApiClient, isvc: str, pred: Callable[[list[Obj]], Any], what: str) -> Any:
    return await watch_until(
        CoreV1Api(api).list_namespaced_pod,
        NS,
        pred=lambda objs: pred(list(objs.values())),
        what=what,
        timeout=60,
        label_selector=f"{GROUP}/inferenceservice={isvc}",
    )


def unschedulable(pods: list[Obj]) -> Obj | None:
    for p in pods:
        c = condition(p, "PodScheduled")
        if c.get("status") == "False" and c.get("reason") == "Unschedulable":
            return p
    return None


def ready_pod(pods: list[Obj]) -> Obj | None:
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return next((p for p in live if condition(p, "Ready").get("status") == "True"), None)


async def test_gpu_predictor_without_toleration_is_kept_off_the_gpu_node(
    sandbox: tuple[Sandbox, ApiClient],
) -> None:
    """kserve/kserve#794 (a GPU predictor Pending: ``Insufficient nvidia.com/gpu``) and #730
    (tolerations on the predictor): the only node with a GPU is tainted, the predictor tolerates
    nothing. The finding names the taint and prints the patch; the patch applied, the real
    scheduler binds the new pod to the GPU node and the finding is gone."""
    sb, api = sandbox

    def gpu(pred: Obj) -> None:
        pred["model"]["resources"] = {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}

    await create_isvc(api, "gpu-model", gpu)
    pod = await pods_of(api, "gpu-model", unschedulable, "the scheduler's Unschedulable")
    message = condition(pod, "PodScheduled")["message"]
    assert "untolerated taint" in message and "Insufficient nvidia.com/gpu" in message, message

    found = await check(sb)
    assert above_info(found["iris-model"]) == []
    assert above_info(found["gpu-model"]) == [("unschedulable-untolerated-taint", "critical")], found[
        "gpu-model"
    ]
    (f,) = [f for f in found["gpu-model"] if f["severity"] != "info"]
    assert any(message in e for e in f["evidence"]), f["evidence"]
    assert f"node {GPU_NODE} has taint nvidia.com/gpu=present:NoSchedule, not tolerated" in f["evidence"]
    patch = f["remedy"].split("-p '", 1)[1].rstrip("'")
    await CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, "v1beta1", NS, "inferenceservices", "gpu-model", json.loads(patch), **MERGE
    )
    bound = await pods_of(api, "gpu-model", ready_pod, "the tolerating pod running on the GPU node")
    assert bound["spec"]["nodeName"] == GPU_NODE
    await watch_until(
        CustomObjectsApi(api).list_namespaced_custom_object,
        GROUP,
        "v1beta1",
        NS,
        "inferenceservices",
        pred=lambda o: condition(o.get("gpu-model") or {}, "Ready").get("status") == "True",
        what="gpu-model Ready",
        timeout=60,
    )
    assert above_info((await check(sb))["gpu-model"]) == []


async def test_no_node_large_enough_and_a_selector_no_node_matches(
    sandbox: tuple[Sandbox, ApiClient],
) -> None:
    """kserve/kserve#1601 (a predictor revision Pending on insufficient memory) and kserve/kserve#794
    (``didn't match node selector``): one predictor asks for more memory than any node has, one for
    a node label no node carries. Each gets its own cause from the Nodes' allocatable and labels."""
    sb, api = sandbox

    def big(pred: Obj) -> None:
        pred["model"]["resources"] = {"requests": {"memory": "128Gi"}, "limits": {"memory": "128Gi"}}

    def amd(pred: Obj) -> None:
        pred["nodeSelector"] = {"accelerator": "amd-mi300"}

    await create_isvc(api, "big-model", big)
    await create_isvc(api, "amd-model", amd)
    for name, words in (
        ("big-model", "Insufficient memory"),
        ("amd-model", "didn't match Pod's node affinity"),
    ):
        pod = await pods_of(api, name, unschedulable, f"{name} Unschedulable")
        assert words in condition(pod, "PodScheduled")["message"]

    found = await check(sb)
    assert above_info(found["iris-model"]) == []
    assert above_info(found["big-model"]) == [("unschedulable-insufficient-resources", "critical")]
    (big_f,) = [f for f in found["big-model"] if f["severity"] != "info"]
    assert f"node {GPU_NODE} has 64Gi memory allocatable, the pod requests 128Gi" in big_f["evidence"]
    assert "no node has memory=128Gi allocatable at all" in big_f["remedy"]
    assert above_info(found["amd-model"]) == [("unschedulable-no-matching-node", "critical")]
    (amd_f,) = [f for f in found["amd-model"] if f["severity"] != "info"]
    assert "kubectl label node <node> accelerator=amd-mi300" in amd_f["remedy"]


async def kubelet_writes(api: ApiClient, pod: Obj, status: Obj) -> None:
    """Write ``status`` to the pod as its kubelet would (``pods/status``, merge patch)."""
    await CoreV1Api(api).patch_namespaced_pod_status(pod["metadata"]["name"], NS, {"status": status}, **MERGE)


def terminated(container: str, *, reason: str, exit_code: int, restarts: int) -> Obj:
    """A container status after a crash, restarting with back-off (CrashLoopBackOff)."""
    return {
        "name": container,
        "ready": False,
        "restartCount": restarts,
        "image": "img",
        "state": {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off 2m40s restarting failed container={container}",
            }
        },
        "lastState": {
            "terminated": {
                "reason": reason,
                "exitCode": exit_code,
                "startedAt": "2026-01-01T00:00:00Z",
                "finishedAt": "2026-01-01T00:00:09Z",
            }
        },
    }


async def iris_with_memory_limit(api: ApiClient, limit: str) -> Obj:
    """The healthy model with a memory limit on its server, rolled out: its new pod, Ready."""
    await CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP,
        "v1beta1",
        NS,
        "inferenceservices",
        "iris-model",
        {"spec": {"predictor": {"model": {"resources": {"limits": {"memory": limit}}}}}},
        **MERGE,
    )

    def new_ready(pods: list[Obj]) -> Obj | None:
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        for p in live:
            server = next(c for c in p["spec"]["containers"] if c["name"] == "kserve-container")
            if (
                (server.get("resources") or {}).get("limits", {}).get("memory") == limit
                and condition(p, "Ready").get("status") == "True"
                and len(live) == 1
            ):
                return p
        return None

    return await pods_of(api, "iris-model", new_ready, f"the pod with a {limit} limit, alone and Ready")


async def test_model_server_oom_killed(sandbox: tuple[Sandbox, ApiClient]) -> None:
    """kserve/kserve#2260 and #2290: the model server OOM-killed (exit code 137) and crash-looping,
    which KServe reports as a failed load. One cause, ``oom-killed``, with the 1Gi limit it hit
    and the patch raising it on the predictor; not model-wrong-format, not predictor-not-ready."""
    sb, api = sandbox
    pod = await iris_with_memory_limit(api, "1Gi")
    await kubelet_writes(
        api,
        pod,
        {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                {"type": "ContainersReady", "status": "False"},
            ],
            "containerStatuses": [
                terminated("kserve-container", reason="OOMKilled", exit_code=137, restarts=5),
                *[c for c in pod["status"]["containerStatuses"] if c["name"] != "kserve-container"],
            ],
        },
    )
    found = await check(sb)
    assert above_info(found["iris-model"]) == [("oom-killed", "critical")], found["iris-model"]
    (f,) = [f for f in found["iris-model"] if f["severity"] != "info"]
    name = pod["metadata"]["name"]
    assert (
        f"pod {name} container kserve-container: terminated OOMKilled (exit code 137), restarted 5 times, "
        "now CrashLoopBackOff"
    ) in f["evidence"]
    assert "memory limit of kserve-container: 1Gi (the limit it hit)" in f["evidence"]
    assert '{"spec":{"predictor":{"model":{"resources":{"limits":{"memory":"2Gi"}}}}}}' in f["remedy"]


async def test_storage_initializer_oom_killed(sandbox: tuple[Sandbox, ApiClient]) -> None:
    """kserve/kserve#5162 and #5326: the storage-initializer OOM-killed downloading a large model
    within the limit KServe gives every storage-initializer; the remedy is the ConfigMap's
    storageInitializer.memoryLimit (no per-InferenceService override exists), not the predictor's."""
    sb, api = sandbox
    (pod,) = await pods_of(
        api, "iris-model", lambda ps: ps if len(ps) == 1 and ready_pod(ps) else None, "the one Ready pod"
    )
    init = next(c for c in pod["spec"]["initContainers"] if c["name"] == "storage-initializer")
    limit = init["resources"]["limits"]["memory"]  # what KServe's webhook set from its ConfigMap
    await kubelet_writes(
        api,
        pod,
        {
            "phase": "Pending",
            "conditions": [
                {"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
            ],
            "initContainerStatuses": [
                terminated("storage-initializer", reason="OOMKilled", exit_code=137, restarts=3)
            ],
            "containerStatuses": [
                {**c, "ready": False, "started": False, "state": {"waiting": {"reason": "PodInitializing"}}}
                for c in pod["status"]["containerStatuses"]
            ],
        },
    )
    found = await check(sb)
    assert above_info(found["iris-model"]) == [("oom-killed", "critical")], found["iris-model"]
    (f,) = [f for f in found["iris-model"] if f["severity"] != "info"]
    assert any("init container storage-initializer: terminated OOMKilled" in e for e in f["evidence"])
    assert any(e.startswith("memory limit of storage-initializer: ") for e in f["evidence"]), (limit, f)
    assert "storageInitializer.memoryLimit in ConfigMap kserve/inferenceservice-config" in f["remedy"]


async def test_evicted_for_ephemeral_storage(sandbox: tuple[Sandbox, ApiClient]) -> None:
    """kserve/kserve#4852 (and #4575): the model is downloaded into the emptyDir
    kserve-provision-location on the node's disk; the node runs low and the kubelet evicts the pod.
    The real ReplicaSet replaces it and the replacement serves: the finding is a warning that names
    the eviction and what keeps it from happening again."""
    sb, api = sandbox
    (pod,) = await pods_of(
        api, "iris-model", lambda ps: ps if len(ps) == 1 and ready_pod(ps) else None, "the one Ready pod"
    )
    message = (
        "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 812Mi. "
        "Container kserve-container was using 38Gi, request is 0, has larger consumption of "
        "ephemeral-storage. "
    )
    await kubelet_writes(
        api,
        pod,
        {
            "phase": "Failed",
            "reason": "Evicted",
            "message": message,
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet"},
            ],
        },
    )
    evicted = pod["metadata"]["name"]
    await pods_of(
        api,
        "iris-model",
        lambda ps: any(
            p["metadata"]["name"] != evicted and condition(p, "Ready").get("status") == "True" for p in ps
        ),
        "the replacement pod Ready",
    )
    await ready_isvc(api)
    found = await check(sb)
    assert above_info(found["iris-model"]) == [("evicted-ephemeral-storage", "warning")], found["iris-model"]
    (f,) = [f for f in found["iris-model"] if f["severity"] != "info"]
    assert f"pod {evicted} Evicted: {message}" in f["evidence"]
    assert "pvc://" in f["remedy"] and f"kubectl delete pod {evicted} -n {NS}" in f["remedy"]


async def test_ready_while_the_new_revision_crash_loops(sandbox: tuple[Sandbox, ApiClient]) -> None:
    """kserve/kserve#1859 and #2037: the InferenceService says Ready while its pods crash-loop.
    Reproduced for real: the model object is moved away after the predictor loaded it, then the
    predictor is changed (a memory limit), so a new revision rolls out. Its pod downloads an empty
    directory and the server exits (CrashLoopBackOff, for real, from the kubelet stand-in); the
    Deployment stays available on the old pod, and KServe v0.20 reports Ready=True and
    ``transitionStatus: UpToDate``. Nothing else notices: the predictor answers through the old pod.
    The finding says so, with the crashing server's last log line."""
    sb, api = sandbox
    await sb.inject("model-path")
    await CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP,
        "v1beta1",
        NS,
        "inferenceservices",
        "iris-model",
        {"spec": {"predictor": {"model": {"resources": {"limits": {"memory": "1Gi"}}}}}},
        **MERGE,
    )

    def looping(pods: list[Obj]) -> Obj | None:
        for p in pods:
            for c in p["status"].get("containerStatuses") or []:
                if (
                    c["name"] == "kserve-container"
                    and (c.get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
                ):
                    return p
        return None

    crashing = await pods_of(api, "iris-model", looping, "the new revision's pod in CrashLoopBackOff")
    isvc = await ready_isvc(api)
    assert isvc["status"]["modelStatus"]["transitionStatus"] == "UpToDate"
    found = await check(sb)
    assert above_info(found["iris-model"]) == [("ready-but-crash-looping", "warning")], found["iris-model"]
    (f,) = [f for f in found["iris-model"] if f["severity"] != "info"]
    name = crashing["metadata"]["name"]
    assert any(
        e.startswith(f"pod {name} container kserve-container: CrashLoopBackOff") for e in f["evidence"]
    )
    assert any(
        e.startswith("last log line of kserve-container: serving.loader.ModelLoadError: no model in")
        for e in f["evidence"]
    ), f["evidence"]
    assert "an older predictor pod still serves: the rollout is stuck behind it" in f["evidence"]
    assert f"kubectl logs {name} -n {NS} -c kserve-container --previous" in f["remedy"]


async def test_the_only_node_with_a_gpu_cordoned(sandbox: tuple[Sandbox, ApiClient]) -> None:
    """kserve/kserve#794: the GPU predictor waits while its GPU node pool is not schedulable (there
    NodeNotReady during a scale event; here the node cordoned, ``kubectl cordon``). The predictor
    tolerates the GPU taint and asks for one GPU; the real scheduler says the node was
    unschedulable. The finding names the node and the uncordon, not the predictor's spec."""
    sb, api = sandbox
    core = CoreV1Api(api)
    await core.patch_node(GPU_NODE, {"spec": {"unschedulable": True}}, **MERGE)
    try:

        def gpu(pred: Obj) -> None:
            pred["model"]["resources"] = {
                "limits": {"nvidia.com/gpu": "1"},
                "requests": {"nvidia.com/gpu": "1"},
            }
            pred["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

        await create_isvc(api, "gpu-model", gpu)
        pod = await pods_of(api, "gpu-model", unschedulable, "the scheduler's Unschedulable")
        assert "were unschedulable" in condition(pod, "PodScheduled")["message"]
        found = await check(sb)
        assert above_info(found["iris-model"]) == []
        assert above_info(found["gpu-model"]) == [("pod-unschedulable", "critical")], found["gpu-model"]
        (f,) = [f for f in found["gpu-model"] if f["severity"] != "info"]
        assert f"node {GPU_NODE} is cordoned (spec.unschedulable)" in f["evidence"]
        assert f"kubectl uncordon {GPU_NODE}" in f["remedy"]
    finally:
        await core.patch_node(GPU_NODE, {"spec": {"unschedulable": None}}, **MERGE)
