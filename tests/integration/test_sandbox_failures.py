"""Each seed failure, injected into a healthy sandbox: the controllers show the seed's symptom
(status, pod state, container log, Events — read through kubernetes_asyncio), and the world
recovers when the cause is fixed through the API alone.

On both control planes (``tests/integration/control_planes.py``): the stand-in, whose simulated
KServe plays the seed's Serverless install (one Knative revision ``-00001``, the pod's own
address in ``status.address.url``), and the real one, where KServe v0.20's own controller and
pod webhook run in Standard (RawDeployment) mode: a Deployment ``iris-model-predictor``, a
Service whose in-cluster URL is ``status.address.url`` (reached through the sandbox's cluster
network, :mod:`sandbox.clusternet`). Where the real controller answers a failure differently
the test says what each tier shows (``real(sb)``) and why; what holds on both is asserted on both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client import ApiClient, AppsV1Api, CoreV1Api, CustomObjectsApi

from sandbox import Sandbox
from sandbox.controllers.predictor_pod import URL_ANNOTATION
from tests.integration.control_planes import CONTROL_PLANES, make_sandbox
from tests.integration.sandbox_wait import (
    NS,
    condition,
    container,
    isvc_until,
    log_of,
    pod_ready,
    pods_until,
    ready_isvc,
    watch_until,
)

MERGE: dict[str, Any] = {"_content_type": "application/merge-patch+json"}
Obj = dict[str, Any]
PREDICT = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def real(sb: Sandbox) -> bool:
    """KServe's real controller (Standard mode) rather than the stand-in's Serverless one."""
    return sb.control_plane == "real"


def proxy(sb: Sandbox) -> str | None:
    """How this test, outside the cluster, reaches a Service URL (the sandbox's cluster network)."""
    return sb.clusternet.url if sb.clusternet is not None else None


def pod_url(pod: Obj) -> str:
    """Where the simulated kubelet runs this pod's predictor (podIP:port, in a cluster)."""
    return str(pod["metadata"]["annotations"][URL_ANNOTATION])


async def poke(api: ApiClient, value: str) -> None:
    """Annotate the InferenceService, as ``kubectl annotate`` would: KServe's controller watches
    InferenceServices and what it owns, not ServingRuntimes, so it reconciles again only then."""
    await CustomObjectsApi(api).patch_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", NS, "inferenceservices", "iris-model",
        {"metadata": {"annotations": {"test.kserve-warden.io/poke": value}}}, **MERGE)


async def deployment_until(api: ApiClient, pred: Any, what: str) -> Obj:
    """The predictor's Deployment (real tier: KServe's RawDeployment), once ``pred`` holds."""
    apps = AppsV1Api(api)
    result: Obj = await watch_until(
        apps.list_namespaced_deployment, NS,
        pred=lambda objs: objs.get("iris-model-predictor") if pred(objs.get("iris-model-predictor") or {})
        else None,
        what=what, field_selector="metadata.name=iris-model-predictor")
    return result


@pytest.fixture(params=CONTROL_PLANES)
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Sandbox, ApiClient]]:
    plane = request.param
    cp = request.getfixturevalue("real_control_plane") if plane == "real" else None
    async with make_sandbox(plane, workdir=tmp_path / "sandbox", cp=cp) as sb, sb.new_api_client() as api:
        await sb.apply_healthy_world()
        await ready_isvc(api)
        yield sb, api


async def _delete_pods(api: ApiClient) -> None:
    core = CoreV1Api(api)
    pods = await core.list_namespaced_pod(NS, label_selector="serving.kserve.io/inferenceservice")
    for p in pods.items:
        await core.delete_namespaced_pod(p.metadata.name, NS)


async def test_healthy_world_serves_the_real_model(world: tuple[Sandbox, ApiClient]) -> None:
    sb, api = world
    isvc = await ready_isvc(api)
    pods = await pods_until(
        api, lambda ps: ps if len(ps) == 1 and pod_ready(ps[0]) else None, "one ready pod"
    )
    pod = pods[0]
    address = isvc["status"]["address"]["url"]
    if real(sb):
        # Standard mode: the URL from KServe's domain template {{.Name}}-{{.Namespace}}.{{.Domain}},
        # the address the predictor Service's in-cluster name, the pod its Deployment's.
        assert isvc["status"]["url"] == "http://iris-model-user-example-com.example.com"
        assert address == "http://iris-model-predictor.user-example-com.svc.cluster.local"
        assert pod["metadata"]["name"].startswith("iris-model-predictor-")
    else:
        assert isvc["status"]["url"] == "http://iris-model.user-example-com.example.com"
        assert address == pod_url(pod) and address.startswith("http://127.0.0.1:")
        assert pod["metadata"]["name"].startswith("iris-model-predictor-00001-deployment-")
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{address}/v1/models/iris-model:predict", json=PREDICT, proxy=proxy(sb)) as r,
    ):
        assert r.status == 200
        assert (await r.json())["predictions"] == [0]  # setosa: the real model, not a dummy
    assert pod["spec"]["imagePullSecrets"] == [{"name": "harbor-credentials"}]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["kserve-container", "istio-proxy"]
    assert "Downloaded object model to /mnt/models/model" in await log_of(api, pod, "storage-initializer")


