"""``python -m serving`` as a real process: refuses to start without a real model, serves, stops cleanly."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from serving.grpc_gen import grpc_predict_v2_pb2 as pb
from serving.grpc_gen.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from serving.train import TrainResult, train
from tests.conftest import ROOT, free_port
from tests.unit.model_files import IRIS_CRASHERS, Mutation, to_bytes

SETOSA = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    # extensionless, as KServe's storage-initializer leaves it
    return train(out=tmp_path_factory.mktemp("model"), seed=42, name="model")


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "serving", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


def _http(url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def start() -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        if "--grpc_port" not in args:
            args = (*args, "--grpc_port", "0")  # not the default 8081: tests share the machine
        # Loopback only (the CLI's default host is 0.0.0.0, for a pod).
        p = subprocess.Popen([sys.executable, "-m", "serving", *args, "--http_port", str(port),
                              "--host", "127.0.0.1"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(p)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise AssertionError(f"server exited {p.returncode}: {p.stderr.read() if p.stderr else ''}")
            try:
                _http(base + "/v2/health/live")
                return p, base
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise AssertionError("server did not start listening")

    yield _start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)


def test_missing_directory_refuses_to_start(tmp_path: Path) -> None:
    res = _run("--model_dir", str(tmp_path / "absent"), "--model_name", "iris",
               "--http_port", str(free_port()))
    assert res.returncode == 1
    assert "does not exist" in res.stderr and "never serves a dummy model" in res.stderr


def test_corrupt_model_refuses_to_start_and_lists_files(tmp_path: Path) -> None:
    (tmp_path / "model").write_bytes(b"<?xml version='1.0'?><Error>AccessDenied</Error>")
    (tmp_path / "model.json").write_text('{"truncated": ')
    res = _run("--model-dir", str(tmp_path), "--model-name", "iris", "--http-port", str(free_port()))
    assert res.returncode == 1
    assert "found 2 file(s)" in res.stderr
    assert "- model (" in res.stderr and "- model.json (" in res.stderr
    # and the structured log line says so too
    line = next(ln for ln in res.stderr.splitlines() if ln.startswith("{"))
    assert json.loads(line)["event"] == "no model loaded; refusing to start"


def _corrupt(trained: TrainResult, mutate: Mutation, fmt: str = "json") -> bytes:
    """The trained iris model with one corruption, as a file of ``fmt``."""
    raw = trained.model_path.read_bytes()
    doc = json.loads(raw)
    mutate(doc)
    return to_bytes(doc, fmt)


def test_trees_that_crashed_the_server_are_refused_at_start(trained: TrainResult, tmp_path: Path) -> None:
    """Issue 23: each of these killed the server with SIGSEGV: three reported READY and died on the
    first predict, tree_info's died loading. Now each exits 1 with the reason and never serves."""
    procs = []
    for case, mutate, _ in IRIS_CRASHERS:
        d = tmp_path / case
        d.mkdir()
        (d / "model").write_bytes(_corrupt(trained, mutate))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "serving", "--model_dir", str(d), "--model_name", "iris",
             "--host", "127.0.0.1", "--http_port", str(free_port()), "--grpc_port", "0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        for p, (case, _, reason) in zip(procs, IRIS_CRASHERS, strict=True):
            _, err = p.communicate(timeout=60)
            assert p.returncode == 1, (case, p.returncode, err[-2000:])
            assert reason in err and "never serves a dummy model" in err, err
            events = [json.loads(ln)["event"] for ln in err.splitlines() if ln.startswith("{")]
            assert "serving" not in events and "model loaded" not in events
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=10)


