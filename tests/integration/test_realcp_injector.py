"""The sidecar injector as the real kube-apiserver calls it (sandbox.realcp.injector).

The injector's MutatingWebhookConfiguration is server-side applied to the session's real control
plane; the apiserver evaluates its namespace/object selectors and applies the JSONPatch it
answers, and kube-controller-manager makes pods from a Deployment through the same admission
chain. Each pod is checked against what Istio would do (:func:`would_inject`, the unit-tested
model) and against the literal expectation.

The control plane is shared by the whole session: this test's namespaces are deleted and the
configuration uninstalled — and the uninstall waited for — before the injector stops, because
with ``failurePolicy: Fail`` a pod routed to a stopped injector could not be created at all.
"""

from __future__ import annotations

import json
import secrets
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from sandbox.controllers.predictor_pod import INJECT_ANNOTATION, PROXY_IMAGE
from sandbox.realcp import ControlPlane, admin_client, api_call
from sandbox.realcp.injector import (
    CONFIGURATION_NAME,
    MWC_PATH,
    PROXY_CONTAINER,
    STATUS_ANNOTATION,
    SidecarInjector,
    would_inject,
)
from tests.integration.sandbox_wait import watch_until

pytestmark = [pytest.mark.timeout(180)]

Obj = dict[str, Any]
ENABLED = {"istio-injection": "enabled"}
APPLY = "application/apply-patch+yaml"


@pytest.fixture
async def injector(real_control_plane: ControlPlane,
                   tmp_path: Path) -> AsyncIterator[tuple[SidecarInjector, ApiClient]]:
    api = admin_client(real_control_plane)
    inj = SidecarInjector(workdir=tmp_path / "injector")
    try:
        await inj.start()
        await inj.install(api)
        yield inj, api
    finally:
        try:
            await inj.uninstall(api)
        finally:
            await inj.stop()
            await api.close()


@pytest.fixture
async def namespaces(injector: tuple[SidecarInjector, ApiClient]) -> AsyncIterator[dict[str, Obj]]:
    """Two namespaces (labelled for injection, and not) of this test only; deleted at teardown."""
    _, api = injector
    suffix = secrets.token_hex(3)
    made = {f"inject-on-{suffix}": dict(ENABLED), f"inject-off-{suffix}": {"team": "a"}}
    try:
        for name, labels in made.items():
            doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
            await api_call(api, "POST", "/api/v1/namespaces", doc)
        yield made
    finally:
        # Unbound pods go at once; the namespace controller removes the Deployment and its
        # ReplicaSet. RealApi.reset() waits for anything left before the next Sandbox.
        for name in made:
            try:
                await api_call(api, "DELETE", f"/api/v1/namespaces/{name}")
            except ApiException as exc:
                if exc.status != 404:
                    raise


def pod(name: str, *, labels: Obj | None = None, annotations: Obj | None = None,
        containers: list[Obj] | None = None) -> Obj:
    meta: Obj = {"name": name}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    default = [{"name": "kserve-container", "image": "kserve/sklearnserver"}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"automountServiceAccountToken": False, "containers": containers or default}}


def proxies(obj: Obj) -> list[Obj]:
    return [c for c in obj["spec"]["containers"] if c["name"] == "istio-proxy"]


def injected(obj: Obj) -> bool:
    """Istio's marks, both or neither: the proxy container and the status annotation."""
    status = (obj["metadata"].get("annotations") or {}).get(STATUS_ANNOTATION)
    has = bool(proxies(obj))
    assert has == (status is not None), obj["metadata"]
    if has:
        assert json.loads(status) == {"containers": ["istio-proxy"]}
        assert len(proxies(obj)) == 1
        assert {k: v for k, v in proxies(obj)[0].items() if k in PROXY_CONTAINER} == PROXY_CONTAINER
        assert proxies(obj)[0]["image"] == PROXY_IMAGE
    return has


