"""The API through the real kubernetes_asyncio client: discovery, CRUD on every kind, selectors,
paging, metadata rules, status subresources, finalizers, namespaces, CRDs, logs.

Every test runs on both tiers (``tier``: the stand-in and the real kube-apiserver, see
``tiers.py``) in a namespace of its own; the two that read the stand-in's own instruments (its
log-writing endpoint, its request counters) run on the stand-in only and say so.

Note: the custom-objects client deserialises only 200 answers; creates answer 201, so where a
test needs the body of a 201 from ``patch_*`` (SSA create) it uses ``_preload_content=False``.
``create_*`` calls are fine: the generated client maps 201 for them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from sandbox.apiserver import ApiServer
from tests.integration.apiserver.objects import ISVC, isvc
from tests.integration.apiserver.status import status_of
from tests.integration.apiserver.tiers import Tier, own
from tests.integration.daemon_fixtures import eventually

IMAGE = "registry.example.com/app:1"
RUNTIME_SPEC = {"supportedModelFormats": [{"name": "sklearn", "autoSelect": True}],
                "containers": [{"name": "kserve-container", "image": IMAGE}]}


def pod(name: str, *containers: str, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta},
            "spec": {"containers": [{"name": c, "image": IMAGE} for c in containers or ("c",)]}}


async def test_discovery_lists_every_served_kind(tier: Tier) -> None:
    http = tier.http
    async with http.get("/version") as r:
        assert (await r.json())["major"] == "1"
    async with http.get("/api") as r:
        assert (await r.json())["versions"] == ["v1"]
    async with http.get("/api/v1") as r:
        names = {x["name"]: x for x in (await r.json())["resources"]}
    assert {
        "namespaces",
        "serviceaccounts",
        "secrets",
        "configmaps",
        "pods",
        "pods/log",
        "events",
    } <= set(names)
    assert names["namespaces"]["namespaced"] is False and names["pods"]["shortNames"] == ["po"]
    assert "watch" in names["configmaps"]["verbs"]
    async with http.get("/apis") as r:
        groups = {g["name"]: g for g in (await r.json())["groups"]}
    assert {
        "apps",
        "coordination.k8s.io",
        "apiextensions.k8s.io",
        "serving.kserve.io",
        "security.istio.io",
    } <= set(groups)
    assert [v["version"] for v in groups["security.istio.io"]["versions"]] == ["v1", "v1beta1"]
    async with http.get("/apis/serving.kserve.io/v1alpha1") as r:
        res = {x["name"]: x for x in (await r.json())["resources"]}
    assert res["servingruntimes"]["namespaced"] is True
    assert res["clusterservingruntimes"]["namespaced"] is False
    async with http.get("/apis/serving.kserve.io/v1beta1") as r:
        res = {x["name"]: x for x in (await r.json())["resources"]}
    assert res["inferenceservices"]["shortNames"] == ["isvc"] and "inferenceservices/status" in res


async def test_core_kinds_crud(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    ns = tier.ns
    sa = await core.create_namespaced_service_account(
        ns, {"metadata": {"name": "iris-sa"}, "secrets": [{"name": "s3"}]}
    )
    assert sa.metadata.uid and sa.metadata.creation_timestamp and sa.metadata.resource_version
    sec = await core.create_namespaced_secret(
        ns,
        {"metadata": {"name": "s3"}, "stringData": {"AWS_ACCESS_KEY_ID": "minio"}, "data": {"x": "eQ=="}},
    )
    assert base64.b64decode(sec.data["AWS_ACCESS_KEY_ID"]) == b"minio" and sec.data["x"] == "eQ=="
    assert sec.string_data is None and sec.type == "Opaque"
    cm = await core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}, "data": {"k": "v"}})
    assert cm.data == {"k": "v"} and cm.kind == "ConfigMap" and cm.api_version == "v1"
    p = await core.create_namespaced_pod(ns, pod("p"))
    assert p.status.phase == "Pending" and p.spec.service_account_name == "default"
    ev = await core.create_namespaced_event(
        ns,
        {
            "metadata": {"name": "p.1"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": ns},
            "reason": "Failed",
            "message": "boom",
            "type": "Warning",
        },
    )
    assert ev.reason == "Failed"
    # get, replace, delete
    got = await core.read_namespaced_config_map("c", ns)
    got.data["k"] = "w"
    replaced = await core.replace_namespaced_config_map("c", ns, got)
    assert replaced.data == {"k": "w"} and int(replaced.metadata.resource_version) > int(
        cm.metadata.resource_version
    )
    deleted = await core.delete_namespaced_config_map("c", ns)
    assert deleted.status == "Success" and deleted.details.name == "c"
    gone_pod = await core.delete_namespaced_pod("p", ns)
    assert gone_pod.metadata.name == "p"  # pods answer the deleted object
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_config_map("c", ns)
    assert e.value.status == 404 and '"c" not found' in str(status_of(e)["message"])
    events = await core.list_namespaced_event(ns, field_selector="involvedObject.name=p")
    assert [x.metadata.name for x in events.items] == ["p.1"]
    events = await core.list_namespaced_event(ns, field_selector="involvedObject.name=q")
    assert events.items == []


async def test_apps_coordination_and_custom_kinds_crud(tier: Tier) -> None:
    ns = tier.ns
    apps = client.AppsV1Api(tier.api)
    dep = await apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "coredns"},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "kube-dns"}},
                    "spec": {"containers": [{"name": "c", "image": IMAGE}]},
                },
            },
        },
    )
    assert dep.metadata.generation == 1 and dep.spec.replicas == 1
    coord = client.CoordinationV1Api(tier.api)
    lease = await coord.create_namespaced_lease(
        ns, {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}})
    lease.spec.holder_identity = "b"
    lease = await coord.replace_namespaced_lease("l", ns, lease)
    assert lease.spec.holder_identity == "b"
    co = client.CustomObjectsApi(tier.api)
    created = await co.create_namespaced_custom_object(*ISVC[:2], ns, ISVC[2], isvc("iris"))
    assert created["metadata"]["generation"] == 1 and created["metadata"]["namespace"] == ns
    sr = await co.create_namespaced_custom_object(
        "serving.kserve.io",
        "v1alpha1",
        ns,
        "servingruntimes",
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "ServingRuntime",
            "metadata": {"name": "sr"},
            "spec": RUNTIME_SPEC,
        },
    )
    assert sr["kind"] == "ServingRuntime"
    csr_name = tier.unique("csr")
    tier.cleanup(f"/apis/serving.kserve.io/v1alpha1/clusterservingruntimes/{csr_name}")
    csr = await co.create_cluster_custom_object(
        "serving.kserve.io",
        "v1alpha1",
        "clusterservingruntimes",
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "ClusterServingRuntime",
            "metadata": {"name": csr_name},
            "spec": RUNTIME_SPEC,
        },
    )
    assert "namespace" not in csr["metadata"]
    ap = await co.create_namespaced_custom_object(
        "security.istio.io",
        "v1",
        ns,
        "authorizationpolicies",
        {
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": "ap"},
            "spec": {"action": "ALLOW"},
        },
    )
    # The same object is served at v1beta1 too.
    beta = await co.get_namespaced_custom_object(
        "security.istio.io", "v1beta1", ns, "authorizationpolicies", "ap")
    assert (
        beta["apiVersion"] == "security.istio.io/v1beta1" and beta["metadata"]["uid"] == ap["metadata"]["uid"]
    )
    listing = await co.list_cluster_custom_object(*ISVC)
    assert [i["metadata"]["name"] for i in own(tier, listing["items"])] == ["iris"]
    assert int(listing["metadata"]["resourceVersion"]) >= int(created["metadata"]["resourceVersion"])
    await co.delete_cluster_custom_object("serving.kserve.io", "v1alpha1", "clusterservingruntimes", csr_name)
    with pytest.raises(ApiException) as e:
        await co.get_cluster_custom_object(
            "serving.kserve.io", "v1alpha1", "clusterservingruntimes", csr_name)
    assert e.value.status == 404


async def test_unknown_resource_is_404(tier: Tier) -> None:
    co = client.CustomObjectsApi(tier.api)
    # A group the server serves, a resource it does not: a NotFound Status.
    with pytest.raises(ApiException) as e:
        await co.list_cluster_custom_object("apps", "v1", "widgets")
    assert e.value.status == 404 and status_of(e)["reason"] == "NotFound"
    assert status_of(e)["message"] == "the server could not find the requested resource"
    # A group it does not know at all: its HTTP mux's plain-text 404, not a Status.
    for path in ("/apis/example.com/v1/widgets", "/apis/example.com", "/nothing-here"):
        assert await tier.request("GET", path) == (404, "text/plain", "404 page not found\n")


async def test_create_in_missing_namespace_and_duplicates(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    missing = f"{tier.ns}-nope"
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_config_map(missing, {"metadata": {"name": "c"}})
    assert e.value.status == 404 and f'namespaces "{missing}" not found' in str(status_of(e)["message"])
    await core.create_namespaced_config_map(tier.ns, {"metadata": {"name": "c"}})
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_config_map(tier.ns, {"metadata": {"name": "c"}})
    assert e.value.status == 409 and status_of(e)["reason"] == "AlreadyExists"


async def test_generate_name(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    a = await core.create_namespaced_config_map(tier.ns, {"metadata": {"generateName": "cm-"}})
    b = await core.create_namespaced_config_map(tier.ns, {"metadata": {"generateName": "cm-"}})
    assert (
        a.metadata.name.startswith("cm-") and len(a.metadata.name) == 8 and a.metadata.name != b.metadata.name
    )


async def test_label_and_field_selectors(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    ns = tier.ns
    for name, labels in (("a", {"app": "x", "tier": "web"}), ("b", {"app": "y"}), ("c", {})):
        await core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": labels}})
    other = await tier.namespace("other")
    await core.create_namespaced_config_map(other, {"metadata": {"name": "d", "labels": {"app": "x"}}})

    async def names(sel: str, namespace: str | None = ns) -> list[str]:
        if namespace is None:
            res = await core.list_config_map_for_all_namespaces(label_selector=sel)
        else:
            res = await core.list_namespaced_config_map(namespace, label_selector=sel)
        return [i.metadata.name for i in own(tier, res.items)]

    assert await names("app=x") == ["a"]
    # Across namespaces, in etcd's key order: "<ns>-other/d" before "<ns>/a" ('-' < '/').
    assert await names("app==x", None) == ["d", "a"]
    assert await names("app!=x") == ["b", "c"]
    assert await names("app in (x,y)") == ["a", "b"]
    assert await names("app notin (x)") == ["b", "c"]
    assert await names("tier") == ["a"]
    assert await names("!app") == ["c"]
    assert await names("app=x,tier=web") == ["a"]
    res = await core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={other}")
    assert [i.metadata.name for i in own(tier, res.items)] == ["d"]
    res = await core.list_config_map_for_all_namespaces(field_selector="metadata.name!=a")
    assert [i.metadata.name for i in own(tier, res.items)] == ["d", "b", "c"]
    with pytest.raises(ApiException) as e:
        await core.list_namespaced_config_map(ns, field_selector="data.k=v")
    assert e.value.status == 400 and status_of(e)["message"] == (
        '"data.k" is not a known field selector: only "metadata.name", "metadata.namespace"')
    with pytest.raises(ApiException) as e:
        await core.list_namespaced_pod(ns, field_selector="spec.nope=v")
    assert e.value.status == 400 and status_of(e)["message"] == "field label not supported: spec.nope"
    with pytest.raises(ApiException) as e:
        await core.list_namespaced_config_map(ns, label_selector="app in x")
    assert e.value.status == 400


async def test_pod_field_selector_status_phase(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    await core.create_namespaced_pod(tier.ns, pod("p"))
    assert len((await core.list_namespaced_pod(tier.ns, field_selector="status.phase=Pending")).items) == 1
    assert (await core.list_namespaced_pod(tier.ns, field_selector="status.phase=Running")).items == []


async def test_list_limit_and_continue(tier: Tier) -> None:
    # Secrets, not ConfigMaps: no controller adds one to a new namespace (kube-root-ca.crt would
    # count in remainingItemCount, and arrives a moment after the namespace on a real cluster).
    core = client.CoreV1Api(tier.api)
    for i in range(5):
        await core.create_namespaced_secret(tier.ns, {"metadata": {"name": f"c{i}"}})
    page = await core.list_namespaced_secret(tier.ns, limit=2)
    seen = [i.metadata.name for i in page.items]
    assert page.metadata.remaining_item_count == 3
    while page.metadata._continue:
        page = await core.list_namespaced_secret(tier.ns, limit=2, _continue=page.metadata._continue)
        seen += [i.metadata.name for i in page.items]
    assert seen == ["c0", "c1", "c2", "c3", "c4"]


async def test_generation_and_status_subresource(tier: Tier) -> None:
    co = client.CustomObjectsApi(tier.api)
    ns = tier.ns
    created = await co.create_namespaced_custom_object(
        *ISVC[:2], ns, ISVC[2], {**isvc("iris"), "status": {"url": "ignored"}}
    )
    assert "status" not in created  # status is reset on create when the CRD has the subresource
    st = await co.patch_namespaced_custom_object_status(
        *ISVC[:2],
        ns,
        ISVC[2],
        "iris",
        {"status": {"url": "http://iris", "conditions": [{"type": "Ready", "status": "True"}]}},
        _content_type="application/merge-patch+json",
    )
    assert st["status"]["url"] == "http://iris" and st["metadata"]["generation"] == 1
    # A main-resource write cannot change status, and a spec change bumps generation.
    body = {**isvc("iris", fmt="xgboost"), "status": {"url": "http://evil"}}
    body["metadata"]["resourceVersion"] = st["metadata"]["resourceVersion"]  # type: ignore[index]
    upd = await co.replace_namespaced_custom_object(*ISVC[:2], ns, ISVC[2], "iris", body)
    assert upd["status"]["url"] == "http://iris" and upd["metadata"]["generation"] == 2
    # Metadata-only changes do not bump generation.
    lab = await co.patch_namespaced_custom_object(
        *ISVC[:2],
        ns,
        ISVC[2],
        "iris",
        {"metadata": {"labels": {"a": "b"}}},
        _content_type="application/merge-patch+json",
    )
    assert lab["metadata"]["generation"] == 2 and lab["metadata"]["labels"] == {"a": "b"}
    # Deployment status through /status.
    apps = client.AppsV1Api(tier.api)
    await apps.create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                             "spec": {"containers": [{"name": "c", "image": IMAGE}]}},
            },
        },
    )
    dst = await apps.patch_namespaced_deployment_status(
        "d", ns, {"status": {"replicas": 1, "readyReplicas": 1}})
    assert dst.status.ready_replicas == 1 and dst.metadata.generation == 1
    # Status counts are bounded by the ones they are part of.
    with pytest.raises(ApiException) as e:
        await apps.patch_namespaced_deployment_status(
            "d", ns, {"status": {"replicas": 1, "readyReplicas": 2}})
    assert e.value.status == 422 and status_of(e)["message"] == (
        'Deployment.apps "d" is invalid: status.readyReplicas: Invalid value: 2: cannot be greater than '
        "status.replicas")


async def test_no_op_writes_keep_resource_version(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    ns = tier.ns
    cm = await core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}, "data": {"k": "v"}})
    rv = cm.metadata.resource_version
    same = await core.patch_namespaced_config_map("c", ns, {"data": {"k": "v"}})
    assert same.metadata.resource_version == rv
    same = await core.replace_namespaced_config_map("c", ns, cm)
    assert same.metadata.resource_version == rv
    co = client.CustomObjectsApi(tier.api)
    body = isvc("iris")
    r = await co.patch_namespaced_custom_object(
        *ISVC[:2],
        ns,
        ISVC[2],
        "iris",
        body,
        field_manager="w",
        _content_type="application/apply-patch+yaml",
        _preload_content=False,
    )
    assert r.status == 201
    first = await r.json()
    again = await co.patch_namespaced_custom_object(
        *ISVC[:2],
        ns,
        ISVC[2],
        "iris",
        body,
        field_manager="w",
        _content_type="application/apply-patch+yaml",
    )
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


async def test_finalizers_delay_deletion(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    ns = tier.ns
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "c", "finalizers": ["x/y"]}})
    resp = await core.delete_namespaced_config_map_with_http_info("c", ns)
    assert resp[1] == 200
    held = await core.read_namespaced_config_map("c", ns)
    assert held.metadata.deletion_timestamp is not None
    gone = await core.patch_namespaced_config_map("c", ns, {"metadata": {"finalizers": None}})
    assert gone.metadata.name == "c"
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_config_map("c", ns)
    assert e.value.status == 404


async def test_delete_preconditions(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    ns = tier.ns
    cm = await core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}})
    await core.patch_namespaced_config_map("c", ns, {"data": {"a": "b"}})
    with pytest.raises(ApiException) as e:
        await core.delete_namespaced_config_map(
            "c", ns, body={"preconditions": {"resourceVersion": cm.metadata.resource_version}}
        )
    assert e.value.status == 409 and status_of(e)["reason"] == "Conflict"
    fresh = await core.read_namespaced_config_map("c", ns)
    await core.delete_namespaced_config_map(
        "c", ns, body={"preconditions": {"resourceVersion": fresh.metadata.resource_version}}
    )


async def test_namespace_deletion_cascades(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    tmp = await tier.namespace("tmp")
    await core.create_namespaced_config_map(tmp, {"metadata": {"name": "a"}})
    await core.create_namespaced_config_map(tmp, {"metadata": {"name": "held", "finalizers": ["x/y"]}})
    await core.delete_namespace(tmp)
    terminating = await core.read_namespace(tmp)
    assert terminating.status.phase == "Terminating"
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_config_map(tmp, {"metadata": {"name": "b"}})
    assert e.value.status == 403

    async def only_held_left() -> bool:
        return [c.metadata.name for c in (await core.list_namespaced_config_map(tmp)).items] == ["held"]

    # The namespace controller empties it (at once on the stand-in; a moment later on a real one)
    # but for what a finalizer holds.
    await eventually(only_held_left, what="namespace emptied but for the held ConfigMap")
    # finalizers merge as a set under strategic merge (as on a real server): null clears them.
    await core.patch_namespaced_config_map("held", tmp, {"metadata": {"finalizers": None}})

    async def namespace_gone() -> bool:
        try:
            await core.read_namespace(tmp)
        except ApiException as exc:
            assert exc.status == 404
            return True
        return False

    await eventually(namespace_gone, what="namespace deleted")
    with pytest.raises(ApiException) as e:
        await core.delete_namespace("kube-system")
    assert e.value.status == 403 and status_of(e)["reason"] == "Forbidden"


async def test_crd_registration_serves_new_kind(tier: Tier) -> None:
    ext = client.ApiextensionsV1Api(tier.api)
    crds = {c.metadata.name for c in (await ext.list_custom_resource_definition()).items}
    assert "inferenceservices.serving.kserve.io" in crds
    group = f"{tier.ns}.example.com"
    crd_name = f"widgets.{group}"
    tier.cleanup(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd_name}")
    await ext.create_custom_resource_definition(
        {
            "metadata": {"name": crd_name},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": {"type": "object",
                                                       "x-kubernetes-preserve-unknown-fields": True}},
                    }
                ],
            },
        }
    )
    co = client.CustomObjectsApi(tier.api)
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}}

    async def created() -> bool:
        # A real server serves the kind once the CRD is Established and its storage is ready.
        try:
            w = await co.create_namespaced_custom_object(group, "v1", tier.ns, "widgets", widget)
        except ApiException as exc:
            if exc.status in (404, 429, 503):
                return False
            raise
        assert w["spec"] == {"size": 1}
        return True

    await eventually(created, what="the new kind served")
    await ext.delete_custom_resource_definition(crd_name)

    async def unserved() -> bool:
        try:
            await co.list_namespaced_custom_object(group, "v1", tier.ns, "widgets")
        except ApiException as exc:
            assert exc.status == 404
            return True
        return False

    # The CRD's finalizer deletes its objects first: the kind stays served until then.
    await eventually(unserved, what="the kind no longer served")
    with pytest.raises(ApiException) as e:
        await ext.create_custom_resource_definition(
            {
                "metadata": {"name": tier.unique("bad")},
                "spec": {
                    "group": "example.com",
                    "scope": "Namespaced",
                    "names": {"plural": "x", "kind": "X"},
                    "versions": [],
                },
            }
        )
    assert e.value.status == 422 and status_of(e)["reason"] == "Invalid"


async def test_pod_log_errors(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    ns = tier.ns
    await core.create_namespaced_pod(ns, pod("p", "kserve-container", "istio-proxy"))
    # Not bound to a node yet (no scheduler here): no kubelet to ask, 204 No Content.
    status, _, body = await tier.request("GET", f"/api/v1/namespaces/{ns}/pods/p/log?container=istio-proxy")
    assert (status, body) == (204, "")
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_pod_log("p", ns)
    assert e.value.status == 400 and "a container name must be specified" in str(status_of(e)["message"])
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_pod_log("p", ns, container="nope")
    assert e.value.status == 400
    await core.delete_namespaced_pod("p", ns)
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_pod_log("p", ns, container="istio-proxy")
    assert e.value.status == 404


async def test_pod_logs_written_through_the_sandbox_endpoint(
        server: ApiServer, api: client.ApiClient) -> None:
    """Stand-in only: the log text comes from its sandbox-only endpoint (on the real tier the
    simulated node's kubelet endpoint serves it: sandbox.realcp.nodelogs, test_real_control_plane)."""
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "storage-initializer", "image": IMAGE}],
                "containers": [{"name": "kserve-container", "image": IMAGE},
                               {"name": "istio-proxy", "image": IMAGE}],
            },
        },
    )
    async with aiohttp.ClientSession() as http:
        url = f"{server.url}/sandbox/v1/namespaces/default/pods/p/log?container=storage-initializer"
        async with http.put(url, data="line1\nline2\n", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 200
        async with http.post(url, data="NoCredentialsError: Unable to locate credentials\n") as r:
            assert r.status == 200
    server.set_pod_log("default", "p", "istio-proxy", "lookup istiod.istio-system.svc: i/o timeout\n")
    text = await core.read_namespaced_pod_log("p", "default", container="storage-initializer", tail_lines=2)
    assert text == "line2\nNoCredentialsError: Unable to locate credentials\n"
    assert "i/o timeout" in await core.read_namespaced_pod_log("p", "default", container="istio-proxy")
    assert await core.read_namespaced_pod_log("p", "default", container="kserve-container") == ""


async def test_stats_count_requests_by_verb_and_resource(server: ApiServer, api: client.ApiClient) -> None:
    """Stand-in only: the request counters are the stand-in's own instrument."""
    co = client.CustomObjectsApi(api)
    before = server.stats.count("list", "inferenceservices")
    await co.list_cluster_custom_object(*ISVC)
    await co.list_namespaced_custom_object(*ISVC[:2], "default", ISVC[2])
    assert server.stats.count("list", "inferenceservices") == before + 2
    assert server.stats.snapshot()["list inferenceservices"] == before + 2


async def test_dry_run_stores_nothing(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    ns = tier.ns
    out = await core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}}, dry_run="All")
    assert out.metadata.name == "c"
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_config_map("c", ns)
    assert e.value.status == 404
    await core.create_namespaced_config_map(ns, {"metadata": {"name": "c"}, "data": {"a": "1"}})
    out = await core.patch_namespaced_config_map("c", ns, {"data": {"a": "2"}}, dry_run="All")
    assert out.data == {"a": "2"}
    assert (await core.read_namespaced_config_map("c", ns)).data == {"a": "1"}
    await core.delete_namespaced_config_map("c", ns, dry_run="All")
    assert (await core.read_namespaced_config_map("c", ns)).data == {"a": "1"}


