"""Scale proof (issue 11): 1,000 InferenceServices in 100 namespaces, all diagnosed and probed.

A benchmark, not a test: ``python bench/scale.py [--isvcs 1000] [--namespaces 100] [--window 30]``.

The sandbox API server (in this process, no simulated controllers) is seeded with N
InferenceServices across M namespaces; each namespace also holds a ServingRuntime, a storage
Secret (AWS keys, an ``s3-endpoint`` where nothing listens) and each model a ServiceAccount
listing it and a predictor Pod. The settings read Secrets in every namespace, so storage
probes run: one group per namespace (store + credential), not one per model. Then:

1. ``kserve-warden check --output json`` as a subprocess, end to end (interpreter start,
   list every kind, probe every model once under ``probes.max_concurrency``, diagnose,
   print). Budget ≤ 5 s.
2. One daemon pass: ``Reconciler.evaluate()`` (World snapshot, discovery, diagnosis, plan) in
   this process over the synced informer. Budget ≤ 1 s.
3. ``kserve-warden run`` as a subprocess: its VmRSS once settled (budget ≤ 200 MB), and the
   API requests per minute the sandbox API server sees from it while nothing changes (the
   budget that matters: zero polling lists; probes read the watch caches).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubernetes_asyncio import client  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from daemon.core import logs  # noqa: E402
from daemon.core.ledger import Ledger  # noqa: E402
from daemon.kube.effects import Kube  # noqa: E402
from daemon.kube.informer import Informer  # noqa: E402
from daemon.process import logging_setup  # noqa: E402
from daemon.process.config_files import load_desired, load_settings  # noqa: E402
from daemon.process.loop import Reconciler  # noqa: E402
from daemon.process.metrics import WardenMetrics  # noqa: E402
from daemon.process.probing import ObservationStore  # noqa: E402
from daemon.process.server import HealthState  # noqa: E402
from sandbox.apiserver import ApiServer  # noqa: E402
from sandbox.demo.run import free_port, scrape_metrics  # noqa: E402
from sandbox.kubeconfig import write_kubeconfig  # noqa: E402


def b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


async def seed(kube: Kube, *, isvcs: int, namespaces: int, dead_endpoint: str) -> list[str]:
    names = [f"team-{i:03d}" for i in range(namespaces)]

    async def apply(obj: dict[str, Any]) -> None:
        await kube.apply(obj, dry_run=False)

    async def namespace(ns: str) -> None:
        await apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        await apply({"apiVersion": "v1", "kind": "Secret", "metadata": {
            "name": "s3-creds", "namespace": ns,
            "annotations": {"serving.kserve.io/s3-endpoint": dead_endpoint,
                            "serving.kserve.io/s3-usehttps": "0"}},
            "data": {"AWS_ACCESS_KEY_ID": b64("AKIABENCH"), "AWS_SECRET_ACCESS_KEY": b64("bench-secret")}})
        await apply({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime", "metadata": {
            "name": "xgb-runtime", "namespace": ns},
            "spec": {"supportedModelFormats": [{"name": "xgboost", "version": "2", "autoSelect": True}],
                     "containers": [{"name": "kserve-container", "image": "kserve/xgbserver"}]}})

    async def model(i: int) -> None:
        ns = names[i % len(names)]
        name = f"model-{i:04d}"
        await apply({"apiVersion": "v1", "kind": "ServiceAccount",
                     "metadata": {"name": f"{name}-sa", "namespace": ns}, "secrets": [{"name": "s3-creds"}]})
        await apply({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                     "metadata": {"name": name, "namespace": ns},
                     "spec": {"predictor": {"serviceAccountName": f"{name}-sa", "model": {
                         "modelFormat": {"name": "xgboost"}, "storageUri": f"s3://models/{name}"}}}})
        await apply({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"{name}-predictor-0", "namespace": ns,
            "labels": {"serving.kserve.io/inferenceservice": name}},
            "spec": {"containers": [{"name": "kserve-container", "image": "x"}]}})

    for start in range(0, len(names), 20):
        await asyncio.gather(*(namespace(ns) for ns in names[start:start + 20]))
    for start in range(0, isvcs, 50):
        await asyncio.gather(*(model(i) for i in range(start, min(isvcs, start + 50))))
    return names


def settings_doc(namespaces: list[str], *, dns_port: int) -> dict[str, Any]:
    return {
        "secrets": {"namespaces": ["*"]},
        "probes": {
            "dns": {"nameserver": "127.0.0.1", "port": dns_port, "timeout_seconds": 0.2, "queries": 1,
                    "period_seconds": 10},
            "storage": {"period_seconds": 60, "timeout_seconds": 2},
            "predictor": {"period_seconds": 30, "timeout_seconds": 2},
            "max_concurrency": 16,
        },
    }


def proc_usage(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    kb = {k: int(v.split()[0]) for k, _, v in (ln.partition(":") for ln in status.splitlines())
          if k in ("VmRSS", "VmHWM")}
    return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


async def check_once(cfg: Path, kubeconfig: Path, *, profile: Path | None = None
                     ) -> tuple[float, int, dict[str, Any]]:
    t0 = time.perf_counter()
    # --profile-check: the same run under pyinstrument (pip install pyinstrument), text report.
    prefix = ["-m", "pyinstrument", "-o", str(profile), "-m"] if profile else ["-m"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *prefix, "daemon", "check", "--config", str(cfg), "--kubeconfig", str(kubeconfig),
        "--output", "json", "--log-level", "error", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    seconds = time.perf_counter() - t0
    try:
        doc = json.loads(out)
    except ValueError:
        doc = {}
    return seconds, proc.returncode or 0, doc


async def daemon_pass(server: ApiServer, cfg: Path) -> dict[str, Any]:
    api = client.ApiClient(client.Configuration(host=server.url))
    try:
        settings = load_settings(cfg, environ={})
        reader = Kube(api)
        informer = Informer(reader)
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        rec = Reconciler(settings=settings, desired=load_desired(None), kube=reader, informer=informer,
                         metrics=WardenMetrics(CollectorRegistry()), health=HealthState(clock=time.time),
                         ledger=Ledger(), observations=ObservationStore())
        passes = []
        ev = None
        for _ in range(5):
            t1 = time.perf_counter()
            ev = rec.evaluate()
            passes.append(time.perf_counter() - t1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return {"pass_median_s": statistics.median(passes), "pass_max_s": max(passes),
                "findings": len(ev.findings) if ev is not None else 0, "objects": len(informer.objects())}
    finally:
        await api.close()


async def scrape(session: Any, url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` with a generous timeout: a long pass holds the daemon's loop (measured here)."""
    from prometheus_client.parser import text_string_to_metric_families

    async with session.get(url, timeout=60) as r:
        text = await r.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


