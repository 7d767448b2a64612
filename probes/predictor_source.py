"""Where the predictor probe reads the InferenceService and its pods from.

The probe needs two reads per run: the InferenceService (for its status) and the pods carrying
``serving.kserve.io/inferenceservice=<name>``. :class:`PredictorSource` is that pair of reads;
the probe takes one as a keyword (``PredictorProbe(source=...)``).

* :class:`ApiPredictorSource` — the default: a GET and a LIST over the Kubernetes API on every
  run. Right for a one-shot caller that keeps no caches (the probe's own tests, the bench).
* The daemon passes a source backed by its watch caches (``daemon.process.probe_sources``), so a probe
  running every second costs no request at all: the caches already follow these objects by
  watch, and a polling LIST per run is exactly what the daemon's request budget forbids.

A source returns raw API JSON (plain dicts) and never mutates what it hands out — nor may the
probe mutate what it gets: a cache-backed source hands out the cache's own objects. Errors are
the transport's (``ApiException``, ``aiohttp.ClientError``); the probe turns them into
``probe-error`` observations, so a source need not catch them.

``probes`` never imports ``daemon``: the cache-backed implementation lives on the daemon side
and satisfies this Protocol structurally.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, cast

import aiohttp
from kubernetes_asyncio.client import ApiClient, ApiException, CoreV1Api, CustomObjectsApi

ISVC_LABEL = "serving.kserve.io/inferenceservice"
KSERVE_GROUP = "serving.kserve.io"
KSERVE_VERSION = "v1beta1"
ISVC_PLURAL = "inferenceservices"


class PredictorSource(Protocol):
    """The predictor probe's two reads (raw JSON; see the module docstring)."""

    @property
    def not_found_note(self) -> str:
        """How a missing InferenceService was established, for the evidence (e.g. ``404``)."""
        ...

    async def inferenceservice(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The InferenceService as JSON, or None if it does not exist."""
        ...

    async def pods(self, namespace: str, isvc_name: str) -> list[dict[str, Any]]:
        """The pods labelled ``serving.kserve.io/inferenceservice=<isvc_name>``, ordered by name."""
        ...


class ApiPredictorSource:
    """Both reads over the Kubernetes API, on every call (a GET and a LIST)."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api

    @property
    def not_found_note(self) -> str:
        return "404"

    async def inferenceservice(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            isvc = await CustomObjectsApi(self._api).get_namespaced_custom_object(
                KSERVE_GROUP, KSERVE_VERSION, namespace, ISVC_PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return isvc if isinstance(isvc, dict) else {}

    async def pods(self, namespace: str, isvc_name: str) -> list[dict[str, Any]]:
        """The ISVC's pods as raw JSON.

        Not through the client's models: they refuse a container status without ``image`` or
        ``imageID`` (client-side validation), and a probe must describe a half-written status
        rather than crash on it. Reading the JSON ourselves is also the cheaper path.
        """
        # With _preload_content=False the client hands back aiohttp's response (its stubs
        # only know the parsed model) and leaves the status check to us.
        resp = cast(aiohttp.ClientResponse, await CoreV1Api(self._api).list_namespaced_pod(
            namespace, label_selector=f"{ISVC_LABEL}={isvc_name}", _preload_content=False
        ))
        try:
            data = await resp.read()
            if not 200 <= resp.status < 300:
                raise ApiException(status=resp.status, reason=resp.reason)
        finally:
            resp.release()
        body = json.loads(data)
        items = body.get("items") if isinstance(body, dict) else None
        pods = [p for p in items or [] if isinstance(p, dict)]
        return sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name", "")))
