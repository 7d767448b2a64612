"""The sandbox API server through the real kubernetes_asyncio client: discovery, CRUD on every
kind, selectors, paging, metadata rules, status subresources, finalizers, namespaces, CRDs, logs.

Note: the custom-objects client deserialises only 200 answers; creates answer 201, so where a
test needs the body of a 201 from ``patch_*`` (SSA create) it uses ``_preload_content=False``.
``create_*`` calls are fine: the generated client maps 201 for them.
"""

from __future__ import annotations

import base64

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from sandbox.apiserver import ApiServer
from tests.integration.apiserver.status import status_of

ISVC = ("serving.kserve.io", "v1beta1", "inferenceservices")


def isvc(name: str, fmt: str = "sklearn", labels: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, **({"labels": labels} if labels else {})},
        "spec": {"predictor": {"model": {"modelFormat": {"name": fmt}, "storageUri": "s3://b/m"}}},
    }


async def ns(api: client.ApiClient, name: str, labels: dict[str, str] | None = None) -> None:
    await client.CoreV1Api(api).create_namespace({"metadata": {"name": name, "labels": labels or {}}})


async def test_discovery_lists_every_served_kind(server: ApiServer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/version") as r:
            assert (await r.json())["major"] == "1"
        async with http.get(f"{server.url}/api") as r:
            assert (await r.json())["versions"] == ["v1"]
        async with http.get(f"{server.url}/api/v1") as r:
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
        async with http.get(f"{server.url}/apis") as r:
            groups = {g["name"]: g for g in (await r.json())["groups"]}
        assert {
            "apps",
            "coordination.k8s.io",
            "apiextensions.k8s.io",
            "serving.kserve.io",
            "security.istio.io",
        } <= set(groups)
        assert [v["version"] for v in groups["security.istio.io"]["versions"]] == ["v1", "v1beta1"]
        async with http.get(f"{server.url}/apis/serving.kserve.io/v1alpha1") as r:
            res = {x["name"]: x for x in (await r.json())["resources"]}
        assert res["servingruntimes"]["namespaced"] is True
        assert res["clusterservingruntimes"]["namespaced"] is False
        async with http.get(f"{server.url}/apis/serving.kserve.io/v1beta1") as r:
            res = {x["name"]: x for x in (await r.json())["resources"]}
        assert res["inferenceservices"]["shortNames"] == ["isvc"] and "inferenceservices/status" in res


async def test_core_kinds_crud(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await ns(api, "user-example-com")
    sa = await core.create_namespaced_service_account(
        "user-example-com", {"metadata": {"name": "iris-sa"}, "secrets": [{"name": "s3"}]}
    )
    assert sa.metadata.uid and sa.metadata.creation_timestamp and sa.metadata.resource_version
    sec = await core.create_namespaced_secret(
        "user-example-com",
        {"metadata": {"name": "s3"}, "stringData": {"AWS_ACCESS_KEY_ID": "minio"}, "data": {"x": "eQ=="}},
    )
    assert base64.b64decode(sec.data["AWS_ACCESS_KEY_ID"]) == b"minio" and sec.data["x"] == "eQ=="
    assert sec.string_data is None and sec.type == "Opaque"
    cm = await core.create_namespaced_config_map(
        "user-example-com", {"metadata": {"name": "c"}, "data": {"k": "v"}}
    )
    assert cm.data == {"k": "v"} and cm.kind == "ConfigMap" and cm.api_version == "v1"
    pod = await core.create_namespaced_pod(
        "user-example-com", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    )
    assert pod.status.phase == "Pending" and pod.spec.service_account_name == "default"
    ev = await core.create_namespaced_event(
        "user-example-com",
        {
            "metadata": {"name": "p.1"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "user-example-com"},
            "reason": "Failed",
            "message": "boom",
            "type": "Warning",
        },
    )
    assert ev.reason == "Failed"
    # get, replace, delete
    got = await core.read_namespaced_config_map("c", "user-example-com")
    got.data["k"] = "w"
    replaced = await core.replace_namespaced_config_map("c", "user-example-com", got)
    assert replaced.data == {"k": "w"} and int(replaced.metadata.resource_version) > int(
        cm.metadata.resource_version
    )
    deleted = await core.delete_namespaced_config_map("c", "user-example-com")
    assert deleted.status == "Success" and deleted.details.name == "c"
    gone_pod = await core.delete_namespaced_pod("p", "user-example-com")
    assert gone_pod.metadata.name == "p"  # pods answer the deleted object
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_config_map("c", "user-example-com")
    assert e.value.status == 404 and '"c" not found' in str(status_of(e)["message"])
    events = await core.list_namespaced_event("user-example-com", field_selector="involvedObject.name=p")
    assert [x.metadata.name for x in events.items] == ["p.1"]
    events = await core.list_namespaced_event("user-example-com", field_selector="involvedObject.name=q")
    assert events.items == []


async def test_apps_coordination_and_custom_kinds_crud(api: client.ApiClient) -> None:
    await ns(api, "kube-x")
    apps = client.AppsV1Api(api)
    dep = await apps.create_namespaced_deployment(
        "kube-x",
        {
            "metadata": {"name": "coredns"},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "kube-dns"}},
                    "spec": {"containers": [{"name": "c"}]},
                },
            },
        },
    )
    assert dep.metadata.generation == 1 and dep.spec.replicas == 1
    coord = client.CoordinationV1Api(api)
    lease = await coord.create_namespaced_lease(
        "kube-x", {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}
    )
    lease.spec.holder_identity = "b"
    lease = await coord.replace_namespaced_lease("l", "kube-x", lease)
    assert lease.spec.holder_identity == "b"
    co = client.CustomObjectsApi(api)
    created = await co.create_namespaced_custom_object(*ISVC[:2], "kube-x", ISVC[2], isvc("iris"))
    assert created["metadata"]["generation"] == 1 and created["metadata"]["namespace"] == "kube-x"
    sr = await co.create_namespaced_custom_object(
        "serving.kserve.io",
        "v1alpha1",
        "kube-x",
        "servingruntimes",
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "ServingRuntime",
            "metadata": {"name": "sr"},
            "spec": {"supportedModelFormats": [{"name": "sklearn", "autoSelect": True}]},
        },
    )
    assert sr["kind"] == "ServingRuntime"
    csr = await co.create_cluster_custom_object(
        "serving.kserve.io",
        "v1alpha1",
        "clusterservingruntimes",
        {
            "apiVersion": "serving.kserve.io/v1alpha1",
            "kind": "ClusterServingRuntime",
            "metadata": {"name": "csr"},
            "spec": {},
        },
    )
    assert "namespace" not in csr["metadata"]
    ap = await co.create_namespaced_custom_object(
        "security.istio.io",
        "v1",
        "kube-x",
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
        "security.istio.io", "v1beta1", "kube-x", "authorizationpolicies", "ap"
    )
    assert (
        beta["apiVersion"] == "security.istio.io/v1beta1" and beta["metadata"]["uid"] == ap["metadata"]["uid"]
    )
    listing = await co.list_cluster_custom_object(*ISVC)
    assert [i["metadata"]["name"] for i in listing["items"]] == ["iris"]
    assert int(listing["metadata"]["resourceVersion"]) >= int(created["metadata"]["resourceVersion"])
    await co.delete_cluster_custom_object("serving.kserve.io", "v1alpha1", "clusterservingruntimes", "csr")
    with pytest.raises(ApiException) as e:
        await co.get_cluster_custom_object("serving.kserve.io", "v1alpha1", "clusterservingruntimes", "csr")
    assert e.value.status == 404


