"""``kserve-warden sandbox`` as a real process: endpoints printed, a kubeconfig written once the
API answers that kubernetes_asyncio (and kubectl) can use, a clean exit on SIGINT and SIGTERM."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio import config
from kubernetes_asyncio.client import CustomObjectsApi, VersionApi

from daemon.process.config_files import load_settings
from tests.conftest import ROOT

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


async def _sandbox_command(*args: str) -> asyncio.subprocess.Process:
    """``python -m daemon sandbox ARGS`` from the repository root, its output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon",
        "sandbox",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )


async def _start(tmp_path: Path) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await _sandbox_command(
        "--kubeconfig", str(tmp_path / "kc.yaml"), "--warden-config", str(tmp_path / "warden.yaml")
    )
    assert proc.stdout is not None
    lines: list[str] = []

    async def banner() -> None:
        assert proc.stdout is not None
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                raise AssertionError(
                    f"sandbox exited early: {await proc.stderr.read() if proc.stderr else b''!r}"
                )
            lines.append(raw.decode())
            if "SIGTERM stops it" in lines[-1]:
                return

    try:
        await asyncio.wait_for(banner(), START_TIMEOUT)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc, lines


async def _stop(proc: asyncio.subprocess.Process, sig: int) -> int:
    proc.send_signal(sig)
    try:
        return await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("the sandbox did not exit on the signal") from None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_sandbox_command_serves_a_usable_kubeconfig_and_exits_cleanly(tmp_path: Path, sig: int) -> None:
    proc, lines = await _start(tmp_path)
    try:
        text = "".join(lines)
        kubeconfig = tmp_path / "kc.yaml"
        assert f"kubeconfig       {kubeconfig}" in text and "Kubernetes API   http://127.0.0.1:" in text
        assert kubeconfig.stat().st_mode & 0o777 == 0o600
        server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        assert server in text
        api = await config.new_client_from_config(str(kubeconfig))
        async with api:
            assert (await VersionApi(api).get_code()).major
            isvcs = await CustomObjectsApi(api).list_cluster_custom_object(
                "serving.kserve.io", "v1beta1", "inferenceservices"
            )
            assert isvcs["kind"] == "InferenceServiceList" and isvcs["items"] == []
        settings = load_settings(tmp_path / "warden.yaml", environ={})
        assert settings.probes.storage.endpoint_overrides["minio-service.kubeflow:9000"].startswith(
            "127.0.0.1:"
        )
        if sig == signal.SIGINT and shutil.which("kubectl"):
            kubectl = await asyncio.create_subprocess_exec(
                "kubectl",
                "--kubeconfig",
                str(kubeconfig),
                "get",
                "inferenceservices",
                "-A",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(kubectl.communicate(), 30)
            assert kubectl.returncode == 0, err.decode()
            assert "No resources found" in (out + err).decode()
    finally:
        rc = await _stop(proc, sig)
    assert rc == 0
    assert proc.stderr is not None
    err_text = (await proc.stderr.read()).decode()
    assert "Traceback" not in err_text


async def test_sandbox_command_that_cannot_start_says_why_and_writes_nothing(tmp_path: Path) -> None:
    # 203.0.113.0/24 is TEST-NET-3: no interface here has it, so binding fails at once.
    proc = await _sandbox_command("--host", "203.0.113.7", "--kubeconfig", str(tmp_path / "kc.yaml"))
    _, err = await asyncio.wait_for(proc.communicate(), START_TIMEOUT)
    assert proc.returncode == 1
    text = err.decode()
    assert "kserve-warden sandbox: cannot run:" in text and "203.0.113.7" in text
    assert "Traceback" not in text
    assert not (tmp_path / "kc.yaml").exists()