async def test_delete_options_in_a_body_override_the_query_string(tier: Tier) -> None:
    """A DELETE that carries DeleteOptions in its body is read from the body alone: a
    ``?dryRun=All`` beside a body without it deletes for real (k8s.io/apiserver
    handlers/delete.go); ``dryRun`` inside the body is a dry run."""
    core = client.CoreV1Api(tier.api)
    await core.create_namespaced_config_map(tier.ns, {"metadata": {"name": "c"}})
    path = f"/api/v1/namespaces/{tier.ns}/configmaps/c"
    headers = {"Content-Type": "application/json"}
    status, _, _ = await tier.request("DELETE", path, headers=headers,
                                      data=json.dumps({"kind": "DeleteOptions", "apiVersion": "v1",
                                                       "dryRun": ["All"]}))
    assert status == 200
    assert (await core.read_namespaced_config_map("c", tier.ns)).metadata.name == "c"
    status, _, _ = await tier.request("DELETE", path + "?dryRun=All", headers=headers,
                                      data=json.dumps({"kind": "DeleteOptions", "apiVersion": "v1"}))
    assert status == 200
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_config_map("c", tier.ns)
    assert e.value.status == 404


async def test_delete_collection_by_label(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    ns = tier.ns
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        await core.create_namespaced_config_map(ns, {"metadata": {"name": name, "labels": {"app": app}}})
    await core.delete_collection_namespaced_config_map(ns, label_selector="app=x")
    assert [c.metadata.name for c in own(tier, (await core.list_namespaced_config_map(ns)).items)] == ["c"]


async def test_collection_put_and_patch_are_405(tier: Tier) -> None:
    for method in ("PUT", "PATCH"):
        async with tier.http.request(method, f"/api/v1/namespaces/{tier.ns}/configmaps", json={}) as r:
            assert r.status == 405 and (await r.json())["reason"] == "MethodNotAllowed"


async def test_owner_references_garbage_collection(tier: Tier) -> None:
    co = client.CustomObjectsApi(tier.api)
    core = client.CoreV1Api(tier.api)
    ns = tier.ns
    owner = await co.create_namespaced_custom_object(*ISVC[:2], ns, ISVC[2], isvc("iris"))
    other = await core.create_namespaced_config_map(ns, {"metadata": {"name": "other-owner"}})

    def ref(api_version: str, kind: str, name: str, uid: str) -> dict[str, object]:
        return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid}

    iris_ref = ref("serving.kserve.io/v1beta1", "InferenceService", "iris", owner["metadata"]["uid"])
    await core.create_namespaced_pod(ns, pod("only", ownerReferences=[iris_ref]))
    await core.create_namespaced_config_map(
        ns,
        {
            "metadata": {
                "name": "shared",
                "ownerReferences": [iris_ref, ref("v1", "ConfigMap", "other-owner", other.metadata.uid)],
            }
        },
    )
    await co.delete_namespaced_custom_object(*ISVC[:2], ns, ISVC[2], "iris")

    async def dependent_gone() -> bool:
        try:
            await core.read_namespaced_pod("only", ns)
        except ApiException as exc:
            assert exc.status == 404
            return True
        return False

    async def shared_reference_dropped() -> bool:
        shared = await core.read_namespaced_config_map("shared", ns)
        return [r.name for r in shared.metadata.owner_references] == ["other-owner"]

    # The garbage collector works after the owner is gone (at once on the stand-in).
    await eventually(dependent_gone, what="the only-owned pod collected")
    await eventually(shared_reference_dropped, what="the deleted owner's reference dropped")
    # propagationPolicy=Orphan keeps dependents.
    await core.delete_namespaced_config_map("other-owner", ns, propagation_policy="Orphan")
    assert (await core.read_namespaced_config_map("shared", ns)).metadata.name == "shared"


