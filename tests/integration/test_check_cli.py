"""``kserve-warden check`` as a real subprocess: exit codes, the table, JSON, and no secret printed.

The tests that read a cluster run on both control planes: the sandbox on the stand-in and on the
real one (kube-apiserver with KServe's own controller; ``tests/integration/control_planes.py``),
and the bad-config run against either API server (``tier``), watched through a forwarder that
counts connections. Three tests never reach a server (a malformed config, no kubeconfig, a port
nobody listens on) and run once.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi

from sandbox import Sandbox
from sandbox.kubeconfig import write_kubeconfig
from tests.conftest import free_port
from tests.integration.apiserver.tiers import Tier, tier
from tests.integration.control_planes import CONTROL_PLANES, make_sandbox
from tests.integration.sandbox_wait import NS, condition, ready_isvc, watch_until
from tests.integration.tcp_relay import tcp_relay

__all__ = ["tier"]  # the fixture, imported

Obj = dict[str, Any]

pytestmark = pytest.mark.timeout(180)


async def check(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "check", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_malformed_config_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    # No API server is reached: one run, no tier.
    cfg = tmp_path / "warden.yaml"
    cfg.write_text("scpoe: {}\nremediation:\n  backoff_initial_seconds: -5\n"
                   "probes:\n  dns:\n    port: many\n")
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


def kubeconfig_via(source: Path, path: Path, server: str) -> Path:
    """``source`` (credentials and CA kept) with its cluster's server replaced by ``server``."""
    doc = yaml.safe_load(source.read_text())
    for cluster in doc["clusters"]:
        cluster["cluster"]["server"] = server
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_run_with_a_malformed_config_exits_2_and_touches_nothing(tier: Tier, tmp_path: Path) -> None:
    cfg = tmp_path / "warden.yaml"
    cfg.write_text(f"models:\n  - namespace: {tier.ns}\n    name: iris-model\n    protocol: v9\n")
    target = urlsplit(tier.url)
    assert target.hostname is not None and target.port is not None
    async with tcp_relay(target.hostname, target.port) as fwd:
        url = f"{target.scheme}://127.0.0.1:{fwd.port}"
        kubeconfig = kubeconfig_via(tier.kubeconfig, tmp_path / "kubeconfig", url)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "run", "--config", str(cfg), "--kubeconfig", str(kubeconfig),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        assert proc.returncode == 2
        assert "models[0].protocol" in err.decode()
        assert fwd.connections == 0, "the daemon talked to the API despite a bad config"
        # The same kubeconfig reaches the server (the zero above is not a broken forwarder).
        code, _, err2 = await check("--kubeconfig", str(kubeconfig), "-n", tier.ns)
        assert code in (0, 1), err2
        assert fwd.connections > 0


async def test_not_yaml_and_missing_kubeconfig_are_bad_input(tmp_path: Path) -> None:
    # No API server is reached: one run, no tier.
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n")
    code, _, err = await check("--config", str(bad), "--kubeconfig", str(tmp_path / "none"))
    assert code == 2 and "not valid YAML" in err
    code, _, err = await check("--kubeconfig", str(tmp_path / "none"))
    assert code == 2 and "kubeconfig" in err


async def test_unreachable_api_is_exit_2(tmp_path: Path) -> None:
    # No API server is reached: one run, no tier.
    kubeconfig = tmp_path / "kubeconfig"
    write_kubeconfig(kubeconfig, server=f"http://127.0.0.1:{free_port()}")
    code, out, err = await check("--kubeconfig", str(kubeconfig))
    assert code == 2, (out, err)
    assert "cannot read the cluster" in err


@pytest.fixture(params=CONTROL_PLANES)
async def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Sandbox, Path]]:
    plane = request.param
    cp = request.getfixturevalue("real_control_plane") if plane == "real" else None
    async with make_sandbox(plane, workdir=tmp_path / "sandbox", cp=cp) as sb:
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
    # The desired InferenceService does not exist yet: it is listed (ready unknown) with the root
    # causes named statically; findings about no one model are cluster-wide.
    (iris,) = [r for r in doc["inferenceservices"] if (r["namespace"], r["name"]) ==
               ("user-example-com", "iris-model")]
    assert iris["ready"] is None and iris["findings"]
    per_isvc = [f for r in doc["inferenceservices"] for f in r["findings"]]
    assert len(per_isvc) + len(doc["cluster_findings"]) == len(doc["findings"])
    assert {f["code"] for f in per_isvc} | {f["code"] for f in doc["cluster_findings"]} == codes
    for f in per_isvc:
        assert f["severity"] in ("critical", "warning", "info")
    for f in doc["findings"]:
        assert f["evidence"] and f["explanation"] and f["remedy"]
    assert {o["probe"] for o in doc["observations"]} >= {"dns", "predictor"}
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


