"""The sandbox's Pod table cells (READY, STATUS, RESTARTS) against kubectl's printPod rules."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.apiserver.table import _pod_cells

Obj = dict[str, Any]

MAIN_WAITING_INIT: Obj = {"name": "kserve-container", "ready": False, "restartCount": 0,
                          "state": {"waiting": {"reason": "PodInitializing"}}}


def pod(*, init: list[Obj] | None = None, main: list[Obj] | None = None, phase: str = "Pending",
        initialized: bool | None = None, init_specs: list[Obj] | None = None, **meta: Any) -> Obj:
    status: Obj = {"phase": phase, "containerStatuses": main or []}
    if init is not None:
        status["initContainerStatuses"] = init
    if initialized is not None:
        status["conditions"] = [{"type": "Initialized", "status": "True" if initialized else "False"}]
    spec: Obj = {"containers": [{"name": c["name"]} for c in main or []]}
    if init_specs is not None or init is not None:
        spec["initContainers"] = init_specs or [{"name": c["name"]} for c in init or []]
    return {"metadata": meta, "spec": spec, "status": status}


def init_c(state: Obj, *, restarts: int = 0, name: str = "storage-initializer", **kw: Any) -> Obj:
    return {"name": name, "ready": False, "restartCount": restarts, "state": state, **kw}


def main_c(state: Obj, *, ready: bool = False, restarts: int = 0, name: str = "kserve-container") -> Obj:
    return {"name": name, "ready": ready, "restartCount": restarts, "state": state}


RUNNING: Obj = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
DONE: Obj = {"terminated": {"exitCode": 0, "reason": "Completed"}}

CASES: list[tuple[str, Obj, list[Any]]] = [
    ("init failed: its reason wins over the main container's PodInitializing",
     pod(init=[init_c({"terminated": {"exitCode": 1, "reason": "Error"}})], main=[MAIN_WAITING_INIT],
         initialized=False),
     ["0/1", "Init:Error", 0]),
    ("init crash-looping: the waiting reason, with the init container's restarts",
     pod(init=[init_c({"waiting": {"reason": "CrashLoopBackOff"}}, restarts=4)], main=[MAIN_WAITING_INIT]),
     ["0/1", "Init:CrashLoopBackOff", 4]),
    ("init terminated without a reason: the exit code",
     pod(init=[init_c({"terminated": {"exitCode": 137}})], main=[MAIN_WAITING_INIT]),
     ["0/1", "Init:ExitCode:137", 0]),
    ("init terminated by a signal, no reason",
     pod(init=[init_c({"terminated": {"exitCode": 1, "signal": 9}})], main=[MAIN_WAITING_INIT]),
     ["0/1", "Init:Signal:9", 0]),
    ("init still running: Init:i/n",
     pod(init=[init_c(DONE, name="a"), init_c(RUNNING, name="b")], main=[MAIN_WAITING_INIT]),
     ["0/1", "Init:1/2", 0]),
    ("init waiting with PodInitializing is not a reason to show",
     pod(init=[init_c({"waiting": {"reason": "PodInitializing"}})], main=[MAIN_WAITING_INIT]),
     ["0/1", "Init:0/1", 0]),
    ("init done: the main container's waiting reason",
     pod(init=[init_c(DONE)], main=[main_c({"waiting": {"reason": "ImagePullBackOff"}}, restarts=0)]),
     ["0/1", "ImagePullBackOff", 0]),
    ("init done, main crash-looping: main restarts only",
     pod(init=[init_c(DONE, restarts=2)],
         main=[main_c({"waiting": {"reason": "CrashLoopBackOff"}}, restarts=5)], phase="Running"),
     ["0/1", "CrashLoopBackOff", 5]),
    ("a sidecar init container (restartPolicy Always) that started does not hold the pod",
     pod(init=[init_c(RUNNING, name="istio-proxy", started=True)],
         init_specs=[{"name": "istio-proxy", "restartPolicy": "Always"}],
         main=[main_c(RUNNING, ready=True)], phase="Running"),
     ["1/1", "Running", 0]),
    ("Initialized already True: the main containers decide",
     pod(init=[init_c({"terminated": {"exitCode": 1, "reason": "Error"}})],
         main=[main_c(RUNNING, ready=True)], phase="Running", initialized=True),
     ["1/1", "Running", 0]),
    ("istio-proxy not ready: 1/2 Running",
     pod(main=[main_c(RUNNING, ready=True), main_c(RUNNING, name="istio-proxy")], phase="Running"),
     ["1/2", "Running", 0]),
    ("main terminated with a reason",
     pod(main=[main_c({"terminated": {"exitCode": 1, "reason": "Error"}}, restarts=1)], phase="Running"),
     ["0/1", "Error", 1]),
    ("status.reason over phase",
     {"metadata": {}, "spec": {"containers": []}, "status": {"phase": "Failed", "reason": "Evicted"}},
     ["0/0", "Evicted", 0]),
    ("being deleted: Terminating",
     pod(main=[main_c(RUNNING, ready=True)], phase="Running", deletionTimestamp="2026-01-01T00:00:00Z"),
     ["1/1", "Terminating", 0]),
    ("no status at all", {"metadata": {}, "spec": {}}, ["0/0", "", 0]),
]


@pytest.mark.parametrize(("obj", "cells"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pod_cells(obj: Obj, cells: list[Any]) -> None:
    assert _pod_cells(obj) == cells
