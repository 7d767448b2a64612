"""``kserve-warden demo``: the seed's afternoon, replayed against the sandbox and healed live.

The demo starts the sandbox in this process (the stand-in cluster, with the seed's
*starting* world), then the daemon as a real ``kserve-warden run`` subprocess talking to it
over a kubeconfig — no in-process shortcut. It waits until the daemon has converged (the
predictor answers the canary), then injects each failure through the sandbox and watches
the daemon from the outside, the way an operator would:

* detection and healing are read from the daemon's ``/metrics`` (``warden_findings``,
  ``warden_remediations_total``),
* explanation, evidence and remedy from its JSON log lines,
* "healed" means the finding cleared *and* the predictor answers the canary correctly again.

Everything lives in one temp dir that is removed on exit and on Ctrl-C (unless ``--keep``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sandbox.cluster import Sandbox
from sandbox.demo.report import Outcome, document, table
from sandbox.demo.scenarios import Scenario, select
from serving import logs

CANARY = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
CANARY_EXPECTED = 0
ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/user-example-com/inferenceservices/iris-model"
CONVERGE_TIMEOUT = 90.0
DETECT_TIMEOUT = 45.0
HEAL_TIMEOUT = 45.0
POLL = 0.02


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proxy(sb: Sandbox) -> str | None:
    return sb.clusternet.url if sb.clusternet is not None else None


class Progress:
    """A one-line spinner on a terminal; silent otherwise (and always with ``--json``)."""

    FRAMES = "|/-\\"

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._i = 0

    def tick(self, text: str) -> None:
        if self.enabled:
            self._i += 1
            sys.stderr.write(f"\r{self.FRAMES[self._i % 4]} {text}\x1b[K")
            sys.stderr.flush()

    def clear(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


class DaemonProcess:
    """The daemon as a subprocess; its JSON log lines are collected as they arrive."""

    def __init__(self, *, config: Path, kubeconfig: Path, metrics_port: int, log_path: Path,
                 name: str | None = None) -> None:
        self.config = config
        self.kubeconfig = kubeconfig
        self.metrics_port = metrics_port
        self.log_path = log_path
        self.name = name
        """Its identity in the leader Lease (``POD_NAME``); None: the daemon's own (host-pid)."""
        self.lines: list[dict[str, Any]] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    async def start(self) -> None:
        env = dict(os.environ, WARDEN_METRICS_PORT=str(self.metrics_port), PYTHONUNBUFFERED="1")
        if self.name is not None:
            env["POD_NAME"] = self.name
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "run", "--config", str(self.config),
            "--kubeconfig", str(self.kubeconfig), "--log-format", "json",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read(), name="demo-daemon-log")

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        with self.log_path.open("wb") as log:
            async for raw in self._proc.stderr:
                log.write(raw)
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(line, dict):
                    self.lines.append(line)

    @property
    def exited(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await self._proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                await self._proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def kill(self) -> None:
        """SIGKILL, as a node that dies or an OOM kill ends it: no release, no goodbye."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            await self._proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def all(self, since: int, *, event: str) -> list[dict[str, Any]]:
        """Log lines with this ``event`` logged since line ``since``."""
        return [line for line in self.lines[since:] if line.get("event") == event]

    def first(self, since: int, *, event: str, codes: tuple[str, ...]) -> dict[str, Any] | None:
        """The first ``event`` line since ``since`` about one of ``codes``."""
        for line in self.lines[since:]:
            if line.get("event") == event and line.get("code") in codes:
                return line
        return None


def _after(deadline: float) -> Any:
    async def done() -> bool:
        return time.monotonic() >= deadline

    return done


def logged_at(line: dict[str, Any], *, default: float) -> float:
    try:
        return datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00")).timestamp()
    except (KeyError, ValueError):
        return default


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape_metrics(session: aiohttp.ClientSession, url: str) -> Samples:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
        text = await r.text()
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def active_findings(m: Samples) -> dict[str, float]:
    codes: dict[str, float] = {}
    for (name, labels), v in m.items():
        if name == "warden_findings" and v > 0:
            code = dict(labels).get("code", "")
            codes[code] = codes.get(code, 0.0) + v
    return codes


class Demo:
    def __init__(
        self, *, scenarios: tuple[Scenario, ...], as_json: bool, keep: bool, control_plane: str = "embedded"
    ) -> None:
        self.control_plane = control_plane
        self.scenarios = scenarios
        self.as_json = as_json
        self.keep = keep
        self.progress = Progress(enabled=not as_json and sys.stderr.isatty())

    def say(self, text: str) -> None:
        if not self.as_json:
            self.progress.clear()
            print(text, flush=True)

    async def canary_ok(self, session: aiohttp.ClientSession, api_url: str, *, proxy: str | None) -> bool:
        """The model answers through its InferenceService's address (``proxy``: the sandbox's
        cluster network, for KServe's in-cluster Service URL on the real control plane)."""
        try:
            async with session.get(api_url + ISVC_PATH, timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status != 200:
                    return False
                isvc = await r.json()
            status = isvc.get("status") or {}
            url = (status.get("address") or {}).get("url") or status.get("url")
            if not url:
                return False
            # A session of its own: ``session`` carries the API's admin token, which is not the
            # model server's business.
            async with aiohttp.ClientSession() as plain, plain.post(
                    f"{url}/v1/models/iris-model:predict", json=CANARY, proxy=proxy,
                    timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status != 200:
                    return False
                body = await r.json()
            return bool(body.get("predictions") == [CANARY_EXPECTED])
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False

    async def _wait(self, what: str, cond: Any, timeout: float) -> float | None:
        t0 = time.monotonic()
        while (elapsed := time.monotonic() - t0) < timeout:
            if await cond():
                return elapsed
            self.progress.tick(f"{what} ({elapsed:.1f} s)")
            await asyncio.sleep(POLL)
        return None

    async def run(self) -> int:
        tmp = Path(tempfile.mkdtemp(prefix="kserve-warden-demo-"))
        sb = Sandbox(workdir=tmp / "sandbox", control_plane=self.control_plane)
        daemon: DaemonProcess | None = None
        outcomes: list[Outcome] = []
        try:
            self.say("starting the sandbox (Kubernetes API, S3 behind the mesh, DNS, controllers)...")
            await sb.start()
            cfg = tmp / "warden.yaml"
            sb.write_warden_config(cfg)
            daemon = DaemonProcess(config=cfg, kubeconfig=sb.kubeconfig_path, metrics_port=free_port(),
                                   log_path=tmp / "daemon.log")
            await daemon.start()
            self.say(f"sandbox API {sb.api_url}; daemon started (metrics {daemon.metrics_url})")
            # On the real control plane the API wants the admin's token and its CA.
            async with aiohttp.ClientSession(
                headers=sb.api_auth_headers(), connector=aiohttp.TCPConnector(ssl=sb.api_ssl())
            ) as session:
                took = await self._wait("waiting for the daemon to converge the seed's starting world",
                                        lambda: self.canary_ok(session, sb.api_url, proxy=_proxy(sb)),
                                        CONVERGE_TIMEOUT)
                if took is None:
                    self.say("the daemon did not converge the starting world; see " + str(daemon.log_path))
                    return 1
                self.say(f"converged in {took:.2f} s: desired state applied, predictor answers the canary")
                # Converging applied every desired object (some twice); the per-target back-off
                # holds a repeat on the same object for backoff_initial_seconds, doubling per
                # repeat. Let two steps of it pass first so each scenario shows the daemon's
                # reaction, not the guard's.
                backoff = 2 * float(((yaml.safe_load(cfg.read_text()) or {}).get("remediation") or {})
                                    .get("backoff_initial_seconds", 0))
                await self._wait("letting the convergence's back-off expire",
                                 _after(time.monotonic() + backoff), backoff + 1)
                for sc in self.scenarios:
                    outcomes.append(await self._scenario(sc, sb, daemon, session))
            doc = document(outcomes)
            if self.as_json:
                print(json.dumps(doc, indent=2))
            else:
                self.say("")
                self.say(table(outcomes))
            if self.keep:
                self.say(f"\n--keep: sandbox left running; kubeconfig {sb.kubeconfig_path}. Ctrl-C to stop.")
                await asyncio.Event().wait()
            return 0 if doc["all_healed"] else 1
        finally:
            self.progress.clear()
            if daemon is not None:
                await daemon.stop()
            await sb.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    async def _scenario(self, sc: Scenario, sb: Any, daemon: DaemonProcess,
                        session: aiohttp.ClientSession) -> Outcome:
        out = Outcome(scenario=sc)
        mark = len(daemon.lines)
        self.say(f"\n== {sc.name}: injecting the seed's failure")
        t0 = time.monotonic()
        t0_wall = time.time()
        await sb.inject(sc.name)

        async def detected() -> bool:
            # The log line comes first: a heal can finish between two scrapes of the gauge.
            return daemon.first(mark, event="finding", codes=sc.findings) is not None

        waited = await self._wait(f"{sc.name}: waiting for the daemon to name it", detected, DETECT_TIMEOUT)
        if waited is None:
            out.error = "not detected in time"
            self.say(f"   not detected within {DETECT_TIMEOUT:.0f} s")
            await sb.undo(sc.name)
            return out
        info = daemon.first(mark, event="finding", codes=sc.findings) or {}
        out.finding = str(info.get("code"))
        # When the daemon logged it, not when this loop noticed (the daemon's clock is ours).
        out.detect_seconds = logged_at(info, default=time.time()) - t0_wall
        out.explanation = str(info.get("explanation", ""))
        out.remedy = str(info.get("remedy", ""))
        out.evidence = [str(e) for e in info.get("evidence", [])][:4]
        self.say(f"   finding  {out.finding} ({info.get('severity')}) on {info.get('subject')}"
                 f" after {out.detect_seconds:.2f} s")
        for e in out.evidence:
            self.say(f"   evidence {e}")
        if out.explanation:
            self.say(f"   why      {out.explanation}")
        if out.remedy:
            self.say(f"   remedy   {out.remedy}")

        async def healed() -> bool:
            if daemon.first(mark, event="finding cleared", codes=(out.finding or "",)) is None:
                return False
            active = active_findings(await scrape_metrics(session, daemon.metrics_url))
            if any(code in active for code in sc.findings):
                return False
            return await self.canary_ok(session, sb.api_url, proxy=_proxy(sb))

        if sc.auto_heal:
            took = await self._wait(f"{sc.name}: waiting for the heal", healed, HEAL_TIMEOUT)
            if took is not None:
                out.heal_seconds = time.monotonic() - t0
        else:
            self.say("   no safe automatic heal: a human applies the remedy (the demo does it now)")
            await sb.undo(sc.name)
            await self._wait(f"{sc.name}: waiting for recovery", healed, HEAL_TIMEOUT)
        acted = daemon.all(mark, event="acted")
        # Only the guards on this scenario's own finding: the others are its symptoms.
        held = [d for d in daemon.all(mark, event="decision")
                if d.get("verdict") not in ("allowed", "dry-run") and d.get("finding") in sc.findings]
        out.action = ", ".join(dict.fromkeys(f"{a.get('action')} {a.get('target')}" for a in acted)) or (
            "none (human)" if not sc.auto_heal else None)
        for a in acted:
            self.say(f"   action   {a.get('action')} {a.get('target')}: {a.get('result')} ({a.get('why')})")
        for d in held[:3]:
            self.say(f"   held     {d.get('finding')}: {d.get('verdict')} ({d.get('why')})")
        if out.heal_seconds is not None:
            self.say(f"   healed   after {out.heal_seconds:.2f} s; the canary is answered correctly again")
        elif sc.auto_heal:
            out.error = "not healed in time"
            self.say(f"   NOT healed within {HEAL_TIMEOUT:.0f} s; undoing the injection")
            await sb.undo(sc.name)
            await self._wait(f"{sc.name}: waiting for recovery", healed, HEAL_TIMEOUT)
        return out


def demo_command(args: argparse.Namespace) -> int:
    try:
        scenarios = select(list(args.scenario))
    except ValueError as e:
        print(f"kserve-warden demo: {e}", file=sys.stderr)
        return 2
    logs.configure(fmt=args.log_format, level=args.log_level)
    demo = Demo(scenarios=scenarios, as_json=bool(args.json), keep=bool(args.keep),
                control_plane=getattr(args, "control_plane", "embedded"))
    try:
        return asyncio.run(_run_until_signalled(demo))
    except KeyboardInterrupt:
        print("\ninterrupted; everything the demo started has been stopped", file=sys.stderr)
        return 130


async def _run_until_signalled(demo: Demo) -> int:
    """Run the demo; SIGTERM (like Ctrl-C) cancels it so its ``finally`` stops the daemon
    subprocess and the sandbox and removes the temp dir — the default SIGTERM action would
    kill this process and orphan the daemon, which runs in its own session."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    terminated = False

    def on_term() -> None:
        nonlocal terminated
        terminated = True
        task.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_term)
    try:
        return await demo.run()
    except asyncio.CancelledError:
        if not terminated:
            raise
        print("\nterminated; everything the demo started has been stopped", file=sys.stderr)
        return 143
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
