"""``meta.k8s.io/v1`` Table answers, for kubectl's ``get`` (it asks with ``Accept: ...;as=Table``).

Columns: ``Name`` plus, for custom resources, the CRD's ``additionalPrinterColumns`` (a small
JSONPath subset: ``.a.b``, ``[*]``, ``[N]`` and ``[?(@.k=='v')]`` filters), and ``Age``. Each row
carries its object's metadata (``PartialObjectMetadata``), which kubectl uses for the
``NAMESPACE`` column of ``-A``. Dates are rendered as ages (``5m``) server-side, as the real
server does.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sandbox.apiserver.registry import PrinterColumn, ResourceKind
from sandbox.apiserver.status import JSON

_FILTER = re.compile(r"^\?\(@\.([A-Za-z0-9_.]+)\s*==\s*['\"]([^'\"]*)['\"]\)$")
_TOKEN = re.compile(r"\.([A-Za-z0-9_$-]+)|\[([^\]]*)\]")


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def human_age(timestamp: str, now: datetime | None = None) -> str:
    try:
        t = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    secs = int(((now or datetime.now(UTC)) - t).total_seconds())
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    if secs < 3600 * 2:
        return f"{secs // 60}m"
    if secs < 86400 * 2:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def json_path(obj: Any, path: str) -> list[Any]:
    """Evaluate the JSONPath subset printer columns use; returns all matches."""
    current: list[Any] = [obj]
    for m in _TOKEN.finditer(path.strip()):
        field, bracket = m.group(1), m.group(2)
        nxt: list[Any] = []
        for cur in current:
            if field is not None:
                if isinstance(cur, dict) and field in cur:
                    nxt.append(cur[field])
            elif bracket == "*":
                if isinstance(cur, list):
                    nxt.extend(cur)
                elif isinstance(cur, dict):
                    nxt.extend(cur.values())
            elif bracket is not None and bracket.lstrip("-").isdigit():
                if isinstance(cur, list) and -len(cur) <= int(bracket) < len(cur):
                    nxt.append(cur[int(bracket)])
            elif bracket is not None and (f := _FILTER.match(bracket)):
                key_path, want = f.group(1), f.group(2)
                if isinstance(cur, list):
                    for it in cur:
                        val: Any = it
                        for part in key_path.split("."):
                            val = val.get(part) if isinstance(val, dict) else None
                        if val is not None and str(val) == want:
                            nxt.append(it)
        current = nxt
    return current


def _cell(col: PrinterColumn, obj: Any) -> Any:
    values = json_path(obj, col.json_path)
    if not values:
        return None
    if col.type == "date":
        return human_age(str(values[0]))
    if len(values) > 1:
        return ",".join(str(v) for v in values)
    v = values[0]
    return v if isinstance(v, str | int | float | bool) else str(v)


def _init_reason(obj: JSON) -> tuple[str, int] | None:
    """kubectl's STATUS while a pod initializes (``Init:Error``, ``Init:0/1``…) and the init
    containers' restarts; None once every init container has succeeded (or is a started sidecar)."""
    init_specs = (obj.get("spec") or {}).get("initContainers") or []
    statuses = (obj.get("status") or {}).get("initContainerStatuses") or []
    restarts = 0
    for i, c in enumerate(statuses):
        restarts += int(c.get("restartCount", 0))
        state = c.get("state") or {}
        t, w = state.get("terminated"), state.get("waiting")
        sidecar = i < len(init_specs) and init_specs[i].get("restartPolicy") == "Always"
        if (t is not None and t.get("exitCode", 0) == 0) or (sidecar and c.get("started")):
            continue
        if t is not None:
            if t.get("reason"):
                return "Init:" + t["reason"], restarts
            if t.get("signal"):
                return f"Init:Signal:{t['signal']}", restarts
            return f"Init:ExitCode:{t.get('exitCode', 0)}", restarts
        if w is not None and w.get("reason") and w["reason"] != "PodInitializing":
            return "Init:" + w["reason"], restarts
        return f"Init:{i}/{len(init_specs) or len(statuses)}", restarts
    return None


