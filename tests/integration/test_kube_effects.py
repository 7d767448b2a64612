"""The effects layer against the sandbox API server, through the real kubernetes_asyncio client."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from daemon.core.errors import (
    ConflictError,
    NotFoundError,
    ServerError,
    TooManyRequestsError,
    UnavailableError,
)
from daemon.core.logs import Redactor
from daemon.core.objects import ObjectRef
from daemon.core.resources import resource_for
from daemon.kube.effects import RESTARTED_AT, Kube
from sandbox.apiserver import ApiServer
from tests.conftest import b64
from tests.integration.daemon_fixtures import api_server, kube_for

NS = "user-example-com"
ACCESS = "AKIAEXAMPLEACCESS01"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"



def sa(annotations: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "iris-sa", "namespace": NS}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, **extra}


def isvc(annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "iris-model", "namespace": NS, "annotations": annotations},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                         "storageUri": "s3://models/iris"}}},
    }


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with api_server() as s:
        yield s


@pytest.fixture
async def kube(server: ApiServer) -> AsyncIterator[Kube]:
    async with kube_for(server.url) as k:
        await k.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}, dry_run=False)
        yield k


@pytest.fixture
async def other(server: ApiServer) -> AsyncIterator[Kube]:
    """Another field manager (a human with kubectl, a Helm release)."""
    async with kube_for(server.url, field_manager="helm") as k:
        yield k


def rv(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["resourceVersion"])


async def test_apply_creates_updates_and_is_a_noop_when_unchanged(kube: Kube) -> None:
    created = await kube.apply(sa({"a": "1"}), dry_run=False)
    assert created["metadata"]["annotations"] == {"a": "1"}
    assert created["kind"] == "ServiceAccount"
    managers = {m["manager"] for m in created["metadata"]["managedFields"]}
    assert managers == {"kserve-warden"}

    same = await kube.apply(sa({"a": "1"}), dry_run=False)
    assert rv(same) == rv(created), "re-applying the same manifest must not write"

    changed = await kube.apply(sa({"a": "2"}), dry_run=False)
    assert changed["metadata"]["annotations"]["a"] == "2"
    assert int(rv(changed)) > int(rv(created))


async def test_apply_creates_a_custom_resource_despite_the_201_answer(kube: Kube) -> None:
    out = await kube.apply(isvc({"serving.kserve.io/storageSecretName": "minio-s3-secret"}), dry_run=False)
    assert out["kind"] == "InferenceService"
    assert out["metadata"]["uid"]
    live = await kube.get(ObjectRef.of(out))
    assert live["spec"]["predictor"]["model"]["storageUri"] == "s3://models/iris"


async def test_apply_conflict_with_another_manager_is_raised_not_forced(kube: Kube, other: Kube) -> None:
    await other.apply(sa({"owner": "helm"}), dry_run=False)
    with pytest.raises(ConflictError) as info:
        await kube.apply(sa({"owner": "warden"}), dry_run=False)
    assert info.value.managers == ("helm",)
    assert info.value.is_apply_conflict
    live = await kube.get(ObjectRef.of(sa()))
    assert live["metadata"]["annotations"]["owner"] == "helm", "the other manager's field was overwritten"
    # A field nobody else owns is applied alongside without a fight.
    both = await kube.apply(sa({"owner": "helm", "mine": "x"}), dry_run=False)
    assert both["metadata"]["annotations"] == {"owner": "helm", "mine": "x"}


async def test_dry_run_writes_nothing(server: ApiServer, kube: Kube) -> None:
    before = await kube.apply(sa({"a": "1"}), dry_run=False)
    answered = await kube.apply(sa({"a": "2"}), dry_run=True)
    assert answered["metadata"]["annotations"]["a"] == "2", "the server answers as if it applied"
    live = await kube.get(ObjectRef.of(sa()))
    assert rv(live) == rv(before) and live["metadata"]["annotations"]["a"] == "1"

    # A daemon started with --dry-run cannot write, whatever a call says.
    async with kube_for(server.url, dry_run=True) as dry:
        await dry.apply(isvc({}), dry_run=False)
        await dry.remove_annotation(ObjectRef.of(sa()), "a", dry_run=False)
        await dry.emit_event(ObjectRef.of(sa()), type="Warning", reason="drift", message="m")
    with pytest.raises(NotFoundError):
        await kube.get(ObjectRef.of(isvc({})))
    live2 = await kube.get(ObjectRef.of(sa()))
    assert rv(live2) == rv(before)
    events = await kube.list_objects(resource_for("v1", "Event"))
    assert events.items == []


async def test_restart_deployment_sets_restarted_at_and_keeps_annotations(kube: Kube) -> None:
    dep = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system"},
        "spec": {"selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                 "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                              "spec": {"containers": [{"name": "coredns", "image": "coredns:1.11"}]}}},
    }
    await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}},
                     dry_run=False)
    async with kube_for(kube.api.configuration.host, field_manager="kubeadm") as admin:
        await admin.apply(dep, dry_run=False)
    out = await kube.restart_deployment("kube-system", "coredns", at="2026-11-24T12:00:00Z", dry_run=False,
                                        annotations={"warden.kserve.io/last-restart": "2026-11-24T12:00:00Z"})
    assert out["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == "2026-11-24T12:00:00Z"
    assert out["metadata"]["annotations"]["warden.kserve.io/last-restart"] == "2026-11-24T12:00:00Z"
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == "coredns:1.11"
    assert out["metadata"]["generation"] >= 2


async def test_remove_annotation_on_a_custom_resource(kube: Kube) -> None:
    created = await kube.apply(isvc({"sidecar.istio.io/inject": "false", "keep": "me"}), dry_run=False)
    out = await kube.remove_annotation(ObjectRef.of(created), "sidecar.istio.io/inject", dry_run=False)
    assert out["metadata"]["annotations"] == {"keep": "me"}


async def test_delete_pod(kube: Kube, other: Kube) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": NS},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    created = await other.apply(pod, dry_run=False)
    assert await kube.delete_pod(NS, "p1", dry_run=True) is True
    assert (await kube.get(ObjectRef.of(created)))["metadata"]["uid"] == created["metadata"]["uid"]
    with pytest.raises(ConflictError):
        await kube.delete_pod(NS, "p1", dry_run=False, uid="not-the-uid")
    assert await kube.delete_pod(NS, "p1", dry_run=False, uid=created["metadata"]["uid"]) is True
    assert await kube.delete_pod(NS, "p1", dry_run=False) is False


async def test_derive_secret_copies_values_through_the_api_and_returns_hashes(server: ApiServer,
                                                                              other: Kube) -> None:
    redactor = Redactor()
    async with kube_for(server.url, redactor=redactor) as kube:
        for ns in ("kubeflow", NS):
            await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                             dry_run=False)
        await other.apply({"apiVersion": "v1", "kind": "Secret",
                           "metadata": {"name": "mlpipeline-minio-artifact", "namespace": "kubeflow"},
                           "data": {"accesskey": b64(ACCESS), "secretkey": b64(SECRET)}}, dry_run=False)
        decl = {"apiVersion": "warden.kserve.io/v1alpha1", "kind": "DerivedSecret",
                "metadata": {"name": "minio-s3-secret", "namespace": NS},
                "spec": {"source": {"namespace": "kubeflow", "name": "mlpipeline-minio-artifact"},
                         "keys": {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"},
                         "annotations": {"serving.kserve.io/s3-endpoint": "minio-service.kubeflow:9000"}}}
        out = await kube.derive_secret(decl, dry_run=False)
        assert ACCESS not in repr(out) and SECRET not in repr(out) and b64(SECRET) not in repr(out)
        assert set(out["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        assert all(v.startswith("sha256:") for v in out["data"].values())
        assert redactor.scrub(f"x {SECRET} y {b64(ACCESS)}") == "x <redacted> y <redacted>"
        # The real values landed in the cluster (read back raw through the client).
        raw = await kube.core.read_namespaced_secret("minio-s3-secret", NS)
        assert base64.b64decode(raw.data["AWS_SECRET_ACCESS_KEY"]).decode() == SECRET
        assert raw.metadata.annotations["serving.kserve.io/s3-endpoint"] == "minio-service.kubeflow:9000"

        bad = dict(decl, spec=dict(decl["spec"], keys={"nokey": "AWS_ACCESS_KEY_ID"}))
        with pytest.raises(Exception, match="no key"):
            await kube.derive_secret(bad, dry_run=False)


async def test_events_are_emitted_and_deduplicated_with_a_count(kube: Kube) -> None:
    created = await kube.apply(sa({}), dry_run=False)
    ref = ObjectRef.of(created)
    await kube.emit_event(ref, type="Warning", reason="storage-secret-annotation", message="wrong secret",
                          uid=created["metadata"]["uid"])
    await kube.emit_event(ref, type="Warning", reason="storage-secret-annotation", message="wrong secret")
    await kube.emit_event(ref, type="Normal", reason="storage-secret-annotation", message="healed")
    events = (await kube.list_objects(resource_for("v1", "Event"))).items
    assert len(events) == 2
    warn = next(e for e in events if e["type"] == "Warning")
    assert warn["count"] == 2
    assert warn["involvedObject"]["kind"] == "ServiceAccount"
    assert warn["involvedObject"]["name"] == "iris-sa"
    assert warn["source"]["component"] == "kserve-warden"
    assert warn["reason"] == "storage-secret-annotation"
    with pytest.raises(ValueError):
        await kube.emit_event(ref, type="Error", reason="x", message="y")


async def test_errors_are_typed(server: ApiServer, kube: Kube) -> None:
    ref = ObjectRef.of(sa())
    with pytest.raises(NotFoundError):
        await kube.get(ref)
    server.faults.fail_next(1, status=500, resource="serviceaccounts")
    with pytest.raises(ServerError) as e500:
        await kube.apply(sa({}), dry_run=False)
    assert e500.value.transient
    server.faults.fail_next(1, status=429, retry_after=2, resource="serviceaccounts")
    with pytest.raises(TooManyRequestsError) as e429:
        await kube.apply(sa({}), dry_run=False)
    assert e429.value.retry_after == pytest.approx(2.0)
    server.faults.fail_next(1, reset=True, resource="serviceaccounts")
    with pytest.raises(UnavailableError):
        await kube.apply(sa({}), dry_run=False)
    # And the next call goes through.
    assert (await kube.apply(sa({}), dry_run=False))["metadata"]["name"] == "iris-sa"
