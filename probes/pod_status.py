"""What an InferenceService's conditions and its predictor pods say, read as an operator would.

Pure (no I/O; the unit tests call it directly): raw ``status`` JSON in, the compact shapes the
predictor probe reports in ``details`` out (:class:`ConditionInfo`, :class:`PodInfo`), and
:func:`find_failure`, the first container that explains why the predictor is not serving,
named with kubectl's reason (``ImagePullBackOff``, ``Init:Error``, ``CrashLoopBackOff``, or
``SidecarNotReady`` for an istio-proxy that runs but is never ready).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

SIDECAR = "istio-proxy"

# Waiting reasons that mean "this container will not start by itself" (kubelet's words).
_STUCK_WAITING = frozenset({
    "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "CrashLoopBackOff",
})
# Of those, the ones where the container never ran: asking for its log only gets a 400.
_NEVER_RAN = frozenset({
    "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
    "CreateContainerConfigError", "CreateContainerError",
})


# -- raw API JSON (partial shapes: the API sends more) ---------------------------------------


class ConditionJSON(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str


class ContainerStateJSON(TypedDict, total=False):
    waiting: dict[str, Any]
    running: dict[str, Any]
    terminated: dict[str, Any]


class ContainerStatusJSON(TypedDict, total=False):
    name: str
    ready: bool
    restartCount: int
    state: ContainerStateJSON
    lastState: ContainerStateJSON


# -- what the probe reports in ``details`` ----------------------------------------------------


class ConditionInfo(TypedDict):
    status: str
    reason: str
    message: str


class ContainerInfo(TypedDict):
    name: str
    init: bool
    state: str
    reason: str
    message: str
    ready: bool
    restarts: int


class PodInfo(TypedDict):
    name: str
    phase: str
    ready: bool
    containers: list[ContainerInfo]


@dataclass(frozen=True, kw_only=True)
class ContainerFailure:
    """The first container that explains why the predictor is not serving."""

    pod: str
    container: str
    init: bool
    reason: str
    """kubectl-style: ``ImagePullBackOff``, ``Init:Error``, ``CrashLoopBackOff``, ``SidecarNotReady``."""
    message: str
    has_log: bool
    """Whether the container ever ran, so that a log tail can exist."""


def parse_conditions(status: Mapping[str, Any]) -> dict[str, ConditionInfo]:
    out: dict[str, ConditionInfo] = {}
    for raw in status.get("conditions") or []:
        cond: ConditionJSON = raw
        kind = cond.get("type")
        if kind:
            out[kind] = ConditionInfo(
                status=str(cond.get("status", "Unknown")),
                reason=str(cond.get("reason") or ""),
                message=str(cond.get("message") or ""),
            )
    return out


# The transition statuses KServe records a lastFailureInfo with (None: older KServe, no field).
FAILED_TRANSITIONS = frozenset({None, "", "InvalidSpec", "BlockedByFailedLoad"})


def current_failure_info(status: Mapping[str, Any]) -> Mapping[str, Any]:
    """``status.modelStatus.lastFailureInfo`` while it is current, else ``{}``.

    KServe records a failure with the transition it caused (``InvalidSpec``: no runtime;
    ``BlockedByFailedLoad``: the model failed to load) and never clears it: once a later rollout
    succeeds ``transitionStatus`` moves on (``InProgress``, ``UpToDate``) and the failure stays
    behind, stale (KServe v0.20's controller showed it). Without a ``transitionStatus`` (older
    KServe) the failure is taken as current."""
    model_status = status.get("modelStatus") or {}
    if not isinstance(model_status, Mapping):
        return {}
    if model_status.get("transitionStatus") not in FAILED_TRANSITIONS:
        return {}
    info = model_status.get("lastFailureInfo") or {}
    return info if isinstance(info, Mapping) else {}


def _state(status: ContainerStatusJSON) -> tuple[str, dict[str, Any]]:
    state: Mapping[str, Any] = status.get("state") or {}
    for name in ("waiting", "terminated", "running"):
        body = state.get(name)
        if isinstance(body, dict):
            return name, body
    return "unknown", {}


def container_info(status: ContainerStatusJSON, *, init: bool) -> ContainerInfo:
    state, body = _state(status)
    reason = str(body.get("reason") or "")
    if state == "terminated" and not reason:
        reason = "Completed" if body.get("exitCode", 0) == 0 else "Error"
    message = str(body.get("message") or "")
    if state == "terminated" and body.get("exitCode") not in (None, 0) and not message:
        message = f"exit code {body.get('exitCode')}"
    return ContainerInfo(
        name=str(status.get("name", "")),
        init=init,
        state=state,
        reason=reason,
        message=message,
        ready=bool(status.get("ready", False)),
        restarts=int(status.get("restartCount", 0) or 0),
    )


def pod_info(pod: Mapping[str, Any]) -> PodInfo:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    containers = [container_info(c, init=True) for c in status.get("initContainerStatuses") or []]
    containers += [container_info(c, init=False) for c in status.get("containerStatuses") or []]
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return PodInfo(
        name=str(meta.get("name", "")),
        phase=str(status.get("phase") or "Unknown"),
        ready=ready,
        containers=containers,
    )


def _failure_of(pod: str, c: ContainerInfo) -> ContainerFailure | None:
    """The container's failure in kubectl's words, or None if it is fine (or just starting)."""
    if c["state"] == "waiting" and c["reason"] in _STUCK_WAITING:
        reason = c["reason"]
        # kubectl shows a crash-looping init container as Init:CrashLoopBackOff; image pull
        # reasons keep their own name (the fix is the same for init and main containers).
        if c["init"] and reason == "CrashLoopBackOff":
            reason = "Init:CrashLoopBackOff"
        return ContainerFailure(pod=pod, container=c["name"], init=c["init"], reason=reason,
                                message=c["message"], has_log=reason not in _NEVER_RAN)
    if c["state"] == "terminated" and c["reason"] != "Completed":
        reason = f"Init:{c['reason']}" if c["init"] else c["reason"]
        return ContainerFailure(pod=pod, container=c["name"], init=c["init"], reason=reason,
                                message=c["message"], has_log=True)
    if c["name"] == SIDECAR and c["state"] == "running" and not c["ready"]:
        # The seed's failure 3: istio-proxy up but never ready because it cannot reach
        # istiod; its log says why (``lookup istiod.istio-system.svc: i/o timeout``).
        return ContainerFailure(pod=pod, container=c["name"], init=c["init"], reason="SidecarNotReady",
                                message=c["message"], has_log=True)
    return None


def find_failure(pods: Sequence[PodInfo]) -> ContainerFailure | None:
    """The first failing container across pods: init containers first (they block the rest)."""
    for pod in pods:
        ordered = sorted(pod["containers"], key=lambda c: not c["init"])
        # A stuck init container explains everything after it; a sidecar that is not ready
        # matters only if nothing harder failed, so look for it last.
        for c in ordered:
            if c["name"] != SIDECAR or c["state"] != "running":
                failure = _failure_of(pod["name"], c)
                if failure:
                    return failure
    for pod in pods:
        for c in pod["containers"]:
            failure = _failure_of(pod["name"], c)
            if failure:
                return failure
    return None


def conditions_text(conditions: Mapping[str, ConditionInfo]) -> str:
    parts = []
    for kind, c in conditions.items():
        part = f"{kind}={c['status']}"
        if c["reason"]:
            part += f" ({c['reason']})"
        parts.append(part)
    return ", ".join(parts) or "no conditions"
