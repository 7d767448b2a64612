"""What one gRPC request costs inside ``python -m serving``, against grpc.aio's own floor.

    .venv/bin/python bench/serving/grpc_floor.py                  # 3 interleaved reps x 4 s, batch 1 and 32
    PYTHONPATH=/tmp/pyinst .venv/bin/python bench/serving/grpc_floor.py --profile   # + pyinstrument

For measurements only (bench/README.md, issue 14). Three ways of answering the same
``ModelInfer`` request (raw FP32 ``[batch, 4]`` in, ``predict_proba`` out), each in this
process pinned to ``--server-cpu``, each loaded by ``ghz`` (concurrency 32, one connection)
pinned to ``--load-cpu``:

* ``floor``: a grpc.aio server with the same options whose handler returns a constant response
  (deserialising the request, serialising the answer): what grpc.aio costs by itself;
* ``server``: the real app (``serving.app.build_app`` with ``grpc_port``: REST and gRPC on one
  loop, the iris model, the micro-batcher, metrics);
* ``handler``: the real ``ModelInfer`` handler called in a loop without gRPC (parse, decode,
  model, encode, serialise): our own share.

Reported per request: CPU of the whole process (``time.process_time``) and of its main
(event-loop) thread, from ``/proc/self/task``. CPU per request does not depend on how much of
the core the server got, so it compares well on a shared machine; the reps are interleaved.
``--profile`` runs the real server once more under pyinstrument (``pip install --target
/tmp/pyinst pyinstrument``; it is not a project dependency) and prints the call tree.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc import aio

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from grpc_binary import ghz_path, grpc_request, iris_rows  # noqa: E402

from serving.grpc_gen import grpc_predict_v2_pb2 as pb  # noqa: E402

NAME = "iris"
PROTO = ROOT / "serving" / "grpc_gen" / "grpc_predict_v2.proto"
HZ = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main_thread_seconds() -> float:
    stat = Path(f"/proc/self/task/{os.getpid()}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / HZ


async def load(ghz: str, port: int, req_file: Path, seconds: float, cpu: int) -> int:
    cmd = ["taskset", "-c", str(cpu), ghz, "--insecure", "--proto", str(PROTO),
           "--call", "inference.GRPCInferenceService.ModelInfer", "-B", str(req_file), "-c", "32",
           "-z", f"{seconds}s", "--connections", "1", "--cpus", "1", "-O", "json", f"127.0.0.1:{port}"]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    doc = json.loads(out)
    return int((doc.get("statusCodeDistribution") or {}).get("OK", 0))


async def measure(run: Callable[[], Awaitable[int]]) -> tuple[float, float]:
    c0, m0 = time.process_time(), main_thread_seconds()
    n = await run()
    return (time.process_time() - c0) / n * 1e6, (main_thread_seconds() - m0) / n * 1e6


async def floor(ghz: str, req_file: Path, answer: bytes, args: argparse.Namespace) -> tuple[float, float]:
    response = pb.ModelInferResponse.FromString(answer)

    async def constant(request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        return response

    server = aio.server(options=[("grpc.max_receive_message_length", 8 << 20),
                                 ("grpc.max_send_message_length", -1), ("grpc.so_reuseport", 0)])
    handler = grpc.unary_unary_rpc_method_handler(
        constant, request_deserializer=pb.ModelInferRequest.FromString,
        response_serializer=lambda m: m.SerializeToString())
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {"ModelInfer": handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        return await measure(lambda: load(ghz, port, req_file, args.duration, args.load_cpu))
    finally:
        await server.stop(0)


async def real_server(ghz: str, req_file: Path, model_dir: Path, args: argparse.Namespace,
                      profile: bool = False) -> tuple[float, float]:
    from aiohttp import web

    from serving.app import build_app

    grpc_port = free_port()
    app = build_app(model_name=NAME, model_dir=model_dir, grpc_port=grpc_port, grpc_host="127.0.0.1")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", free_port()).start()
    try:
        if not profile:
            return await measure(lambda: load(ghz, grpc_port, req_file, args.duration, args.load_cpu))
        from pyinstrument import Profiler

        prof = Profiler(interval=0.0002)
        prof.start()
        result = await measure(lambda: load(ghz, grpc_port, req_file, args.duration, args.load_cpu))
        prof.stop()
        print(prof.output_text(unicode=True, color=False))
        return result
    finally:
        await runner.cleanup()


async def handler_alone(wire: bytes, model_dir: Path, n: int) -> tuple[float, float]:
    from prometheus_client import CollectorRegistry

    from serving.grpc_server import InferenceService, _handler
    from serving.metrics import ServingMetrics
    from serving.state import ModelSlot

    slot = ModelSlot(name=NAME, model_dir=model_dir, metrics=ServingMetrics(CollectorRegistry()))
    slot.load()
    call = _handler(slot, "ModelInfer", InferenceService(slot).ModelInfer)

    async def run() -> int:
        for _ in range(n):
            (await call(pb.ModelInferRequest.FromString(wire), None)).SerializeToString()
        return n

    return await measure(run)


async def main_async(args: argparse.Namespace) -> None:
    ghz = ghz_path()
    tmp = Path(tempfile.mkdtemp(prefix="grpc-floor-"))
    if args.model_dir is None:
        from serving.train import train

        args.model_dir = train(out=tmp / "model").model_path.parent
    rows: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for batch in args.batches:
        wire = grpc_request(iris_rows(batch), True).SerializeToString()  # what grpc_binary.py sends
        req_file = tmp / f"b{batch}.bin"
        req_file.write_bytes(wire)
        answer = pb.ModelInferResponse(model_name=NAME, id="x")
        answer.outputs.add(name="predict_proba", datatype="FP32", shape=[batch, 3])
        answer.raw_output_contents.append(np.zeros((batch, 3), np.float32).tobytes())
        for _ in range(args.reps):
            add = rows.setdefault
            add((batch, "floor"), []).append(await floor(ghz, req_file, answer.SerializeToString(), args))
            add((batch, "server"), []).append(await real_server(ghz, req_file, args.model_dir, args))
            add((batch, "handler"), []).append(await handler_alone(wire, args.model_dir, 3000))
        if args.profile:
            await real_server(ghz, req_file, args.model_dir, args, profile=True)
    print(f"CPU µs per ModelInfer request (median of {args.reps} interleaved reps; ghz -c 32, "
          f"{args.duration:g} s each)\n")
    print("| batch | grpc.aio floor (constant answer) | kserve-warden server | our handler alone | "
          "server - floor |")
    print("|---|---|---|---|---|")
    for batch in args.batches:
        med = {k: (statistics.median(a for a, _ in rows[(batch, k)]),
                   statistics.median(m for _, m in rows[(batch, k)])) for k in ("floor", "server", "handler")}
        print(f"| {batch} | {med['floor'][0]:.0f} (main thread {med['floor'][1]:.0f}) | "
              f"{med['server'][0]:.0f} (main thread {med['server'][1]:.0f}) | {med['handler'][0]:.0f} | "
              f"{med['server'][0] - med['floor'][0]:.0f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=None, help="default: train the iris model")
    ap.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[1, 32])
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--load-cpu", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    os.sched_setaffinity(0, {args.server_cpu})
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
