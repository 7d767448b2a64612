"""Reading raw API JSON: the few labels, annotations and paths every diagnosis rule needs.

The rules work on the World's raw objects (``Mapping``s, possibly absent), so these readers
are total: a missing ``metadata`` or ``annotations`` reads as empty instead of raising.
:func:`container_states` flattens a pod's init and main container statuses into one list,
the shape the sidecar, DNS and image-pull rules each look through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daemon.core.objects import ObjectRef

ISVC_LABEL = "serving.kserve.io/inferenceservice"
INJECT_ANNOTATION = "sidecar.istio.io/inject"
ISVC_API = "serving.kserve.io/v1beta1"
AP_API = "security.istio.io/v1"

ObjectKey = tuple[str, str | None, str]
"""``(kind, namespace, name)``: how the pass indexes desired objects, drift and claims."""


def meta(o: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (o or {}).get("metadata") or {}


def annotations_of(o: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return meta(o).get("annotations") or {}


def ref_key(ref: ObjectRef) -> ObjectKey:
    return (ref.kind, ref.namespace, ref.name)


def object_key(o: Mapping[str, Any]) -> ObjectKey:
    m = meta(o)
    return (str(o.get("kind", "")), m.get("namespace"), str(m.get("name", "")))


def ref(api_version: str, kind: str, namespace: str | None, name: str) -> ObjectRef:
    return ObjectRef(api_version=api_version, kind=kind, namespace=namespace, name=name)


def predictor_spec(isvc: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``spec.predictor`` of an InferenceService (empty when it or the isvc is absent)."""
    return ((isvc or {}).get("spec") or {}).get("predictor") or {}


def container_states(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Init containers first, then the main ones: name, ready, waiting/terminated reason and message."""
    st = pod.get("status") or {}
    out = []
    for init, key in ((True, "initContainerStatuses"), (False, "containerStatuses")):
        for c in st.get(key) or []:
            state = c.get("state") or {}
            waiting, term = state.get("waiting") or {}, state.get("terminated") or {}
            last_term = (c.get("lastState") or {}).get("terminated") or {}
            out.append(
                {
                    "name": c.get("name", ""),
                    "init": init,
                    "ready": bool(c.get("ready")),
                    "reason": waiting.get("reason") or term.get("reason") or "",
                    "message": waiting.get("message")
                    or term.get("message")
                    or last_term.get("message")
                    or "",
                    "exit_code": term.get("exitCode", last_term.get("exitCode")),
                    "running": "running" in state,
                }
            )
    return out
