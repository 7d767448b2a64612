"""``kserve-warden check`` as a real subprocess: exit codes, the table, JSON, and no secret printed."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox import Sandbox
from sandbox.kubeconfig import write_kubeconfig
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(180)


async def check(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "check", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_malformed_config_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "warden.yaml"
    cfg.write_text("scpoe: {}\nremediation:\n  backoff_initial_seconds: -5\nprobes:\n  dns:\n    port: many\n")
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, server=f"http://127.0.0.1:{free_port()}")
    code, out, err = await check("--config", str(cfg), "--kubeconfig", str(kubeconfig))
    assert code == 2
    assert out == ""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 3, err
    assert any("scpoe" in ln and "scope" in ln for ln in lines)
    assert any("backoff_initial_seconds" in ln for ln in lines)
    assert any("probes.dns.port" in ln for ln in lines)


async def test_run_with_a_malformed_config_exits_2_and_touches_nothing(tmp_path: Path) -> None:
    from tests.integration.daemon_fixtures import api_server

    cfg = tmp_path / "warden.yaml"
    cfg.write_text("models:\n  - namespace: user-example-com\n    name: iris-model\n    protocol: v9\n")
    async with api_server() as srv:
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, server=srv.url)
        before = srv.stats.total()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "run", "--config", str(cfg), "--kubeconfig", str(kubeconfig),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        assert proc.returncode == 2
        assert "models[0].protocol" in err.decode()
        assert srv.stats.total() == before, "the daemon talked to the API despite a bad config"


async def test_not_yaml_and_missing_kubeconfig_are_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    code, _, err = await check("--config", str(bad), "--kubeconfig", str(tmp_path / "none"))
    assert code == 2 and "not valid YAML" in err
    code, _, err = await check("--kubeconfig", str(tmp_path / "none"))
    assert code == 2 and "kubeconfig" in err


async def test_unreachable_api_is_exit_2(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, server=f"http://127.0.0.1:{free_port()}")
    code, out, err = await check("--kubeconfig", str(kubeconfig))
    assert code == 2, (out, err)
    assert "cannot read the cluster" in err


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, Path]]:
    async with Sandbox(workdir=tmp_path / "sandbox") as sb:
        cfg = tmp_path / "warden.yaml"
        sb.write_warden_config(cfg)
        yield sb, cfg


def secret_values(sb: Sandbox) -> list[str]:
    creds = sb._creds
    assert creds is not None
    vals = [creds.access_key_id, creds.secret_access_key]
    return vals + [base64.b64encode(v.encode()).decode() for v in vals]


async def test_broken_world_exits_1_with_a_table_and_json(sandbox: tuple[Sandbox, Path]) -> None:
    sb, cfg = sandbox
    args = ("--config", str(cfg), "--kubeconfig", str(sb.kubeconfig_path))
    code, text, err = await check(*args)
    assert code == 1, err
    lines = text.splitlines()
    assert lines[0].startswith("kserve-warden check:")
    header = next(ln for ln in lines if ln.startswith("#"))
    assert header.split() == ["#", "SEVERITY", "CODE", "SUBJECT"]
    assert "evidence:" in text and "why:" in text and "fix:" in text
    assert "ServingRuntime/user-example-com/iris-fastapi-runtime" in text

    code, raw, _ = await check(*args, "--output", "json")
    assert code == 1
    doc = json.loads(raw)
    assert doc["healthy"] is False
    codes = {f["code"] for f in doc["findings"]}
    assert "drift" in codes
    for f in doc["findings"]:
        assert f["evidence"] and f["explanation"] and f["remedy"]
    assert {o["probe"] for o in doc["observations"]} == {"dns", "storage", "predictor"}
    for v in secret_values(sb):
        assert v not in text and v not in raw and v not in err


async def run_once(sb: Sandbox, cfg: Path) -> tuple[int, str]:
    env = {**__import__("os").environ, "WARDEN_METRICS_PORT": str(free_port())}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "run", "--once", "--config", str(cfg), "--kubeconfig",
        str(sb.kubeconfig_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_run_once_converges_then_check_exits_0(sandbox: tuple[Sandbox, Path]) -> None:
    sb, cfg = sandbox
    code, log = await run_once(sb, cfg)
    assert code in (0, 1), log
    applied = [json.loads(ln) for ln in log.splitlines() if ln.startswith("{") and '"acted"' in ln]
    assert {a["target"] for a in applied} >= {"ServingRuntime/user-example-com/iris-fastapi-runtime",
                                               "Secret/user-example-com/minio-s3-secret"}
    args = ("--config", str(cfg), "--kubeconfig", str(sb.kubeconfig_path), "-o", "json")
    deadline = time.monotonic() + 60
    while True:
        code, raw, _ = await check(*args)
        if code == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    doc = json.loads(raw)
    assert code == 0, [(f["code"], f["evidence"]) for f in doc["findings"]]
    assert doc["healthy"] is True and doc["findings"] == []
    assert all(o["ok"] for o in doc["observations"]), doc["observations"]
    code, text, _ = await check(*args[:-2])
    assert code == 0 and "healthy" in text
    for v in secret_values(sb):
        assert v not in raw and v not in text and v not in log