async def test_no_serving_runtime(world: tuple[Sandbox, ApiClient]) -> None:
    sb, api = world
    await sb.inject("no-serving-runtime")
    events = CoreV1Api(api)
    if real(sb):
        # KServe v0.20 with the runtime it names gone: RuntimeNotRecognized in lastFailureInfo and
        # an InternalError Event, on its next reconcile; the running Deployment keeps serving, so
        # Ready stays True.
        await poke(api, "1")
        isvc = await isvc_until(
            api, lambda o: ((o["status"].get("modelStatus") or {}).get("lastFailureInfo") or {})
            .get("reason") == "RuntimeNotRecognized", "RuntimeNotRecognized")
        assert isvc["status"]["modelStatus"]["lastFailureInfo"] == {
            "reason": "RuntimeNotRecognized", "message": "Waiting for runtime to become available"}
        assert isvc["status"]["modelStatus"]["transitionStatus"] == "InvalidSpec"
        assert condition(isvc, "Ready")["status"] == "True"
        message = "No ServingRuntimes or ClusterServingRuntimes with the name: iris-fastapi-runtime"
    else:
        isvc = await isvc_until(
            api, lambda o: condition(o, "Ready").get("reason") == "NoSupportingRuntime", "NoSupportingRuntime"
        )
        message = "no runtime found to support predictor with model type: {xgboost <nil>}"
        assert condition(isvc, "PredictorReady") | {"lastTransitionTime": ""} == {
            "type": "PredictorReady",
            "status": "False",
            "reason": "NoSupportingRuntime",
            "message": message,
            "lastTransitionTime": "",
        }
        assert isvc["status"]["modelStatus"]["lastFailureInfo"] == {
            "reason": "NoSupportingRuntime",
            "message": message,
        }
    found = await events.list_namespaced_event(NS, field_selector="involvedObject.name=iris-model")
    warnings = [e for e in found.items if e.reason == "InternalError" and e.message == message]
    assert warnings and warnings[0].type == "Warning"
    assert warnings[0].source.component == "v1beta1Controllers"

    await sb.undo("no-serving-runtime")  # the fix: a runtime that lists the format, via the API
    if real(sb):
        await poke(api, "2")
        # KServe never clears lastFailureInfo: only the transition status says it is over.
        isvc = await isvc_until(api, lambda o: (o["status"].get("modelStatus") or {}).get("transitionStatus")
                                == "UpToDate", "UpToDate again")
        assert isvc["status"]["modelStatus"]["states"]["targetModelState"] == "Loaded"
    await ready_isvc(api)


def _init_error(pods: list[Obj]) -> Obj | None:
    for p in pods:
        term = (container(p, "storage-initializer", init=True).get("state") or {}).get("terminated") or {}
        if term.get("reason") == "Error":
            return p
    return None


