"""What a predictor pod's status and spec say about its containers, for the resource-family rules.

The readers here are total over raw pod JSON (``Mapping``s, anything absent reads as empty):
:func:`containers_of` pairs each container's status (init containers first, as the kubelet runs
them) with its spec, so a rule sees in one place the container's current state, its *last*
termination (``lastState.terminated``: where an OOM kill or a crash is recorded once the
container has restarted), its restart count and its limits. :func:`predictor_resources_path`
says where on the InferenceService a person changes the model server's resources, for each
predictor shape KServe accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon.core.diagnosis.fields import meta
from daemon.core.diagnosis.spec import Predictor

MODEL_CONTAINER = "kserve-container"
"""The model server's container name in every predictor pod KServe makes."""
STORAGE_INITIALIZER = "storage-initializer"


@dataclass(frozen=True, kw_only=True)
class Container:
    """One container of a pod: its status and the part of its spec the rules read."""

    pod: str
    name: str
    init: bool
    ready: bool
    restarts: int
    waiting_reason: str
    waiting_message: str
    terminated: Mapping[str, Any]
    """``state.terminated`` (empty unless the container is terminated now)."""
    last_terminated: Mapping[str, Any]
    """``lastState.terminated``: the previous run's end (empty if it never restarted)."""
    limits: Mapping[str, Any]
    requests: Mapping[str, Any]

    @property
    def ended(self) -> Mapping[str, Any]:
        """The most recent termination: the current one, else the last one."""
        return self.terminated or self.last_terminated

    @property
    def crash_looping(self) -> bool:
        return self.waiting_reason == "CrashLoopBackOff"


def _m(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def containers_of(pod: Mapping[str, Any]) -> list[Container]:
    """Every container that has a status, init containers first, each with its spec's resources."""
    spec, status = _m(pod.get("spec")), _m(pod.get("status"))
    name = str(meta(pod).get("name", ""))
    out: list[Container] = []
    for init, spec_key, status_key in (
        (True, "initContainers", "initContainerStatuses"),
        (False, "containers", "containerStatuses"),
    ):
        specs = {str(_m(c).get("name")): _m(c) for c in spec.get(spec_key) or []}
        for raw in status.get(status_key) or []:
            c = _m(raw)
            state, last = _m(c.get("state")), _m(c.get("lastState"))
            waiting = _m(state.get("waiting"))
            resources = _m(specs.get(str(c.get("name")), {}).get("resources"))
            out.append(
                Container(
                    pod=name,
                    name=str(c.get("name", "")),
                    init=init,
                    ready=bool(c.get("ready")),
                    restarts=int(c.get("restartCount") or 0),
                    waiting_reason=str(waiting.get("reason") or ""),
                    waiting_message=str(waiting.get("message") or ""),
                    terminated=_m(state.get("terminated")),
                    last_terminated=_m(last.get("terminated")),
                    limits=_m(resources.get("limits")),
                    requests=_m(resources.get("requests")),
                )
            )
    return out


def pod_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's ``Ready`` condition; without one, whether it runs with every container ready."""
    status = _m(pod.get("status"))
    for c in status.get("conditions") or []:
        if _m(c).get("type") == "Ready":
            return _m(c).get("status") == "True"
    statuses = [_m(c) for c in status.get("containerStatuses") or []]
    return status.get("phase") == "Running" and bool(statuses) and all(c.get("ready") for c in statuses)


def predictor_resources_path(p: Predictor) -> tuple[str, ...] | None:
    """Where the model server's ``resources`` live on the InferenceService: ``spec.predictor.model``
    or the older per-framework key; None for custom containers (a list: no merge patch reaches one
    element, a person edits it)."""
    if p.shape == "model":
        return ("spec", "predictor", "model", "resources")
    if p.shape.startswith("legacy:"):
        return ("spec", "predictor", p.shape.removeprefix("legacy:"), "resources")
    return None


def nested(path: tuple[str, ...], leaf: Any) -> dict[str, Any]:
    """``{"a": {"b": leaf}}`` for the path ``("a", "b")``: the body of a merge patch."""
    out: Any = leaf
    for key in reversed(path):
        out = {key: out}
    return dict(out)
