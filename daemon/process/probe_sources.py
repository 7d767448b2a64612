"""The predictor probe's reads, served from the daemon's watch caches.

``PredictorProbe`` reads an InferenceService and lists its pods on every run; over the API
that is a GET and a polling LIST per model per period (118 requests/min for one model at a 1 s
period), which the daemon's budget — no polling lists in steady state — forbids. The
:class:`~daemon.kube.informer.Informer` already follows both kinds by watch, so the daemon hands the
probe :class:`InformerPredictorSource` (it satisfies :class:`probes.predictor_source.PredictorSource`
structurally: ``probes`` never imports ``daemon``).

What the cache answers is what the API answered as of the last watch event, which is also what
the reconciler decides on: probe and diagnosis see the same world. Until the informer has
synced (never, in the daemon's own order: probes start after the caches sync, and ``check``
syncs once first) an empty cache would read as "not found", so reads go to ``fallback``, the
API-backed source, instead.

The objects handed out are the cache's own; the probe only reads them. One source serves every
model's probe: its pod index (``(namespace, InferenceService label)`` → pods) is rebuilt lazily
after a Pod event, so a thousand probes do not each scan a thousand pods.
"""

from __future__ import annotations

from typing import Any

from daemon.core.objects import ObjectRef
from daemon.kube.informer import Informer
from probes.predictor_source import ISVC_LABEL, PredictorSource


class InformerPredictorSource:
    """The InferenceService and its pods from the informer's caches; no API request."""

    def __init__(self, *, informer: Informer, fallback: PredictorSource) -> None:
        self._informer = informer
        self._fallback = fallback
        self._index: dict[tuple[str, str], list[dict[str, Any]]] | None = None
        informer.subscribe(self._on_change)

    def _on_change(self, ref: ObjectRef, event: str) -> None:
        if ref.kind == "Pod":
            self._index = None

    @property
    def not_found_note(self) -> str:
        return "not in the watch cache"

    async def inferenceservice(self, namespace: str, name: str) -> dict[str, Any] | None:
        if not self._informer.has_synced:
            return await self._fallback.inferenceservice(namespace, name)
        return self._informer.get("InferenceService", namespace, name)

    def _pod_index(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        if self._index is None:
            index: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for p in self._informer.list_kind("Pod"):
                meta = p.get("metadata") or {}
                label = (meta.get("labels") or {}).get(ISVC_LABEL)
                if label is not None:
                    index.setdefault((str(meta.get("namespace") or ""), str(label)), []).append(p)
            for pods in index.values():
                # The API lists in name order; the probe names the *first* failing pod, so keep it.
                pods.sort(key=lambda p: str((p.get("metadata") or {}).get("name", "")))
            self._index = index
        return self._index

    async def pods(self, namespace: str, isvc_name: str) -> list[dict[str, Any]]:
        if not self._informer.has_synced:
            return await self._fallback.pods(namespace, isvc_name)
        return list(self._pod_index().get((namespace, isvc_name), []))
