"""Keep a control-plane process running as a kubelet keeps a static pod running.

On a kubeadm cluster etcd and kube-apiserver are static pods: when one exits — a crash, an OOM
kill, ``kill -9`` — the kubelet starts it again, with the crash back-off it gives every
container: the first restart at once, each further one after a delay that doubles up to a cap,
and the count forgotten once the container has run long enough. Taking the manifest out of
``/etc/kubernetes/manifests`` stops it for good until the manifest is put back.

:class:`Supervised` is that, for one local process: :meth:`start`; :meth:`signal` (a test's
SIGKILL, after which it is restarted); :meth:`terminate` (a restart as the kubelet does one:
SIGTERM, SIGKILL after the grace period); :meth:`suspend` / :meth:`resume` (the manifest taken out
and put back: stopped, and not restarted meanwhile); :meth:`stop`. The watching runs in a thread
of its own, not in an asyncio task: the control plane outlives the event loop that started it
(a test session's control plane is started on a helper thread's loop). The same argv is run
every time, so the process comes back on the same ports, with the same data directory.

The back-off defaults are the kubelet's scaled to a sandbox (KEP-4603's proposed 1 s initial and
60 s cap rather than 10 s and 300 s): a test that kills a process waits seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import signal as signal_module
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RestartPolicy", "Supervised"]


@dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    """The kubelet's crash back-off, in seconds."""

    initial: float = 1.0
    """The delay before the second restart in a row (the first is immediate)."""
    cap: float = 60.0
    reset_after: float = 60.0
    """A process that ran this long before exiting is restarted at once again (the count resets)."""

    def delay(self, quick_exits: int) -> float:
        """The wait before restarting after the ``quick_exits``-th exit in a row (1 = the first)."""
        if quick_exits <= 1:
            return 0.0
        return min(self.cap, self.initial * 2.0 ** (quick_exits - 2))


Spawn = Callable[[], "subprocess.Popen[bytes]"]


class Supervised:
    """One process, restarted when it exits (see the module docstring)."""

    def __init__(self, name: str, spawn: Spawn, *, policy: RestartPolicy | None = None,
                 grace: float = 15.0) -> None:
        self.name = name
        self._spawn = spawn
        self.policy = policy or RestartPolicy()
        self.grace = grace
        self.restarts = 0
        """How many times the process was started again after it exited (not after resume)."""
        self.exits: list[int] = []
        """The exit status of each run that ended (negative: the signal that ended it)."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = False
        self._suspended = False
        self._thread: threading.Thread | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        with self._lock:
            return self._proc

    @property
    def pid(self) -> int | None:
        proc = self.proc
        return None if proc is None else proc.pid

    def running(self) -> bool:
        """A process is up right now."""
        proc = self.proc
        return proc is not None and proc.poll() is None

    def supervised(self) -> bool:
        """Started, not stopped and not suspended: an exit will be followed by a restart."""
        with self._lock:
            return self._thread is not None and not self._stopping and not self._suspended

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"{self.name} is already supervised")
            self._stopping = self._suspended = False
            self._proc = self._spawn()
            self._thread = threading.Thread(target=self._watch, name=f"supervise-{self.name}", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        quick = 0
        while True:
            with self._lock:
                proc = self._proc
            started = time.monotonic()
            if proc is not None:
                code = proc.wait()
                with self._lock:
                    self.exits.append(code)
                    self._changed.notify_all()
            with self._lock:
                # Suspended: wait for resume (which spawns) or stop; the process stays down.
                while self._suspended and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                if self._proc is not proc:  # resumed: a new process is already running
                    quick = 0
                    continue
            quick = 1 if time.monotonic() - started >= self.policy.reset_after else quick + 1
            with self._lock:
                self._changed.wait_for(lambda: self._stopping or self._suspended,
                                       timeout=self.policy.delay(quick))
                if self._stopping or self._suspended:
                    self._proc = None
                    continue
                self._proc = self._spawn()
                self.restarts += 1
                self._changed.notify_all()

    def signal(self, sig: int = signal_module.SIGKILL) -> int:
        """Send ``sig`` to the running process (it will be restarted); returns its pid."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"{self.name} is not running")
        proc.send_signal(sig)
        return proc.pid

    def _terminate(self, proc: subprocess.Popen[bytes] | None, grace: float | None = None) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(self.grace if grace is None else grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def terminate(self, *, grace: float | None = None) -> int:
        """Stop the running process as a kubelet stops a container — SIGTERM, SIGKILL after
        ``grace`` s (default: this process's grace period) — and let it be restarted; returns
        :attr:`restarts` before, for :meth:`restarted`."""
        with self._lock:
            proc, before = self._proc, self.restarts
        if proc is None or proc.poll() is not None:
            raise RuntimeError(f"{self.name} is not running")
        self._terminate(proc, grace)
        return before

    def suspend(self) -> None:
        """Stop the process and keep it stopped (the static pod's manifest taken away)."""
        with self._lock:
            self._suspended = True
            proc = self._proc
            self._changed.notify_all()
        self._terminate(proc)
        with self._lock:
            self._proc = None

    def resume(self) -> None:
        """Start it again after :meth:`suspend` (the manifest put back)."""
        with self._lock:
            if not self._suspended:
                return
            self._suspended = False
            self._proc = self._spawn()
            self._changed.notify_all()

    def stop(self) -> None:
        """Stop supervising, then stop the process (SIGTERM, SIGKILL after ``grace``)."""
        with self._lock:
            self._stopping = True
            proc, thread = self._proc, self._thread
            self._changed.notify_all()
        self._terminate(proc)
        if thread is not None:
            thread.join()
        with self._lock:
            self._proc, self._thread = None, None

    def wait_restarted(self, *, after: int, timeout: float) -> None:
        """Block until :attr:`restarts` exceeds ``after`` (a test's "it came back")."""
        with self._lock:
            if not self._changed.wait_for(lambda: self.restarts > after, timeout=timeout):
                raise TimeoutError(f"{self.name} was not restarted within {timeout:g} s")

    async def restarted(self, *, after: int, timeout: float) -> None:
        await asyncio.to_thread(self.wait_restarted, after=after, timeout=timeout)