def isvc(ns: str, name: str, labels: dict[str, str]) -> dict[str, object]:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"},
                                             "storageUri": "gs://bucket/models/x"}}}}


async def test_no_settings_every_inferenceservice_and_scope_flags(sandbox: tuple[Sandbox, Path]) -> None:
    """No --config: every InferenceService the kubeconfig may read, nothing applied by run --once;
    -n/-l/-A narrow (or widen) the scope as kubectl does."""

    sb, _ = sandbox
    assert sb.api is not None
    for ns in ("team-a", "team-b"):
        await CoreV1Api(sb.api).create_namespace({"metadata": {"name": ns}})
    custom = CustomObjectsApi(sb.api)
    for ns, name, team in (("team-a", "alpha", "a"), ("team-a", "beta", "b"), ("team-b", "gamma", "a")):
        await custom.create_namespaced_custom_object("serving.kserve.io", "v1beta1", ns, "inferenceservices",
                                                     isvc(ns, name, {"team": team}))
    kc = ("--kubeconfig", str(sb.kubeconfig_path))

    async def listed(*flags: str) -> set[str]:
        code, raw, err = await check(*kc, "-o", "json", *flags)
        assert code in (0, 1), err
        return {f"{r['namespace']}/{r['name']}" for r in json.loads(raw)["inferenceservices"]}

    assert await listed() >= {"team-a/alpha", "team-a/beta", "team-b/gamma"}
    assert await listed("-A") == await listed()
    assert await listed("-n", "team-a") == {"team-a/alpha", "team-a/beta"}
    assert await listed("--namespace", "team-a", "-n", "team-b", "-l", "team=a") == \
        {"team-a/alpha", "team-b/gamma"}
    assert await listed("-l", "team!=a", "-n", "team-a") == {"team-a/beta"}

    code, out, err = await check(*kc, "-l", "team in (a")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--selector" in err
    code, _, err = await check(*kc, "-A", "-n", "team-a")
    assert code == 2 and "exclude" in err

    # run --once without settings: diagnoses, applies nothing (the seed's manifests are the demo's).
    env = {**__import__("os").environ, "WARDEN_METRICS_PORT": str(free_port())}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "run", "--once", *kc, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    _, raw_log = await proc.communicate()
    log = raw_log.decode()
    assert proc.returncode in (0, 1), log
    assert not [ln for ln in log.splitlines() if '"acted"' in ln], log
    runtimes = await custom.list_namespaced_custom_object("serving.kserve.io", "v1alpha1",
                                                          "user-example-com", "servingruntimes")
    assert "iris-fastapi-runtime" not in {o["metadata"]["name"] for o in runtimes["items"]}



GROUP = "serving.kserve.io"
MERGE_PATCH = "application/merge-patch+json"


async def isvc_named(api: ApiClient, name: str, pred: Callable[[Obj], object], what: str) -> Obj:
    """The sandbox namespace's InferenceService ``name``, watched until ``pred`` holds."""
    found: Obj = await watch_until(
        CustomObjectsApi(api).list_namespaced_custom_object, GROUP, "v1beta1", NS, "inferenceservices",
        pred=lambda objs: objs[name] if name in objs and pred(objs[name]) else None,
        what=what, field_selector=f"metadata.name={name}")
    return found


