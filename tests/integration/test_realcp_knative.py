"""Knative Serving's own controller and webhook on the real control plane (sandbox.realcp.knative).

A Knative ``Service`` is created through kube-apiserver; Knative's webhook (reached through the
ExternalName stand-in for its Service, with the certificate it made itself) defaults it, and
Knative's controller — as its own ServiceAccount with Knative's own ClusterRoles — creates the
Configuration, the Revision and the Route. Every assertion reads what Knative wrote: owner
references, defaults, conditions, messages.

The image names a registry on a loopback port nobody listens on, so the controller's
tag-to-digest resolution fails at once, as Knative reports an unreachable or refusing registry
(the seed's failure 6 was the 401 flavour of the same condition).

The control plane is shared by the whole session: this test's namespace is deleted — and that
waited for — while the controller runs (Configurations carry its labeler's finalizer), and the
webhook configurations are removed before the webhook stops (their failure policy is Fail).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi

from sandbox.realcp import ControlPlane, admin_client, api_call, install_crds
from sandbox.realcp.controlplane import free_ports
from sandbox.realcp.knative import Knative
from tests.integration.sandbox_wait import condition, watch_until

pytestmark = [pytest.mark.timeout(180)]

Obj = dict[str, Any]
SERVING = ("serving.knative.dev", "v1")


@pytest.fixture
async def knative(real_control_plane: ControlPlane,
                  tmp_path: Path) -> AsyncIterator[tuple[Knative, ApiClient]]:
    api = admin_client(real_control_plane)
    kn = Knative(control_plane=real_control_plane, workdir=tmp_path / "knative")
    try:
        await install_crds(api, also_wait_for=await kn.install_crds(api))
        await kn.start(api)
        yield kn, api
    finally:
        try:
            await kn.stop(api)
        finally:
            await api.close()


@pytest.fixture
async def namespace(knative: tuple[Knative, ApiClient]) -> AsyncIterator[str]:
    """A namespace of this test only, deleted (and waited for) while Knative still runs."""
    _, api = knative
    name = f"kn-{secrets.token_hex(3)}"
    await api_call(api, "POST", "/api/v1/namespaces",
                   {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        await api_call(api, "DELETE", f"/api/v1/namespaces/{name}")
        await watch_until(CoreV1Api(api).list_namespace, pred=lambda objs: name not in objs,
                          what=f"namespace {name} deleted", timeout=60)


def owner(obj: Obj) -> tuple[str, str]:
    (ref,) = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")]
    return str(ref["kind"]), str(ref["name"])


async def serving_until(api: ApiClient, namespace: str, plural: str, name: str, *,
                        pred: Callable[[Obj], bool], what: str) -> Obj:
    """The named object of ``serving.knative.dev/v1`` ``plural`` once ``pred`` holds (watched)."""
    def check(objs: dict[str, Obj]) -> Any:
        obj = objs.get(name)
        return obj if obj is not None and pred(obj) else None

    found: Obj = await watch_until(CustomObjectsApi(api).list_namespaced_custom_object, *SERVING, namespace,
                                   plural, pred=check, what=what, timeout=60)
    return found


async def test_knatives_controller_makes_configuration_revision_and_route_of_a_service(
    knative: tuple[Knative, ApiClient], namespace: str
) -> None:
    _, api = knative
    (port,) = free_ports(1)
    image = f"127.0.0.1:{port}/models/iris:v1"
    ksvc = {
        "apiVersion": "serving.knative.dev/v1", "kind": "Service",
        "metadata": {"name": "iris", "namespace": namespace},
        "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
    }
    created = await api_call(api, "POST", f"/apis/serving.knative.dev/v1/namespaces/{namespace}/services",
                             ksvc)

    # Knative's defaulting webhook ran: its defaults and the creator annotation are on the object.
    template = created["spec"]["template"]["spec"]
    assert template["timeoutSeconds"] == 300, template
    assert template["containerConcurrency"] == 0, template
    assert created["metadata"]["annotations"]["serving.knative.dev/creator"] == "admin", created

    config = await serving_until(api, namespace, "configurations", "iris",
                                 pred=lambda o: condition(o, "Ready").get("status") == "False",
                                 what="Configuration iris Ready=False")
    assert owner(config) == ("Service", "iris")
    revision = await serving_until(api, namespace, "revisions", "iris-00001",
                                   pred=lambda o: condition(o, "Ready").get("status") == "False",
                                   what="Revision iris-00001 Ready=False")
    assert owner(revision) == ("Configuration", "iris")
    healthy = condition(revision, "ContainerHealthy")
    assert healthy["status"] == "False", revision["status"]
    assert healthy["reason"] == "ContainerMissing", healthy
    fetch = f'Unable to fetch image "{image}": failed to resolve image to digest'
    assert healthy["message"].startswith(fetch), healthy
    assert "connection refused" in healthy["message"], healthy
    ready = condition(config, "Ready")
    assert ready["reason"] == "RevisionFailed", ready
    assert 'Revision "iris-00001" failed with message: Unable to fetch image' in ready["message"], ready

    # The Route has no Revision to send traffic to, so it never got as far as a KIngress.
    route = await serving_until(api, namespace, "routes", "iris",
                                pred=lambda o: condition(o, "Ready").get("status") == "False",
                                what="Route iris Ready=False")
    assert owner(route) == ("Service", "iris")
    no_revision = 'Configuration "iris" does not have any ready Revision.'
    assert condition(route, "Ready")["reason"] == "RevisionMissing", route["status"]
    assert condition(route, "Ready")["message"] == no_revision, route["status"]
    assert condition(route, "IngressReady")["reason"] == "IngressNotConfigured", route["status"]
    # The Service propagates both; its Ready takes the last one marked False in a reconcile,
    # the Route's (once only the Configuration's is False, it carries that one's).
    service = await serving_until(api, namespace, "services", "iris",
                                  pred=lambda o: condition(o, "ConfigurationsReady").get("status") == "False"
                                  and condition(o, "RoutesReady").get("status") == "False",
                                  what="Service iris ConfigurationsReady=False, RoutesReady=False")
    assert condition(service, "ConfigurationsReady")["message"] == ready["message"], service["status"]
    assert condition(service, "RoutesReady")["message"] == no_revision, service["status"]
    assert condition(service, "Ready")["status"] == "False", service["status"]
    assert condition(service, "Ready")["message"] == no_revision, service["status"]
