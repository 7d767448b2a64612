"""Patch content types through kubernetes_asyncio: JSON patch, merge patch, strategic merge
(built-ins only: 415 on custom resources), server-side apply (create 201, ownership in
managedFields, removal of fields a manager stops sending, conflicts and force), optimistic
concurrency.

The custom-objects client parses only 200 answers; an SSA that creates answers 201, so those
calls use ``_preload_content=False`` and read the raw response.

Every test runs on both tiers (``tier``), in its own namespace. The InferenceService bodies use
only fields KServe's own schema has (a real server prunes unknown ones), so they hold whichever
InferenceService CRD the real tier has installed.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from tests.integration.apiserver.status import status_of
from tests.integration.apiserver.tiers import Tier

G, V, P = "serving.kserve.io", "v1beta1", "inferenceservices"
APPLY = "application/apply-patch+yaml"


def isvc(spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "InferenceService",
        "metadata": {"name": "iris", **meta},
        "spec": spec,
    }


IMAGE = "registry.example.com/app:1"


async def apply(
    tier: Tier, body: dict[str, Any], manager: str, *, force: bool = False
) -> tuple[int, Any]:
    co = client.CustomObjectsApi(tier.api)
    kw: dict[str, Any] = {"force": True} if force else {}
    resp = await co.patch_namespaced_custom_object(
        G,
        V,
        tier.ns,
        P,
        body["metadata"]["name"],
        body,
        field_manager=manager,
        _content_type=APPLY,
        _preload_content=False,
        **kw,
    )
    if resp.status >= 400:
        # With _preload_content=False the client leaves error answers to the caller.
        exc = ApiException(status=resp.status, reason=resp.reason)
        exc.body = await resp.text()
        raise exc
    return resp.status, await resp.json()


def managers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{e['manager']}/{e['operation']}": e["fieldsV1"] for e in obj["metadata"].get("managedFields", [])
    }


async def test_json_patch(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    await core.create_namespaced_config_map(
        tier.ns, {"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}
    )
    ops = [
        {"op": "replace", "path": "/data/a", "value": "10"},
        {"op": "remove", "path": "/data/b"},
        {"op": "add", "path": "/metadata/labels", "value": {"x/y": "z"}},
        {"op": "test", "path": "/data/a", "value": "10"},
    ]
    out = await core.patch_namespaced_config_map(
        "c", tier.ns, ops, _content_type="application/json-patch+json"
    )
    assert out.data == {"a": "10"} and out.metadata.labels == {"x/y": "z"}
    with pytest.raises(ApiException) as e:
        await core.patch_namespaced_config_map(
            "c",
            tier.ns,
            [{"op": "test", "path": "/data/a", "value": "nope"}],
            _content_type="application/json-patch+json",
        )
    assert e.value.status == 422
    # A dict body sent as JSON patch (the custom-objects client's default) is a 400, as on a real server.
    co = client.CustomObjectsApi(tier.api)
    await co.create_namespaced_custom_object(G, V, tier.ns, P, isvc({"predictor": {"minReplicas": 1}}))
    with pytest.raises(ApiException) as e:
        await co.patch_namespaced_custom_object(G, V, tier.ns, P, "iris",
                                                {"spec": {"predictor": {"minReplicas": 2}}})
    assert e.value.status == 400 and status_of(e)["reason"] == "BadRequest"


async def test_merge_patch_on_custom_object(tier: Tier) -> None:
    co = client.CustomObjectsApi(tier.api)
    body = isvc({"predictor": {"minReplicas": 1, "imagePullSecrets": [{"name": "a"}, {"name": "b"}]}})
    await co.create_namespaced_custom_object(G, V, tier.ns, P, body)
    out = await co.patch_namespaced_custom_object(
        G,
        V,
        tier.ns,
        P,
        "iris",
        {"spec": {"predictor": {"minReplicas": None, "imagePullSecrets": [{"name": "c"}], "maxReplicas": 3}}},
        _content_type="application/merge-patch+json",
    )
    assert out["spec"] == {"predictor": {"imagePullSecrets": [{"name": "c"}], "maxReplicas": 3}}
    assert out["metadata"]["generation"] == 2


async def test_strategic_merge_on_builtins_and_415_on_crs(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    await core.create_namespaced_service_account(
        tier.ns,
        {"metadata": {"name": "iris-sa"}, "secrets": [{"name": "a"}], "imagePullSecrets": [{"name": "r1"}]},
    )
    out = await core.patch_namespaced_service_account(
        "iris-sa", tier.ns, {"imagePullSecrets": [{"name": "regcred"}], "secrets": [{"name": "s3"}]}
    )
    # imagePullSecrets of a ServiceAccount has no merge key: replaced (a PodSpec's merges).
    assert [s.name for s in out.image_pull_secrets] == ["regcred"]
    # secrets merge on name; an element new in the patch goes before the live ones (mergeSortedSlice).
    assert [s.name for s in out.secrets] == ["s3", "a"]
    apps = client.AppsV1Api(tier.api)
    await apps.create_namespaced_deployment(
        tier.ns,
        {
            "metadata": {"name": "d"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {
                        "containers": [
                            {"name": "main", "image": "v1", "env": [{"name": "A", "value": "1"}]},
                            {"name": "side", "image": "s1"},
                        ]
                    }
                },
            },
        },
    )
    restarted = "2026-01-01T00:00:00Z"
    dep = await apps.patch_namespaced_deployment(
        "d",
        tier.ns,
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": restarted}},
                    "spec": {
                        "containers": [
                            {"name": "main", "env": [{"name": "B", "value": "2"}]},
                            {"name": "side", "$patch": "delete"},
                        ]
                    },
                }
            }
        },
    )
    containers = dep.spec.template.spec.containers
    assert [c.name for c in containers] == ["main"] and containers[0].image == "v1"
    assert [(e.name, e.value) for e in containers[0].env] == [("B", "2"), ("A", "1")]
    assert dep.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] == restarted
    assert dep.metadata.generation == 2
    co = client.CustomObjectsApi(tier.api)
    await co.create_namespaced_custom_object(G, V, tier.ns, P, isvc({"predictor": {"minReplicas": 1}}))
    with pytest.raises(ApiException) as e:
        await co.patch_namespaced_custom_object(
            G,
            V,
            tier.ns,
            P,
            "iris",
            {"spec": {"predictor": {"minReplicas": 2}}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert e.value.status == 415 and status_of(e)["reason"] == "UnsupportedMediaType"


async def test_server_side_apply_create_ownership_and_removal(tier: Tier) -> None:
    code, obj = await apply(
        tier,
        isvc({"predictor": {"model": {"storageUri": "s3://a", "runtime": "r"}}}, labels={"team": "ml"}),
        "warden",
    )
    assert code == 201
    assert managers(obj) == {
        "warden/Apply": {
            "f:metadata": {"f:labels": {"f:team": {}}},
            "f:spec": {"f:predictor": {"f:model": {"f:runtime": {}, "f:storageUri": {}}}},
        }
    }
    # Another writer (an ordinary update) adds a field it then owns.
    co = client.CustomObjectsApi(tier.api)
    obj = await co.patch_namespaced_custom_object(
        G,
        V,
        tier.ns,
        P,
        "iris",
        {"spec": {"predictor": {"minReplicas": 1}}},
        field_manager="kubectl-edit",
        _content_type="application/merge-patch+json",
    )
    assert "kubectl-edit/Update" in managers(obj)
    # The applier stops sending `runtime` and the label: they go; `minReplicas` (not its) stays.
    code, obj = await apply(tier, isvc({"predictor": {"model": {"storageUri": "s3://a"}}}), "warden")
    assert code == 200
    assert obj["spec"] == {"predictor": {"model": {"storageUri": "s3://a"}, "minReplicas": 1}}
    assert "team" not in (obj["metadata"].get("labels") or {})


async def test_server_side_apply_conflict_and_force(tier: Tier) -> None:
    await apply(tier, isvc({"predictor": {"model": {"storageUri": "s3://a"}}}), "warden")
    # Same value from another manager: shared ownership, no conflict.
    code, obj = await apply(tier, isvc({"predictor": {"model": {"storageUri": "s3://a"}}}), "helm")
    assert code == 200 and {"warden/Apply", "helm/Apply"} <= set(managers(obj))
    with pytest.raises(ApiException) as e:
        await apply(tier, isvc({"predictor": {"model": {"storageUri": "s3://b"}}}), "other")
    st = status_of(e)
    assert e.value.status == 409 and st["reason"] == "Conflict"
    assert st["message"] == (
        'Apply failed with 2 conflicts: conflicts with "helm":\n- .spec.predictor.model.storageUri\n'
        'conflicts with "warden":\n- .spec.predictor.model.storageUri'
    )
    assert st["details"]["causes"][0]["reason"] == "FieldManagerConflict"
    code, obj = await apply(
        tier, isvc({"predictor": {"model": {"storageUri": "s3://b"}}}), "other", force=True
    )
    assert code == 200 and obj["spec"]["predictor"]["model"]["storageUri"] == "s3://b"
    ms = managers(obj)
    assert "warden/Apply" not in ms and "helm/Apply" not in ms and "other/Apply" in ms


async def test_apply_requires_field_manager(tier: Tier) -> None:
    co = client.CustomObjectsApi(tier.api)
    with pytest.raises(ApiException) as e:
        await co.patch_namespaced_custom_object(G, V, tier.ns, P, "iris", isvc({}), _content_type=APPLY)
    assert e.value.status == 422 and status_of(e)["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch')


async def test_apply_on_builtin_merges_keyed_lists(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    sa = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "iris-sa"},
        "secrets": [{"name": "s3"}],
    }
    out = await core.patch_namespaced_service_account(
        "iris-sa", tier.ns, sa, field_manager="warden", _content_type=APPLY
    )
    assert [s.name for s in out.secrets] == ["s3"]
    out = await core.patch_namespaced_service_account(
        "iris-sa",
        tier.ns,
        {**sa, "secrets": [{"name": "other"}]},
        field_manager="someone",
        _content_type=APPLY,
    )
    assert [s.name for s in out.secrets] == ["s3", "other"]
    fields = {e.manager: e.fields_v1 for e in out.metadata.managed_fields}
    # A ServiceAccount's secrets are ObjectReferences, atomic structs: owned whole.
    assert fields["warden"] == {"f:secrets": {'k:{"name":"s3"}': {}}}


async def test_optimistic_concurrency(tier: Tier) -> None:
    core = client.CoreV1Api(tier.api)
    cm = await core.create_namespaced_config_map(tier.ns, {"metadata": {"name": "c"}, "data": {"a": "1"}})
    await core.patch_namespaced_config_map("c", tier.ns, {"data": {"a": "2"}})
    cm.data = {"a": "3"}
    with pytest.raises(ApiException) as e:
        await core.replace_namespaced_config_map("c", tier.ns, cm)
    assert e.value.status == 409 and "the object has been modified" in status_of(e)["message"]
    with pytest.raises(ApiException) as e:
        await core.patch_namespaced_config_map(
            "c",
            tier.ns,
            {"metadata": {"resourceVersion": cm.metadata.resource_version}, "data": {"a": "4"}},
            _content_type="application/merge-patch+json",
        )
    assert e.value.status == 409
    co = client.CustomObjectsApi(tier.api)
    await co.create_namespaced_custom_object(G, V, tier.ns, P, isvc({"predictor": {"minReplicas": 1}}))
    cur = await co.get_namespaced_custom_object(G, V, tier.ns, P, "iris")
    await co.patch_namespaced_custom_object(
        G, V, tier.ns, P, "iris", {"spec": {"predictor": {"minReplicas": 2}}},
        _content_type="application/merge-patch+json"
    )
    cur["spec"] = {"predictor": {"minReplicas": 3}}
    with pytest.raises(ApiException) as e:
        await co.replace_namespaced_custom_object(G, V, tier.ns, P, "iris", cur)
    assert e.value.status == 409


async def test_dry_run_apply(tier: Tier) -> None:
    co = client.CustomObjectsApi(tier.api)
    resp = await co.patch_namespaced_custom_object(
        G,
        V,
        tier.ns,
        P,
        "iris",
        isvc({"predictor": {"minReplicas": 1}}),
        field_manager="w",
        _content_type=APPLY,
        dry_run="All",
        _preload_content=False,
    )
    assert resp.status == 201
    assert (await co.list_namespaced_custom_object(G, V, tier.ns, P))["items"] == []


async def test_apply_with_yaml_body(tier: Tier) -> None:
    # Not `name: y`: the real server's YAML 1.1 reads a bare y as true (a 500 there).
    body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n"
    status, _, answer = await tier.request(
        "PATCH", f"/api/v1/namespaces/{tier.ns}/configmaps/from-yaml?fieldManager=kubectl", data=body,
        headers={"Content-Type": APPLY})
    assert status == 201 and answer["data"] == {"k": "v"}


async def test_apply_through_status_subresource(tier: Tier) -> None:
    await apply(tier, isvc({"predictor": {"minReplicas": 1}}), "warden")
    co = client.CustomObjectsApi(tier.api)
    out = await co.patch_namespaced_custom_object_status(
        G,
        V,
        tier.ns,
        P,
        "iris",
        {**isvc({"predictor": {"minReplicas": 99}}), "status": {"url": "http://iris"}},
        field_manager="kserve-controller",
        force=True,
        _content_type=APPLY,
    )
    assert out["spec"] == {"predictor": {"minReplicas": 1}} and out["status"] == {"url": "http://iris"}
    entry = next(e for e in out["metadata"]["managedFields"] if e["manager"] == "kserve-controller")
    assert entry["subresource"] == "status" and entry["fieldsV1"] == {"f:status": {"f:url": {}}}
    assert out["metadata"]["generation"] == 1
