"""The Sandbox as a whole: start/stop, the seeded starting world, the daemon's settings and
egress, controllers robust to a compacted watch history and dropped watches."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

from aiobotocore.session import get_session
from botocore.config import Config
from kubernetes_asyncio.client import AppsV1Api, CoreV1Api, CustomObjectsApi

from daemon.process.config_files import load_settings
from sandbox import Sandbox
from tests.integration.sandbox_wait import NS, condition, healthy_sandbox, isvc_until, ready_isvc, watch_until


async def test_start_seeds_the_starting_world_and_stop_cleans_up(tmp_path: Path) -> None:
    sb = Sandbox()
    await sb.start()
    workdir = sb.workdir
    try:
        assert sb.kubeconfig_path.is_file()
        async with sb.new_api_client() as api:
            core, co = CoreV1Api(api), CustomObjectsApi(api)
            names = {n.metadata.name: n.metadata.labels or {} for n in (await core.list_namespace()).items}
            for ns in ("kubeflow", NS, "istio-system", "kube-system", "kserve", "kserve-warden"):
                assert ns in names
            assert names[NS].get("istio-injection") == "enabled"
            artifact = await core.read_namespaced_secret("mlpipeline-minio-artifact", "kubeflow")
            assert sorted(artifact.data) == ["accesskey", "secretkey"]
            harbor = await core.read_namespaced_secret("harbor-credentials", NS)
            assert harbor.type == "kubernetes.io/dockerconfigjson"
            auths = json.loads(base64.b64decode(harbor.data[".dockerconfigjson"]))["auths"]
            assert "192.168.58.12:30002" in auths
            cm = await core.read_namespaced_config_map("inferenceservice-config", "kserve")
            creds = json.loads(cm.data["credentials"])
            assert creds["storageSecretNameAnnotation"] == "serving.kserve.io/storageSecretName"
            assert creds["s3"]["s3SecretAccessKeyName"] == "AWS_SECRET_ACCESS_KEY"
            policies = await co.list_namespaced_custom_object(
                "security.istio.io", "v1", "kubeflow", "authorizationpolicies"
            )
            by_name = {p["metadata"]["name"]: p for p in policies["items"]}
            assert set(by_name) == {"seaweedfs-service", "kserve-warden-probe-minio"}
            principals = by_name["seaweedfs-service"]["spec"]["rules"][0]["from"][0]["source"]["principals"]
            assert principals == [
                "cluster.local/ns/kubeflow/sa/ml-pipeline",
                "cluster.local/ns/kubeflow/sa/ml-pipeline-ui",
            ]
            # What the daemon is meant to apply is not there yet.
            assert not (
                await co.list_namespaced_custom_object(
                    "serving.kserve.io", "v1beta1", NS, "inferenceservices"
                )
            )["items"]
            assert "iris-sa" not in {
                s.metadata.name for s in (await core.list_namespaced_service_account(NS)).items
            }
            # The CoreDNS controller reports the Deployment rolled out.
            await watch_until(
                AppsV1Api(api).list_namespaced_deployment,
                "kube-system",
                pred=lambda d: (d.get("coredns", {}).get("status") or {}).get("readyReplicas") == 2,
                what="coredns ready",
                field_selector="metadata.name=coredns",
            )
        keys = await asyncio.to_thread(sb.s3.list_keys, bucket="mlpipeline", prefix="private-artifacts/")
        assert keys == ["private-artifacts/user-example-com/iris/model"]
    finally:
        await sb.stop()
    assert not workdir.exists()  # the no-leaked-tasks fixture checks the tasks


async def test_warden_config_is_valid_daemon_settings_and_its_sidecar_is_admitted(tmp_path: Path) -> None:
    sb = Sandbox(controllers=False)
    await sb.start()
    try:
        path = tmp_path / "warden.yaml"
        sb.write_warden_config(path)
        settings = load_settings(path, environ={})
        sidecar = await sb.daemon_sidecar()
        assert settings.probes.dns.nameserver == sb.dns_address[0]
        assert settings.probes.dns.port == sb.dns_address[1]
        assert dict(settings.probes.storage.endpoint_overrides) == {"minio-service.kubeflow:9000": sidecar}
        assert settings.models[0].key == "user-example-com/iris-model"
        # The daemon's identity may read the bucket through its sidecar with the pipelines' key.
        async with sb.new_api_client() as api:
            secret = await CoreV1Api(api).read_namespaced_secret("mlpipeline-minio-artifact", "kubeflow")
        key = base64.b64decode(secret.data["accesskey"]).decode()
        value = base64.b64decode(secret.data["secretkey"]).decode()
        async with get_session().create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url=f"http://{sidecar}",
            aws_access_key_id=key,
            aws_secret_access_key=value,
            config=Config(s3={"addressing_style": "path"}),
        ) as s3:
            listing = await s3.list_objects_v2(Bucket="mlpipeline", Prefix="private-artifacts/")
        assert [o["Key"] for o in listing["Contents"]] == ["private-artifacts/user-example-com/iris/model"]
    finally:
        await sb.stop()


async def test_without_controllers_nothing_reacts() -> None:
    sb = Sandbox(controllers=False)
    await sb.start()
    try:
        await sb.apply_healthy_world()
        async with sb.new_api_client() as api:
            isvc = await CustomObjectsApi(api).get_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", NS, "inferenceservices", "iris-model"
            )
            assert "status" not in isvc or not isvc["status"]
            assert not (await CoreV1Api(api).list_namespaced_pod(NS)).items
    finally:
        await sb.stop()


async def test_controllers_survive_a_compacted_history_and_dropped_watches() -> None:
    async with healthy_sandbox() as (sb, api):
        sb.apiserver.faults.compact()
        await sb.apiserver.faults.drop_watches()  # resuming from an old resourceVersion now gets 410
        await sb.inject("no-serving-runtime")
        await isvc_until(
            api,
            lambda o: condition(o, "Ready").get("reason") == "NoSupportingRuntime",
            "NoSupportingRuntime after the relist",
        )
        assert sb.kserve is not None and sb.kserve.runtimes.relists >= 2
        await sb.undo("no-serving-runtime")
        await ready_isvc(api)


async def test_unknown_failure_name_is_a_clear_error() -> None:
    sb = Sandbox(controllers=False)
    await sb.start()
    try:
        try:
            await sb.inject("disk-full")
        except ValueError as exc:
            assert "unknown failure 'disk-full'" in str(exc) and "image-pull" in str(exc)
        else:
            raise AssertionError("inject accepted an unknown failure")
        assert set(Sandbox.FAILURES) == {
            "no-serving-runtime",
            "storage-credentials",
            "dns-timeout",
            "mesh-policy",
            "sidecar-disabled",
            "model-path",
            "image-pull",
        }
    finally:
        await sb.stop()


async def test_controllers_retry_through_failing_requests() -> None:
    async with healthy_sandbox() as (sb, api):
        # The KServe controller's status writes fail (500, then 429 with Retry-After); its
        # informers' watches are reset once. It keeps going and the status still lands.
        sb.apiserver.faults.fail_next(2, status=500, verb="patch")
        sb.apiserver.faults.fail_next(1, status=429, retry_after=0.1, verb="patch")
        sb.apiserver.faults.fail_next(2, reset=True, verb="watch")
        await sb.inject("no-serving-runtime")
        await isvc_until(
            api,
            lambda o: condition(o, "Ready").get("reason") == "NoSupportingRuntime",
            "NoSupportingRuntime despite the faults",
        )
        assert sb.apiserver.faults.injected >= 3
        await sb.undo("no-serving-runtime")
        await ready_isvc(api)


async def test_undo_of_what_is_already_healthy_changes_nothing() -> None:
    sb = Sandbox(controllers=False)
    await sb.start()
    try:
        await sb.apply_healthy_world()
        async with sb.new_api_client() as api:
            co, core = CustomObjectsApi(api), CoreV1Api(api)

            async def versions() -> list[str]:
                isvc = await co.get_namespaced_custom_object(
                    "serving.kserve.io", "v1beta1", NS, "inferenceservices", "iris-model"
                )
                runtime = await co.get_namespaced_custom_object(
                    "serving.kserve.io", "v1alpha1", NS, "servingruntimes", "iris-fastapi-runtime"
                )
                policy = await co.get_namespaced_custom_object(
                    "security.istio.io",
                    "v1",
                    "kubeflow",
                    "authorizationpolicies",
                    "minio-user-namespace-access",
                )
                sa = await core.read_namespaced_service_account("iris-sa", NS)
                return [
                    isvc["metadata"]["resourceVersion"],
                    runtime["metadata"]["resourceVersion"],
                    policy["metadata"]["resourceVersion"],
                    sa.metadata.resource_version,
                ]

            before = await versions()
            for name in Sandbox.FAILURES:
                await sb.undo(name)
            assert await versions() == before
            # Inject then undo puts every object back the way it was (contents, not versions).
            for name in Sandbox.FAILURES:
                await sb.inject(name)
                await sb.undo(name)
            isvc = await co.get_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", NS, "inferenceservices", "iris-model"
            )
            assert isvc["metadata"]["annotations"] == {
                "serving.kserve.io/storageSecretName": "minio-s3-secret"
            }
            sa = await core.read_namespaced_service_account("iris-sa", NS)
            assert [s.name for s in sa.image_pull_secrets] == ["harbor-credentials"]
            assert sb.dns.degraded is False
        keys = await asyncio.to_thread(sb.s3.list_keys, bucket="mlpipeline", prefix="private-artifacts/")
        assert keys == ["private-artifacts/user-example-com/iris/model"]
    finally:
        await sb.stop()