async def test_unknown_resource_is_404_status(api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as e:
        await co.list_cluster_custom_object("example.com", "v1", "widgets")
    assert e.value.status == 404 and status_of(e)["reason"] == "NotFound"


async def test_create_in_missing_namespace_and_duplicates(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_config_map("nope", {"metadata": {"name": "c"}})
    assert e.value.status == 404 and 'namespaces "nope" not found' in str(status_of(e)["message"])
    await core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    assert e.value.status == 409 and status_of(e)["reason"] == "AlreadyExists"


async def test_generate_name(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    a = await core.create_namespaced_config_map("default", {"metadata": {"generateName": "cm-"}})
    b = await core.create_namespaced_config_map("default", {"metadata": {"generateName": "cm-"}})
    assert (
        a.metadata.name.startswith("cm-") and len(a.metadata.name) == 8 and a.metadata.name != b.metadata.name
    )


async def test_label_and_field_selectors(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name, labels in (("a", {"app": "x", "tier": "web"}), ("b", {"app": "y"}), ("c", {})):
        await core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": labels}})
    await ns(api, "other")
    await core.create_namespaced_config_map("other", {"metadata": {"name": "d", "labels": {"app": "x"}}})

    async def names(sel: str, namespace: str | None = "default") -> list[str]:
        if namespace is None:
            res = await core.list_config_map_for_all_namespaces(label_selector=sel)
        else:
            res = await core.list_namespaced_config_map(namespace, label_selector=sel)
        return [i.metadata.name for i in res.items]

    assert await names("app=x") == ["a"]
    assert await names("app==x", None) == ["a", "d"]
    assert await names("app!=x") == ["b", "c"]
    assert await names("app in (x,y)") == ["a", "b"]
    assert await names("app notin (x)") == ["b", "c"]
    assert await names("tier") == ["a"]
    assert await names("!app") == ["c"]
    assert await names("app=x,tier=web") == ["a"]
    res = await core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=other")
    assert [i.metadata.name for i in res.items] == ["d"]
    res = await core.list_config_map_for_all_namespaces(field_selector="metadata.name!=a")
    assert [i.metadata.name for i in res.items] == ["b", "c", "d"]
    with pytest.raises(ApiException) as e:
        await core.list_namespaced_config_map("default", field_selector="data.k=v")
    assert e.value.status == 400 and "field label not supported" in str(status_of(e)["message"])
    with pytest.raises(ApiException) as e:
        await core.list_namespaced_config_map("default", label_selector="app in x")
    assert e.value.status == 400


async def test_pod_field_selector_status_phase(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod(
        "default", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    )
    assert len((await core.list_namespaced_pod("default", field_selector="status.phase=Pending")).items) == 1
    assert (await core.list_namespaced_pod("default", field_selector="status.phase=Running")).items == []


async def test_list_limit_and_continue(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for i in range(5):
        await core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
    page = await core.list_namespaced_config_map("default", limit=2)
    seen = [i.metadata.name for i in page.items]
    assert page.metadata.remaining_item_count == 3
    while page.metadata._continue:
        page = await core.list_namespaced_config_map("default", limit=2, _continue=page.metadata._continue)
        seen += [i.metadata.name for i in page.items]
    assert seen == ["c0", "c1", "c2", "c3", "c4"]


async def test_generation_and_status_subresource(api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api)
    created = await co.create_namespaced_custom_object(
        *ISVC[:2], "default", ISVC[2], {**isvc("iris"), "status": {"url": "ignored"}}
    )
    assert "status" not in created  # status is reset on create when the CRD has the subresource
    st = await co.patch_namespaced_custom_object_status(
        *ISVC[:2],
        "default",
        ISVC[2],
        "iris",
        {"status": {"url": "http://iris", "conditions": [{"type": "Ready", "status": "True"}]}},
        _content_type="application/merge-patch+json",
    )
    assert st["status"]["url"] == "http://iris" and st["metadata"]["generation"] == 1
    # A main-resource write cannot change status, and a spec change bumps generation.
    body = {**isvc("iris", fmt="xgboost"), "status": {"url": "http://evil"}}
    body["metadata"]["resourceVersion"] = st["metadata"]["resourceVersion"]
    upd = await co.replace_namespaced_custom_object(*ISVC[:2], "default", ISVC[2], "iris", body)
    assert upd["status"]["url"] == "http://iris" and upd["metadata"]["generation"] == 2
    # Metadata-only changes do not bump generation.
    lab = await co.patch_namespaced_custom_object(
        *ISVC[:2],
        "default",
        ISVC[2],
        "iris",
        {"metadata": {"labels": {"a": "b"}}},
        _content_type="application/merge-patch+json",
    )
    assert lab["metadata"]["generation"] == 2 and lab["metadata"]["labels"] == {"a": "b"}
    # Deployment status through /status.
    apps = client.AppsV1Api(api)
    await apps.create_namespaced_deployment(
        "default",
        {
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"spec": {"containers": [{"name": "c"}]}},
            },
        },
    )
    dst = await apps.patch_namespaced_deployment_status("d", "default", {"status": {"readyReplicas": 1}})
    assert dst.status.ready_replicas == 1 and dst.metadata.generation == 1


async def test_no_op_writes_keep_resource_version(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    cm = await core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"k": "v"}})
    rv = cm.metadata.resource_version
    same = await core.patch_namespaced_config_map("c", "default", {"data": {"k": "v"}})
    assert same.metadata.resource_version == rv
    same = await core.replace_namespaced_config_map("c", "default", cm)
    assert same.metadata.resource_version == rv
    co = client.CustomObjectsApi(api)
    body = isvc("iris")
    r = await co.patch_namespaced_custom_object(
        *ISVC[:2],
        "default",
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
        "default",
        ISVC[2],
        "iris",
        body,
        field_manager="w",
        _content_type="application/apply-patch+yaml",
    )
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


async def test_finalizers_delay_deletion(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_config_map("default", {"metadata": {"name": "c", "finalizers": ["x/y"]}})
    resp = await core.delete_namespaced_config_map_with_http_info("c", "default")
    assert resp[1] == 200
    held = await core.read_namespaced_config_map("c", "default")
    assert held.metadata.deletion_timestamp is not None
    gone = await core.patch_namespaced_config_map("c", "default", {"metadata": {"finalizers": None}})
    assert gone.metadata.name == "c"
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_config_map("c", "default")
    assert e.value.status == 404


async def test_delete_preconditions(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    cm = await core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    await core.patch_namespaced_config_map("c", "default", {"data": {"a": "b"}})
    with pytest.raises(ApiException) as e:
        await core.delete_namespaced_config_map(
            "c", "default", body={"preconditions": {"resourceVersion": cm.metadata.resource_version}}
        )
    assert e.value.status == 409 and status_of(e)["reason"] == "Conflict"
    fresh = await core.read_namespaced_config_map("c", "default")
    await core.delete_namespaced_config_map(
        "c", "default", body={"preconditions": {"resourceVersion": fresh.metadata.resource_version}}
    )


async def test_namespace_deletion_cascades(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await ns(api, "tmp")
    await core.create_namespaced_config_map("tmp", {"metadata": {"name": "a"}})
    await core.create_namespaced_config_map("tmp", {"metadata": {"name": "held", "finalizers": ["x/y"]}})
    await core.delete_namespace("tmp")
    terminating = await core.read_namespace("tmp")
    assert terminating.status.phase == "Terminating"
    with pytest.raises(ApiException) as e:
        await core.create_namespaced_config_map("tmp", {"metadata": {"name": "b"}})
    assert e.value.status == 403
    assert [c.metadata.name for c in (await core.list_namespaced_config_map("tmp")).items] == ["held"]
    # finalizers merge as a set under strategic merge (as on a real server): null clears them.
    await core.patch_namespaced_config_map("held", "tmp", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as e:
        await core.read_namespace("tmp")
    assert e.value.status == 404
    with pytest.raises(ApiException) as e:
        await core.delete_namespace("kube-system")
    assert e.value.status == 403 and status_of(e)["reason"] == "Forbidden"


async def test_crd_registration_serves_new_kind(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    crds = {c.metadata.name for c in (await ext.list_custom_resource_definition()).items}
    assert "inferenceservices.serving.kserve.io" in crds
    await ext.create_custom_resource_definition(
        {
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": {"type": "object"}},
                    }
                ],
            },
        }
    )
    co = client.CustomObjectsApi(api)
    w = await co.create_namespaced_custom_object(
        "example.com",
        "v1",
        "default",
        "widgets",
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}},
    )
    assert w["spec"] == {"size": 1}
    await ext.delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(ApiException) as e:
        await co.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
    assert e.value.status == 404
    with pytest.raises(ApiException) as e:
        await ext.create_custom_resource_definition(
            {
                "metadata": {"name": "bad"},
                "spec": {
                    "group": "example.com",
                    "scope": "Namespaced",
                    "names": {"plural": "x", "kind": "X"},
                    "versions": [],
                },
            }
        )
    assert e.value.status == 422 and status_of(e)["reason"] == "Invalid"


async def test_pod_logs(server: ApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "p"},
            "spec": {
                "initContainers": [{"name": "storage-initializer"}],
                "containers": [{"name": "kserve-container"}, {"name": "istio-proxy"}],
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
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_pod_log("p", "default")
    assert e.value.status == 400 and "a container name must be specified" in str(status_of(e)["message"])
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_pod_log("p", "default", container="nope")
    assert e.value.status == 400
    await core.delete_namespaced_pod("p", "default")
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_pod_log("p", "default", container="istio-proxy")
    assert e.value.status == 404


async def test_stats_count_requests_by_verb_and_resource(server: ApiServer, api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api)
    before = server.stats.count("list", "inferenceservices")
    await co.list_cluster_custom_object(*ISVC)
    await co.list_namespaced_custom_object(*ISVC[:2], "default", ISVC[2])
    assert server.stats.count("list", "inferenceservices") == before + 2
    assert server.stats.snapshot()["list inferenceservices"] == before + 2


async def test_dry_run_stores_nothing(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    out = await core.create_namespaced_config_map("default", {"metadata": {"name": "c"}}, dry_run="All")
    assert out.metadata.name == "c"
    assert (await core.list_namespaced_config_map("default")).items == []
    await core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    out = await core.patch_namespaced_config_map("c", "default", {"data": {"a": "2"}}, dry_run="All")
    assert out.data == {"a": "2"}
    assert (await core.read_namespaced_config_map("c", "default")).data == {"a": "1"}
    await core.delete_namespaced_config_map("c", "default", dry_run="All")
    assert (await core.read_namespaced_config_map("c", "default")).data == {"a": "1"}


async def test_delete_collection_by_label(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        await core.create_namespaced_config_map(
            "default", {"metadata": {"name": name, "labels": {"app": app}}}
        )
    await core.delete_collection_namespaced_config_map("default", label_selector="app=x")
    assert [c.metadata.name for c in (await core.list_namespaced_config_map("default")).items] == ["c"]


async def test_collection_put_and_patch_are_405(server: ApiServer) -> None:
    async with aiohttp.ClientSession() as http:
        for method in ("PUT", "PATCH"):
            url = f"{server.url}/api/v1/namespaces/default/configmaps"
            async with http.request(method, url, json={}) as r:
                assert r.status == 405 and (await r.json())["reason"] == "MethodNotAllowed"


async def test_owner_references_garbage_collection(api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    owner = await co.create_namespaced_custom_object(*ISVC[:2], "default", ISVC[2], isvc("iris"))
    other = await core.create_namespaced_config_map("default", {"metadata": {"name": "other-owner"}})

    def ref(kind: str, name: str, uid: str) -> dict[str, object]:
        return {"apiVersion": "v1", "kind": kind, "name": name, "uid": uid}

    iris_ref = ref("InferenceService", "iris", owner["metadata"]["uid"])
    await core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "only", "ownerReferences": [iris_ref]},
            "spec": {"containers": [{"name": "c"}]},
        },
    )
    await core.create_namespaced_config_map(
        "default",
        {
            "metadata": {
                "name": "shared",
                "ownerReferences": [iris_ref, ref("ConfigMap", "other-owner", other.metadata.uid)],
            }
        },
    )
    await co.delete_namespaced_custom_object(*ISVC[:2], "default", ISVC[2], "iris")
    with pytest.raises(ApiException) as e:
        await core.read_namespaced_pod("only", "default")
    assert e.value.status == 404
    shared = await core.read_namespaced_config_map("shared", "default")
    assert [r.name for r in shared.metadata.owner_references] == ["other-owner"]
    # propagationPolicy=Orphan keeps dependents.
    await core.delete_namespaced_config_map("other-owner", "default", propagation_policy="Orphan")
    assert (await core.read_namespaced_config_map("shared", "default")).metadata.name == "shared"


async def test_events_k8s_io_is_a_view_of_core_events(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    ev1 = client.EventsV1Api(api)
    made = await ev1.create_namespaced_event(
        "default",
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "warden.1"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "regarding": {"kind": "InferenceService", "name": "iris", "namespace": "default"},
            "note": "restarted coredns",
            "reason": "Healed",
            "type": "Normal",
            "action": "Restart",
            "reportingController": "kserve-warden",
            "reportingInstance": "kserve-warden-0",
        },
    )
    assert made.regarding.name == "iris" and made.note == "restarted coredns"
    seen = await core.read_namespaced_event("warden.1", "default")
    assert seen.involved_object.name == "iris" and seen.message == "restarted coredns"
    assert seen.reporting_component == "kserve-warden"
    listed = await core.list_namespaced_event("default", field_selector="involvedObject.name=iris")
    assert [e.metadata.name for e in listed.items] == ["warden.1"]
    patched = await ev1.patch_namespaced_event("warden.1", "default", {"note": "again"})
    assert (
        patched.note == "again"
        and (await core.read_namespaced_event("warden.1", "default")).message == "again"
    )
    await ev1.delete_namespaced_event("warden.1", "default")
    assert (await core.list_namespaced_event("default")).items == []
