"""A predictor pod's ``status``, computed from what its containers did (pure, table-tested).

The kubelet records each container's progress in a :class:`PodRun`; :func:`pod_status`
turns it into the JSON a real kubelet reports, so ``kubectl get pods`` shows what the seed
saw: ``Init:Error`` (the storage-initializer terminated with reason ``Error``),
``ImagePullBackOff`` and ``CrashLoopBackOff`` (waiting reasons of ``kserve-container``),
``2/3``-style readiness while ``istio-proxy`` is not ready, and ``Running`` with every
condition True once it all works.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

Obj = dict[str, Any]
InitState = Literal["waiting", "running", "failed", "done"]
MainState = Literal["waiting", "pull-failed", "crashed", "running"]


@dataclass(kw_only=True)
class PodRun:
    """What one pod's containers have done so far (mutable: the kubelet's working record)."""

    start_time: str
    main_container: str = "kserve-container"
    main_image: str = ""
    has_proxy: bool = False
    proxy_ready: bool = False
    init: InitState = "waiting"
    init_message: str = ""
    init_restarts: int = 0
    main: MainState = "waiting"
    main_message: str = ""
    main_restarts: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.main == "running" and (self.proxy_ready or not self.has_proxy)


def _cond(type_: str, ok: bool, start: str, reason: str = "") -> Obj:
    c: Obj = {"type": type_, "status": "True" if ok else "False", "lastTransitionTime": start}
    if not ok and reason:
        c["reason"] = reason
    return c


def _image_id(image: str) -> str:
    digest = hashlib.sha256(image.encode()).hexdigest()
    return f"{image.rsplit(':', 1)[0] if '/' in image else image}@sha256:{digest}"


def _log_tail(text: str) -> str:
    """The termination message of a container with ``terminationMessagePolicy:
    FallbackToLogsOnError`` (KServe's storage-initializer has it): the kubelet takes the log's
    last 80 lines, at most its last 2048 bytes."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()][-80:]
    return "\n".join(lines).encode()[-2048:].decode(errors="ignore")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def pod_status(run: PodRun) -> Obj:
    """The pod status for ``run`` (see module docstring)."""
    # imageID is required by the clients' models (kubernetes_asyncio refuses None); "" until pulled.
    init: Obj = {
        "name": "storage-initializer",
        "ready": run.init == "done",
        "restartCount": run.init_restarts,
        "image": "kserve/storage-initializer:v0.15.2",
        "imageID": _image_id("kserve/storage-initializer"),
    }
    if run.init == "waiting":
        init["state"] = {"waiting": {"reason": "PodInitializing"}}
    elif run.init == "running":
        init["state"] = {"running": {"startedAt": run.start_time}}
    elif run.init == "failed":
        init["state"] = {
            "terminated": {"exitCode": 1, "reason": "Error", "message": _log_tail(run.init_message)}
        }
    else:
        init["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}

    pulled = run.main in ("running", "crashed")
    main: Obj = {
        "name": run.main_container,
        "image": run.main_image,
        "ready": run.main == "running",
        "imageID": _image_id(run.main_image) if pulled else "",
        "restartCount": run.main_restarts,
        "started": run.main == "running",
    }
    if run.main == "waiting":
        main["state"] = {"waiting": {"reason": "PodInitializing"}}
    elif run.main == "pull-failed":
        main["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": run.main_message}}
    elif run.main == "crashed":
        main["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": _last_line(run.main_message)}}
        main["lastState"] = {
            "terminated": {"exitCode": 1, "reason": "Error", "message": _last_line(run.main_message)}
        }
    else:
        main["state"] = {"running": {"startedAt": run.start_time}}
    containers = [main]
    if run.has_proxy:
        containers.append(
            {
                "name": "istio-proxy",
                "image": "docker.io/istio/proxyv2:1.22.3",
                "imageID": _image_id("docker.io/istio/proxyv2"),
                "ready": run.proxy_ready,
                "restartCount": 0,
                "started": True,
                "state": {"running": {"startedAt": run.start_time}},
            }
        )
    initialized = run.init == "done"
    all_ready = run.ready
    not_ready = "ContainersNotReady" if initialized else "ContainersNotInitialized"
    return {
        "phase": "Running" if run.main == "running" else "Pending",
        "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "startTime": run.start_time,
        "conditions": [
            _cond("PodScheduled", True, run.start_time),
            _cond("Initialized", initialized, run.start_time, "ContainersNotInitialized"),
            _cond("ContainersReady", all_ready, run.start_time, not_ready),
            _cond("Ready", all_ready, run.start_time, not_ready),
        ],
        "initContainerStatuses": [init],
        "containerStatuses": containers,
    }
