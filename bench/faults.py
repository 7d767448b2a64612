"""Recovery after each fault of issue 23's suite, on the real control plane: a table of seconds.

A benchmark, not a test: ``python bench/faults.py [--rounds 3] [--fault NAME ...] [--outage 60]``.

Its own control plane (etcd, kube-apiserver, kube-controller-manager from ``make control-plane``,
supervised as a kubelet supervises static pods), the sandbox on it, two ``kserve-warden run``
replicas sharing one Lease: :class:`sandbox.demo.faults.FaultRig`, the driver
``tests/integration/test_real_faults.py`` asserts with. Per round and fault: a settled world, the
fault, the seed's first failure (the ServingRuntime deleted) injected as soon as the API answers
again (for the leader's SIGKILL, at once), and

* **down** — seconds from the fault to the API answering ``/readyz`` 200 again (0 for the
  leader's SIGKILL: the API never left);
* **heal** — seconds from then to the ServingRuntime back in the API (polled every 20 ms);
* **budget** — heal ≤ 5 s after the API is back; failover ≤ lease duration + 2 s;
* **actions** — ``acted`` lines over both daemons' logs since the fault (1 = exactly the heal).

Prints one markdown table (median and max of the rounds) and each round's figures on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox import Sandbox  # noqa: E402
from sandbox.demo.faults import FAULTS, FaultRig, Recovery  # noqa: E402
from sandbox.realcp import ControlPlane  # noqa: E402
from serving import logs  # noqa: E402


def table(results: dict[str, list[Recovery]], *, lease: float) -> str:
    rows = ["| fault | rounds | down (s) median | heal (s) median | heal (s) max | budget (s) | "
            "within budget | actions per fault |",
            "|---|---|---|---|---|---|---|---|"]
    for fault, runs in results.items():
        if not runs:
            continue
        heals = [r.heal for r in runs]
        within = sum(r.within_budget for r in runs)
        actions = sorted({len(r.actions) for r in runs})
        rows.append(f"| {fault} | {len(runs)} | {statistics.median(r.down for r in runs):.2f} | "
                    f"{statistics.median(heals):.2f} | {max(heals):.2f} | {runs[0].budget:g} | "
                    f"{within}/{len(runs)} | {', '.join(map(str, actions))} |")
    rows.append(f"\nlease duration {lease:g} s; {platform.processor() or platform.machine()}, "
                f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    return "\n".join(rows)


async def main(args: argparse.Namespace) -> int:
    logs.configure(fmt="console", level="warning")  # the sandbox's own lines: stderr, warnings only
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ksw-bench-faults-"))
    cp = ControlPlane(workdir=work / "cp")
    results: dict[str, list[Recovery]] = {f: [] for f in args.fault}
    lease = 15.0
    await cp.start()
    try:
        async with Sandbox(workdir=work / "sandbox", control_plane="real", shared_control_plane=cp) as sb:
            le = {"lease_duration_seconds": args.lease} if args.lease else None
            async with FaultRig(sb=sb, workdir=work / "rig", outage_seconds=args.outage,
                                restart_grace=args.grace, leader_election=le) as rig:
                for n in range(args.rounds):
                    for fault in args.fault:
                        r = await rig.run(fault)
                        results[fault].append(r)
                        print(f"round {n + 1} {fault}: down {r.down:.2f} s, heal {r.heal:.2f} s "
                              f"(budget {r.budget:g}), {len(r.actions)} action(s) by "
                              f"{sorted({a['by'] for a in r.actions})}, leader {r.leader_before} -> "
                              f"{r.leader_after}", file=sys.stderr, flush=True)
                lease = rig.lease_duration
    finally:
        await cp.stop()
    print(table(results, lease=lease))
    print(f"\nlogs: {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--fault", action="append", choices=FAULTS, help="default: all four")
    p.add_argument("--outage", type=float, default=60.0, help="seconds the API is down in api-outage")
    p.add_argument("--grace", type=float, default=30.0,
                   help="kube-apiserver-restart: SIGKILL this long after SIGTERM (the kubelet's default)")
    p.add_argument("--lease", type=int, default=0, help="lease_duration_seconds (default: the settings')")
    p.add_argument("--workdir", help="keep everything (logs of every process) here")
    a = p.parse_args()
    a.fault = a.fault or list(FAULTS)
    sys.exit(asyncio.run(main(a)))