def test_wait_for_model_stays_unready_with_corrupt_trees_then_serves_a_good_model(
        trained: TrainResult, tmp_path: Path) -> None:
    """All four crashers in the directory, JSON and UBJSON: never READY, the process lives, and
    the real model serves once it arrives."""
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    for (case, mutate, _), fmt in zip(IRIS_CRASHERS, ("json", "ubj", "json", "ubj"), strict=True):
        (model_dir / f"{case}.{fmt}").write_bytes(_corrupt(trained, mutate, fmt))
    log = tmp_path / "server.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as sink:
        p = subprocess.Popen(
            [sys.executable, "-m", "serving", "--model_dir", str(model_dir), "--model_name", "iris",
             "--host", "127.0.0.1", "--http_port", str(port), "--grpc_port", "0", "--wait-for-model"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=sink, text=True)
    try:
        waiting = _await_event(log, p, "waiting for a model")
        for _, _, reason in IRIS_CRASHERS:
            assert reason in waiting["reason"], waiting["reason"]
        assert _http(base + "/v2/health/ready") == (503, {"ready": False})
        shutil.copy(trained.model_path, model_dir / "zz-iris.json")  # tried after the corrupt ones
        loaded = _await_event(log, p, "model loaded")
        assert loaded["path"].endswith("/zz-iris.json")
        assert _http(base + "/v2/health/ready") == (200, {"ready": True})
        assert _http(base + "/v1/models/iris:predict", {"instances": [SETOSA]}) == (200, {"predictions": [0]})
    finally:
        p.kill()
        p.wait(timeout=10)


def _await_event(log: Path, p: subprocess.Popen[str], event: str, timeout: float = 60) -> dict[str, Any]:
    """The first JSON log line of ``event`` the server writes to ``log``; fails if it dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("{") and (entry := json.loads(line))["event"] == event:
                return dict(entry)
        assert p.poll() is None, f"server exited {p.returncode}: {log.read_text()[-2000:]}"
        time.sleep(0.05)
    raise AssertionError(f"no {event!r} in the server log: {log.read_text()[-2000:]}")


def test_serves_extensionless_model_and_stops_cleanly(trained: TrainResult, start: Any) -> None:
    grpc_port = free_port()
    proc, base = start("--model_dir", str(trained.model_path.parent), "--model_name", "iris",
                       "--grpc_port", str(grpc_port),
                       "--enable_latency_logging", "false")  # a KServe flag we do not use: warned about
    assert _grpc_predict(grpc_port) == [0]
    assert _http(base + "/v1/models/iris") == (200, {"name": "iris", "ready": True})
    assert _http(base + "/v1/models/iris:predict", {"instances": [SETOSA]}) == (200, {"predictions": [0]})
    status, body = _http(base + "/v2/models/iris/infer",
                         {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": SETOSA}]})
    assert status == 200 and body["outputs"][0]["data"] == [0]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    events = [json.loads(ln) for ln in err.splitlines() if ln.startswith("{")]
    names = [e["event"] for e in events]
    assert "ignoring arguments this server does not use" in names
    loaded = next(e for e in events if e["event"] == "model loaded")
    assert loaded["path"].endswith("/model") and loaded["sha256"] == trained.sha256
    assert all({"timestamp", "level", "event", "logger"} <= set(e) for e in events)


def _grpc_predict(port: int, rows: list[list[float]] | None = None) -> list[int]:
    x = np.array(rows or [SETOSA], dtype=np.float32)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        resp = GRPCInferenceServiceStub(channel).ModelInfer(pb.ModelInferRequest(
            model_name="iris", inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP32",
                                                                             shape=x.shape)],
            raw_input_contents=[x.tobytes()]), timeout=10)
    return np.frombuffer(resp.raw_output_contents[0], dtype="<i8").tolist()


def _grpc_refused(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=2)
        except grpc.RpcError as exc:
            return exc.code() == grpc.StatusCode.UNAVAILABLE
    return False


def test_grpc_off_with_zero_or_enable_grpc_false(trained: TrainResult, start: Any) -> None:
    for off in (["--grpc_port", "0"], ["--grpc_port", str(free_port()), "--enable_grpc", "false"]):
        proc, base = start("--model_dir", str(trained.model_path.parent), "--model_name", "iris", *off)
        assert _http(base + "/v1/models/iris") == (200, {"name": "iris", "ready": True})
        if off[1] != "0":
            assert _grpc_refused(int(off[1]))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0 and "grpc serving" not in err


def test_busy_grpc_port_exits_1_with_the_reason(trained: TrainResult) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = _run("--model_dir", str(trained.model_path.parent), "--model_name", "iris",
                   "--host", "127.0.0.1", "--http_port", str(free_port()), "--grpc_port", str(port))
    assert res.returncode == 1
    events = [json.loads(ln) for ln in res.stderr.splitlines() if ln.startswith("{")]
    err = next(e for e in events if e["event"] == "cannot listen; stopping")
    assert f"cannot listen for gRPC on 127.0.0.1:{port}" in err["reason"]


def test_wait_for_model_starts_unready(tmp_path: Path, start: Any) -> None:
    _, base = start("--model_dir", str(tmp_path), "--model_name", "iris", "--wait-for-model")
    assert _http(base + "/v1/models/iris") == (503, {"name": "iris", "ready": False})


def test_workers_share_the_port(trained: TrainResult, start: Any) -> None:
    grpc_port = free_port()
    proc, base = start("--model_dir", str(trained.model_path.parent), "--model_name", "iris",
                       "--workers", "2", "--grpc_port", str(grpc_port))
    deadline = time.monotonic() + 30
    while _http(base + "/v1/models/iris")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    for _ in range(20):
        assert _http(base + "/v1/models/iris:predict", {"instances": [SETOSA]}) == (200, {"predictions": [0]})
        assert _grpc_predict(grpc_port) == [0]  # both workers listen on the gRPC port too
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
