"""Benchmark: our DNS probe against Prometheus' blackbox_exporter DNS prober, same server.

    python bench/dns_vs_blackbox.py [--runs 200] [--queries 5] [--cost-runs 50] [--json PATH]

What it does:

1. Starts the sandbox DNS server (``sandbox.dns.DnsServer``) in a *separate process* — so
   neither prober shares an event loop or a GIL with the server it measures — once with no
   added delay and once with 20 ms added delay.
2. Starts ``prometheus-blackbox-exporter`` (Debian package; looked up on PATH, in
   ``.cache/tools/bin``, or fetched with ``apt-get download`` + ``dpkg-deb -x``) with a
   ``dns`` module querying ``istiod.istio-system.svc`` over UDP at that server.
3. Interleaves, ``--runs`` times: one blackbox probe (``GET /probe``) and one run of our
   :class:`probes.dns.DnsProbe` (``--queries`` queries per run), so both see the same load.
4. Compares medians over the runs: our per-run p50 against blackbox's
   ``probe_dns_lookup_time_seconds`` and its ``probe_dns_duration_seconds{phase=...}``.
   Note what each blackbox series is: ``probe_dns_lookup_time_seconds`` and phase
   ``resolve`` time the resolution of the *target* (here an IP: ~0), phase ``request``
   times the DNS exchange itself — the number comparable to our query latency.
5. Prints each probe's cost per run: CPU (``time.process_time``, or the event-loop
   thread's ``time.thread_time`` where an in-process server thread would pollute it) and
   memory (``tracemalloc``: peak during a run, and what a run leaves allocated).

Goals (issue 4): our p50 within 1 ms of blackbox at 0 ms added delay, within 10 % at 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from probes.dns import DnsProbe  # noqa: E402

NAME = "istiod.istio-system.svc"
BLACKBOX = "prometheus-blackbox-exporter"


# -- the DNS server, in its own process ---------------------------------------------------


def serve(port: int, delay: float) -> None:
    """``--serve``: run the sandbox DNS server until stdin closes."""
    from sandbox.dns import DnsServer

    async def main() -> None:
        server = DnsServer(port=port)
        server.delay = delay
        await server.start()
        print(f"ready {server.address[1]}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        await server.stop()

    asyncio.run(main())


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(delay: float) -> tuple[subprocess.Popen[str], int]:
    port = free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), str(delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        raise RuntimeError(f"DNS server did not start: {line!r}")
    return proc, port


def stop_process(proc: subprocess.Popen[Any]) -> None:
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(timeout=5)


# -- blackbox_exporter ---------------------------------------------------------------------


def find_blackbox() -> str:
    for candidate in (
        shutil.which(BLACKBOX),
        str(ROOT / ".cache" / "tools" / "bin" / BLACKBOX),
        f"/usr/bin/{BLACKBOX}",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    # The Debian package, unpacked rather than installed (no service, no user).
    tools = ROOT / ".cache" / "tools"
    (tools / "bin").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", BLACKBOX], cwd=tmp, check=True, capture_output=True)
        deb = next(Path(tmp).glob(f"{BLACKBOX}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        shutil.copy(Path(tmp) / "x" / "usr" / "bin" / BLACKBOX, tools / "bin" / BLACKBOX)
    return str(tools / "bin" / BLACKBOX)


BLACKBOX_CONFIG = f"""
modules:
  dns_istiod:
    prober: dns
    timeout: 2s
    dns:
      transport_protocol: udp
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      query_name: "{NAME}"
      query_type: "A"
      valid_rcodes: [NOERROR]
