"""Heal latency per seed scenario: the real daemon subprocess against one sandbox, N injections each.

A benchmark, not a test: ``python bench/heal_latency.py [--rounds 20] [--scenario NAME ...]``.

One sandbox, one ``kserve-warden run`` subprocess (the demo's :class:`sandbox.demo.run.DaemonProcess`,
talking to the sandbox over its kubeconfig) with the sandbox's settings except the guards that
exist to slow repeated actions down: ``backoff_initial_seconds: 0`` (no per-target back-off)
and budgets large enough for ``--rounds`` injections of everything (the tests cover the guards;
this measures the loop).

Per round: wait for a settled world (no active finding on ``/metrics``, the canary answered
correctly), inject, then measure from just before the injection:

* **detect** — the daemon's first ``finding`` log line for the scenario, at the time the daemon
  logged it (its ``timestamp``; same machine, same clock);
* **heal** — the first moment this script sees the ``finding cleared`` line *and* a correct canary
  prediction (setosa → class 0) from the predictor at ``status.address.url`` (polled every 10 ms,
  so heal times carry up to ~10 ms of polling);
* for ``dns-timeout``, also **decided**: the ``acted restart-coredns`` line, in seconds and in
  DNS probe periods (budget: within 3);
* ``model-path`` has no safe automatic heal: detect only; the script then undoes it (the person).

Prints one markdown table. Percentiles are nearest-rank over the rounds (p99 of 20 is the max).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import yaml  # noqa: E402

from sandbox import Sandbox  # noqa: E402
from sandbox.demo.run import DaemonProcess, Demo, active_findings, free_port, logged_at, scrape_metrics  # noqa: E402
from sandbox.demo.scenarios import Scenario, select  # noqa: E402

SETTLE_TIMEOUT = 60.0
STEP_TIMEOUT = 45.0
POLL = 0.01
ACTION_KINDS = ("apply", "derive-secret", "remove-annotation", "delete-pod", "restart-coredns")


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of a non-empty list: the ceil(q·n)-th smallest."""
    s = sorted(xs)
    return s[min(len(s), max(1, math.ceil(q * len(s)))) - 1]


@dataclass
class Samples:
    scenario: Scenario
    codes: set[str] = field(default_factory=set)
    detect: list[float] = field(default_factory=list)
    heal: list[float] = field(default_factory=list)
    decide: list[float] = field(default_factory=list)
    missed: int = 0


class Bench:
    def __init__(self, *, sb: Sandbox, daemon: DaemonProcess, session: aiohttp.ClientSession,
                 dns_period: float) -> None:
        self.sb, self.daemon, self.session, self.dns_period = sb, daemon, session, dns_period
        # The demo's canary check (ISVC status.address.url, POST :predict, class 0), reused as is.
        self._demo = Demo(scenarios=(), as_json=True, keep=False)

    async def canary_ok(self) -> bool:
        return await self._demo.canary_ok(self.session, self.sb.api_url)

    async def settled(self) -> bool:
        if self.sb.dns.degraded:
            return False
        try:
            active = active_findings(await scrape_metrics(self.session, self.daemon.metrics_url))
        except (aiohttp.ClientError, TimeoutError):
            return False
        return not active and await self.canary_ok()

    async def wait(self, cond: Any, timeout: float, what: str) -> float:
        t0 = time.monotonic()
        while not await cond():
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            if self.daemon.exited is not None:
                raise RuntimeError(f"the daemon exited ({self.daemon.exited}); log: {self.daemon.log_path}")
            await asyncio.sleep(POLL)
        return time.monotonic() - t0

    async def step(self, cond: Any, out: Samples, what: str) -> bool:
        """Wait for ``cond``; on timeout count a miss and undo the injection (the next round starts clean)."""
        try:
            await self.wait(cond, STEP_TIMEOUT, f"{out.scenario.name} {what}")
        except TimeoutError:
            out.missed += 1
            await self.sb.undo(out.scenario.name)
            return False
        return True

    async def round(self, out: Samples) -> None:
        sc, d = out.scenario, self.daemon
        await self.wait(self.settled, SETTLE_TIMEOUT, "a settled world")
        mark = len(d.lines)
        t_wall, t_mono = time.time(), time.monotonic()
        await self.sb.inject(sc.name)

        async def detected() -> bool:
            return d.first(mark, event="finding", codes=sc.findings) is not None

        if not await self.step(detected, out, "detected"):
            return
        line = d.first(mark, event="finding", codes=sc.findings) or {}
        code = str(line.get("code"))
        out.codes.add(code)
        out.detect.append(logged_at(line, default=time.time()) - t_wall)
        if not sc.auto_heal:
            await self.sb.undo(sc.name)  # the person applies the stated remedy
            return

        async def healed() -> bool:
            return (d.first(mark, event="finding cleared", codes=(code,)) is not None
                    and await self.canary_ok())

        if not await self.step(healed, out, "healed"):
            return
        out.heal.append(time.monotonic() - t_mono)
        restart = next((a for a in d.all(mark, event="acted") if a.get("action") == "restart-coredns"), None)
        if restart is not None:
            out.decide.append(logged_at(restart, default=time.time()) - t_wall)


