"""gRPC and binary-REST throughput of ``python -m serving`` against KServe's and MLServer's servers.

    .venv/bin/python bench/serving/grpc_binary.py                      # 3 reps x 5 s per cell
    .venv/bin/python bench/serving/grpc_binary.py --reps 1 --duration 3 --servers ours,kserve

For measurements only (bench/README.md, issue 14): nothing in the project needs it, or the peer
harness it borrows, to build or test.

Peers come from the shared harness ``../shared/bench`` (``bench_peers.sh``, phases ``install
train``): its venvs (KServe 0.21 ModelServer with its xgboost model class, MLServer 1.7.1 with
mlserver-xgboost), its iris model and its payload rows (row 0 = setosa; 32 rows =
``iris[(i*37) % 150]``). Run ``PHASES='install train' bench_peers.sh`` once first.

Each server runs alone, pinned to ``--server-cpu``, one process (KServe ``--workers 1``, MLServer
``parallel_workers=0``, ours with defaults); the load generator is pinned to ``--load-cpu``:
``ghz`` (Go, built from its module with ``go install`` into ``.cache/tools/bin`` when missing)
for gRPC, ``wrk`` with ``bench/serving/binary.lua`` for binary REST. Every request is the same
for every server: one ``input-0`` FP32 tensor ``[batch, 4]`` sent raw (``raw_input_contents``;
the REST body's binary tensor extension), probabilities back (peers' default output; ours is
asked for ``predict_proba``), raw both ways (gRPC answers raw to raw inputs; REST requests set
``binary_data_output``). MLServer has no binary REST (it
answers 500), so it is measured on gRPC only. Before measuring, each (server, transport, batch)
is checked once for the right classes, then warmed up for ``--warmup`` s at concurrency 32.

Repetitions are the outer loop and the server order rotates each rep, so machine noise from
other sessions hits every server alike; each measurement records the CPU the server's process
group used and the CPU used by everything else ("other"). Results: a TSV and the logs under
``.cache/bench/grpc-binary-<time>/``, and a markdown table on stdout (medians over reps, ratios
to KServe and MLServer, raw and per core-second of server CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from serving.grpc_gen import grpc_predict_v2_pb2 as pb  # noqa: E402

NAME = "iris"
PROTO = ROOT / "serving" / "grpc_gen" / "grpc_predict_v2.proto"
LUA = Path(__file__).with_name("binary.lua")
GHZ_MODULE = "github.com/bojand/ghz/cmd/ghz@v0.121.0"
HZ = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    label: str
    transports: tuple[str, ...]
    asks_proba: bool  # ours: name the output; peers answer probabilities by default
    proc: subprocess.Popen[bytes] | None = None
    http: int = 0
    grpc: int = 0
    env: dict[str, str] = field(default_factory=dict)

    def command(self, home: Path, cache: Path) -> list[str]:
        venvs, models = cache / "venvs", cache / "models"
        if self.name == "ours":
            return [str(ROOT / ".venv" / "bin" / "python"), "-m", "serving", "--model_dir",
                    str(models / "candidate"), "--model_name", NAME, "--http_port", str(self.http),
                    "--grpc_port", str(self.grpc), "--host", "127.0.0.1"]
        if self.name == "kserve":
            return [str(venvs / "kserve" / "bin" / "python"), str(home / "helpers" / "kserve_xgb.py"),
                    "--model_dir", str(models / "kserve"), "--model_name", NAME, "--nthread", "1",
                    "--http_port", str(self.http), "--grpc_port", str(self.grpc), "--workers", "1"]
        self.env = {"MLSERVER_HTTP_PORT": str(self.http), "MLSERVER_GRPC_PORT": str(self.grpc),
                    "MLSERVER_METRICS_PORT": str(self.http + 2), "MLSERVER_HOST": "127.0.0.1",
                    "MLSERVER_PARALLEL_WORKERS": "0"}
        return [str(venvs / "mlserver" / "bin" / "mlserver"), "start", str(models / "mlserver")]


SERVERS = {
    "ours": Server("ours", "kserve-warden", ("grpc", "rest-binary"), asks_proba=True),
    "kserve": Server("kserve", "KServe 0.21", ("grpc", "rest-binary"), asks_proba=False),
    "mlserver": Server("mlserver", "MLServer 1.7.1", ("grpc",), asks_proba=False),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def iris_rows(batch: int) -> np.ndarray[Any, Any]:
    from sklearn.datasets import load_iris

    x = load_iris().data
    rows = [[5.1, 3.5, 1.4, 0.2]] if batch == 1 else [x[(i * 37) % 150] for i in range(batch)]
    return np.asarray(rows, dtype=np.float32)


def grpc_request(x: np.ndarray[Any, Any], proba: bool) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name=NAME, inputs=[pb.ModelInferRequest.InferInputTensor(
        name="input-0", datatype="FP32", shape=x.shape)], raw_input_contents=[x.tobytes()])
    if proba:
        req.outputs.add(name="predict_proba")
    return req


def rest_body(x: np.ndarray[Any, Any], proba: bool) -> tuple[bytes, int]:
    header: dict[str, Any] = {"inputs": [{"name": "input-0", "shape": list(x.shape), "datatype": "FP32",
                                          "parameters": {"binary_data_size": x.nbytes}}],
                              "parameters": {"binary_data_output": True}}
    if proba:
        header["outputs"] = [{"name": "predict_proba"}]
    h = json.dumps(header).encode()
    return h + x.tobytes(), len(h)


# --- CPU accounting ------------------------------------------------------------------------------

def busy_jiffies() -> int:
    parts = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return sum(int(parts[i]) for i in (1, 2, 3, 6, 7, 8))


def group_jiffies(pgid: int) -> int:
    total = 0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total


def quiet_wait(limit_s: float, pct: float = 25) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        b0 = busy_jiffies()
        time.sleep(1)
        if (busy_jiffies() - b0) * 100 / HZ <= pct:
            return
    log(f"machine still busy after {limit_s:.0f} s; measuring anyway")


# --- servers -------------------------------------------------------------------------------------

def start(server: Server, home: Path, cache: Path, cpu: int, logdir: Path, tag: str) -> None:
    cmd = ["taskset", "-c", str(cpu), *server.command(home, cache)]
    out = (logdir / f"{server.name}-{tag}.log").open("wb")
    server.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, **server.env}, cwd=ROOT)
    deadline = time.monotonic() + 180
    url = f"http://127.0.0.1:{server.http}/v2/models/{NAME}/ready"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited {server.proc.returncode}; see {out.name}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} not ready in 180 s; see {out.name}")


def stop(server: Server) -> None:
    if server.proc is None:
        return
    pgid = server.proc.pid
    try:
        os.killpg(pgid, signal.SIGTERM)
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        server.proc.wait()
    except ProcessLookupError:
        pass
    server.proc = None


def check(server: Server, transport: str, x: np.ndarray[Any, Any], expected: list[int]) -> None:
    """One request, the answer's classes checked, before any load."""
    if transport == "grpc":
        import grpc

        from serving.grpc_gen.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

        with grpc.insecure_channel(f"127.0.0.1:{server.grpc}") as ch:
            resp = GRPCInferenceServiceStub(ch).ModelInfer(grpc_request(x, server.asks_proba), timeout=10)
        proba = np.frombuffer(resp.raw_output_contents[0], dtype=np.float32).reshape(len(x), -1)
    else:
        body, hlen = rest_body(x, server.asks_proba)
        req = urllib.request.Request(f"http://127.0.0.1:{server.http}/v2/models/{NAME}/infer", data=body,
                                     headers={"Content-Type": "application/octet-stream",
                                              "Inference-Header-Content-Length": str(hlen)})
        with urllib.request.urlopen(req, timeout=10) as r:
            body, hlen = r.read(), r.headers.get("Inference-Header-Content-Length")
        if hlen is None:
            raise RuntimeError(f"{server.name} rest-binary: no binary output in {body[:200]!r}")
        proba = np.frombuffer(body[int(hlen):], dtype=np.float32).reshape(len(x), -1)
    got = proba.argmax(axis=1).tolist()
    if got != expected:
        raise RuntimeError(f"{server.name} {transport} answered classes {got}, expected {expected}")