"""


def start_blackbox(binary: str, config_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    config = config_dir / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG)
    port = free_port(socket.SOCK_STREAM)
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, port


_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def parse_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            key = m["name"] + (f"{{{m['labels']}}}" if m["labels"] else "")
            out[key] = float(m["value"])
    return out


async def wait_http(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(100):
        try:
            async with session.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


# -- measurement ---------------------------------------------------------------------------


async def compare(delay: float, *, runs: int, queries: int, blackbox: str, tmp: Path) -> dict[str, Any]:
    server, dns_port = start_server(delay)
    bb, bb_port = start_blackbox(blackbox, tmp)
    try:
        async with aiohttp.ClientSession() as http:
            await wait_http(http, f"http://127.0.0.1:{bb_port}/metrics")
            probe = DnsProbe(
                names=[NAME], nameserver="127.0.0.1", port=dns_port, queries=queries, timeout=2.0
            )
            url = f"http://127.0.0.1:{bb_port}/probe"
            params = {"module": "dns_istiod", "target": f"127.0.0.1:{dns_port}"}
            ours_p50: list[float] = []
            ours_all: list[float] = []
            bb_series: dict[str, list[float]] = {}
            for i in range(runs + 5):
                async with http.get(url, params=params) as resp:
                    metrics = parse_metrics(await resp.text())
                obs = await probe()
                if i < 5:  # warm-up: first sockets, first imports, Go's first GC
                    continue
                if metrics.get("probe_success") != 1.0 or obs.outcome != "ok":
                    raise RuntimeError(
                        f"probe failed: blackbox={metrics.get('probe_success')} ours={obs.evidence}"
                    )
                ours_p50.append(obs.values["p50_seconds"])
                ours_all.extend(obs.details["latencies_seconds"])
                for key, value in metrics.items():
                    if key.startswith(("probe_dns_lookup_time_seconds", "probe_dns_duration_seconds")) or (
                        key == "probe_duration_seconds"
                    ):
                        bb_series.setdefault(key, []).append(value)
    finally:
        bb.terminate()
        bb.wait(timeout=5)
        stop_process(server)
    medians = {k: statistics.median(v) for k, v in sorted(bb_series.items())}
    ours = statistics.median(ours_p50)
    request = medians.get('probe_dns_duration_seconds{phase="request"}', float("nan"))
    return {
        "delay_seconds": delay,
        "runs": runs,
        "queries_per_run": queries,
        "ours_p50_median_seconds": ours,
        "ours_all_queries_median_seconds": statistics.median(ours_all),
        "blackbox_medians_seconds": medians,
        "diff_vs_request_seconds": ours - request,
        "ratio_vs_request": ours / request if request else float("nan"),
        "diff_vs_lookup_time_seconds": ours - medians.get("probe_dns_lookup_time_seconds", float("nan")),
    }


async def cost(
    name: str, make_call: Callable[[], Awaitable[Any]], *, runs: int, clock: Callable[[], float]
) -> dict[str, Any]:
    """CPU seconds and tracemalloc bytes per run of one probe.

    Two passes: CPU without tracemalloc (which slows every allocation several-fold), then
    memory with it. "Retained" is measured after a ``gc.collect()``, so it counts what a run
    keeps alive, not cyclic garbage waiting for the collector.
    """
    for _ in range(3):
        await make_call()  # warm-up: imports, botocore model loading
    cpu: list[float] = []
    for _ in range(runs):
        c0 = clock()
        await make_call()
        cpu.append(clock() - c0)
    tracemalloc.start()
    try:
        peaks: list[int] = []
        retained: list[int] = []
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        for _ in range(runs):
            gc.collect()
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            await make_call()
            _, peak = tracemalloc.get_traced_memory()
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
            peaks.append(peak - before)
            retained.append(after - before)
        gc.collect()
        last, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {
        "probe": name,
        "runs": runs,
        "cpu_seconds_per_run_median": statistics.median(cpu),
        "tracemalloc_peak_bytes_per_run_median": int(statistics.median(peaks)),
        "tracemalloc_retained_bytes_per_run_median": int(statistics.median(retained)),
        "tracemalloc_growth_bytes_total": last - first,
        "clock": clock.__name__,
    }


async def dns_cost(runs: int, queries: int) -> dict[str, Any]:
    server, port = start_server(0.0)
    try:
        probe = DnsProbe(names=[NAME], nameserver="127.0.0.1", port=port, queries=queries)
        result = await cost("dns", probe, runs=runs, clock=time.process_time)
        result["queries_per_run"] = queries
        return result
    finally:
        stop_process(server)


async def storage_cost(runs: int) -> dict[str, Any]:
    # moto and the mesh run in this process (moto in its own thread): the probe's CPU is
    # the event-loop thread's (thread_time), which excludes moto's server thread.
    from probes.credentials import Credentials, Resolution
    from probes.storage import StorageProbe
    from sandbox.mesh import Mesh
    from sandbox.s3 import S3Server

    s3 = S3Server()
    await s3.start()
    creds = s3.seed(bucket="mlpipeline", objects={"iris/model": b"m" * 229 * 1024})

    async def no_policies() -> list[dict[str, Any]]:
        return []

    mesh = Mesh(upstream=s3.url, policies=no_policies)
    await mesh.start()
    try:
        sidecar = await mesh.sidecar(principal="cluster.local/ns/user-example-com/sa/iris-sa")
        resolution = Resolution(
            credentials=Credentials(creds.access_key_id, creds.secret_access_key),
            secret_name="minio-s3-secret",
            annotation_key=None,
            endpoint=sidecar,
            use_https=False,
            verify_ssl=True,
            region="us-east-1",
            problem=None,
        )
        probe = StorageProbe(target="bench", bucket="mlpipeline", key="iris/model", resolution=resolution)
        return await cost("storage", probe, runs=runs, clock=time.thread_time)
    finally:
        await mesh.stop()
        await s3.stop()


async def main(args: argparse.Namespace, *, blackbox: str, version: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        comparisons = [
            await compare(d, runs=args.runs, queries=args.queries, blackbox=blackbox, tmp=Path(tmp))
            for d in (0.0, 0.020)
        ]
    costs = [await dns_cost(args.cost_runs, args.queries), await storage_cost(args.cost_runs)]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "blackbox_exporter": version,
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        "comparisons": comparisons,
        "costs": costs,
    }


def report(result: dict[str, Any]) -> None:
    ms = 1000.0
    print(f"{result['date']}  {result['blackbox_exporter']}")
    print(f"cpus={result['cpus']} load={result['loadavg_1m']:.2f}")
    for c in result["comparisons"]:
        runs = f"{c['runs']} runs x {c['queries_per_run']} queries"
        print(f"\nadded delay {c['delay_seconds'] * ms:.0f} ms: {runs}")
        print(f"  ours   p50 (median of per-run p50)        {c['ours_p50_median_seconds'] * ms:8.3f} ms")
        print(
            f"  ours   median over all queries            {c['ours_all_queries_median_seconds'] * ms:8.3f} ms"
        )
        for key, value in c["blackbox_medians_seconds"].items():
            print(f"  blackbox {key:<40} {value * ms:8.3f} ms")
        diff, ratio = c["diff_vs_request_seconds"] * ms, (c["ratio_vs_request"] - 1) * 100
        print(f"  ours - blackbox request phase             {diff:+8.3f} ms  ({ratio:+.1f} %)")
        print(f"  ours - probe_dns_lookup_time_seconds      {c['diff_vs_lookup_time_seconds'] * ms:+8.3f} ms")
    print("\ncost per run")
    for k in result["costs"]:
        print(
            f"  {k['probe']:<8} cpu {k['cpu_seconds_per_run_median'] * 1000:7.2f} ms ({k['clock']})  "
            f"tracemalloc peak {k['tracemalloc_peak_bytes_per_run_median'] / 1024:8.1f} KiB  "
            f"retained {k['tracemalloc_retained_bytes_per_run_median'] / 1024:6.1f} KiB  "
            f"(growth over {k['runs']} runs {k['tracemalloc_growth_bytes_total'] / 1024:.1f} KiB)"
        )


def cli() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), float(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--cost-runs", type=int, default=50)
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON to PATH")
    args = parser.parse_args()
    blackbox = find_blackbox()
    out = subprocess.run([blackbox, "--version"], capture_output=True, text=True)
    version = (out.stdout or out.stderr).splitlines()[0]
    result = asyncio.run(main(args, blackbox=blackbox, version=version))
    report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    cli()
