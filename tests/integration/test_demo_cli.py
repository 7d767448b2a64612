"""``kserve-warden demo`` as a user runs it: a subprocess, its JSON document, its exit code,
and nothing left behind in the temp dir."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def _demo_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("kserve-warden-demo-*")}


def test_demo_json_subset_heals_and_cleans_up() -> None:
    before = _demo_dirs()
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", "demo", "--json", "--scenario", "mesh-policy",
         "--scenario", "model-path"],
        capture_output=True, text=True, timeout=240, env=dict(os.environ), check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["all_healed"] is True
    by_name = {s["name"]: s for s in doc["scenarios"]}
    assert list(by_name) == ["mesh-policy", "model-path"]
    mesh = by_name["mesh-policy"]
    assert mesh["finding"] == "mesh-policy-denies" and mesh["detected"] and mesh["healed"]
    assert mesh["action"] == "apply AuthorizationPolicy/kubeflow/minio-user-namespace-access"
    assert 0 <= mesh["detect_seconds"] <= mesh["heal_seconds"]
    # No safe automatic heal: detected with its remedy stated, and the daemon did not act.
    path = by_name["model-path"]
    assert path["finding"] == "model-not-found" and path["detected"] and not path["auto_heal"]
    assert "s3://mlpipeline/" in path["remedy"] and path["action"] == "none (human)"
    assert _demo_dirs() <= before, "the demo left its temp dir behind"


def test_demo_rejects_an_unknown_scenario() -> None:
    proc = subprocess.run([sys.executable, "-m", "daemon", "demo", "--scenario", "dns"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "unknown scenario(s): dns" in proc.stderr


def _wait_for_line(proc: subprocess.Popen[str], text: str, *, limit: int = 400) -> None:
    assert proc.stdout is not None
    for _ in range(limit):  # bounded: the demo prints a few dozen lines before converging
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"demo exited before printing {text!r}: rc={proc.wait()}")
        if text in line:
            return
    raise AssertionError(f"{text!r} not printed")


def _daemon_children(demo_pid: int) -> list[int]:
    """PIDs of `python -m daemon run` processes whose parent is the demo."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == demo_pid and b"run" in cmd and b"daemon" in cmd:
            found.append(int(stat.parent.name))
    return found


def _interrupt_after_convergence(sig: int, expected_rc: int) -> None:
    before = _demo_dirs()
    proc = subprocess.Popen([sys.executable, "-m", "daemon", "demo", "--scenario", "image-pull"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_line(proc, "converged in")
        children = _daemon_children(proc.pid)
        assert children, "the demo's daemon subprocess was not found"
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == expected_rc
        assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], "daemon left running"
        assert _demo_dirs() <= before, "the demo left its temp dir behind"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def test_ctrl_c_stops_everything() -> None:
    _interrupt_after_convergence(signal.SIGINT, 130)


def test_sigterm_stops_everything() -> None:
    _interrupt_after_convergence(signal.SIGTERM, 143)
