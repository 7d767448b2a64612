"""Daemon loop budgets, measured: heal latency, full-pass time at scale, RSS, steady-state lists.

A benchmark, not a test: ``python bench/daemon_loop.py [--heals N] [--isvcs N]``.

1. **Heal latency** (budget p50 ≤ 0.5 s, p99 ≤ 2 s): the full sandbox (API, S3, DNS,
   controllers) and the daemon's own objects in this process (``daemon.runner.build_daemon``,
   as ``kserve-warden run`` builds them; cooldown 0 so repeated injections are not held back).
   Each round deletes the ServingRuntime through the API and times until it exists again,
   observed by a watch on the benchmark's side (no polling).
2. **Full pass at scale** (budget ≤ 5 s, RSS ≤ 150 MB): the sandbox API server seeded with
   N InferenceServices (+ a ServiceAccount and a Pod each) across N/10 namespaces; the time
   of ``Reconciler.evaluate()`` (World snapshot, desired render, diff, diagnose, plan) and of
   the informer's initial sync, and the process's peak RSS.
3. **Steady state**: list calls the API server saw after the initial sync while objects keep
   changing for a few seconds (budget: 0).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubernetes_asyncio import client  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from daemon import logs  # noqa: E402
from daemon.desired import load_desired  # noqa: E402
from daemon.informer import Informer  # noqa: E402
from daemon.kube import Kube  # noqa: E402
from daemon.ledger import Ledger  # noqa: E402
from daemon.loop import Reconciler  # noqa: E402
from daemon.metrics import WardenMetrics  # noqa: E402
from daemon.probing import ObservationStore  # noqa: E402
from daemon.runner import Inputs, build_daemon  # noqa: E402
from daemon.server import HealthState  # noqa: E402
from daemon.settings import load_settings  # noqa: E402
from sandbox import Sandbox  # noqa: E402
from sandbox.apiserver import ApiServer  # noqa: E402

SR = ("serving.kserve.io", "v1alpha1", "user-example-com", "servingruntimes", "iris-fastapi-runtime")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def heal_latency(rounds: int) -> list[float]:
    async with Sandbox() as sb:
        cfg = sb.workdir / "warden.yaml"
        sb.write_warden_config(cfg)
        settings = load_settings(cfg, environ={"WARDEN_LEADER_ELECTION": "0", "WARDEN_METRICS_PORT": "0"})
        settings = replace(settings, remediation=replace(settings.remediation, cooldown_seconds=0.0,
                                                         verify_after_seconds=0.5))
        api = sb.new_api_client()
        inputs = Inputs(settings=settings, desired=load_desired(settings.desired.dir))
        d = build_daemon(inputs=inputs, api=api, redactor=logs.Redactor(), dry_run=False, name="bench")
        informer_task = asyncio.create_task(d.informer.run())
        await d.informer.wait_synced()
        d.reconciler.set_leading(True)
        d.reconciler.start()
        probes = asyncio.create_task(d.probes.run())
        co = client.CustomObjectsApi(api)
        out: list[float] = []
        try:
            await _until_exists(co)
            await asyncio.sleep(2.0)
            for _ in range(rounds):
                t0 = time.perf_counter()
                await co.delete_namespaced_custom_object(*SR)
                await _until_exists(co)
                out.append(time.perf_counter() - t0)
                await asyncio.sleep(0.6)  # past verify_after: each round is a fresh finding
        finally:
            await d.reconciler.shutdown()
            for t in (probes, informer_task):
                t.cancel()
            await asyncio.gather(probes, informer_task, return_exceptions=True)
            await api.close()
        return out


async def _until_exists(co: client.CustomObjectsApi) -> None:
    while True:
        try:
            await co.get_namespaced_custom_object(*SR)
            return
        except client.ApiException:
            await asyncio.sleep(0.002)


async def full_pass(n: int) -> dict[str, Any]:
    srv = ApiServer()
    await srv.start()
    api = client.ApiClient(client.Configuration(host=srv.url))
    try:
        kube = Kube(api, field_manager="bench-seed")
        namespaces = [f"team-{i:03d}" for i in range(max(1, n // 10))]
        for ns in namespaces:
            await kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                             dry_run=False)

        async def one(i: int) -> None:
            ns = namespaces[i % len(namespaces)]
            name = f"model-{i:04d}"
            await kube.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                              "metadata": {"name": f"{name}-sa", "namespace": ns}}, dry_run=False)
            await kube.apply({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                              "metadata": {"name": name, "namespace": ns},
                              "spec": {"predictor": {"serviceAccountName": f"{name}-sa", "model": {
                                  "modelFormat": {"name": "xgboost"}, "storageUri": f"s3://b/{name}"}}}},
                             dry_run=False)
            await kube.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": f"{name}-predictor-0", "namespace": ns,
                "labels": {"serving.kserve.io/inferenceservice": name}},
                "spec": {"containers": [{"name": "kserve-container", "image": "x"}]}}, dry_run=False)

        for start in range(0, n, 50):
            await asyncio.gather(*(one(i) for i in range(start, min(n, start + 50))))
        settings = load_settings(None, environ={})
        settings = replace(settings, namespaces=tuple(namespaces) + settings.namespaces)
        reader = Kube(api)
        informer = Informer(reader, namespaces=set(settings.namespaces) | {"kube-system", "kserve",
                                                                          "istio-system"})
        t0 = time.perf_counter()
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        sync_s = time.perf_counter() - t0
        lists_after_sync = srv.stats.count("list")
        rec = Reconciler(settings=settings, desired=load_desired(None), kube=reader, informer=informer,
                         metrics=WardenMetrics(CollectorRegistry()), health=HealthState(clock=time.time),
                         ledger=Ledger(), observations=ObservationStore())
        passes = []
        for _ in range(5):
            t1 = time.perf_counter()
            ev = rec.evaluate()
            passes.append(time.perf_counter() - t1)
        # Steady state: objects change, the informer follows by watch only.
        for i in range(200):
            ns = namespaces[i % len(namespaces)]
            await kube.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
                "name": f"model-{i:04d}-sa", "namespace": ns, "annotations": {"touched": str(i)}}},
                dry_run=False)
        await asyncio.sleep(2.0)
        steady_lists = srv.stats.count("list") - lists_after_sync
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return {"objects": len(informer.objects()), "sync_s": sync_s, "pass_s": statistics.median(passes),
                "pass_max_s": max(passes), "findings": len(ev.findings), "steady_lists": steady_lists,
                "events_seen": informer.stats.events, "rss_mb": rss_mb()}
    finally:
        await api.close()
        await srv.stop()


async def daemon_idle_rss(seconds: float = 8.0) -> float:
    """VmRSS of a real ``kserve-warden run`` subprocess, converged and idle against the sandbox."""
    import os

    async with Sandbox() as sb:
        cfg = sb.workdir / "warden.yaml"
        sb.write_warden_config(cfg)
        env = dict(os.environ, WARDEN_METRICS_PORT="0")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "run", "--config", str(cfg), "--kubeconfig",
            str(sb.kubeconfig_path), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            env=env)
        try:
            await asyncio.sleep(seconds)
            status = await asyncio.to_thread(Path(f"/proc/{proc.pid}/status").read_text)
            kb = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS:"))
            return kb / 1024
        finally:
            proc.terminate()
            await proc.wait()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heals", type=int, default=30)
    ap.add_argument("--isvcs", type=int, default=1000)
    args = ap.parse_args()
    logs.configure(fmt="json", level="error")
    idle_rss = rss_mb()
    scale = await full_pass(args.isvcs)
    print(f"full pass over {scale['objects']} cached objects ({args.isvcs} InferenceServices, "
          f"{max(1, args.isvcs // 10)} namespaces): median {scale['pass_s']:.3f} s, "
          f"max {scale['pass_max_s']:.3f} s; initial sync {scale['sync_s']:.3f} s; "
          f"{scale['findings']} findings")
    print(f"steady state: {scale['steady_lists']} list calls after sync while {scale['events_seen']} "
          "watch events arrived (budget 0)")
    print(f"peak RSS: {scale['rss_mb']:.0f} MB (process at start {idle_rss:.0f} MB)")
    print(f"daemon subprocess (kserve-warden run), converged and idle: RSS {await daemon_idle_rss():.0f} MB "
          "(budget 80 MB)")
    lat = await heal_latency(args.heals)
    print(f"heal latency (ServingRuntime deleted -> re-applied), {len(lat)} rounds: "
          f"p50 {pct(lat, 0.5) * 1000:.1f} ms, p99 {pct(lat, 0.99) * 1000:.1f} ms, "
          f"max {max(lat) * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