# --- load ----------------------------------------------------------------------------------------

def ghz_path() -> str:
    for c in (shutil.which("ghz"), ROOT / ".cache" / "tools" / "bin" / "ghz"):
        if c and Path(c).exists():
            return str(c)
    target = ROOT / ".cache" / "tools" / "bin"
    target.mkdir(parents=True, exist_ok=True)
    log(f"building ghz: go install {GHZ_MODULE}")
    subprocess.run(["go", "install", GHZ_MODULE], env={**os.environ, "GOBIN": str(target)}, check=True)
    return str(target / "ghz")


@dataclass
class Measurement:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    srv_cpu: float  # % of one core
    other_cpu: float


def measure(server: Server, transport: str, files: dict[str, Path], hlen: int, conc: int, seconds: float,
            load_cpu: int, ghz: str) -> Measurement:
    assert server.proc is not None
    pgid = server.proc.pid
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the load generator, once reaped
    b0, g0, t0 = busy_jiffies(), group_jiffies(pgid), time.monotonic()
    if transport == "grpc":
        cmd = ["taskset", "-c", str(load_cpu), ghz, "--insecure", "--proto", str(PROTO),
               "--call", "inference.GRPCInferenceService.ModelInfer", "-B", str(files["grpc"]),
               "-c", str(conc), "-z", f"{seconds}s", "--connections", "1", "--cpus", "1",
               "--timeout", "5s", "-O", "json", f"127.0.0.1:{server.grpc}"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
        try:
            doc = json.loads(res.stdout)
        except ValueError as exc:
            raise RuntimeError(f"ghz failed: {res.stdout}{res.stderr}") from exc
        lat = {d["percentage"]: d["latency"] / 1e6 for d in doc.get("latencyDistribution") or []}
        codes = doc.get("statusCodeDistribution") or {}
        # ghz cancels the calls in flight when the duration ends ("use of closed network
        # connection", at most one per worker): an artefact of stopping, not a server error.
        dist = doc.get("errorDistribution") or {}
        cut = sum(v for k, v in dist.items() if "closed network connection" in k)
        errors = sum(v for k, v in codes.items() if k != "OK") - cut
        if errors:
            log(f"{server.name} grpc errors: {doc.get('errorDistribution')}")
        m = (float(doc["rps"]), lat.get(50, 0.0), lat.get(99, 0.0))
    else:
        cmd = ["taskset", "-c", str(load_cpu), "wrk", "-t1", f"-c{conc}", f"-d{max(1, round(seconds))}s",
               "--timeout", "5s",
               "-s", str(LUA), f"http://127.0.0.1:{server.http}/v2/models/{NAME}/infer"]
        env = {**os.environ, "BODY_FILE": str(files["rest"]), "HEADER_LENGTH": str(hlen)}
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False, env=env)
        line = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")), None)
        if line is None:
            raise RuntimeError(f"wrk failed: {res.stdout}{res.stderr}")
        kv = dict(p.split("=") for p in line.split()[1:])
        errors = int(kv["errors"])
        m = (float(kv["rps"]), int(kv["p50_us"]) / 1e3, int(kv["p99_us"]) / 1e3)
    elapsed = time.monotonic() - t0
    busy, grp = busy_jiffies() - b0, group_jiffies(pgid) - g0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_s = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    srv = grp / HZ / elapsed * 100
    other = max(0.0, ((busy - grp) / HZ - load_s) / elapsed * 100)  # neither server nor load generator
    return Measurement(rps=m[0], p50_ms=m[1], p99_ms=m[2], errors=errors, srv_cpu=srv, other_cpu=other)