async def test_storage_credentials_wrong_secret(world: tuple[Sandbox, ApiClient]) -> None:
    sb, api = world
    await sb.inject("storage-credentials")
    if real(sb):
        # KServe v0.20's pod webhook refuses a pod whose storage secret does not exist in its
        # namespace (the wrong secret lives in kubeflow): no pod, a ReplicaFailure on the new
        # ReplicaSet's Deployment and the ReplicaSet's FailedCreate Event.
        refusal = ('admission webhook "inferenceservice.kserve-webhook-server.pod-mutator" denied the '
                   'request: secrets "mlpipeline-minio-artifact" not found')
        dep = await deployment_until(
            api, lambda d: condition(d, "ReplicaFailure").get("reason") == "FailedCreate", "ReplicaFailure")
        assert condition(dep, "ReplicaFailure")["message"].endswith(refusal)
        found = await CoreV1Api(api).list_namespaced_event(NS, field_selector="reason=FailedCreate")
        assert any(e.type == "Warning" and e.message.endswith(refusal) for e in found.items)
    else:
        pod = await pods_until(api, _init_error, "Init:Error")
        env = {e["name"] for e in pod["spec"]["initContainers"][0]["env"]}
        assert "AWS_SECRET_ACCESS_KEY" not in env  # the webhook found no usable secret
        log = await log_of(api, pod, "storage-initializer")
        assert "botocore.exceptions.NoCredentialsError: Unable to locate credentials" in log
        events = await CoreV1Api(api).list_namespaced_event(
            NS, field_selector=f"involvedObject.name={pod['metadata']['name']}"
        )
        assert any(
            e.reason == "BackOff" and "restarting failed container storage-initializer" in e.message
            for e in events.items
        )
    # The old pod keeps serving during the failed rollout, as a Deployment's would.
    await pods_until(api, lambda ps: any(pod_ready(p) for p in ps), "the old pod still ready")

    await sb.undo("storage-credentials")
    await pods_until(api, lambda ps: len(ps) == 1 and pod_ready(ps[0]), "one ready pod again")
    await ready_isvc(api)


async def test_dns_timeout_healed_by_coredns_rollout_restart(world: tuple[Sandbox, ApiClient]) -> None:
    sb, api = world
    await sb.inject("dns-timeout")
    pods = await pods_until(
        api,
        lambda ps: [
            p for p in ps if container(p, "istio-proxy") and not container(p, "istio-proxy")["ready"]
        ],
        "istio-proxy unready",
    )
    log = await log_of(api, pods[0], "istio-proxy")
    assert "dial tcp: lookup istiod.istio-system.svc: i/o timeout" in log
    assert not pod_ready(pods[0])
    await isvc_until(api, lambda o: condition(o, "Ready").get("status") == "False", "ISVC not ready")

    # The seed's fix, as kubectl does it: kubectl rollout restart deployment coredns -n kube-system.
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await AppsV1Api(api).patch_namespaced_deployment(
        "coredns",
        "kube-system",
        {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}},
        **{"_content_type": "application/strategic-merge-patch+json"},
    )
    await pods_until(api, lambda ps: any(pod_ready(p) for p in ps), "pod ready after the restart")
    await ready_isvc(api)
    assert sb.dns.degraded is False
    dep = await AppsV1Api(api).read_namespaced_deployment("coredns", "kube-system")
    assert dep.status.observed_generation == dep.metadata.generation
    if not real(sb):
        # On the real control plane kube-controller-manager rolls the Deployment out, but the
        # sandbox runs no CoreDNS pod (its DNS is the sandbox's DnsServer): they stay Pending.
        assert dep.status.ready_replicas == 2


async def test_mesh_policy_denies_the_storage_initializer(world: tuple[Sandbox, ApiClient]) -> None:
    sb, api = world
    await sb.inject("mesh-policy")
    await _delete_pods(api)  # the storage-initializer runs again only in a new pod

    def denied(pods: list[Obj]) -> Obj | None:
        return next(
            (
                p
                for p in pods
                if (container(p, "storage-initializer", init=True).get("restartCount") or 0) >= 1
            ),
            None,
        )

    pod = await pods_until(api, denied, "storage-initializer failing")
    log = await log_of(api, pod, "storage-initializer")
    assert "RBAC: access denied" in log and "(403)" in log

    await sb.undo("mesh-policy")  # the ALLOW policy for the model's principal, via the API
    await pods_until(api, lambda ps: any(pod_ready(p) for p in ps), "pod ready once admitted")
    await ready_isvc(api)


async def test_sidecar_disabled_still_unreachable(world: tuple[Sandbox, ApiClient]) -> None:
    sb, api = world
    await sb.inject("sidecar-disabled")

    def failing_without_proxy(pods: list[Obj]) -> Obj | None:
        for p in pods:
            names = [c["name"] for c in p["spec"]["containers"]]
            term = (container(p, "storage-initializer", init=True).get("state") or {}).get("terminated") or {}
            if "istio-proxy" not in names and term.get("reason") == "Error":
                return p
        return None

    pod = await pods_until(api, failing_without_proxy, "a pod without istio-proxy in Init:Error")
    log = await log_of(api, pod, "storage-initializer")
    assert (
        "botocore.exceptions.EndpointConnectionError: Could not connect to the endpoint URL: "
        '"http://minio-service.kubeflow:9000/mlpipeline?'
    ) in log

    await sb.undo("sidecar-disabled")
    await pods_until(
        api,
        lambda ps: len(ps) == 1 and pod_ready(ps[0]) and container(ps[0], "istio-proxy"),
        "one ready pod with its sidecar",
    )


