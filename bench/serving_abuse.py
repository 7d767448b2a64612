"""Abuse load on the model server: slow clients, large bodies, error floods. Bounded, loopback only.

A benchmark, not a test: ``python bench/serving_abuse.py [--slow-clients 3000] [--hold 25]``.
It trains the iris model into a temp dir, starts ``python -m serving`` as a subprocess on a
free loopback port (``--server-cwd`` picks the checkout whose ``serving`` runs, so the same
script measures an older commit; ``--server-arg`` passes flags through), and runs four phases,
each bounded in count and time; then it stops the server and prints one JSON document:

1. ``baseline`` — p50/p99 of normal V1 requests (one row) from ``--workers`` closed-loop
   clients on keep-alive connections, and from as many clients opening a new connection per
   request, with nothing else going on.
2. ``slow_clients`` — ``--slow-clients`` connections that each send half a request header and
   then nothing, held for ``--hold`` seconds while the same normal clients run. Reported:
   the server's open file descriptors (peak, sampled from ``/proc/PID/fd`` every 100 ms),
   how many slow connections the server had closed by the end, and the normal requests'
   p50/p99 and errors during the hold.
3. ``big_bodies`` — ``--big-bodies`` concurrent V1 bodies of ``--body-mb`` MB each (iris rows);
   peak RSS is the server's ``VmHWM`` after resetting it through ``/proc/PID/clear_refs``.
4. ``errors`` — ``--errors`` each of: JSON nested 1,000 deep, a ``Content-Encoding: gzip``
   body that is not gzip, and malformed HTTP carrying a marker; reported: statuses, the bytes
   and lines the server wrote to stderr during the phase, whether every line is one JSON
   object, and whether the marker appears in the log.
5. ``grpc_memory`` — ``--grpc-calls`` concurrent gRPC ``ModelInfer`` calls on one channel, each
   a raw FP32 tensor of ``--body-mb`` MB (iris rows, only the ``predict`` output asked for);
   reported: the status codes and the server's peak RSS, measured as in ``big_bodies``, so the
   two protocols compare directly (run ``big_bodies`` with ``--big-bodies`` equal to it).
6. ``slow_body_flood`` — ``--flood`` connections each send a complete V1 request header with
   ``Content-Length: 1000`` and then one body byte every ``--flood-interval`` seconds, and
   reconnect whenever the server closes them; after all are in, a new client sends one normal
   request every ``--flood-hold / --flood-tries`` seconds (each on a new connection, 5 s to
   answer). Reported: the new clients' statuses, how often the server closed a flooding
   connection and after how long.

The load generator is Python too: on a small machine pin the two apart (``--server-cpu 0
--client-cpu 1``), as ``bench/serving/run.sh`` does with wrk. Nothing leaves loopback; every
socket is closed and the server stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serving.train import train  # noqa: E402

NAME = "iris"
ROW = b"[5.1,3.5,1.4,0.2]"
ONE = b'{"instances":[' + ROW + b"]}"
MARKER = b"ABUSE-MARKER-7f3a"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(body: bytes, *, path: str = f"/v1/models/{NAME}:predict", extra: bytes = b"") -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n").encode()
    return head + extra + b"\r\n" + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def _one_shot(port: int, payload: bytes, timeout: float = 30.0) -> int:
    """One request on a fresh connection; the status, or -1 on a connection error/timeout."""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            return await _read_response(reader)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
        return -1
    finally:
        if writer is not None:
            writer.close()


class Normal:
    """Closed-loop normal clients: keep-alive ones and new-connection-per-request ones."""

    def __init__(self, port: int, workers: int) -> None:
        self.port, self.workers = port, workers
        self.lat: dict[str, list[float]] = {"keepalive": [], "fresh": []}
        self.errors: dict[str, int] = {"keepalive": 0, "fresh": 0}
        self._stop = asyncio.Event()

    async def _keepalive(self) -> None:
        payload = _request(ONE)
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                self.errors["keepalive"] += 1
                continue
            try:
                while not self._stop.is_set():
                    t0 = time.perf_counter()
                    writer.write(payload)
                    async with asyncio.timeout(30):
                        status = await _read_response(reader)
                    self.lat["keepalive"].append(time.perf_counter() - t0)
                    if status != 200:
                        self.errors["keepalive"] += 1
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                self.errors["keepalive"] += 1
            finally:
                writer.close()

    async def _fresh(self) -> None:
        payload = _request(ONE)
        while not self._stop.is_set():
            t0 = time.perf_counter()
            status = await _one_shot(self.port, payload)
            if status == 200:
                self.lat["fresh"].append(time.perf_counter() - t0)
            else:
                self.errors["fresh"] += 1

    async def run_for(self, seconds: float) -> dict[str, Any]:
        self.lat = {"keepalive": [], "fresh": []}
        self.errors = {"keepalive": 0, "fresh": 0}
        self._stop.clear()
        tasks = [asyncio.create_task(self._keepalive()) for _ in range(self.workers)]
        tasks += [asyncio.create_task(self._fresh()) for _ in range(self.workers)]
        await asyncio.sleep(seconds)
        self._stop.set()
        await asyncio.wait(tasks, timeout=35)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {kind: _stats(self.lat[kind], self.errors[kind]) for kind in ("keepalive", "fresh")}


def _stats(lat: list[float], errors: int) -> dict[str, Any]:
    if len(lat) < 2:
        return {"requests": len(lat), "errors": errors}
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"requests": len(lat), "errors": errors, "p50_ms": round(q[49] * 1000, 2),
            "p99_ms": round(q[98] * 1000, 2), "max_ms": round(max(lat) * 1000, 2)}


async def _grpc_memory(grpc_port: int, pid: int, count: int, body_mb: float) -> dict[str, Any]:
    import grpc
    import numpy as np

    from serving.grpc_gen import grpc_predict_v2_pb2 as pb
    from serving.grpc_gen.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    rows = int(body_mb * 1_000_000) // 16  # four float32 features a row
    arr = np.tile(np.array([5.1, 3.5, 1.4, 0.2], dtype=np.float32), (rows, 1))
    request = pb.ModelInferRequest(
        model_name=NAME, inputs=[pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="FP32",
                                                                       shape=arr.shape)],
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="predict")],
        raw_input_contents=[arr.tobytes()])
    size = request.ByteSize()
    rss_before = _status_kb(pid, "VmRSS")
    _reset_peak_rss(pid)
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    t0 = time.monotonic()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}", options=options) as channel:
        stub = GRPCInferenceServiceStub(channel)

        async def call() -> str:
            try:
                await stub.ModelInfer(request, timeout=120)
            except grpc.aio.AioRpcError as exc:
                return str(exc.code().name)
            return "OK"

        codes = await asyncio.gather(*(call() for _ in range(count)))
    elapsed = time.monotonic() - t0
    peak = _status_kb(pid, "VmHWM")
    return {"calls": count, "message_bytes": size, "rows_each": rows, "codes": _count(list(codes)),
            "rss_before_mb": round(rss_before / 1024), "rss_peak_mb": round(peak / 1024),
            "rss_growth_per_call_mb": round((peak - rss_before) / 1024 / count, 2),
            "elapsed_s": round(elapsed, 2)}


async def _slow_body_flood(port: int, count: int, interval: float, hold: float,
                           tries: int) -> dict[str, Any]:
    head = (f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n").encode()
    stop = asyncio.Event()
    counts = {"connected": 0, "connect_failed": 0, "closed_by_server": 0}
    lifetimes: list[float] = []
    established = asyncio.Event()
    first_round: list[int] = []

    async def attacker() -> None:
        first = True
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(head)
            except OSError:
                counts["connect_failed"] += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await stop.wait()
                continue
            counts["connected"] += 1
            if first:
                first = False
                first_round.append(1)
                if len(first_round) == count:
                    established.set()
            opened = time.monotonic()
            try:
                while not stop.is_set():
                    try:
                        async with asyncio.timeout(interval):
                            data = await reader.read(65536)
                    except TimeoutError:
                        writer.write(b" ")  # one more body byte (JSON whitespace)
                        await writer.drain()
                        continue
                    if not data:  # the server closed the connection
                        counts["closed_by_server"] += 1
                        lifetimes.append(time.monotonic() - opened)
                        break
            except OSError:
                counts["closed_by_server"] += 1
                lifetimes.append(time.monotonic() - opened)
            finally:
                writer.close()

    attackers = [asyncio.create_task(attacker()) for _ in range(count)]
    statuses: list[int] = []
    try:
        async with asyncio.timeout(60):
            await established.wait()
        t0 = time.monotonic()
        for i in range(tries):
            statuses.append(await _one_shot(port, _request(ONE), timeout=5))
            next_at = t0 + (i + 1) * hold / tries
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        stop.set()
        await asyncio.gather(*attackers, return_exceptions=True)
    return {"flood_connections": count, "byte_every_s": interval, "new_client_tries": tries,
            "over_s": hold, "new_client_statuses": _count(statuses),
            "new_client_success": f"{statuses.count(200)}/{tries}", **counts,
            "closed_after_s_p50": round(statistics.median(lifetimes), 2) if lifetimes else None}


def _fds(pid: int) -> int:
    try:
        return sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return -1


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


async def _sample(pid: int, out: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        out.append(_fds(pid))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.1):
                await stop.wait()


async def _slow_clients(port: int, pid: int, normal: Normal, count: int, hold: float) -> dict[str, Any]:
    fds: list[int] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample(pid, fds, stop))
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    refused = 0
    t0 = time.monotonic()
    for i in range(count):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            refused += 1
            continue
        half = f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: {i}\r\n"
        writer.write(half.encode())
        conns.append((reader, writer))
    opened_in = time.monotonic() - t0
    closed_at: list[float] = []

    async def watch(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            await reader.read()  # returns at EOF, i.e. when the server closes the connection
        closed_at.append(time.monotonic() - t0)

    watchers = [asyncio.create_task(watch(r)) for r, _ in conns]
    under = await normal.run_for(hold)
    stop.set()
    await sampler
    for t in watchers:
        t.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    for _, w in conns:
        w.close()
    return {
        "slow_clients": count, "connect_failed": refused, "opened_in_s": round(opened_in, 2), "hold_s": hold,
        "server_fds_peak": max(fds), "server_fds_end": fds[-1],
        "closed_by_server": len(closed_at),
        "closed_by_server_p50_s": round(statistics.median(closed_at), 2) if closed_at else None,
        "normal_under_load": under,
    }


async def _big_bodies(port: int, pid: int, count: int, body_mb: float) -> dict[str, Any]:
    rows = int(body_mb * 1_000_000) // (len(ROW) + 1)
    body = b'{"instances":[' + b",".join([ROW] * rows) + b"]}"
    rss_before = _status_kb(pid, "VmRSS")
    _reset_peak_rss(pid)
    t0 = time.monotonic()
    payload = _request(body)
    statuses = await asyncio.gather(*(_one_shot(port, payload, timeout=120) for _ in range(count)))
    elapsed = time.monotonic() - t0
    return {"bodies": count, "body_bytes": len(body), "rows_each": rows, "statuses": _count(statuses),
            "rss_before_mb": round(rss_before / 1024), "rss_peak_mb": round(_status_kb(pid, "VmHWM") / 1024),
            "elapsed_s": round(elapsed, 2)}


def _reset_peak_rss(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def _log_since(path: Path, offset: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read()


def _size(path: Path) -> int:
    return path.stat().st_size


def _count(statuses: list[int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in statuses:
        out[str(s)] = out.get(str(s), 0) + 1
    return out


async def _errors(port: int, stderr: Path, count: int) -> dict[str, Any]:
    deep = b'{"instances":' + b"[" * 1000 + b"]" * 1000 + b"}"
    cases: dict[str, bytes] = {
        "deep_json": _request(deep),
        "bad_gzip": _request(b"this is not gzip " + MARKER, extra=b"Content-Encoding: gzip\r\n"),
        "malformed_http": b"GET /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 1" + MARKER + b"\r\n\r\n",
    }
    out: dict[str, Any] = {}
    for name, payload in cases.items():
        start = _size(stderr)
        statuses: list[int] = []
        for _ in range(count // 50):
            statuses += await asyncio.gather(*(_one_shot(port, payload) for _ in range(50)))
        await asyncio.sleep(0.5)  # let the server finish writing its log lines
        raw = _log_since(stderr, start)
        lines = raw.splitlines()
        json_lines = 0
        for line in lines:
            with contextlib.suppress(ValueError):
                if isinstance(json.loads(line), dict):
                    json_lines += 1
        out[name] = {"requests": len(statuses), "statuses": _count(statuses), "stderr_bytes": len(raw),
                     "stderr_lines": len(lines), "non_json_lines": len(lines) - json_lines,
                     "marker_in_log": MARKER in raw}
    return out


async def _wait_ready(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        status = await _one_shot(port, b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2)
        if status == 200:
            return
        await asyncio.sleep(0.2)
    raise SystemExit("server not ready in time")


async def _wait_grpc(grpc_port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    import grpc

    from serving.grpc_gen import grpc_predict_v2_pb2 as pb
    from serving.grpc_gen.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}")
            with contextlib.suppress(grpc.aio.AioRpcError):
                if (await stub.ServerReady(pb.ServerReadyRequest(), timeout=2)).ready:
                    return
            await asyncio.sleep(0.2)
    raise SystemExit("gRPC not ready in time")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    port, grpc_port = _free_port(), _free_port()
    proc, cmd, stderr = _start_server(args, port, grpc_port)
    result: dict[str, Any] = {"command": " ".join(sys.argv), "server": " ".join(cmd[1:]),
                              "server_cwd": str(args.server_cwd)}
    try:
        await _wait_ready(port, proc, time.monotonic() + 60)
        normal = Normal(port, args.workers)
        await _wait_grpc(grpc_port, proc, time.monotonic() + 60)
        phases: dict[str, Callable[[], Awaitable[Any]]] = {
            "baseline": lambda: normal.run_for(args.baseline),
            "slow_clients": lambda: _slow_clients(port, proc.pid, normal, args.slow_clients, args.hold),
            "big_bodies": lambda: _big_bodies(port, proc.pid, args.big_bodies, args.body_mb),
            "errors": lambda: _errors(port, stderr, args.errors),
            "grpc_memory": lambda: _grpc_memory(grpc_port, proc.pid, args.grpc_calls, args.body_mb),
            "slow_body_flood": lambda: _slow_body_flood(port, args.flood, args.flood_interval,
                                                        args.flood_hold, args.flood_tries),
        }
        for name in args.phases:
            result[f"server_fds_before_{name}"] = _fds(proc.pid)
            async with asyncio.timeout(args.hold + args.baseline + 180):
                result[name] = await phases[name]()
            print(f"{name}: {json.dumps(result[name])}", file=sys.stderr)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        result["server_stderr_bytes_total"] = _size(stderr)
    return result


def _start_server(args: argparse.Namespace, port: int,
                  grpc_port: int) -> tuple[subprocess.Popen[bytes], list[str], Path]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this side holds --slow-clients sockets
    tmp = Path(tempfile.mkdtemp(prefix="serving-abuse-"))
    train(out=tmp / "model", seed=42)
    stderr = tmp / "server.stderr"
    cmd = [args.python, "-m", "serving", "--model_dir", str(tmp / "model"), "--model_name", NAME,
           "--http_port", str(port), "--grpc_port", str(grpc_port), "--host", "127.0.0.1", *args.server_arg]
    cpu = args.server_cpu
    with stderr.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=args.server_cwd, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=None if cpu is None else lambda: os.sched_setaffinity(0, {cpu}))
    return proc, cmd, stderr


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slow-clients", type=int, default=3000)
    p.add_argument("--hold", type=float, default=25.0, help="seconds the slow clients are held")
    p.add_argument("--baseline", type=float, default=10.0, help="seconds of normal load alone")
    p.add_argument("--workers", type=int, default=4, help="normal clients of each kind")
    p.add_argument("--big-bodies", type=int, default=16)
    p.add_argument("--body-mb", type=float, default=7.9)
    p.add_argument("--errors", type=int, default=1000, help="requests per error kind (multiple of 50)")
    p.add_argument("--grpc-calls", type=int, default=64, help="concurrent gRPC calls of --body-mb each")
    p.add_argument("--flood", type=int, default=1000, help="slow-body connections")
    p.add_argument("--flood-interval", type=float, default=5.0, help="seconds between their body bytes")
    p.add_argument("--flood-hold", type=float, default=28.0, help="seconds new clients try during the flood")
    p.add_argument("--flood-tries", type=int, default=20, help="new-client requests during the flood")
    phases = ["baseline", "slow_clients", "big_bodies", "errors", "grpc_memory", "slow_body_flood"]
    p.add_argument("--phases", nargs="+", default=phases[:4], choices=phases)
    p.add_argument("--server-cpu", type=int, default=None, help="pin the server to this CPU")
    p.add_argument("--client-cpu", type=int, default=None, help="pin this load generator to this CPU")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--server-cwd", type=Path, default=ROOT, help="checkout whose serving/ runs")
    p.add_argument("--server-arg", action="append", default=[], help="extra server flag (repeatable)")
    args = p.parse_args()
    if args.client_cpu is not None:
        os.sched_setaffinity(0, {args.client_cpu})
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
