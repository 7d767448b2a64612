"""Bad input gets real-shaped Status answers (400/404/405/409/413/415/422, never a 500
traceback) — on both tiers, the same answers — and the fault hooks fail requests as a loaded or
broken apiserver would (stand-in only: the real server has no fault hooks)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from sandbox.apiserver import ApiServer
from tests.integration.apiserver.tiers import Tier

# {ns}: the test's own namespace.
CM_URL = "/api/v1/namespaces/{ns}/configmaps"
ISVC_URL = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices"


async def call(
    tier: Tier,
    method: str,
    path: str,
    body: Any = None,
    ctype: str = "application/json",
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
    status, content_type, answer = await tier.request(method, path.format(ns=tier.ns), data=data,
                                                      headers={"Content-Type": ctype})
    assert content_type == "application/json", answer
    return status, answer


CASES: list[tuple[str, str, str, Any, str, int, str]] = [
    # (id, method, path, body, content type, code, reason)
    ("malformed json", "POST", CM_URL, "{not json", "application/json", 400, "BadRequest"),
    ("body not an object", "POST", CM_URL, "[1]", "application/json", 400, "BadRequest"),
    ("empty body", "POST", CM_URL, "", "application/json", 400, "BadRequest"),
    (
        "wrong kind",
        "POST",
        CM_URL,
        {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "a"}},
        "application/json",
        400,
        "BadRequest",
    ),
    (
        "wrong apiVersion",
        "POST",
        CM_URL,
        {"kind": "ConfigMap", "apiVersion": "v2", "metadata": {"name": "a"}},
        "application/json",
        400,
        "BadRequest",
    ),
    (
        "namespace mismatch",
        "POST",
        CM_URL,
        {"metadata": {"name": "a", "namespace": "other"}},
        "application/json",
        400,
        "BadRequest",
    ),
    (
        "labels not strings",
        "POST",
        CM_URL,
        {"metadata": {"name": "a", "labels": {"a": 1}}},
        "application/json",
        400,
        "BadRequest",
    ),
    ("invalid name", "POST", CM_URL, {"metadata": {"name": "Not_Valid"}}, "application/json", 422, "Invalid"),
    ("missing name", "POST", CM_URL, {"metadata": {}}, "application/json", 422, "Invalid"),
    (
        "invalid label value",
        "POST",
        CM_URL,
        {"metadata": {"name": "a", "labels": {"a": "b c"}}},
        "application/json",
        422,
        "Invalid",
    ),
    ("unsupported content type", "POST", CM_URL, "x", "text/plain", 415, "UnsupportedMediaType"),
    (
        "post to an object",
        "POST",
        CM_URL + "/a",
        {"metadata": {"name": "a"}},
        "application/json",
        405,
        "MethodNotAllowed",
    ),
    ("unknown patch type", "PATCH", CM_URL + "/seed", {}, "application/json", 415, "UnsupportedMediaType"),
    (
        "malformed merge patch",
        "PATCH",
        CM_URL + "/seed",
        "{",
        "application/merge-patch+json",
        400,
        "BadRequest",
    ),
    (
        "malformed apply yaml",
        "PATCH",
        CM_URL + "/seed?fieldManager=m",
        "a: [",
        "application/apply-patch+yaml",
        400,
        "BadRequest",
    ),
    (
        "apply without fieldManager",
        "PATCH",
        CM_URL + "/seed",
        {"apiVersion": "v1", "kind": "ConfigMap"},
        "application/apply-patch+yaml",
        422,
        "Invalid",
    ),
    (
        "name mismatch on PUT",
        "PUT",
        CM_URL + "/seed",
        {"metadata": {"name": "other"}},
        "application/json",
        400,
        "BadRequest",
    ),
    (
        "PUT to missing object",
        "PUT",
        CM_URL + "/missing",
        {"metadata": {"name": "missing"}},
        "application/json",
        404,
        "NotFound",
    ),
    (
        "bad json patch path",
        "PATCH",
        CM_URL + "/seed",
        [{"op": "remove", "path": "/data/nope"}],
        "application/json-patch+json",
        422,
        "Invalid",
    ),
    (
        "strategic merge on a CR",
        "PATCH",
        ISVC_URL + "/x",
        {},
        "application/strategic-merge-patch+json",
        415,
        "UnsupportedMediaType",
    ),
    (
        "bad label selector",
        "GET",
        CM_URL + "?labelSelector=a%20in%20b",
        None,
        "application/json",
        400,
        "BadRequest",
    ),
    (
        "bad watch resourceVersion",
        "GET",
        CM_URL + "?watch=1&resourceVersion=abc",
        None,
        "application/json",
        500,  # the watch cache's uint64 parse error, unclassified: no reason
        "",
    ),
    (
        "unknown dryRun",
        "POST",
        CM_URL + "?dryRun=Some",
        {"metadata": {"name": "a"}},
        "application/json",
        422,
        "Invalid",
    ),
    (
        "bad continue token",
        "GET",
        CM_URL + "?limit=1&continue=zz",
        None,
        "application/json",
        400,
        "BadRequest",
    ),
    ("unknown resource", "GET", "/apis/apps/v1/widgets", None, "application/json", 404, "NotFound"),
    (
        "invalid secret data",
        "POST",
        "/api/v1/namespaces/{ns}/secrets",
        {"metadata": {"name": "s"}, "data": {"k": "%%"}},
        "application/json",
        400,  # decoding the JSON into a Secret fails: []byte is base64
        "BadRequest",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "ctype", "code", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_input_status(
    tier: Tier,
    method: str,
    path: str,
    body: Any,
    ctype: str,
    code: int,
    reason: str,
) -> None:
    status, _ = await call(tier, "POST", CM_URL, {"metadata": {"name": "seed"}, "data": {"a": "b"}})
    assert status == 201
    status, st = await call(tier, method, path, body, ctype)
    assert (status, st["kind"], st.get("reason", ""), st["code"]) == (code, "Status", reason, code), st
    assert st["message"] and "Traceback" not in st["message"]


async def test_body_too_large_is_413(tier: Tier) -> None:
    big = {"metadata": {"name": "big"}, "data": {"k": "x" * (4 * 1024 * 1024)}}
    status, st = await call(tier, "POST", CM_URL, big)
    assert status == 413 and st["reason"] == "RequestEntityTooLarge"


# The rest need the stand-in's fault hooks (sandbox/apiserver/faults.py): injected 5xx/429 and
# reset connections, which a real kube-apiserver cannot be told to produce.


async def test_fail_next_500_then_recovers(server: ApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    server.faults.fail_next(1)
    with pytest.raises(ApiException) as e:
        await core.list_namespaced_config_map("default")
    assert e.value.status == 500 and json.loads(e.value.body)["reason"] == "InternalError"
    assert (await core.list_namespaced_config_map("default")).items == []


async def test_fail_next_429_with_retry_after_filtered_by_verb_and_resource(
    server: ApiServer, api: client.ApiClient
) -> None:
    co = client.CustomObjectsApi(api)
    server.faults.fail_next(2, status=429, retry_after=3, verb="list", resource="inferenceservices")
    # Other verbs and resources are not affected.
    await client.CoreV1Api(api).list_namespaced_config_map("default")
    with pytest.raises(ApiException) as e:
        await co.get_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", "default", "inferenceservices", "x"
        )
    assert e.value.status == 404
    for _ in range(2):
        with pytest.raises(ApiException) as e:
            await co.list_cluster_custom_object("serving.kserve.io", "v1beta1", "inferenceservices")
        assert e.value.status == 429 and e.value.headers["Retry-After"] == "3"
        body = json.loads(e.value.body)
        assert body["reason"] == "TooManyRequests" and body["details"]["retryAfterSeconds"] == 3
    await co.list_cluster_custom_object("serving.kserve.io", "v1beta1", "inferenceservices")
    assert server.faults.injected == 2


async def test_fail_next_connection_reset(server: ApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    await core.read_namespace("default")  # a pooled keep-alive connection now exists
    # A PATCH is not idempotent: aiohttp gives the reset to the caller at once.
    server.faults.fail_next(1, reset=True, verb="patch")
    with pytest.raises(aiohttp.ClientError):
        await core.patch_namespace("default", {"metadata": {"labels": {"a": "b"}}})
    # aiohttp retries an idempotent request once when a pooled connection is reset, so a GET
    # needs two resets in a row to surface; one is absorbed silently (as against a real server).
    server.faults.fail_next(1, reset=True, verb="get")
    assert (await core.read_namespace("default")).metadata.name == "default"
    server.faults.fail_next(2, reset=True, verb="get")
    with pytest.raises(aiohttp.ClientError):
        await core.read_namespace("default")
    assert (await core.read_namespace("default")).metadata.name == "default"
    assert server.faults.injected == 4


async def test_fault_on_status_subresource(server: ApiServer, api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api)
    await co.create_namespaced_custom_object(
        "serving.kserve.io",
        "v1beta1",
        "default",
        "inferenceservices",
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": "x"},
            "spec": {},
        },
    )
    server.faults.fail_next(1, status=503, resource="inferenceservices/status")
    with pytest.raises(ApiException) as e:
        await co.patch_namespaced_custom_object_status(
            "serving.kserve.io",
            "v1beta1",
            "default",
            "inferenceservices",
            "x",
            {"status": {"url": "u"}},
            _content_type="application/merge-patch+json",
        )
    assert e.value.status == 503 and json.loads(e.value.body)["reason"] == "ServiceUnavailable"