# --- run and report ------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="ours,kserve,mlserver")
    ap.add_argument("--transports", default="grpc,rest-binary")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--concs", default="1,32")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--load-cpu", type=int, default=1)
    ap.add_argument("--quiet-wait", type=float, default=20.0)
    ap.add_argument("--port-base", type=int, default=18400)
    ap.add_argument("--servebench-home", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--servebench-cache", type=Path,
                    default=Path(os.environ.get("SERVEBENCH_CACHE", "/tmp/servebench-cache")))
    args = ap.parse_args()
    if not (args.servebench_cache / "models" / "candidate").is_dir():
        sys.exit(f"no peer models in {args.servebench_cache}: run PHASES='install train' "
                 f"{args.servebench_home}/bench_peers.sh first")
    if shutil.which("wrk") is None:
        sys.exit("wrk missing: apt-get install wrk")
    ghz = ghz_path()
    out = ROOT / ".cache" / "bench" / f"grpc-binary-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    batches = [int(b) for b in args.batches.split(",")]
    concs = [int(c) for c in args.concs.split(",")]
    transports = args.transports.split(",")
    names = args.servers.split(",")
    files: dict[tuple[int, bool], dict[str, Path]] = {}
    hlens: dict[tuple[int, bool], int] = {}
    for b in batches:
        for proba in (True, False):
            x = iris_rows(b)
            g = out / f"grpc-b{b}-{int(proba)}.bin"
            g.write_bytes(grpc_request(x, proba).SerializeToString())
            body, hlen = rest_body(x, proba)
            r = out / f"rest-b{b}-{int(proba)}.bin"
            r.write_bytes(body)
            files[(b, proba)], hlens[(b, proba)] = {"grpc": g, "rest": r}, hlen
    import xgboost

    booster = xgboost.Booster(model_file=str(args.servebench_cache / "models" / "candidate" / "model.json"))
    expected = {b: np.asarray(booster.inplace_predict(iris_rows(b))).argmax(axis=1).tolist() for b in batches}

    raw = (out / "raw.tsv").open("w")
    raw.write("rep\tserver\ttransport\tbatch\tconc\trps\tp50_ms\tp99_ms\terrors\tsrv_cpu\tother_cpu\n")
    results: dict[tuple[str, str, int, int], list[Measurement]] = defaultdict(list)
    for rep in range(args.reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for i, name in enumerate(order):
            server = SERVERS[name]
            server.http = args.port_base + 10 * i
            server.grpc = server.http + 1
            quiet_wait(args.quiet_wait)
            try:
                start(server, args.servebench_home, args.servebench_cache, args.server_cpu, out, f"rep{rep}")
                for transport in (t for t in transports if t in server.transports):
                    for b in batches:
                        f, hlen = files[(b, server.asks_proba)], hlens[(b, server.asks_proba)]
                        check(server, transport, iris_rows(b), expected[b])
                        if args.warmup:
                            measure(server, transport, f, hlen, 32, args.warmup, args.load_cpu, ghz)
                        for c in concs:
                            m = measure(server, transport, f, hlen, c, args.duration, args.load_cpu, ghz)
                            results[(name, transport, b, c)].append(m)
                            raw.write(f"{rep}\t{name}\t{transport}\t{b}\t{c}\t{m.rps:.1f}\t{m.p50_ms:.3f}\t"
                                      f"{m.p99_ms:.3f}\t{m.errors}\t{m.srv_cpu:.0f}\t{m.other_cpu:.0f}\n")
                            raw.flush()
                            log(f"rep{rep} {name} {transport} b{b} c{c}: {m.rps:,.0f} req/s "
                                f"p50 {m.p50_ms:.2f} ms p99 {m.p99_ms:.2f} ms errors {m.errors} "
                                f"srv {m.srv_cpu:.0f}% other {m.other_cpu:.0f}%")
            finally:
                stop(server)
    raw.close()
    print(report(results, names, transports, batches, concs, args))
    log(f"results in {out}")
    return 0


def _med(ms: list[Measurement], key: str) -> float:
    return statistics.median(getattr(m, key) for m in ms)


def _spread(ms: list[Measurement]) -> str:
    rps = [m.rps for m in ms]
    med = statistics.median(rps)
    return f"±{(max(rps) - min(rps)) / 2 / med * 100:.0f}%" if len(rps) > 1 and med else ""


def report(results: dict[tuple[str, str, int, int], list[Measurement]], names: list[str],
           transports: list[str], batches: list[int], concs: list[int], args: argparse.Namespace) -> str:
    lines = [f"{args.reps} reps x {args.duration:g} s per cell; medians; server on CPU {args.server_cpu}, "
             f"load on CPU {args.load_cpu}", ""]
    head = ["transport", "batch", "conc"]
    for n in names:
        head += [f"{SERVERS[n].label} req/s", "p50 ms", "p99 ms", "srv CPU%"]
    head += [f"ours / {SERVERS[n].label}" for n in names if n != "ours"]
    head += [f"ours / {SERVERS[n].label} per core-s" for n in names if n != "ours"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in transports:
        for b in batches:
            for c in concs:
                row: list[str] = [t, str(b), str(c)]
                per_core: dict[str, float] = {}
                rps: dict[str, float] = {}
                for n in names:
                    ms = results.get((n, t, b, c))
                    if not ms:
                        row += ["-", "", "", ""]
                        continue
                    rps[n] = _med(ms, "rps")
                    per_core[n] = statistics.median(m.rps / max(m.srv_cpu, 1) * 100 for m in ms)
                    errs = sum(m.errors for m in ms)
                    row += [f"{rps[n]:,.0f} {_spread(ms)}" + (f" ({errs} errors)" if errs else ""),
                            f"{_med(ms, 'p50_ms'):.2f}", f"{_med(ms, 'p99_ms'):.2f}",
                            f"{_med(ms, 'srv_cpu'):.0f}"]
                for table in (rps, per_core):
                    for n in names:
                        if n == "ours":
                            continue
                        if "ours" in table and n in table:
                            row.append(f"{table['ours'] / table[n]:.1f}x")
                        else:
                            row.append("-")
                lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