async def test_events_k8s_io_is_a_view_of_core_events(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    ev1 = client.EventsV1Api(tier.api)
    ns = tier.ns
    made = await ev1.create_namespaced_event(
        ns,
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "warden.1"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "regarding": {"kind": "InferenceService", "name": "iris", "namespace": ns},
            "note": "restarted coredns",
            "reason": "Healed",
            "type": "Normal",
            "action": "Restart",
            "reportingController": "kserve-warden",
            "reportingInstance": "kserve-warden-0",
        },
    )
    assert made.regarding.name == "iris" and made.note == "restarted coredns"
    seen = await core.read_namespaced_event("warden.1", ns)
    assert seen.involved_object.name == "iris" and seen.message == "restarted coredns"
    assert seen.reporting_component == "kserve-warden"
    listed = await core.list_namespaced_event(ns, field_selector="involvedObject.name=iris")
    assert [e.metadata.name for e in listed.items] == ["warden.1"]
    # Through events.k8s.io/v1 only the series may change (a repeat); the note is immutable there.
    series = {"count": 2, "lastObservedTime": "2026-01-01T00:00:05.000000Z"}
    patched = await ev1.patch_namespaced_event("warden.1", ns, {"series": series})
    assert patched.series.count == 2 and (await core.read_namespaced_event("warden.1", ns)).series.count == 2
    with pytest.raises(ApiException) as e:
        await ev1.patch_namespaced_event("warden.1", ns, {"note": "again", "type": "Warning"})
    assert e.value.status == 422 and status_of(e)["message"] == (
        'Event "warden.1" is invalid: [message: Invalid value: "again": field is immutable, '
        'type: Invalid value: "Warning": field is immutable]')
    # core/v1 may change the message.
    await core.patch_namespaced_event("warden.1", ns, {"message": "again"})
    assert (await ev1.read_namespaced_event("warden.1", ns)).note == "again"
    await ev1.delete_namespaced_event("warden.1", ns)
    assert (await core.list_namespaced_event(ns)).items == []