def bench_config(sb: Sandbox, path: Path, *, rounds: int) -> dict[str, Any]:
    cfg = sb.warden_config()
    budget = {"max_actions": 10 * rounds + 100, "window_seconds": 3600}
    cfg["remediation"] = {**cfg["remediation"], "backoff_initial_seconds": 0.0,
                          "budgets": {k: dict(budget) for k in ACTION_KINDS}}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return cfg


def ms(x: float) -> str:
    return f"{x * 1000:,.0f} ms" if x < 10 else f"{x:.1f} s"


def table(results: list[Samples], *, dns_period: float) -> str:
    rows = ["| scenario | finding | rounds | detect p50 | detect p99 | heal p50 | heal p99 | budget |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        sc = r.scenario
        n = len(r.detect)
        det = (ms(pct(r.detect, 0.5)), ms(pct(r.detect, 0.99))) if r.detect else ("-", "-")
        if not sc.auto_heal:
            heal, verdict = ("human", "human"), "no safe automatic heal: detect + remedy"
        elif r.heal:
            heal = (ms(pct(r.heal, 0.5)), ms(pct(r.heal, 0.99)))
            if r.decide:
                p50, p99 = pct(r.decide, 0.5), pct(r.decide, 0.99)
                ok = p99 / dns_period <= 3
                verdict = (f"restart decided p50 {p50:.2f} s = {p50 / dns_period:.1f} probe periods, "
                           f"p99 {p99:.2f} s = {p99 / dns_period:.1f} (≤ 3: {'met' if ok else 'MISSED'})")
            else:
                ok = pct(r.heal, 0.5) <= 0.5 and pct(r.heal, 0.99) <= 2.0
                verdict = f"p50 ≤ 0.5 s, p99 ≤ 2 s: {'met' if ok else 'MISSED'}"
        else:
            heal, verdict = ("-", "-"), "never healed"
        missed = f" ({r.missed} missed)" if r.missed else ""
        rows.append(f"| {sc.name} | {', '.join(sorted(r.codes)) or '-'} | {n}{missed} | {det[0]} | {det[1]} "
                    f"| {heal[0]} | {heal[1]} | {verdict} |")
    return "\n".join(rows)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=20, help="injections per scenario (default 20)")
    ap.add_argument("--scenario", action="append", default=[], help="only this scenario (repeatable)")
    ap.add_argument("--json", type=Path, help="also write the raw samples here")
    args = ap.parse_args()
    scenarios = select(args.scenario)
    tmp = Path(tempfile.mkdtemp(prefix="kserve-warden-bench-"))
    sb = Sandbox(workdir=tmp / "sandbox")
    daemon: DaemonProcess | None = None
    results: list[Samples] = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        await sb.start()
        cfg = bench_config(sb, tmp / "warden.yaml", rounds=args.rounds)
        dns_period = float(cfg["probes"]["dns"]["period_seconds"])
        daemon = DaemonProcess(config=tmp / "warden.yaml", kubeconfig=sb.kubeconfig_path,
                               metrics_port=free_port(), log_path=tmp / "daemon.log")
        await daemon.start()
        async with aiohttp.ClientSession() as session:
            b = Bench(sb=sb, daemon=daemon, session=session, dns_period=dns_period)
            took = await b.wait(b.settled, SETTLE_TIMEOUT, "the daemon to converge the starting world")
            print(f"converged in {took:.2f} s; {args.rounds} rounds per scenario", file=sys.stderr)
            for sc in scenarios:
                s = Samples(scenario=sc)
                for i in range(args.rounds):
                    await b.round(s)
                    print(f"\r{sc.name}: {i + 1}/{args.rounds}", end="", file=sys.stderr, flush=True)
                print(file=sys.stderr)
                results.append(s)
        print(f"started {started}; {platform.node()} "
              f"({platform.machine()}, Python {platform.python_version()}); "
              f"`python bench/heal_latency.py --rounds {args.rounds}`; DNS probe period {dns_period:g} s, "
              f"hysteresis {cfg['remediation']['dns_hysteresis']}\n")
        print(table(results, dns_period=dns_period))
        if args.json:
            args.json.write_text(json.dumps([{"scenario": r.scenario.name, "codes": sorted(r.codes),
                                              "detect": r.detect, "heal": r.heal, "decide": r.decide,
                                              "missed": r.missed} for r in results], indent=1))
        return 0 if all(not r.missed for r in results) else 1
    finally:
        if daemon is not None:
            await daemon.stop()
        await sb.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))