async def test_the_real_apiserver_injects_where_istio_would(
        injector: tuple[SidecarInjector, ApiClient], namespaces: dict[str, Obj]) -> None:
    inj, api = injector
    on, off = list(namespaces)
    off_ = {INJECT_ANNOTATION: "false"}
    on_ = {INJECT_ANNOTATION: "true"}
    cases: list[tuple[str, Obj, bool]] = [
        (on, pod("plain"), True),                                           # no annotations map at all
        (on, pod("annotated", annotations={"team/owner": "ml"}), True),     # "/" escaped as ~1 in the patch
        (on, pod("opt-out-annotation", annotations=off_), False),
        (on, pod("opt-out-label", labels=off_), False),                     # objectSelector: never called
        (on, pod("label-wins", labels=on_, annotations=off_), True),        # the label wins
        (off, pod("plain"), False),
        (off, pod("opt-in-label", labels=on_), True),                       # object. webhook
        (off, pod("opt-in-annotation", annotations=on_), False),            # only the label opts in
    ]
    for ns, body, expected in cases:
        name = body["metadata"]["name"]
        stored = await api_call(api, "POST", f"/api/v1/namespaces/{ns}/pods", body)
        assert injected(stored) is expected, f"{ns}/{name}"
        assert would_inject(namespace_labels=namespaces[ns], pod={**body, "metadata": {
            **body["metadata"], "namespace": ns}}) is expected, f"model disagrees on {ns}/{name}"
        if name == "annotated":
            assert stored["metadata"]["annotations"]["team/owner"] == "ml"

    # A pod that already has the proxy (build_pod's, on the stand-in's tier) is admitted unchanged.
    body = pod("has-proxy", containers=[{"name": "app", "image": "a"}, dict(PROXY_CONTAINER)])
    stored = await api_call(api, "POST", f"/api/v1/namespaces/{on}/pods", body)
    assert [c["name"] for c in stored["spec"]["containers"]] == ["app", "istio-proxy"]
    assert STATUS_ANNOTATION not in (stored["metadata"].get("annotations") or {})

    # The apiserver really called the injector (not something else adding the container).
    before = inj.reviews
    await api_call(api, "POST", f"/api/v1/namespaces/{on}/pods", pod("counted"))
    assert inj.reviews == before + 1


async def test_pods_of_a_deployment_are_injected_by_the_admission_chain(
        injector: tuple[SidecarInjector, ApiClient], namespaces: dict[str, Obj]) -> None:
    """kube-controller-manager creates the pods (Deployment → ReplicaSet → Pod): KServe's path."""
    _, api = injector
    on, off = list(namespaces)
    core = CoreV1Api(api)
    for ns, expected in ((on, True), (off, False)):
        deployment = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "iris-predictor", "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "iris-predictor"}},
                     "template": {"metadata": {"labels": {"app": "iris-predictor"}},
                                  "spec": pod("unused")["spec"]}},
        }
        await api_call(api, "PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/iris-predictor", deployment,
                       ctype=APPLY, query=[("fieldManager", "test"), ("force", "true")])
        pods: dict[str, Obj] = await watch_until(
            core.list_namespaced_pod, ns, label_selector="app=iris-predictor",
            pred=lambda objs: dict(objs) if objs else None, what=f"a pod of the Deployment in {ns}",
            timeout=60)
        (made,) = pods.values()
        assert made["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert injected(made) is expected, ns


async def test_uninstall_leaves_pods_alone_and_is_idempotent(
        injector: tuple[SidecarInjector, ApiClient], namespaces: dict[str, Obj]) -> None:
    inj, api = injector
    on, _ = list(namespaces)
    await inj.uninstall(api)
    with pytest.raises(ApiException) as gone:
        await api_call(api, "GET", f"{MWC_PATH}/{CONFIGURATION_NAME}")
    assert gone.value.status == 404
    reviews = inj.reviews
    stored = await api_call(api, "POST", f"/api/v1/namespaces/{on}/pods", pod("after-uninstall"))
    assert not injected(stored) and inj.reviews == reviews
    await inj.install(api)   # the fixture's teardown uninstalls again: absent is fine there too
    stored = await api_call(api, "POST", f"/api/v1/namespaces/{on}/pods", pod("after-reinstall"))
    assert injected(stored)


async def test_bad_requests_get_a_reason_not_a_crash(tmp_path: Path) -> None:
    inj = SidecarInjector(workdir=tmp_path / "injector")
    await inj.start()
    try:
        tls = ssl.create_default_context(cafile=str(inj.ca_file))
        async with aiohttp.ClientSession() as http:
            async def post(data: bytes) -> tuple[int, str]:
                async with http.post(inj.url, data=data, ssl=tls,
                                     headers={"Content-Type": "application/json"}) as r:
                    return r.status, await r.text()

            status, text = await post(b"{not json")
            assert status == 400 and "bad AdmissionReview" in text
            status, text = await post(b"\xff\xfe")
            assert status == 400
            status, text = await post(json.dumps({"kind": "AdmissionReview", "apiVersion": "v1"}).encode())
            assert status == 400 and "admission.k8s.io/v1" in text
            service = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": "u-9", "kind": {"group": "", "version": "v1", "kind": "Service"},
                                   "operation": "CREATE", "object": {"kind": "Service"}}}
            status, text = await post(json.dumps(service).encode())
            answer = json.loads(text)["response"]
            assert status == 200 and answer["uid"] == "u-9" and answer["allowed"] is False
            assert "v1 Pods only" in answer["status"]["message"]
            # Still serving after all that: a good review gets its patch.
            good = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                    "request": {"uid": "u-10", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                "operation": "CREATE", "namespace": "ns", "object": pod("p")}}
            status, text = await post(json.dumps(good).encode())
            assert status == 200 and json.loads(text)["response"]["patchType"] == "JSONPatch"
        with pytest.raises(RuntimeError, match="start"):
            SidecarInjector(workdir=tmp_path / "other").webhook_configuration()
    finally:
        await inj.stop()
