"""The control plane's supervision on plain processes: what a kubelet does for a static pod.

A process that exits is started again (the first time at once, the next ones after the back-off);
a suspended one stays down until resumed; a stopped one is never restarted. Real processes
(``sleep``), real signals; waits are on the supervision's own notifications, with no sleeps.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.realcp.supervise import RestartPolicy, Supervised

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[Supervised]:
    starts: list[int] = []

    def spawn() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(SLEEPER, stdin=subprocess.DEVNULL)
        starts.append(proc.pid)
        return proc

    s = Supervised("sleeper", spawn, policy=RestartPolicy(initial=0.2, cap=1.0, reset_after=60.0), grace=5)
    s.start()
    try:
        yield s
    finally:
        s.stop()


def test_a_killed_process_is_restarted_again_and_again(sleeper: Supervised) -> None:
    for n in range(3):  # the first restart at once, then 0.2 s, then 0.4 s
        pid = sleeper.signal(signal.SIGKILL)
        sleeper.wait_restarted(after=n, timeout=10)
        assert sleeper.pid != pid and sleeper.running()
    assert sleeper.exits == [-9, -9, -9] and sleeper.restarts == 3


def test_a_process_that_exits_by_itself_is_restarted(sleeper: Supervised) -> None:
    sleeper.signal(signal.SIGTERM)
    sleeper.wait_restarted(after=0, timeout=10)
    assert sleeper.exits == [-signal.SIGTERM] and sleeper.running()


def test_suspended_stays_down_until_resumed(sleeper: Supervised) -> None:
    pid = sleeper.pid
    sleeper.suspend()
    assert not sleeper.running() and not sleeper.supervised() and sleeper.proc is None
    sleeper.resume()
    assert sleeper.running() and sleeper.supervised() and sleeper.pid != pid
    assert sleeper.restarts == 0  # a resume is not a restart
    sleeper.signal(signal.SIGKILL)  # supervised again after the resume
    sleeper.wait_restarted(after=0, timeout=10)
    assert sleeper.running()


def test_stopped_is_never_restarted(sleeper: Supervised) -> None:
    proc = sleeper.proc
    sleeper.stop()
    assert proc is not None and proc.poll() is not None
    assert not sleeper.running() and not sleeper.supervised() and sleeper.restarts == 0
    with pytest.raises(RuntimeError, match="not running"):
        sleeper.signal(signal.SIGKILL)


STUBBORN = [sys.executable, "-c",
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(600)"]


def test_terminate_is_sigterm_then_sigkill_after_the_grace_and_a_restart() -> None:
    """A kubelet's restart of a container that ignores SIGTERM: killed after the grace period."""
    def spawn() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(STUBBORN, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        with proc.stdout:  # the child writes nothing more
            assert proc.stdout.readline() == b"ready\n"  # SIGTERM ignored from now on
        return proc

    s = Supervised("stubborn", spawn, policy=RestartPolicy(initial=0.2, cap=1.0, reset_after=60.0), grace=0.5)
    s.start()
    try:
        before = s.terminate(grace=0.3)
        s.wait_restarted(after=before, timeout=10)
        assert s.exits == [-signal.SIGKILL] and s.running()
    finally:
        s.stop()
    assert s.exits[-1] == -signal.SIGKILL  # stop() too had to SIGKILL it, after its own grace
