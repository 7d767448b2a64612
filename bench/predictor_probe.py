"""Cost of one predictor probe run: wall time, CPU time and allocations, per scenario.

A benchmark, not a test: ``python bench/predictor_probe.py [--runs N]``. It starts the sandbox
API server and the real model server on loopback, and runs the probe against:

- ``ready``: an InferenceService that is Ready, with readiness + canary over HTTP;
- ``pod-failing``: a storage-initializer in ``Init:Error`` with a 20-line log tail;
- ``not-ready``: ``NoSupportingRuntime`` in the status, no pods.

CPU time is the process's (``time.process_time``) over the run, so it includes the two
in-process servers' share of the work; allocations are ``tracemalloc`` counts for the run
(traced separately from the timing runs, since tracing slows everything down).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from probes.predictor import PredictorProbe  # noqa: E402
from sandbox.apiserver import ApiServer  # noqa: E402
from serving.app import build_app  # noqa: E402
from serving.train import train  # noqa: E402

NS, MERGE = "bench", "application/merge-patch+json"


async def _isvc(api: client.ApiClient, name: str, status: dict[str, Any]) -> None:
    co = client.CustomObjectsApi(api)
    await co.create_namespaced_custom_object("serving.kserve.io", "v1beta1", NS, "inferenceservices", {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": name}, "spec": {"predictor": {}},
    })
    await co.patch_namespaced_custom_object_status(
        "serving.kserve.io", "v1beta1", NS, "inferenceservices", name, {"status": status}, _content_type=MERGE
    )


async def _failing_pod(server: ApiServer, api: client.ApiClient, isvc: str) -> None:
    core = client.CoreV1Api(api)
    pod = f"{isvc}-predictor-0"
    await core.create_namespaced_pod(NS, {
        "metadata": {"name": pod, "labels": {"serving.kserve.io/inferenceservice": isvc}},
        "spec": {"initContainers": [{"name": "storage-initializer", "image": "i"}],
                 "containers": [{"name": "kserve-container", "image": "i"}]},
    })
    await core.patch_namespaced_pod_status(pod, NS, {"status": {"phase": "Pending", "initContainerStatuses": [
        {"name": "storage-initializer", "ready": False, "restartCount": 2, "image": "i", "imageID": "",
         "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}}, _content_type=MERGE)
    lines = [f"INFO:root:line {i} AWS_ACCESS_KEY_ID=minio" for i in range(200)]
    last = "botocore.exceptions.NoCredentialsError: Unable to locate credentials"
    server.set_pod_log(NS, pod, "storage-initializer", "\n".join([*lines, last]))


async def _measure(probe: PredictorProbe, runs: int) -> dict[str, float]:
    for _ in range(3):  # warm up connections, imports, caches
        await probe()
    walls, cpus = [], []
    outcome = ""
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        obs = await probe()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        outcome = obs.outcome
    tracemalloc.start()
    blocks, peak = [], []
    for _ in range(min(runs, 20)):
        snap0 = tracemalloc.take_snapshot()
        # Peak is read before the second snapshot: taking one allocates too.
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        await probe()
        peak.append(tracemalloc.get_traced_memory()[1] - before)
        snap1 = tracemalloc.take_snapshot()
        stats = snap1.compare_to(snap0, "filename")
        blocks.append(sum(max(0, s.count_diff) for s in stats))
    tracemalloc.stop()
    return {
        "outcome": outcome,  # type: ignore[dict-item]
        "wall_p50_ms": statistics.median(walls) * 1000,
        "wall_p95_ms": sorted(walls)[int(0.95 * (len(walls) - 1))] * 1000,
        "cpu_ms": statistics.mean(cpus) * 1000,
        "retained_blocks": statistics.median(blocks),
        "peak_kib": statistics.median(peak) / 1024,
    }


async def main(runs: int) -> None:
    server = ApiServer(host="127.0.0.1", port=0)
    await server.start()
    api = client.ApiClient(configuration=client.Configuration(host=server.url))
    with tempfile.TemporaryDirectory() as tmp:
        train(out=Path(tmp))
        runner = web.AppRunner(build_app(model_name="ready", model_dir=Path(tmp)), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        model_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            await client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
            await _isvc(api, "ready", {"conditions": [{"type": "Ready", "status": "True"}],
                                       "address": {"url": model_url}})
            await _isvc(api, "failing", {"conditions": [{"type": "Ready", "status": "False"}]})
            await _failing_pod(server, api, "failing")
            await _isvc(api, "noruntime", {
                "conditions": [{"type": "Ready", "status": "False", "reason": "NoSupportingRuntime"}],
                "modelStatus": {"lastFailureInfo": {"reason": "NoSupportingRuntime",
                                                    "message": "no runtime"}},
            })
            print(f"predictor probe, {runs} runs per scenario (python {sys.version.split()[0]})")
            print(f"{'scenario':<12} {'outcome':<12} {'wall p50':>9} {'wall p95':>9} {'cpu/run':>9} "
                  f"{'peak KiB':>9} {'kept blocks':>11}")
            for name in ("ready", "failing", "noruntime"):
                r = await _measure(PredictorProbe(api=api, namespace=NS, name=name), runs)
                print(f"{name:<12} {r['outcome']!s:<12} {r['wall_p50_ms']:>7.2f}ms "
                      f"{r['wall_p95_ms']:>7.2f}ms {r['cpu_ms']:>7.2f}ms {r['peak_kib']:>9.1f} "
                      f"{r['retained_blocks']:>11.0f}")
        finally:
            await runner.cleanup()
            await api.close()
            await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    asyncio.run(main(parser.parse_args().runs))
