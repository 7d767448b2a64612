"""The real control plane: kube-apiserver, etcd and kube-controller-manager built from Go modules.

What only a real server can show (the e2e scenarios run on it too, through
``tests/integration/control_planes.py``):

* it is the version ``scripts/control-plane.sh`` built, and the project's CRDs are accepted as
  structural schemas;
* the daemon as its own ServiceAccount — a TokenRequest token, the RBAC that
  ``config/deploy/build.py`` renders from ``daemon.kube.rbac.required`` for the sandbox's
  settings — heals the seed's failures with no 403 anywhere in its log;
* the same RBAC less one rule is a real 403, which the daemon reports on the action that hit it.
* an etcd backup restored under it (an older history) makes the daemon's informer relist.

These tests fail (never skip) when the binaries are missing: ``make control-plane`` builds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from daemon.core.logs import Redactor
from daemon.kube.effects import Kube
from daemon.kube.informer import Informer, run_until_synced
from daemon.kube.rbac import CLUSTER, Grant, expand
from sandbox import Sandbox
from sandbox.realcp import ControlPlane, crd_documents, install_crds
from sandbox.realcp.controlplane import binaries
from tests.integration.control_planes import daemon_kubeconfig, make_sandbox
from tests.integration.daemon_fixtures import Daemon, eventually
from tests.integration.test_e2e_scenarios import active_findings, canary_ok

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

HEALS = ("no-serving-runtime", "storage-credentials", "mesh-policy", "sidecar-disabled", "image-pull",
         "dns-timeout")
WAIT = 45.0


@pytest.fixture
async def sandbox(real_control_plane: ControlPlane, tmp_path: Path) -> AsyncIterator[tuple[Sandbox, Path]]:
    async with make_sandbox("real", workdir=tmp_path / "sandbox", cp=real_control_plane) as sb:
        cfg = tmp_path / "warden.yaml"
        sb.write_warden_config(cfg)
        yield sb, cfg


def forbidden(d: Daemon) -> list[str]:
    return [line for line in d.raw if "403 Forbidden" in line or " is forbidden: " in line]


async def test_the_server_is_the_version_built_and_serves_the_projects_crds(
        real_control_plane: ControlPlane) -> None:
    versions = dict(line.split("=", 1) for line in
                    (binaries(build=False) / "versions.env").read_text().split() if "=" in line)
    async with client.ApiClient(_config(real_control_plane)) as api:
        await install_crds(api)
        version = await client.VersionApi(api).get_code()
        assert version.git_version == versions["KUBE_VERSION"]
        crds = await client.ApiextensionsV1Api(api).list_custom_resource_definition()
        served = {c.metadata.name: c for c in crds.items}
        for doc in crd_documents():
            crd = served[doc["metadata"]["name"]]
            conds = {c.type: c.status for c in crd.status.conditions or []}
            # A non-structural schema would show NonStructuralSchema=True (and no pruning).
            assert conds.get("Established") == "True" and "NonStructuralSchema" not in conds, conds


def _config(cp: ControlPlane) -> client.Configuration:
    cfg = client.Configuration(host=cp.url)
    cfg.ssl_ca_cert = str(cp.ca_file)
    cfg.api_key = {"BearerToken": cp.admin_token}
    cfg.api_key_prefix = {"BearerToken": "Bearer"}
    return cfg


async def test_seed_failures_heal_as_the_daemons_own_serviceaccount(
        sandbox: tuple[Sandbox, Path], tmp_path: Path) -> None:
    sb, cfg = sandbox
    cp = sb.apiserver.cp  # type: ignore[union-attr]
    audit_from = cp.audit_log.stat().st_size if cp.audit_log.exists() else 0
    async with sb.new_api_client() as api:
        kubeconfig, rules = await daemon_kubeconfig(api, sb.apiserver.cp,  # type: ignore[union-attr]
                                                settings_path=cfg, path=tmp_path / "sa.kubeconfig")
        d = Daemon(config=cfg, kubeconfig=kubeconfig, name="warden-sa")
        await d.start()
        try:
            await eventually(lambda: _settled(d, api, sb), timeout=WAIT, interval=0.1,
                             what="converged as the SA")
            for name in HEALS:
                mark = len(d.lines)
                await sb.inject(name)
                try:
                    await eventually(lambda m=mark: bool(d.logged("acted", since=m, result="success")),
                                     timeout=WAIT, interval=0.1, what=f"{name}: a successful action")
                    await eventually(lambda: _settled(d, api, sb), timeout=WAIT, interval=0.1,
                                     what=f"{name}: healed as the SA")
                finally:
                    await sb.undo(name)
                    await eventually(lambda: _settled(d, api, sb), timeout=WAIT, interval=0.1,
                                     what=f"{name}: settled after undo")
        finally:
            await d.stop()
    assert forbidden(d) == [], "the shipped RBAC lacks a permission the daemon used"
    # The server's record of the same run: no request of the ServiceAccount was refused, and which
    # granted permissions it used (the rest are for paths these scenarios do not take).
    requests = audit(cp.audit_log, since=audit_from)
    assert requests, "the audit log has no request of the daemon's ServiceAccount"
    assert [r for r in requests if r["code"] == 403] == []
    unused = sorted(f"{g.verb} {g.api_group or 'core'}/{g.resource} {g.scope} {g.resource_name}".rstrip()
                    for g in expand(rules) if not any(_uses(r, g) for r in requests))
    print("granted but not used in this run:", *unused, sep="\n  ")


def audit(path: Path, *, since: int) -> list[dict[str, Any]]:
    """The audited requests (the daemon's ServiceAccount only) from byte ``since`` on."""
    out = []
    with path.open("rb") as f:
        f.seek(since)
        for raw in f:
            ev = json.loads(raw)
            ref = ev.get("objectRef") or {}
            resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            out.append({"verb": ev["verb"], "group": ref.get("apiGroup", ""), "resource": resource,
                        "namespace": ref.get("namespace", ""), "name": ref.get("name", ""),
                        "code": (ev.get("responseStatus") or {}).get("code", 0)})
    return out


def _uses(request: dict[str, Any], g: Grant) -> bool:
    # A server-side apply is audited as `patch`; when it creates, RBAC also checked `create`.
    verbs = {request["verb"]} | ({"create"} if request["verb"] == "patch" else set())
    return (g.verb in verbs and g.api_group == request["group"] and g.resource == request["resource"]
            and (g.scope == CLUSTER or g.scope == request["namespace"])
            and (not g.resource_name or g.resource_name == request["name"]))


async def _settled(d: Daemon, api: client.ApiClient, sb: Sandbox) -> bool:
    return not await active_findings(d) and await canary_ok(api, sb)


async def test_one_rule_less_is_a_403_the_daemon_reports_on_the_action(
        sandbox: tuple[Sandbox, Path], tmp_path: Path) -> None:
    sb, cfg = sandbox

    def no_runtime_writes(rule: Any) -> bool:
        return bool(rule.resource == "servingruntimes" and "patch" in rule.verbs)

    async with sb.new_api_client() as api:
        kubeconfig, rules = await daemon_kubeconfig(
            api, sb.apiserver.cp, settings_path=cfg, path=tmp_path / "sa.kubeconfig",  # type: ignore[union-attr]
            drop=no_runtime_writes)
        assert not any(no_runtime_writes(r) for r in rules)
        d = Daemon(config=cfg, kubeconfig=kubeconfig, name="warden-sa")
        await d.start()
        try:
            def refused() -> list[dict[str, Any]]:
                return [ln for ln in d.logged("action refused", action="apply")
                        if str(ln.get("target", "")).startswith("ServingRuntime/")]

            await eventually(lambda: bool(refused()), timeout=WAIT, interval=0.1,
                             what="the daemon's refused apply of the ServingRuntime")
        finally:
            await d.stop()
    line = refused()[0]
    assert line["level"] == "error" and line["finding"] == "no-serving-runtime", line
    # The server's own words: who was refused which verb on what, where.
    assert str(line["error"]).startswith("403 Forbidden"), line
    assert 'User "system:serviceaccount:kserve-warden:kserve-warden" cannot patch resource ' \
           '"servingruntimes"' in line["error"], line
    # Everything else it may do still worked: the other desired objects were applied.
    assert d.logged("acted", action="apply", result="success"), "no other apply succeeded"


async def test_sandbox_command_on_the_real_control_plane_writes_a_working_kubeconfig(tmp_path: Path) -> None:
    """``kserve-warden sandbox --control-plane real``: its own control plane, the seeded world,
    a kubeconfig (token + CA) that kubectl — the one built with the apiserver — can use, and a
    clean exit on SIGINT that stops every process it started."""
    kc = tmp_path / "kc.yaml"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "sandbox", "--control-plane", "real", "--kubeconfig", str(kc),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async def banner() -> None:
            assert proc.stdout is not None
            while not lines or "SIGTERM stops it" not in lines[-1]:
                raw = await proc.stdout.readline()
                assert raw, "the sandbox exited early"
                lines.append(raw.decode())

        await asyncio.wait_for(banner(), 120)
        assert any("(real control plane)" in ln for ln in lines), lines
        kubectl = await asyncio.create_subprocess_exec(
            str(binaries(build=False) / "kubectl"), "--kubeconfig", str(kc), "get", "namespaces",
            "-o", "jsonpath={.items[*].metadata.name}", stdout=asyncio.subprocess.PIPE)
        out, _ = await kubectl.communicate()
        assert kubectl.returncode == 0 and "user-example-com" in out.decode().split(), out
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        rc = await asyncio.wait_for(proc.wait(), 60)
    assert rc == 0


async def test_the_informer_relists_when_etcd_is_restored_to_an_older_history(tmp_path: Path) -> None:
    """An etcd backup restored under a restarted kube-apiserver: its history is older than the
    resourceVersions the informer holds. The real server does not refuse a watch from them (it
    holds it and drops everything up to that number), so only the informer's one-item list
    "not older than" its resourceVersion (504 ResourceVersionTooLarge) can tell; then every cache
    is relisted, and what only the lost history had is gone from them."""
    cp = ControlPlane(workdir=tmp_path / "cp")
    etcd, backup = cp.dir / "etcd", tmp_path / "etcd-backup"
    ns = "restore"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": ns}}
    try:
        await cp.start()
        async with client.ApiClient(_config(cp)) as api:
            writer = Kube(api, redactor=Redactor(), field_manager="tester")
            await writer.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                               dry_run=False)
            await writer.apply({**cm, "metadata": {**cm["metadata"], "name": "in-the-backup"}}, dry_run=False)
        await cp.stop()
        await asyncio.to_thread(shutil.copytree, etcd, backup)  # the backup: etcd's data, stopped
        await cp.start()
        async with client.ApiClient(_config(cp)) as api:
            kube = Kube(api, redactor=Redactor())
            writer = Kube(api, redactor=Redactor(), field_manager="tester")
            informer = Informer(kube, kinds=[("v1", "ConfigMap"), ("v1", "Namespace")], namespaces={ns})
            task = await run_until_synced(informer)
            try:
                lost = {**cm, "metadata": {**cm["metadata"], "name": "after-the-backup"}}
                await writer.apply(lost, dry_run=False)
                # History the restored etcd will not reach during the test (it only renews leases).
                for i in range(300):
                    await writer.apply({**lost, "data": {"n": str(i)}}, dry_run=False)
                await eventually(lambda: (informer.get("ConfigMap", ns, "after-the-backup") or {})
                                 .get("data") == {"n": "299"}, timeout=WAIT, what="the informer caught up")
                relists = informer.stats.relists
                await cp.stop()
                await asyncio.to_thread(shutil.rmtree, etcd)
                await asyncio.to_thread(shutil.copytree, backup, etcd)
                await cp.start()
                listed = await client.CoreV1Api(api).list_namespaced_config_map(ns)
                # (kube-root-ca.crt: kube-controller-manager's, in every namespace)
                assert [i.metadata.name for i in listed.items if i.metadata.name != "kube-root-ca.crt"] \
                    == ["in-the-backup"]
                await eventually(lambda: informer.get("ConfigMap", ns, "after-the-backup") is None,
                                 timeout=WAIT, what="the relist from the restored history")
                assert informer.get("ConfigMap", ns, "in-the-backup") is not None
                assert informer.stats.relists > relists and informer.stats.freshness_checks >= 1
                # Watching again, in the restored history.
                await writer.apply({**cm, "metadata": {**cm["metadata"], "name": "after-the-restore"}},
                                   dry_run=False)
                await eventually(lambda: informer.get("ConfigMap", ns, "after-the-restore") is not None,
                                 timeout=WAIT, what="an event from the restored history")
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    finally:
        await cp.stop()