async def test_model_path_crash_loops_with_the_loader_error(world: tuple[Sandbox, ApiClient]) -> None:
    sb, api = world
    await sb.inject("model-path")
    await _delete_pods(api)

    def crashing(pods: list[Obj]) -> Obj | None:
        return next(
            (
                p
                for p in pods
                if ((container(p, "kserve-container").get("state") or {}).get("waiting") or {}).get("reason")
                == "CrashLoopBackOff"
            ),
            None,
        )

    pod = await pods_until(api, crashing, "CrashLoopBackOff")
    log = await log_of(api, pod, "kserve-container")
    assert "serving.loader.ModelLoadError: no model in /mnt/models" in log
    isvc = await isvc_until(
        api,
        lambda o: (o.get("status") or {}).get("modelStatus", {}).get("lastFailureInfo"),
        "lastFailureInfo",
    )
    assert isvc["status"]["modelStatus"]["lastFailureInfo"]["reason"] == "ModelLoadFailed"

    await sb.undo("model-path")
    await _delete_pods(api)
    await ready_isvc(api)


async def test_image_pull_unauthorized(world: tuple[Sandbox, ApiClient]) -> None:
    sb, api = world
    await sb.inject("image-pull")
    # The ServiceAccount's pull secrets are copied into a pod when it is created (the
    # ServiceAccount admission): only a new pod lacks them, and only a new one gets them back.
    await _delete_pods(api)

    def backoff(pods: list[Obj]) -> Obj | None:
        return next(
            (
                p
                for p in pods
                if ((container(p, "kserve-container").get("state") or {}).get("waiting") or {}).get("reason")
                == "ImagePullBackOff"
            ),
            None,
        )

    pod = await pods_until(api, backoff, "ImagePullBackOff")
    assert not pod["spec"].get("imagePullSecrets")
    waiting = container(pod, "kserve-container")["state"]["waiting"]
    assert waiting["message"].endswith("unexpected status code 401 Unauthorized")
    assert "ghcr.io/kserve-warden/serving:0.1.0" in waiting["message"]
    events = await CoreV1Api(api).list_namespaced_event(
        NS, field_selector=f"involvedObject.name={pod['metadata']['name']}"
    )
    assert any(
        e.type == "Warning" and e.reason == "Failed" and "401 Unauthorized" in e.message for e in events.items
    )

    await sb.undo("image-pull")  # the registry secret back on the ServiceAccount
    await _delete_pods(api)
    await pods_until(api, lambda ps: len(ps) == 1 and pod_ready(ps[0]), "one ready pod again")
    await ready_isvc(api)


async def test_pods_are_recreated_and_servers_stop_with_their_pod(world: tuple[Sandbox, ApiClient]) -> None:
    sb, api = world
    service = (await ready_isvc(api))["status"]["address"]["url"]
    old = await pods_until(api, lambda ps: ps if len(ps) == 1 and pod_ready(ps[0]) else None, "one pod")
    first = pod_url(old[0])
    await _delete_pods(api)
    new = await pods_until(
        api,
        lambda ps: [p for p in ps if pod_ready(p) and p["metadata"]["uid"] != old[0]["metadata"]["uid"]
                    and URL_ANNOTATION in (p["metadata"].get("annotations") or {})],
        "a new ready pod",
    )
    assert new[0]["metadata"]["name"] != old[0]["metadata"]["name"]
    second = pod_url(new[0])
    if real(sb):
        # The address is the Service's: the same URL, now answered by the new pod.
        isvc = await ready_isvc(api)
        assert isvc["status"]["address"]["url"] == service
    else:
        # Serverless as the stand-in plays it: the address is the pod's own.
        isvc = await isvc_until(api, lambda o: (o["status"].get("address") or {}).get("url") == second,
                                "the new pod's address")
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{isvc['status']['address']['url']}/v1/models/iris-model", proxy=proxy(sb)) as r:
            assert r.status == 200
        async with s.get(f"{second}/v1/models/iris-model") as r:
            assert r.status == 200
        with pytest.raises(aiohttp.ClientConnectionError):
            await s.get(f"{first}/v1/models/iris-model")  # the deleted pod's server is gone

    await CustomObjectsApi(api).delete_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", NS, "inferenceservices", "iris-model"
    )
    await pods_until(api, lambda ps: not ps or None, "no pods once the ISVC is deleted")
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientConnectionError):
            await s.get(f"{second}/v1/models/iris-model")