def _pod_cells(obj: JSON) -> list[Any]:
    # As kubectl's printPod: a failing or unfinished init container's reason wins over the main
    # containers' (which wait with reason PodInitializing meanwhile), unless the pod's
    # Initialized condition is already True.
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    cs = status.get("containerStatuses") or []
    ready = sum(1 for c in cs if c.get("ready"))
    reason = status.get("reason") or status.get("phase") or ""
    initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    initializing = _init_reason(obj)
    if initializing is not None and not initialized:
        reason, restarts = initializing
    else:
        restarts = 0
        for c in reversed(cs):
            restarts += int(c.get("restartCount", 0))
            state = c.get("state") or {}
            w, t = state.get("waiting"), state.get("terminated")
            if w and w.get("reason"):
                reason = w["reason"]
            elif t and t.get("reason"):
                reason = t["reason"]
            elif t is not None:
                reason = f"Signal:{t['signal']}" if t.get("signal") else f"ExitCode:{t.get('exitCode', 0)}"
    deleting = (obj.get("metadata") or {}).get("deletionTimestamp")
    if deleting and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return [f"{ready}/{len(spec.get('containers') or [])}", reason, restarts]


def _event_cells(obj: JSON) -> list[Any]:
    inv = obj.get("involvedObject") or {}
    last = (
        obj.get("lastTimestamp")
        or obj.get("eventTime")
        or (obj.get("metadata") or {}).get("creationTimestamp")
    )
    return [
        human_age(str(last or "")),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}",
        obj.get("message", ""),
    ]


def _deployment_cells(obj: JSON) -> list[Any]:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    return [
        f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        st.get("updatedReplicas", 0),
        st.get("availableReplicas", 0),
    ]


# Per built-in kind: the columns between NAME and AGE, and how to fill them (as kubectl prints).
_BUILTIN_COLUMNS: dict[str, tuple[tuple[tuple[str, str], ...], Any]] = {
    "pods": ((("Ready", "string"), ("Status", "string"), ("Restarts", "integer")), _pod_cells),
    "deployments": (
        (("Ready", "string"), ("Up-to-date", "integer"), ("Available", "integer")),
        _deployment_cells,
    ),
    "namespaces": ((("Status", "string"),), lambda o: [(o.get("status") or {}).get("phase", "")]),
    "secrets": (
        (("Type", "string"), ("Data", "integer")),
        lambda o: [o.get("type", ""), len(o.get("data") or {})],
    ),
    "configmaps": (
        (("Data", "integer"),),
        lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {})],
    ),
    "serviceaccounts": ((("Secrets", "integer"),), lambda o: [len(o.get("secrets") or [])]),
    "leases": ((("Holder", "string"),), lambda o: [(o.get("spec") or {}).get("holderIdentity", "")]),
}

_EVENT_COLUMNS = (
    ("Last Seen", "string"),
    ("Type", "string"),
    ("Reason", "string"),
    ("Object", "string"),
    ("Message", "string"),
)


def _column(name: str, type_: str, priority: int = 0, fmt: str = "") -> JSON:
    return {"name": name, "type": type_, "format": fmt, "description": name, "priority": priority}


def to_table(kind: ResourceKind, objects: list[JSON], resource_version: str) -> JSON:
    columns: list[JSON]
    extra: list[PrinterColumn] = []
    if kind.plural == "events" and kind.group == "":
        # Events lead with LAST SEEN and hide the name (priority 1), like the real printer.
        columns = [_column(n, t) for n, t in _EVENT_COLUMNS] + [_column("Name", "string", 1, "name")]
    else:
        columns = [_column("Name", "string", fmt="name")]
        builtin = _BUILTIN_COLUMNS.get(kind.plural) if kind.builtin else None
        if builtin is not None:
            columns += [_column(n, t) for n, t in builtin[0]]
        else:
            extra = [c for c in kind.printer_columns if c.json_path != ".metadata.creationTimestamp"]
            columns += [_column(c.name, c.type, c.priority) for c in extra]
        columns.append(_column("Age", "string"))
    rows = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        if kind.plural == "events" and kind.group == "":
            cells: list[Any] = [*_event_cells(obj), meta.get("name", "")]
        else:
            cells = [meta.get("name", "")]
            builtin = _BUILTIN_COLUMNS.get(kind.plural) if kind.builtin else None
            cells += builtin[1](obj) if builtin is not None else [_cell(c, obj) for c in extra]
            cells.append(human_age(str(meta.get("creationTimestamp", ""))))
        partial = {k: v for k, v in meta.items() if k != "managedFields"}
        rows.append(
            {
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": partial,
                },
            }
        )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    }