async def test_a_runtime_created_after_kserve_found_none_ends_the_finding(
        sandbox: tuple[Sandbox, Path]) -> None:
    """KServe records NoSupportingRuntime in ``lastFailureInfo`` and never clears it: once a runtime
    is created and the predictor deployed, ``check`` must not keep reporting the stale verdict
    (on the real control plane it did: a false critical for a Ready InferenceService)."""
    sb, _ = sandbox
    assert sb.api is not None
    await sb.apply_healthy_world()
    iris = await ready_isvc(sb.api)
    custom = CustomObjectsApi(sb.api)
    spec = copy.deepcopy(iris["spec"])
    spec["predictor"]["model"].pop("runtime", None)
    spec["predictor"]["model"]["modelFormat"] = {"name": "lightgbm"}  # no runtime lists it
    meta = {"name": "auto", "namespace": NS, "annotations": iris["metadata"].get("annotations") or {}}
    await custom.create_namespaced_custom_object(GROUP, "v1beta1", NS, "inferenceservices", {
        "apiVersion": f"{GROUP}/v1beta1", "kind": "InferenceService", "metadata": meta, "spec": spec})
    await isvc_named(sb.api, "auto", lambda o: ((o.get("status") or {}).get("modelStatus") or {})
                     .get("lastFailureInfo"), "KServe's NoSupportingRuntime")

    async def runtime_findings() -> list[Obj]:
        code, raw, err = await check("--kubeconfig", str(sb.kubeconfig_path), "-n", NS, "-o", "json")
        assert code in (0, 1), err
        return [f for f in json.loads(raw)["findings"]
                if f["code"] == "no-serving-runtime" and f["subject"]["name"] == "auto"]

    (before,) = await runtime_findings()
    assert before["severity"] == "critical"

    runtime = await custom.get_namespaced_custom_object(GROUP, "v1alpha1", NS, "servingruntimes",
                                                       "iris-fastapi-runtime")
    await custom.create_namespaced_custom_object(GROUP, "v1alpha1", NS, "servingruntimes", {
        "apiVersion": runtime["apiVersion"], "kind": "ServingRuntime",
        "metadata": {"name": "auto-rt", "namespace": NS},
        "spec": {**runtime["spec"], "supportedModelFormats": [{"name": "lightgbm", "autoSelect": True}]}})
    # KServe's controller does not watch runtimes: an annotation (kubectl annotate) makes it reconcile.
    await custom.patch_namespaced_custom_object(
        GROUP, "v1beta1", NS, "inferenceservices", "auto",
        {"metadata": {"annotations": {"test.kserve-warden.io/poke": "1"}}}, _content_type=MERGE_PATCH)
    ready = await isvc_named(sb.api, "auto", lambda o: condition(o, "Ready").get("status") == "True",
                             "auto Ready")
    if sb.control_plane == "real":
        # What made the stale verdict: still there, though KServe chose the runtime and deployed it.
        assert ready["status"]["servingRuntimeName"] == "auto-rt"
        assert ready["status"]["modelStatus"]["lastFailureInfo"]["reason"] == "NoSupportingRuntime"
        assert ready["status"]["modelStatus"]["transitionStatus"] == "UpToDate"
    assert await runtime_findings() == []


async def _delete_predictor_pods(api: ApiClient) -> None:
    """A new pod runs the storage-initializer and loads the model again (kubectl delete pod)."""
    core = CoreV1Api(api)
    for p in (await core.list_namespaced_pod(NS, label_selector=f"{GROUP}/inferenceservice")).items:
        await core.delete_namespaced_pod(p.metadata.name, NS)


async def test_a_model_that_failed_to_load_and_was_fixed_is_not_a_finding(
        sandbox: tuple[Sandbox, Path]) -> None:
    """The model's file renamed (the seed's model-path failure), a pod that fails to load it, the
    file put back and a new pod serving it: KServe leaves ``ModelLoadFailed`` in
    ``lastFailureInfo``; ``check`` must not report it (on the real control plane it reported a
    critical model-wrong-format for the healed model)."""
    sb, cfg = sandbox
    assert sb.api is not None
    await sb.apply_healthy_world()
    await ready_isvc(sb.api)
    await sb.inject("model-path")
    await _delete_predictor_pods(sb.api)
    await isvc_named(sb.api, "iris-model", lambda o: ((o.get("status") or {}).get("modelStatus") or {})
                     .get("lastFailureInfo"), "ModelLoadFailed")
    await sb.undo("model-path")
    await _delete_predictor_pods(sb.api)
    healed = await isvc_named(
        sb.api, "iris-model", lambda o: condition(o, "Ready").get("status") == "True"
        and ((o.get("status") or {}).get("modelStatus") or {}).get("transitionStatus") == "UpToDate",
        "Ready with the model loaded")
    if sb.control_plane == "real":
        assert healed["status"]["modelStatus"]["lastFailureInfo"]["reason"] == "ModelLoadFailed"
    code, raw, err = await check("--config", str(cfg), "--kubeconfig", str(sb.kubeconfig_path), "-o", "json")
    assert code in (0, 1), err
    findings = json.loads(raw)["findings"]
    assert [(f["code"], f["evidence"]) for f in findings if f["severity"] == "critical"] == []


def _codes(doc: Obj) -> list[tuple[str, str]]:
    return [(f["severity"], f["code"]) for f in doc["findings"]]