async def test_a_pod_needs_its_service_account(tier: Tier) -> None:
    """ServiceAccount admission: a pod naming a ServiceAccount that does not exist is refused
    (403, not created); the namespace's ``default`` one is made by the serviceaccount controller
    (at once on the stand-in, a moment after the namespace on a real cluster)."""
    core = client.CoreV1Api(tier.api)
    ns = tier.ns
    with_sa = pod("p")
    with_sa["spec"]["serviceAccountName"] = "iris-sa"
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_pod(ns, with_sa)
    st = status_of(e)
    assert e.value.status == 403 and st["reason"] == "Forbidden"
    assert st["message"] == (
        f'pods "p" is forbidden: error looking up service account {ns}/iris-sa: '
        'serviceaccount "iris-sa" not found')
    assert st["details"] == {"name": "p", "kind": "pods"}
    assert (await core.list_namespaced_pod(ns)).items == []
    await core.create_namespaced_service_account(ns, {"metadata": {"name": "iris-sa"}})
    made = await core.create_namespaced_pod(ns, with_sa)
    assert made.spec.service_account_name == "iris-sa"

    async def default_sa() -> bool:
        return "default" in {s.metadata.name for s in (await core.list_namespaced_service_account(ns)).items}

    await eventually(default_sa, what="the namespace's default ServiceAccount")
    assert (await core.create_namespaced_pod(ns, pod("q"))).spec.service_account_name == "default"
    # Admission looks only at creates: deleting the ServiceAccount leaves the pod as it is.
    await core.delete_namespaced_service_account("iris-sa", ns)
    assert (await core.read_namespaced_pod("p", ns)).spec.service_account_name == "iris-sa"
