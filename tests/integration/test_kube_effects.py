"""The effects layer (:class:`daemon.kube.effects.Kube`) through the real kubernetes_asyncio client,
on both control planes (``tier``: the stand-in and the real kube-apiserver, see
``tests/integration/apiserver/tiers.py``): server-side apply as ``kserve-warden``, a conflict with
another manager, dry run, rollout restart, annotation removal, pod deletion with a uid
precondition, derived secrets, deduplicated events, and the typed errors a server answers on its
own (404, 409, 422).

The real server is shared by the session, so every test works in its own namespaces
(``tier.ns``, ``tier.namespace(...)``) and reads cluster-wide lists (Events) through ``own``.
The errors only a fault can provoke (500, 429, a reset connection) need the stand-in's fault
hooks: that one test runs on the stand-in only and says so.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client, watch

from daemon.core.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidError,
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
from tests.integration.apiserver.tiers import Tier, own, tier
from tests.integration.daemon_fixtures import api_server, kube_for

__all__ = ["tier"]  # the fixture, imported

ACCESS = "AKIAEXAMPLEACCESS01"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def sa(ns: str, annotations: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "iris-sa", "namespace": ns}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, **extra}


def isvc(ns: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "iris-model", "namespace": ns, "annotations": annotations},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                         "storageUri": "s3://models/iris"}}},
    }


def deployment(ns: str, *, template_labels: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {"k8s-app": "kube-dns"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": ns},
        "spec": {"selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": template_labels or labels},
                              "spec": {"containers": [{"name": "coredns", "image": "coredns:1.11"}]}}},
    }


@pytest.fixture
async def kube(tier: Tier) -> Kube:
    return Kube(tier.api, redactor=Redactor())


@pytest.fixture
async def other(tier: Tier) -> AsyncIterator[Kube]:
    """Another field manager on a client of its own (a human with kubectl, a Helm release)."""
    api = tier.new_client()
    try:
        yield Kube(api, redactor=Redactor(), field_manager="helm")
    finally:
        await api.close()


def rv(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["resourceVersion"])


async def default_service_account(tier: Tier, ns: str) -> None:
    """Wait for ``ns``'s ``default`` ServiceAccount, which a pod without one needs (ServiceAccount
    admission). The real serviceaccount controller makes it a moment after the namespace (the
    stand-in at once): list it, else watch for it from that list."""
    core = client.CoreV1Api(tier.api)
    selector = "metadata.name=default"
    listed = await core.list_namespaced_service_account(ns, field_selector=selector)
    if listed.items:
        return
    async with watch.Watch() as w:
        async for ev in w.stream(core.list_namespaced_service_account, ns, field_selector=selector,
                                 resource_version=listed.metadata.resource_version, timeout_seconds=30):
            if ev["type"] == "ADDED":
                return
    raise AssertionError(f"no default ServiceAccount in {ns} within the watch")


async def test_apply_creates_updates_and_is_a_noop_when_unchanged(tier: Tier, kube: Kube) -> None:
    created = await kube.apply(sa(tier.ns, {"a": "1"}), dry_run=False)
    assert created["metadata"]["annotations"] == {"a": "1"}
    assert created["kind"] == "ServiceAccount"
    managers = {m["manager"] for m in created["metadata"]["managedFields"]}
    assert managers == {"kserve-warden"}

    same = await kube.apply(sa(tier.ns, {"a": "1"}), dry_run=False)
    assert rv(same) == rv(created), "re-applying the same manifest must not write"

    changed = await kube.apply(sa(tier.ns, {"a": "2"}), dry_run=False)
    assert changed["metadata"]["annotations"]["a"] == "2"
    assert int(rv(changed)) > int(rv(created))


async def test_apply_creates_a_custom_resource_despite_the_201_answer(tier: Tier, kube: Kube) -> None:
    out = await kube.apply(isvc(tier.ns, {"serving.kserve.io/storageSecretName": "minio-s3-secret"}),
                           dry_run=False)
    assert out["kind"] == "InferenceService"
    assert out["metadata"]["uid"]
    live = await kube.get(ObjectRef.of(out))
    assert live["spec"]["predictor"]["model"]["storageUri"] == "s3://models/iris"


async def test_apply_conflict_with_another_manager_is_raised_not_forced(tier: Tier, kube: Kube,
                                                                         other: Kube) -> None:
    await other.apply(sa(tier.ns, {"owner": "helm"}), dry_run=False)
    with pytest.raises(ConflictError) as info:
        await kube.apply(sa(tier.ns, {"owner": "warden"}), dry_run=False)
    assert info.value.managers == ("helm",)
    assert info.value.fields == (".metadata.annotations.owner",)
    assert info.value.is_apply_conflict
    live = await kube.get(ObjectRef.of(sa(tier.ns)))
    assert live["metadata"]["annotations"]["owner"] == "helm", "the other manager's field was overwritten"
    # A field nobody else owns is applied alongside without a fight.
    both = await kube.apply(sa(tier.ns, {"owner": "helm", "mine": "x"}), dry_run=False)
    assert both["metadata"]["annotations"] == {"owner": "helm", "mine": "x"}


async def test_dry_run_writes_nothing(tier: Tier, kube: Kube) -> None:
    before = await kube.apply(sa(tier.ns, {"a": "1"}), dry_run=False)
    answered = await kube.apply(sa(tier.ns, {"a": "2"}), dry_run=True)
    assert answered["metadata"]["annotations"]["a"] == "2", "the server answers as if it applied"
    live = await kube.get(ObjectRef.of(sa(tier.ns)))
    assert rv(live) == rv(before) and live["metadata"]["annotations"]["a"] == "1"

    # A daemon started with --dry-run cannot write, whatever a call says.
    dry = Kube(tier.api, redactor=Redactor(), dry_run=True)
    await dry.apply(isvc(tier.ns, {}), dry_run=False)
    await dry.remove_annotation(ObjectRef.of(sa(tier.ns)), "a", dry_run=False)
    await dry.emit_event(ObjectRef.of(sa(tier.ns)), type="Warning", reason="drift", message="m")
    with pytest.raises(NotFoundError):
        await kube.get(ObjectRef.of(isvc(tier.ns, {})))
    live2 = await kube.get(ObjectRef.of(sa(tier.ns)))
    assert rv(live2) == rv(before)
    events = await kube.list_objects(resource_for("v1", "Event"))
    assert own(tier, events.items) == []


async def test_restart_deployment_sets_restarted_at_and_keeps_annotations(tier: Tier, kube: Kube) -> None:
    admin = Kube(tier.api, redactor=Redactor(), field_manager="kubeadm")
    await admin.apply(deployment(tier.ns), dry_run=False)
    out = await kube.restart_deployment(tier.ns, "coredns", at="2026-11-24T12:00:00Z", dry_run=False,
                                        annotations={"warden.kserve.io/last-restart": "2026-11-24T12:00:00Z"})
    assert out["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == "2026-11-24T12:00:00Z"
    assert out["metadata"]["annotations"]["warden.kserve.io/last-restart"] == "2026-11-24T12:00:00Z"
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == "coredns:1.11"
    assert out["metadata"]["generation"] >= 2


async def test_remove_annotation_on_a_custom_resource(tier: Tier, kube: Kube) -> None:
    created = await kube.apply(isvc(tier.ns, {"sidecar.istio.io/inject": "false", "keep": "me"}),
                               dry_run=False)
    out = await kube.remove_annotation(ObjectRef.of(created), "sidecar.istio.io/inject", dry_run=False)
    assert out["metadata"]["annotations"] == {"keep": "me"}


async def test_delete_pod(tier: Tier, kube: Kube, other: Kube) -> None:
    ns = tier.ns
    await default_service_account(tier, ns)
    # Not bound to a node (nothing schedules it): the real server deletes it at once, no grace.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": ns},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    created = await other.apply(pod, dry_run=False)
    uid = created["metadata"]["uid"]
    assert await kube.delete_pod(ns, "p1", dry_run=True) is True
    assert (await kube.get(ObjectRef.of(created)))["metadata"]["uid"] == uid
    with pytest.raises(ConflictError) as info:
        await kube.delete_pod(ns, "p1", dry_run=False, uid="not-the-uid")
    assert type(info.value) is ConflictError and not info.value.is_apply_conflict
    assert info.value.status == 409 and info.value.reason == "Conflict"
    # kube-apiserver names the Kind here, not the resource (rest.BeforeDelete).
    assert info.value.message == (
        'Operation cannot be fulfilled on Pod "p1": the UID in the precondition (not-the-uid) does not '
        f"match the UID in record ({uid}). The object might have been deleted and then recreated")
    assert info.value.details == {"name": "p1", "kind": "Pod"}
    assert (await kube.get(ObjectRef.of(created)))["metadata"]["uid"] == uid
    assert await kube.delete_pod(ns, "p1", dry_run=False, uid=uid) is True
    with pytest.raises(NotFoundError):
        await kube.get(ObjectRef.of(created))
    assert await kube.delete_pod(ns, "p1", dry_run=False) is False


async def test_derive_secret_copies_values_through_the_api_and_returns_hashes(tier: Tier,
                                                                              other: Kube) -> None:
    redactor = Redactor()
    kube = Kube(tier.api, redactor=redactor)
    source_ns = await tier.namespace("kubeflow")
    await other.apply({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "mlpipeline-minio-artifact", "namespace": source_ns},
                       "data": {"accesskey": b64(ACCESS), "secretkey": b64(SECRET)}}, dry_run=False)
    decl = {"apiVersion": "warden.kserve.io/v1alpha1", "kind": "DerivedSecret",
            "metadata": {"name": "minio-s3-secret", "namespace": tier.ns},
            "spec": {"source": {"namespace": source_ns, "name": "mlpipeline-minio-artifact"},
                     "keys": {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"},
                     "annotations": {"serving.kserve.io/s3-endpoint": "minio-service.kubeflow:9000"}}}
    out = await kube.derive_secret(decl, dry_run=False)
    assert ACCESS not in repr(out) and SECRET not in repr(out) and b64(SECRET) not in repr(out)
    assert set(out["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert all(v.startswith("sha256:") for v in out["data"].values())
    assert redactor.scrub(f"x {SECRET} y {b64(ACCESS)}") == "x <redacted> y <redacted>"
    # The real values landed in the cluster (read back raw through the client).
    raw = await kube.core.read_namespaced_secret("minio-s3-secret", tier.ns)
    assert base64.b64decode(raw.data["AWS_SECRET_ACCESS_KEY"]).decode() == SECRET
    assert raw.metadata.annotations["serving.kserve.io/s3-endpoint"] == "minio-service.kubeflow:9000"

    bad = dict(decl, spec=dict(decl["spec"], keys={"nokey": "AWS_ACCESS_KEY_ID"}))
    with pytest.raises(Exception, match="no key"):
        await kube.derive_secret(bad, dry_run=False)


async def test_events_are_emitted_and_deduplicated_with_a_count(tier: Tier, kube: Kube) -> None:
    created = await kube.apply(sa(tier.ns, {}), dry_run=False)
    ref = ObjectRef.of(created)
    await kube.emit_event(ref, type="Warning", reason="storage-secret-annotation", message="wrong secret",
                          uid=created["metadata"]["uid"])
    await kube.emit_event(ref, type="Warning", reason="storage-secret-annotation", message="wrong secret")
    await kube.emit_event(ref, type="Normal", reason="storage-secret-annotation", message="healed")
    events = own(tier, (await kube.list_objects(resource_for("v1", "Event"))).items)
    assert len(events) == 2
    warn = next(e for e in events if e["type"] == "Warning")
    assert warn["count"] == 2
    assert warn["involvedObject"]["kind"] == "ServiceAccount"
    assert warn["involvedObject"]["name"] == "iris-sa"
    assert warn["involvedObject"]["uid"] == created["metadata"]["uid"]
    assert warn["source"]["component"] == "kserve-warden"
    assert warn["reason"] == "storage-secret-annotation"
    with pytest.raises(ValueError):
        await kube.emit_event(ref, type="Error", reason="x", message="y")


async def test_errors_the_server_answers_are_typed(tier: Tier, kube: Kube) -> None:
    """What a server answers on its own (no fault injected): 404, 409 (a taken name, a stale
    resourceVersion), 422 (an object it refuses)."""
    ns = tier.ns
    with pytest.raises(NotFoundError) as e404:
        await kube.get(ObjectRef.of(sa(ns)))
    assert e404.value.status == 404 and e404.value.reason == "NotFound"
    assert e404.value.message == 'serviceaccounts "iris-sa" not found'

    lease = {"metadata": {"name": "warden-leader", "namespace": ns},
             "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    first = await kube.create_lease(ns, lease)
    with pytest.raises(AlreadyExistsError) as taken:
        await kube.create_lease(ns, lease)
    assert taken.value.status == 409 and taken.value.reason == "AlreadyExists"
    assert taken.value.message == 'leases.coordination.k8s.io "warden-leader" already exists'
    # The same resourceVersion twice: the second write lost the race.
    await kube.replace_lease(ns, "warden-leader", {**first, "spec": {**first["spec"], "holderIdentity": "b"}})
    with pytest.raises(ConflictError) as stale:
        await kube.replace_lease(ns, "warden-leader",
                                 {**first, "spec": {**first["spec"], "holderIdentity": "c"}})
    assert type(stale.value) is ConflictError and not stale.value.is_apply_conflict
    assert stale.value.status == 409 and stale.value.reason == "Conflict"
    assert stale.value.message == (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "warden-leader": the object has '
        "been modified; please apply your changes to the latest version and try again")

    with pytest.raises(InvalidError) as e422:
        await kube.apply(deployment(ns, template_labels={"k8s-app": "other"}), dry_run=False)
    assert e422.value.status == 422 and e422.value.reason == "Invalid"
    assert "`selector` does not match template `labels`" in e422.value.message
    with pytest.raises(NotFoundError):
        await kube.get(ObjectRef.of(deployment(ns)))


# --- stand-in only: injected 500, 429 and a reset connection need its fault hooks ---------------


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with api_server() as s:
        yield s


async def test_injected_failures_are_typed(server: ApiServer) -> None:
    """Stand-in only: a real server cannot be told to fail (500, 429, reset) the next request."""
    ns = "user-example-com"
    async with kube_for(server.url) as kube:
        await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, dry_run=False)
        server.faults.fail_next(1, status=500, resource="serviceaccounts")
        with pytest.raises(ServerError) as e500:
            await kube.apply(sa(ns, {}), dry_run=False)
        assert e500.value.transient
        server.faults.fail_next(1, status=429, retry_after=2, resource="serviceaccounts")
        with pytest.raises(TooManyRequestsError) as e429:
            await kube.apply(sa(ns, {}), dry_run=False)
        assert e429.value.retry_after == pytest.approx(2.0)
        server.faults.fail_next(1, reset=True, resource="serviceaccounts")
        with pytest.raises(UnavailableError):
            await kube.apply(sa(ns, {}), dry_run=False)
        # And the next call goes through.
        assert (await kube.apply(sa(ns, {}), dry_run=False))["metadata"]["name"] == "iris-sa"
