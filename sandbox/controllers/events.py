"""Kubernetes Events from the simulated controllers, aggregated like client-go's recorder.

The same (object, type, reason, message) seen again bumps ``count`` and ``lastTimestamp`` on
one Event object instead of creating another — what ``kubectl describe`` shows as
``9s (x12 over 19s)`` in the seed. Updates of one Event are throttled (a controller that
retries several times a second must not flood the API); the Event is still current within
the throttle interval.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from sandbox.controllers.watch import MERGE_KW

Obj = dict[str, Any]
THROTTLE_SECONDS = 1.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, api: ApiClient, *, component: str) -> None:
        self._core = CoreV1Api(api)
        self._component = component
        self._seen: dict[str, tuple[int, float, str]] = {}  # name -> (count, last sent, first time)

    async def record(self, obj: Obj, *, type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        digest = hashlib.sha256(f"{meta.get('uid')}/{type_}/{reason}/{message}".encode()).hexdigest()[:12]
        name = f"{meta.get('name')}.{digest}"
        count, sent, first = self._seen.get(name, (0, 0.0, _now()))
        count += 1
        now = time.monotonic()
        self._seen[name] = (count, sent, first)
        if count > 1 and now - sent < THROTTLE_SECONDS:
            return
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "firstTimestamp": first,
            "lastTimestamp": _now(),
            "count": count,
        }
        try:
            if count == 1:
                await self._core.create_namespaced_event(namespace, cast(Any, body))  # a raw dict body
            else:
                await self._core.patch_namespaced_event(
                    name,
                    namespace,
                    {"count": count, "lastTimestamp": body["lastTimestamp"]},
                    **MERGE_KW,
                )
        except ApiException as exc:
            if exc.status == 404:  # deleted (or lost to a fault): start over next time
                self._seen.pop(name, None)
                return
            if exc.status == 409:  # created by an earlier incarnation of this recorder
                await self._core.patch_namespaced_event(
                    name,
                    namespace,
                    {"count": count, "lastTimestamp": body["lastTimestamp"]},
                    **MERGE_KW,
                )
            else:
                raise
        self._seen[name] = (count, now, first)
