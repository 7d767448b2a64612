"""``--wait-for-model`` next to a large file it cannot load: CPU, memory and liveness while it waits.

    .venv/bin/python bench/serving/wait_for_model.py [--mb 600] [--seconds 10] [--src DIR]

Writes a JSON model file of ``--mb`` MiB that is cut short (its brackets never close: what a
copy still in progress leaves), starts ``python -m serving --wait-for-model`` on its directory
(``--src``: the source tree to run, default this one; e.g. a ``git archive`` of an older
commit, for the "before" figure), waits for its first "waiting for a model" log line, then for
``--seconds`` samples, every 0.1 s: the server's CPU time, its RSS and the latency of
``GET /v2/health/live``. Prints one table row (columns: source, file size, slowest liveness
answer during the first look, then over the window: CPU %, RSS range, liveness median and
maximum, "waiting" log lines); stops the server and removes the file.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def live_ms(base: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(base + "/v2/health/live", timeout=30) as r:
        r.read()
    return (time.perf_counter() - t0) * 1e3


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=int, default=600)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--src", type=Path, default=ROOT)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "models"
        model_dir.mkdir()
        with (model_dir / "model.json").open("wb") as f:
            f.write(b'{"learner": [')
            chunk = b"0," * (1 << 19)  # 1 MiB
            for _ in range(args.mb):
                f.write(chunk)
        log_path = Path(tmp) / "server.log"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = dict(os.environ, PYTHONPATH=str(args.src))
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "serving", "--model_dir", str(model_dir), "--model_name", "m",
                 "--http_port", str(port), "--grpc_port", "0", "--host", "127.0.0.1", "--wait-for-model"],
                cwd=args.src, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 120
            first: list[float] = []  # liveness while the first look reads and refuses the file
            while '"waiting for a model"' not in log_path.read_text():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"server did not start waiting: {log_path.read_text()[-2000:]}")
                try:
                    first.append(live_ms(base))
                except OSError:
                    pass  # not listening yet
                time.sleep(0.1)
            proc = psutil.Process(server.pid)
            cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
            rss: list[int] = []
            lat: list[float] = []
            while time.monotonic() - t0 < args.seconds:
                rss.append(proc.memory_info().rss)
                lat.append(live_ms(base))
                time.sleep(0.1)
            cpu = (sum(proc.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0) * 100
            waits = sum(1 for ln in log_path.read_text().splitlines()
                        if ln.startswith("{") and json.loads(ln)["event"] == "waiting for a model")
        finally:
            server.kill()
            server.wait(timeout=30)
    print(f"| {args.src} | {args.mb} MiB | {max(first, default=0):.0f} ms | {cpu:.0f} % "
          f"| {min(rss) / 2**20:.0f}-{max(rss) / 2**20:.0f} MB | {statistics.median(lat):.1f} ms "
          f"| {max(lat):.0f} ms | {waits} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
