"""The daemon under the faults issue 13 found (items 1-8), against the sandbox API over real sockets.

Each test reproduces one defect as a user met it and checks the behaviour that replaced it:
heals that never lock up after an escalation, a hand-edited derived secret taken back and no
heal claimed that did not happen, ``Retry-After`` honoured on writes, a relist when the API's
history is replaced, ``/readyz`` that reflects stale caches, bounded waits and one-line errors
for commands pointed at a closed port, a silent server or a broken kubeconfig.

In-process (informer, reconciler, ledger) where the test needs to see inside; the real
``kserve-warden`` entry point as a subprocess where the user-facing answer (exit code, one line)
is the point. Probe observations are fed in as data where a test needs one (storage 403).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.core.actions import Verdict
from daemon.core.findings import Code
from daemon.core.objects import ObjectRef
from daemon.core.resources import resource_for
from daemon.kube.informer import Informer
from daemon.process.loop import finding_work_key
from daemon.process.server import HealthState
from probes.observation import Observation
from sandbox.apiserver import ApiServer
from tests.conftest import ROOT, b64, free_port
from tests.integration.daemon_fixtures import api_server, eventually, kube_for
from tests.integration.test_daemon_loop import (
    ACCESS,
    NS,
    SECRET,
    SR,
    make_settings,
    running,
    sample,
    seed_world,
)

DERIVED = ObjectRef(api_version="v1", kind="Secret", namespace=NS, name="minio-s3-secret")
SOURCE = ("kubeflow", "mlpipeline-minio-artifact")
MODEL = f"{NS}/iris-model"
WRONG = "not-the-real-secret-key"
FAST = {"backoff_initial_seconds": 0.05, "backoff_max_seconds": 1.0, "verify_after_seconds": 0.3}


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with api_server() as s, kube_for(s.url, field_manager="seed") as w:
        await seed_world(w)
        yield s


async def derived_value(api: Any, key: str = "AWS_SECRET_ACCESS_KEY") -> str | None:
    try:
        secret = await api.core.read_namespaced_secret(DERIVED.name, NS)
    except Exception:
        return None
    return base64.b64decode((secret.data or {}).get(key, "")).decode() or None


def storage_rejects(now: float) -> Observation:
    """What the storage probe reports when the object store answers 403 to the credentials."""
    return Observation(probe="storage", target=MODEL, started=now - 0.1, finished=now, ok=False,
                       outcome="invalid-credentials",
                       evidence=("HeadObject: 403 Forbidden (SignatureDoesNotMatch)",),
                       details={"inferenceservice": MODEL})


# --- item 1: an escalation never locks a target ---------------------------------------------


async def test_an_escalation_ends_when_the_source_is_restored_or_the_derived_secret_deleted(
        server: ApiServer) -> None:
    async with running(server, settings=make_settings(**FAST)) as r:
        await r.idle()
        assert await derived_value(r.writer) == SECRET
        # Rotate the source badly: the daemon re-derives, storage answers 403, it escalates.
        await r.writer.core.patch_namespaced_secret(SOURCE[1], SOURCE[0], {"data": {"secretkey": b64(WRONG)}})
        await eventually(lambda: _eq(derived_value(r.writer), WRONG), what="derived the bad value")

        def observe() -> None:
            obs = storage_rejects(time.time())
            r.store.add(obs)
            r.rec.on_observation(obs)

        observe()
        await eventually(lambda: escalated(r), timeout=15, what="the 403 escalated")
        # Restore the source: the restored values are derived promptly (inputs changed).
        await r.writer.core.patch_namespaced_secret(SOURCE[1], SOURCE[0],
                                                    {"data": {"secretkey": b64(SECRET)}})
        await eventually(lambda: _eq(derived_value(r.writer), SECRET), timeout=15,
                         what="the restored source derived while the old finding was escalated")
        # The probe still says 403 (its next run is later): escalated again, on the new inputs.
        observe()
        await eventually(lambda: escalated(r), timeout=15, what="escalated again")
        # Delete the derived secret: re-created promptly, escalation or not.
        await r.writer.core.delete_namespaced_secret(DERIVED.name, NS)
        await eventually(lambda: _eq(derived_value(r.writer), SECRET), timeout=15,
                         what="the deleted derived secret re-created")
        # No retry storm meanwhile: the budget of derive-secret (10/h) was never exhausted.
        derives = [res for k, t, res in r.rec.stats.actions if k == "derive-secret"]
        assert 3 <= len(derives) <= 8, derives


async def _eq(value: Any, want: str) -> bool:
    return bool(await value == want)


def escalated(r: Any) -> bool:
    ev = r.rec.evaluate()
    return any(d.verdict is Verdict.ESCALATED and d.finding_key == (Code.STORAGE_CREDENTIALS_MISSING.value,
                                                                    str(DERIVED))
               for d in ev.decisions)


# --- item 2: a hand-edited derived secret is taken back; nothing claims a heal ----------------


async def hand_edit(server: ApiServer) -> None:
    """``kubectl patch secret minio-s3-secret ... AWS_ACCESS_KEY_ID=<wrong>`` (another manager)."""
    async with kube_for(server.url, field_manager="kubectl-patch") as person:
        await person.core.patch_namespaced_secret(
            DERIVED.name, NS, {"data": {"AWS_ACCESS_KEY_ID": b64("AKIAWRONGWRONGWRONG0")}},
            field_manager="kubectl-patch")


async def test_a_hand_edited_derived_secret_is_taken_back(server: ApiServer) -> None:
    async with running(server, settings=make_settings(**FAST)) as r:
        await r.idle()
        before = len(r.rec.stats.actions)
        await hand_edit(server)
        await eventually(lambda: _eq(derived_value(r.writer, "AWS_ACCESS_KEY_ID"), ACCESS), timeout=15,
                         what="the declared key taken back")
        await r.idle()
        done = [(k, res) for k, t, res in r.rec.stats.actions[before:] if t == str(DERIVED)]
        assert done and all(res == "success" for _, res in done), done


async def test_a_refused_heal_is_reported_as_refused_and_never_as_resolved(server: ApiServer) -> None:
    async with running(server, settings=make_settings(take_back_fields=False, **FAST)) as r:
        await r.idle()
        events_before = {e["metadata"]["name"] for e in await all_events(r)}
        await hand_edit(server)
        await eventually(lambda: any(res == "failure" for _, t, res in r.rec.stats.actions
                                     if t == str(DERIVED)), timeout=15, what="the derive refused")
        for _ in range(3):
            r.rec.queue.add("pass")
            await r.idle()
        assert await derived_value(r.writer, "AWS_ACCESS_KEY_ID") != ACCESS
        # Published as refused, with the API's reason; not as something about to happen.
        refused = [d for d in r.rec.evaluate().decisions
                   if d.action is not None and d.action.target == DERIVED]
        assert refused and all(d.verdict is Verdict.REFUSED for d in refused), refused
        assert "kubectl-patch" in refused[0].why
        # No Event claims the secret's finding resolved.
        new = [e for e in await all_events(r) if e["metadata"]["name"] not in events_before]
        claims = [e["message"] for e in new if e["type"] == "Normal" and "resolved" in e["message"]
                  and e["involvedObject"]["name"] == DERIVED.name]
        assert claims == []
        assert any(e["type"] == "Warning" and "could not derive-secret" in e["message"] for e in new)


async def all_events(r: Any) -> list[dict[str, Any]]:
    return list((await r.writer.list_objects(resource_for("v1", "Event"))).items)


# --- item 3: Retry-After is honoured on writes ---------------------------------------------


async def test_retry_after_on_a_write_is_never_cut_short(server: ApiServer) -> None:
    async with running(server, settings=make_settings(**FAST)) as r:
        await r.idle()
        server.faults.fail_next(3, status=429, retry_after=10, verb="patch", resource="servingruntimes")
        await r.writer.custom.delete_namespaced_custom_object("serving.kserve.io", "v1alpha1", NS,
                                                             "servingruntimes", SR.name)
        await eventually(lambda: server.faults.injected >= 1, what="the first 429")
        t429 = time.time()
        await r.idle()
        # Every way the loop could come back sooner: watch events, passes, resyncs.
        for _ in range(5):
            r.rec.queue.add("pass")
            r.rec.on_change(SR, "MODIFIED")
            await r.idle()
        assert server.faults.injected == 1, "the write was retried before Retry-After"
        assert sample(r.registry, "warden_api_errors_total", code="429") == 1
        keys = [k for k in (finding_work_key(f) for f in r.rec.evaluate().findings) if r.rec.not_before(k)]
        assert keys, "no pending Retry-After recorded"
        assert all((r.rec.not_before(k) or 0) >= t429 + 10 - 0.5 for k in keys)
        server.faults.clear()


# --- item 4: the API's state replaced: relist at once -----------------------------------------


async def test_the_informer_relists_when_the_api_history_is_replaced() -> None:
    port = free_port()
    first = ApiServer(port=port)
    await first.start()
    async with kube_for(first.url, field_manager="seed") as w:
        await seed_world(w)
        for i in range(30):  # history the replacement will not have
            await w.apply({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": f"old-{i}", "namespace": "kubeflow"}}, dry_run=False)
    async with kube_for(first.url) as kube:
        # The restart may fall between a stream's list and its watch: that watch then reaches
        # the new server and is held there, silent, and asks after silent_watch_seconds.
        informer = Informer(kube, kinds=[("v1", "ConfigMap"), ("v1", "Namespace")], namespaces={"kubeflow"},
                            silent_watch_seconds=0.5)
        task = asyncio.create_task(informer.run())
        try:
            await informer.wait_synced()
            assert informer.get("ConfigMap", "kubeflow", "old-0") is not None
            await first.stop()
            # The same port, a new empty history (an etcd restore, a sandbox wiped and restarted).
            second = ApiServer(port=port)
            second.watches.fresh_wait = 0.2
            await second.start()
            try:
                async with kube_for(second.url, field_manager="seed") as w2:
                    await w2.apply({"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": "kubeflow"}}, dry_run=False)
                    await w2.apply({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "new", "namespace": "kubeflow"}}, dry_run=False)
                await eventually(lambda: informer.get("ConfigMap", "kubeflow", "new") is not None
                                 and informer.get("ConfigMap", "kubeflow", "old-0") is None,
                                 timeout=30, what="the caches relisted from the new history")
                assert informer.stats.relists >= 1
            finally:
                await second.stop()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_uid_change_in_a_modified_event_means_another_history() -> None:
    """The replacement history already went past our resourceVersion: the watch resumes without
    an error, and the first sign is an object whose uid changed under the same name."""
    port = free_port()
    first = ApiServer(port=port)
    await first.start()
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}}
    cm: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "shared", "namespace": "kubeflow"}}
    async with kube_for(first.url, field_manager="seed") as w:
        await w.apply(ns, dry_run=False)
        await w.apply(cm, dry_run=False)
        await w.apply({**cm, "metadata": {"name": "only-in-the-old-history", "namespace": "kubeflow"}},
                      dry_run=False)
    async with kube_for(first.url) as kube:
        informer = Informer(kube, kinds=[("v1", "ConfigMap")], namespaces={"kubeflow"})
        task = asyncio.create_task(informer.run())
        try:
            await informer.wait_synced()
            await first.stop()
            second = ApiServer(port=port)
            second.watches.fresh_wait = 60.0  # the watch waits until this history passes ours
            await second.start()
            try:
                async with kube_for(second.url, field_manager="seed") as w2:
                    await w2.apply(ns, dry_run=False)
                    await w2.apply(cm, dry_run=False)  # same name, another uid
                    for i in range(10):
                        await w2.apply({**cm, "metadata": {"name": f"new-{i}", "namespace": "kubeflow"}},
                                       dry_run=False)
                    shared = ObjectRef(api_version="v1", kind="ConfigMap", namespace="kubeflow",
                                       name="shared")
                    await w2.merge_patch(shared, {"data": {"k": "v"}}, dry_run=False)
                await eventually(lambda: informer.get("ConfigMap", "kubeflow", "only-in-the-old-history")
                                 is None, timeout=30, what="a relist dropped what only the old history had")
                cached = informer.get("ConfigMap", "kubeflow", "shared")
                assert cached is not None and cached.get("data") == {"k": "v"}
            finally:
                await second.stop()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# --- item 5: readiness follows the caches, not "synced once" ----------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_readyz_fails_when_the_api_is_unreachable_past_the_bound() -> None:
    port = free_port()
    api = ApiServer(port=port)
    await api.start()
    clock = Clock()
    async with kube_for(api.url) as kube:
        informer = Informer(kube, kinds=[("v1", "Namespace")], clock=clock)
        health = HealthState(clock=time.time)
        health.watch_caches(lambda: informer.stale(60.0))
        task = asyncio.create_task(informer.run())
        try:
            await informer.wait_synced()
            health.set_synced(True)
            health.set_config_valid(True)
            await eventually(lambda: informer.watching, what="the watch connected")
            assert health.readiness().ok
            clock.now += 600  # a connected watch is current however quiet it is
            assert health.readiness().ok
            await api.stop()
            await eventually(lambda: not informer.watching and informer.last_error is not None,
                             timeout=20, what="the watch noticed the outage")
            assert health.readiness().ok, "within the bound: still ready"
            clock.now += 61
            verdict = health.readiness()
            assert not verdict.ok and verdict.body["missing"] == ["caches-current"]
            assert "namespaces@*: no watch for 61 s" in verdict.body["reason"], verdict.body
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# --- items 7 and 8: bounded waits, one clear line, exit 2 ------------------------------------


def kubeconfig(path: Path, server: str, **cluster: str) -> Path:
    extra = "".join(f", {k}: {v!r}" for k, v in cluster.items())
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: c, cluster: {{server: {server!r}{extra}}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n")
    return path


def settings_file(tmp_path: Path) -> Path:
    p = tmp_path / "warden.yaml"
    p.write_text("kube:\n  request_timeout_seconds: 1\n"
                 "leader_election:\n  enabled: false\nserver:\n  port: 0\n")
    return p


async def cli(*args: str, timeout: float = 60) -> tuple[int, list[str], list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", *args, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")})
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    # The daemon's log lines are JSON objects on stderr; what is for the user is the plain lines.
    plain = [ln for ln in err.decode().splitlines() if not ln.startswith("{")]
    assert "Traceback" not in err.decode()
    return proc.returncode, out.decode().splitlines(), plain


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers (a hung API server, a black-holing proxy)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@dataclasses.dataclass
class Heard:
    """What a silent server was asked: one request line per request it read."""

    url: str
    connections: int = 0
    requests: list[str] = dataclasses.field(default_factory=list)


@contextlib.asynccontextmanager
async def counting_silent_server() -> AsyncIterator[Heard]:
    """Accepts connections, reads each request's head and never answers; counts both."""
    handlers: set[asyncio.Task[None]] = set()
    done = asyncio.Event()

    async def read_heads(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                heard.requests.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heard.connections += 1
        handler = asyncio.current_task()
        assert handler is not None
        handlers.add(handler)
        reading = asyncio.create_task(read_heads(reader))
        try:
            await done.wait()  # hold the connection open, silent, until the end
        finally:
            reading.cancel()
            await asyncio.wait({reading})
            writer.close()
            handlers.discard(handler)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    heard = Heard(url=f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    try:
        yield heard
    finally:
        server.close()
        done.set()  # each handler returns (cancelling one would make asyncio log it)
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def test_run_once_against_a_silent_server_asks_each_list_once_and_never_the_lease(
        tmp_path: Path) -> None:
    """Issue 23 item 9: ``run --once`` with leader election on, against a server that accepts
    and never answers, spent a second request timeout releasing a Lease it never held. Now the
    Lease is released only when held (client-go's ``IsLeader`` check): the only requests are the
    informer's first list of each kind, and it gives up after the one timeout."""
    cfg = tmp_path / "warden.yaml"
    cfg.write_text("kube:\n  request_timeout_seconds: 1\nleader_election:\n  enabled: true\n"
                   "server:\n  port: 0\n")
    async with counting_silent_server() as heard:
        kc = kubeconfig(tmp_path / "kc", heard.url)
        rc, _, err = await cli("run", "--once", "--config", str(cfg), "--kubeconfig", str(kc))
    assert rc == 2, err
    assert len(err) == 1 and "cannot read the cluster within 1 s" in err[0], err
    paths = [line.split()[1].split("?")[0] for line in heard.requests]
    assert [p for p in paths if "/leases" in p] == [], heard.requests
    assert paths and all(line.startswith("GET ") for line in heard.requests), heard.requests
    # One list per kind, no retry: the whole command ended within the one timeout.
    assert len(paths) == len(set(paths)), heard.requests
    assert heard.connections == len(paths), (heard.connections, heard.requests)


async def test_a_cancel_landing_as_a_request_times_out_is_not_lost() -> None:
    """A request to a silent server, cancelled from outside in the very loop iteration its
    timeout fires (the loop is held across both deadlines, so both callbacks run before the
    task does): the cancel must win. aiohttp's ``total`` timer, entered twice per request, took
    it back and raised TimeoutError, so a watch stream being shut down retried instead."""
    timeout = 0.3
    async with counting_silent_server() as heard, kube_for(heard.url, request_timeout=timeout) as kube:
        loop = asyncio.get_running_loop()
        res = resource_for("v1", "Namespace")
        task = asyncio.create_task(kube.list_objects(res))
        loop.call_later(timeout - 0.1, time.sleep, 0.3)  # holds the loop across both deadlines
        loop.call_later(timeout + 0.05, task.cancel)
        await asyncio.wait({task})
        assert task.cancelled(), f"the cancel was lost: {task.exception()!r}"
        assert heard.requests and heard.connections == 1, heard.requests


async def test_run_once_against_a_closed_port_ends_with_one_line(tmp_path: Path) -> None:
    kc = kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{free_port()}")
    rc, _, err = await cli("run", "--once", "--config", str(settings_file(tmp_path)), "--kubeconfig", str(kc))
    assert rc == 2, err
    assert len(err) == 1 and "cannot read the cluster within 1 s" in err[0], err


async def test_check_against_a_server_that_never_answers_ends_with_one_line(tmp_path: Path) -> None:
    with silent_server() as url:
        kc = kubeconfig(tmp_path / "kc", url)
        rc, _, err = await cli("check", "--config", str(settings_file(tmp_path)), "--kubeconfig", str(kc))
    assert rc == 2, err
    assert len(err) == 1 and "cannot read the cluster" in err[0], err


BAD_KUBECONFIGS = [
    ("ca-data that is not a certificate",
     lambda p: kubeconfig(p, "https://127.0.0.1:6443", **{"certificate-authority-data": b64("not a cert")}),
     "unusable TLS settings"),
    ("not YAML", lambda p: (p.write_text("apiVersion: v1\nclusters: [ {name: c\n  - oops: ]\n"), p)[1],
     "not valid YAML (line 3, column 9)"),
]


@pytest.mark.parametrize(("name", "make", "needle"), BAD_KUBECONFIGS, ids=[b[0] for b in BAD_KUBECONFIGS])
@pytest.mark.parametrize("command", ["check", "run"])
async def test_a_bad_kubeconfig_is_one_line_and_exit_2(tmp_path: Path, name: str, make: Any, needle: str,
                                                      command: str) -> None:
    kc = make(tmp_path / "kc")
    args = [command, "--config", str(settings_file(tmp_path)), "--kubeconfig", str(kc)]
    if command == "run":
        args.append("--once")
    rc, _, err = await cli(*args)
    assert rc == 2, err
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0], err


@pytest.mark.parametrize(("text", "env", "needle"), [
    ("scope:\n  namespaces: [Invalid_NS!]\n", {}, "scope.namespaces[0]: 'Invalid_NS!'"),
    ("models:\n  - {namespace: ns, name: UPPER/../x}\n", {}, "models[0].name: 'UPPER/../x'"),
    ("probes:\n  dns:\n    nameserver: not-an-ip\n", {}, "probes.dns.nameserver: must be an IP address"),
])
async def test_invalid_names_and_nameserver_are_settings_errors(tmp_path: Path, text: str,
                                                                env: dict[str, str], needle: str) -> None:
    cfg = tmp_path / "warden.yaml"
    cfg.write_text(text)
    kc = kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{free_port()}")
    rc, _, err = await cli("check", "--config", str(cfg), "--kubeconfig", str(kc))
    assert rc == 2 and len(err) == 1 and needle in err[0], err



async def test_run_refuses_a_desired_model_its_own_selector_hides(tmp_path: Path) -> None:
    """Before: the API server dropped the desired InferenceService from the watch, and ``run``
    called it missing and applied it again on every pass. ``check`` narrows instead (exit 0/1)."""
    cfg = tmp_path / "warden.yaml"
    seed = (ROOT / "config" / "warden.yaml").read_text()
    cfg.write_text(seed.replace("  selector: null", "  selector: app=iris")
                   .replace("  dir: desired", f"  dir: {ROOT / 'config' / 'desired'}"))
    kc = kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{free_port()}")
    rc, _, err = await cli("run", "--once", "--config", str(cfg), "--kubeconfig", str(kc))
    assert rc == 2 and len(err) == 1, err
    assert "desired InferenceService user-example-com/iris-model" in err[0]
    assert "does not match scope.selector 'app=iris'" in err[0], err
