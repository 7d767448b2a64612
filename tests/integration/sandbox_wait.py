"""Await sandbox state through watches (no sleeps): the helpers the sandbox tests share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.watch import Watch

from sandbox import Sandbox
from sandbox.controllers.watch import read_json

Obj = dict[str, Any]
NS = "user-example-com"
ISVC = "iris-model"
TIMEOUT = 20.0


async def watch_until(
    list_fn: Any,
    *args: Any,
    pred: Callable[[dict[str, Obj]], Any],
    what: str,
    timeout: float = TIMEOUT,
    **kwargs: Any,
) -> Any:
    """List a collection, then watch it from the list's resourceVersion, until ``pred(objects)``."""
    objects: dict[str, Obj] = {}

    async def run() -> Any:
        while True:  # a watch ended by the server (timeout, a reset fault) starts over
            try:
                body = await read_json(list_fn, *args, **kwargs)
                objects.clear()
                objects.update({o["metadata"]["name"]: o for o in body.get("items") or []})
                result = pred(objects)
                if result:
                    return result
                w = Watch(return_type="object")
                async with w:
                    async for ev in w.stream(
                        list_fn,
                        *args,
                        timeout_seconds=30,
                        resource_version=body["metadata"]["resourceVersion"],
                        **kwargs,
                    ):
                        obj = ev["raw_object"]
                        name = obj["metadata"]["name"]
                        if ev["type"] == "DELETED":
                            objects.pop(name, None)
                        else:
                            objects[name] = obj
                        result = pred(objects)
                        if result:
                            return result
            except (aiohttp.ClientError, ApiException):
                await asyncio.sleep(0.05)

    try:
        return await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        raise AssertionError(
            f"timed out after {timeout:.0f} s waiting for {what}; last seen: "
            f"{[o.get('status') for o in objects.values()]}"
        ) from None


def condition(obj: Obj, type_: str) -> Obj:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


async def isvc_until(api: ApiClient, pred: Callable[[Obj], Any], what: str) -> Obj:
    co = CustomObjectsApi(api)

    def check(objs: dict[str, Obj]) -> Any:
        isvc = objs.get(ISVC)
        return isvc if isvc is not None and pred(isvc) else None

    result: Obj = await watch_until(
        co.list_namespaced_custom_object,
        "serving.kserve.io",
        "v1beta1",
        NS,
        "inferenceservices",
        pred=check,
        what=what,
        field_selector=f"metadata.name={ISVC}",
    )
    return result


async def ready_isvc(api: ApiClient) -> Obj:
    return await isvc_until(api, lambda o: condition(o, "Ready").get("status") == "True", "ISVC Ready=True")


async def pods_until(api: ApiClient, pred: Callable[[list[Obj]], Any], what: str) -> Any:
    core = CoreV1Api(api)
    return await watch_until(
        core.list_namespaced_pod,
        NS,
        pred=lambda objs: pred(list(objs.values())),
        what=what,
        label_selector=f"serving.kserve.io/inferenceservice={ISVC}",
    )


def container(pod: Obj, name: str, *, init: bool = False) -> Obj:
    key = "initContainerStatuses" if init else "containerStatuses"
    for cs in (pod.get("status") or {}).get(key) or []:
        if cs.get("name") == name:
            return dict(cs)
    return {}


def pod_ready(pod: Obj) -> bool:
    return condition(pod, "Ready").get("status") == "True"


async def log_of(api: ApiClient, pod: Obj, container_name: str) -> str:
    text = await CoreV1Api(api).read_namespaced_pod_log(pod["metadata"]["name"], NS, container=container_name)
    return str(text)


@contextlib.asynccontextmanager
async def healthy_sandbox(**kwargs: Any) -> AsyncIterator[tuple[Sandbox, ApiClient]]:
    """A started sandbox with the seed's final working state applied and the ISVC Ready."""
    sb = Sandbox(**kwargs)
    await sb.start()
    api = sb.new_api_client()
    try:
        await sb.apply_healthy_world()
        await ready_isvc(api)
        yield sb, api
    finally:
        await api.close()
        await sb.stop()