async def run_daemon(server: ApiServer, cfg: Path, kubeconfig: Path, *, settle: float,
                     window: float) -> dict[str, Any]:
    import aiohttp

    port = free_port()
    env = dict(os.environ, WARDEN_METRICS_PORT=str(port))
    log_path = cfg.parent / "daemon.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "run", "--config", str(cfg), "--kubeconfig", str(kubeconfig),
            "--log-level", "warning", stdout=log_file, stderr=log_file, env=env)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        t0 = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            count = 0.0
            while count < 1:
                if proc.returncode is not None or time.perf_counter() - t0 > 120:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"no first pass (exit {proc.returncode}); log tail:\n{tail}")
                await asyncio.sleep(0.05)
                try:
                    m = await scrape_metrics(session, url)
                except (aiohttp.ClientError, TimeoutError):
                    continue
                count = next((v for (name, labels), v in m.items()
                              if name == "warden_reconcile_duration_seconds_count" and not labels), 0.0)
            first_pass_s = time.perf_counter() - t0
            await asyncio.sleep(settle)  # every probe schedule has had its first (jittered) run
            st0 = server.stats.snapshot()
            rss0 = proc_usage(proc.pid)
            m0 = await scrape(session, url)
            await asyncio.sleep(window)
            m1 = await scrape(session, url)
            st1 = server.stats.snapshot()
            rss1, hwm = proc_usage(proc.pid)
        # The daemon's own passes in the window, with every model's observations in its store.
        h = "warden_reconcile_duration_seconds"
        passes = m1.get((f"{h}_count", ()), 0.0) - m0.get((f"{h}_count", ()), 0.0)
        total_s = m1.get((f"{h}_sum", ()), 0.0) - m0.get((f"{h}_sum", ()), 0.0)
        requests = delta(st0, st1)
        total = sum(requests.values())
        lists = sum(n for k, n in requests.items() if k.startswith("list "))
        runs = {k: m1[k] - m0.get(k, 0.0) for k in m1
                if k[0] == "warden_probe_duration_seconds_count" and m1[k] != m0.get(k, 0.0)}
        by_probe: dict[tuple[str, ...], float] = {}
        for (_, labels), v in runs.items():
            probe = dict(labels).get("probe", "?")
            by_probe[(probe,)] = by_probe.get((probe,), 0.0) + v
        return {"probe_runs": by_probe, "passes": passes,
                "pass_mean_s": total_s / passes if passes else float("nan"),
                "spawn_to_first_pass_s": first_pass_s, "rss_mb": rss1, "rss_before_window_mb": rss0[0],
                "hwm_mb": hwm, "requests_per_min": total * 60 / window,
                "lists_per_min": lists * 60 / window, "requests": requests, "window_s": window}
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isvcs", type=int, default=1000)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--settle", type=float, default=65.0, help="seconds before the request window")
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--checks", type=int, default=3)
    ap.add_argument("--profile-check", type=Path, help="also profile one check; report written here")
    ap.add_argument("--only-check", action="store_true", help="stop after the check measurements")
    args = ap.parse_args()
    logging_setup.configure(fmt="console", level="error", redactor=logs.Redactor())

    server = ApiServer()
    await server.start()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(os.environ.get("SCALE_WORKDIR") or tmp)
        kubeconfig = work / "kubeconfig"
        write_kubeconfig(kubeconfig, server=server.url)
        api = client.ApiClient(client.Configuration(host=server.url))
        try:
            t0 = time.perf_counter()
            names = await seed(Kube(api, field_manager="bench-seed"), isvcs=args.isvcs,
                               namespaces=args.namespaces, dead_endpoint=f"127.0.0.1:{free_port()}")
            seed_s = time.perf_counter() - t0
        finally:
            await api.close()
        cfg = work / "warden.yaml"
        cfg.write_text(yaml.safe_dump(settings_doc(names, dns_port=free_port()), sort_keys=False))
        print(f"seeded {args.isvcs} InferenceServices in {len(names)} namespaces in {seed_s:.1f} s")

        checks = []
        doc: dict[str, Any] = {}
        for _ in range(args.checks):
            seconds, code, doc = await check_once(cfg, kubeconfig)
            checks.append(seconds)
        per_isvc = len(doc.get("inferenceservices") or [])
        print(f"check end to end: median {statistics.median(checks):.2f} s, max {max(checks):.2f} s "
              f"(exit {code}; {per_isvc} InferenceServices in the JSON; budget 5 s)")
        if args.profile_check:
            await check_once(cfg, kubeconfig, profile=args.profile_check)
            print(f"check profile: {args.profile_check}")
        if args.only_check:
            await server.stop()
            return

        p = await daemon_pass(server, cfg)
        print(f"daemon pass (Reconciler.evaluate): median {p['pass_median_s'] * 1000:.0f} ms, "
              f"max {p['pass_max_s'] * 1000:.0f} ms over {p['objects']} objects, {p['findings']} findings "
              "(budget 1 s)")

        r = await run_daemon(server, cfg, kubeconfig, settle=args.settle, window=args.window)
        print(f"daemon passes in the window (with every probe's observations): {r['passes']:.0f}, "
              f"mean {r['pass_mean_s'] * 1000:.0f} ms (budget 1 s)")
        sums = {k[0]: v for k, v in r["probe_runs"].items()}
        print(f"probe runs in the window: {sums}")
        print(f"kserve-warden run: first pass {r['spawn_to_first_pass_s']:.1f} s after spawn; "
              f"VmRSS {r['rss_mb']:.0f} MB (peak {r['hwm_mb']:.0f} MB; budget 200 MB)")
        print(f"API requests/min while nothing changes: {r['requests_per_min']:.1f} "
              f"(lists/min {r['lists_per_min']:.1f}) over {r['window_s']:.0f} s: {r['requests']}")
    await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