async def test_failure_and_output_thresholds(sandbox: tuple[Sandbox, Path]) -> None:
    """As ``istioctl analyze``: INFO "not checked" notes alone exit 0 by default;
    ``--failure-threshold`` moves the bar, ``--output-threshold`` hides findings (text and JSON)
    without changing the exit code."""
    sb, _ = sandbox
    assert sb.api is not None
    await sb.apply_healthy_world()
    await ready_isvc(sb.api)
    # No settings: Secrets unreadable, no DNS nameserver, no proxy into the cluster: "not checked".
    kc = ("--kubeconfig", str(sb.kubeconfig_path), "-n", NS)

    code, raw, err = await check(*kc, "-o", "json")
    doc = json.loads(raw)
    assert {s for s, _ in _codes(doc)} == {"info"}, _codes(doc)
    assert code == 0, (err, _codes(doc))
    assert doc["healthy"] is True and doc["failure_threshold"] == "warning"
    infos = len(doc["findings"])

    code, raw, _ = await check(*kc, "-o", "json", "--failure-threshold", "info")
    assert code == 1 and json.loads(raw)["healthy"] is False

    code, raw, _ = await check(*kc, "-o", "json", "--output-threshold", "warning")
    quiet = json.loads(raw)
    assert code == 0
    assert quiet["findings"] == [] and quiet["hidden_findings"] == infos
    assert [r["findings"] for r in quiet["inferenceservices"]] == [[]] and quiet["cluster_findings"] == []

    code, text, _ = await check(*kc, "--output-threshold", "warning", "--failure-threshold", "info")
    assert code == 1  # the exit code follows the failure threshold, whatever is printed
    assert "not-checked" not in text
    assert f"({infos} below warning not shown)" in text.splitlines()[0]
    assert f"failing: {infos} finding(s) at or above info (--failure-threshold)" in text

    # A critical finding: the runtime the InferenceService names is gone.
    await CustomObjectsApi(sb.api).delete_namespaced_custom_object(
        GROUP, "v1alpha1", NS, "servingruntimes", "iris-fastapi-runtime")
    code, raw, _ = await check(*kc, "-o", "json", "--failure-threshold", "critical",
                               "--output-threshold", "critical")
    doc = json.loads(raw)
    assert code == 1
    assert ("critical", "no-serving-runtime") in _codes(doc) and {s for s, _ in _codes(doc)} == {"critical"}
    assert doc["hidden_findings"] >= infos


def _refs_in(doc: Obj) -> set[str]:
    """Every object a finding, its evidence or a drift names, as ``Kind/ns/name``."""
    subjects = {f"{f['subject']['kind']}/{f['subject']['namespace']}/{f['subject']['name']}"
                for f in doc["findings"]}
    return subjects | {d["ref"] for d in doc["drift"]}


async def test_namespace_and_selector_narrow_the_desired_state(sandbox: tuple[Sandbox, Path]) -> None:
    """With the seed's settings (its desired state): ``-n``/``-l`` leave out the desired objects
    outside them — no false "does not exist" drift for a model the selector filtered out, no
    desired model listed in a namespace not asked for — and keep those inside."""
    sb, cfg = sandbox
    assert sb.api is not None
    await sb.apply_healthy_world()
    await ready_isvc(sb.api)
    args = ("--config", str(cfg), "--kubeconfig", str(sb.kubeconfig_path), "-o", "json")

    async def doc_for(*flags: str) -> Obj:
        code, raw, err = await check(*args, *flags)
        assert code in (0, 1), err
        out: Obj = json.loads(raw)
        return out

    whole = await doc_for()
    assert [(r["namespace"], r["name"]) for r in whole["inferenceservices"]] == [(NS, "iris-model")]

    nosuch = await doc_for("-n", "nosuch")
    assert nosuch["inferenceservices"] == [] and nosuch["drift"] == []
    assert not [r for r in _refs_in(nosuch) if f"/{NS}/" in r or "/kubeflow/" in r], _refs_in(nosuch)

    # No object of the seed carries app=iris: the live model is filtered out by the API server,
    # and its desired twin (no such label either) is out of scope too, not "missing".
    iris = await doc_for("-l", "app=iris")
    assert iris["inferenceservices"] == [] and iris["drift"] == [], iris["drift"]
    assert not [f for f in iris["findings"] if f["subject"]["kind"] == "InferenceService"]

    only_kubeflow = await doc_for("-n", "kubeflow")
    assert only_kubeflow["inferenceservices"] == []
    assert all("/kubeflow/" in r for r in _refs_in(only_kubeflow) if f"/{NS}/" in r or "/kubeflow/" in r)

    # Labelled live, the model is in scope and diagnosed; the desired objects (unlabelled) stay out.
    await CustomObjectsApi(sb.api).patch_namespaced_custom_object(
        GROUP, "v1beta1", NS, "inferenceservices", "iris-model", {"metadata": {"labels": {"app": "iris"}}},
        _content_type=MERGE_PATCH)
    labelled = await doc_for("-l", "app=iris")
    assert [(r["namespace"], r["name"]) for r in labelled["inferenceservices"]] == [(NS, "iris-model")]
    assert labelled["drift"] == []
