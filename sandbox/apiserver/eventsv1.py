"""``events.k8s.io/v1`` Events as a view of the core ``v1`` Events, like the real server.

Both APIs share one storage; the real server converts between them field by field, and so
does this module (pure functions, both directions): ``involvedObject`` is ``regarding``,
``message`` is ``note``, ``source``/``firstTimestamp``/``lastTimestamp``/``count`` become the
``deprecated*`` fields, ``reportingComponent`` is ``reportingController``. So an Event written
through either API is seen through both (``kubectl get events`` shows the daemon's events
whichever API it used).
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

# core v1 field -> events.k8s.io/v1 field (fields not listed keep their name).
_RENAMES = {
    "involvedObject": "regarding",
    "message": "note",
    "source": "deprecatedSource",
    "firstTimestamp": "deprecatedFirstTimestamp",
    "lastTimestamp": "deprecatedLastTimestamp",
    "count": "deprecatedCount",
    "reportingComponent": "reportingController",
}
_BACK: dict[str, str] = {v: k for k, v in _RENAMES.items()}
API_VERSION = "events.k8s.io/v1"


def to_v1(core: Obj) -> Obj:
    out: Obj = {}
    for k, v in core.items():
        out[_RENAMES.get(k, k)] = v
    out["apiVersion"] = API_VERSION
    out["kind"] = "Event"
    return out


def to_core(view: Any) -> Any:
    """The core form of an events.k8s.io body (anything else is returned as is, to be rejected)."""
    if not isinstance(view, dict):
        return view
    out: Obj = {}
    for k, v in view.items():
        name: str = _BACK.get(k, k) if isinstance(k, str) else str(k)
        out[name] = v
    if view.get("apiVersion") in (None, API_VERSION):
        out["apiVersion"] = "v1"
    if view.get("kind") in (None, "Event"):
        out["kind"] = "Event"
    return out
