"""Benchmark: how fast the sandbox starts, converges, shows each seed failure and recovers.

    python bench/sandbox_lifecycle.py [--rounds 3] [--json PATH]

Per round, in one process (the model is trained once per process, so round 1 includes the
training and later rounds show the warm start):

1. ``Sandbox.start()`` — API, S3 (seeded), mesh, DNS, the seed's world, controllers;
2. ``apply_healthy_world()`` → the ISVC ``Ready=True`` (pod created, model downloaded through
   the mesh, real server started) — awaited on a watch, not polled;
3. for each failure in ``Sandbox.FAILURES``: ``inject`` → the symptom (ISVC or pod state) and
   ``undo`` → ``Ready=True`` again; for ``mesh-policy`` and ``model-path`` the pod is deleted
   after the injection, as an operator would, since only a new pod downloads again;
4. ``Sandbox.stop()``.

Goals (issue 3): start in a few seconds; symptom and recovery each well under the daemon's
heal budget (p99 ≤ 2 s) so the sandbox is never what makes a heal slow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes_asyncio.client import ApiClient, CoreV1Api

from sandbox import Sandbox
from tests.integration.sandbox_wait import NS, condition, container, isvc_until, pods_until, ready_isvc

Obj = dict[str, Any]


def _waiting(pod: Obj, reason: str) -> bool:
    return ((container(pod, "kserve-container").get("state") or {}).get("waiting") or {}).get(
        "reason"
    ) == reason


def _init_failed(pod: Obj) -> bool:
    return (container(pod, "storage-initializer", init=True).get("restartCount") or 0) >= 1


SYMPTOMS: dict[str, Any] = {
    "no-serving-runtime": ("isvc", lambda o: condition(o, "Ready").get("reason") == "NoSupportingRuntime"),
    "storage-credentials": ("pods", lambda ps: any(_init_failed(p) for p in ps)),
    "dns-timeout": (
        "pods",
        lambda ps: any(container(p, "istio-proxy") and not container(p, "istio-proxy")["ready"] for p in ps),
    ),
    "mesh-policy": ("pods", lambda ps: any(_init_failed(p) for p in ps)),
    "sidecar-disabled": ("pods", lambda ps: any(_init_failed(p) for p in ps)),
    "model-path": ("pods", lambda ps: any(_waiting(p, "CrashLoopBackOff") for p in ps)),
    "image-pull": ("pods", lambda ps: any(_waiting(p, "ImagePullBackOff") for p in ps)),
}
RESTART_POD = {"mesh-policy", "model-path"}


async def _delete_pods(api: ApiClient) -> None:
    core = CoreV1Api(api)
    for p in (await core.list_namespaced_pod(NS)).items:
        await core.delete_namespaced_pod(p.metadata.name, NS)


async def one_round() -> dict[str, float]:
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    sb = Sandbox()
    await sb.start()
    out["start"] = time.perf_counter() - t0
    api = sb.new_api_client()
    try:
        t0 = time.perf_counter()
        await sb.apply_healthy_world()
        await ready_isvc(api)
        out["converge"] = time.perf_counter() - t0
        for name in Sandbox.FAILURES:
            kind, pred = SYMPTOMS[name]
            t0 = time.perf_counter()
            await sb.inject(name)
            if name in RESTART_POD:
                await _delete_pods(api)
            if kind == "isvc":
                await isvc_until(api, pred, name)
            else:
                await pods_until(api, pred, name)
            out[f"{name}.symptom"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            await sb.undo(name)
            if name in RESTART_POD:
                await _delete_pods(api)
            await ready_isvc(api)
            out[f"{name}.recover"] = time.perf_counter() - t0
    finally:
        await api.close()
        t0 = time.perf_counter()
        await sb.stop()
        out["stop"] = time.perf_counter() - t0
    return out


async def main(rounds: int) -> dict[str, Any]:
    results = [await one_round() for _ in range(rounds)]
    keys = list(results[0])
    return {
        "rounds": results,
        "median": {k: statistics.median(r[k] for r in results) for k in keys},
        "max": {k: max(r[k] for r in results) for k in keys},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = asyncio.run(main(args.rounds))
    for k, v in report["median"].items():
        print(
            f"{k:32s} median {v:7.3f} s   max {report['max'][k]:7.3f} s   "
            f"round 1 {report['rounds'][0][k]:7.3f} s"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    sys.exit(0)
