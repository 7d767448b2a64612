"""The model server under abuse (issue 13, items 12-16), over real sockets against ``python -m serving``.

Each server is the real CLI process on a free loopback port, with small timeouts where a test
waits for one; its stderr is collected line by line, and a test that checks the log stops the
server first, so every line it wrote is there. Requests go over raw asyncio streams, because
half-sent requests and malformed HTTP are what no HTTP client sends.

- 12: JSON nested 1,000+ levels deep is a 400, not a ``RecursionError`` 500.
- 13: a body that does not decode as its ``Content-Encoding`` is a 400 (a gzip bomb still a 413).
- 14: a 500 logs one JSON line without its message or the request, rate-limited; malformed HTTP
  logs one JSON line (no traceback, no request bytes).
- 15: half-sent headers and slow bodies are closed after their timeouts; at the connection cap
  the oldest unfinished connection makes room, and with none the new connection gets a 503.
- 16: 16 concurrent 7.9 MB bodies stay far below the 2 GB they used to take (peak RSS from
  ``/proc/PID/status`` VmHWM), and a large body over the body budget waits, then gets 503 with
  ``Retry-After``.

And issue 23 (items 3, 4, 7): a body slower than ``--body-min-rate`` gets 408, at the connection
cap the slowest body makes room for a new client, a body the server itself is not reading (it
waits for the budget) is not blamed; large gRPC messages take from the REST bodies' budget
(RESOURCE_EXHAUSTED over it); gRPC errors log one rate-limited line without a traceback; and the
one private attribute of aiohttp the connection guard reads is pinned.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import signal
import subprocess
import sys
import threading
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import joblib
import numpy as np
import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from serving.app import build_app
from serving.grpc_gen import grpc_predict_v2_pb2 as pb
from serving.grpc_gen.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from serving.limits import AIOHTTP_MAJOR, BODY_LIMITS, CONNECTIONS, Limits, port_of
from serving.limits import start as serve
from serving.train import TrainResult, train
from tests.conftest import ROOT, free_port

NAME = "iris"
V1 = f"/v1/models/{NAME}:predict"
V2 = f"/v2/models/{NAME}/infer"
ONE = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
MARKER = b"MARKER-2b7d9e"
# Generous bounds so that a server that never closes fails the test instead of hanging it; the
# servers' own timeouts in these tests are 0.5 s.
BOUND = 30.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return train(out=tmp_path_factory.mktemp("model"), seed=42)


class Server:
    """``python -m serving`` on a free loopback port; stderr collected by a thread, line by line."""

    def __init__(self, model_dir: Path, *flags: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "serving", "--model_dir", str(model_dir), "--model_name", NAME,
             "--http_port", str(self.port), "--host", "127.0.0.1", "--grpc_port", "0", *flags],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: list[bytes] = []
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._listening.wait(60):
            self.stop()
            raise AssertionError(f"server did not start: {b''.join(self.lines)!r}")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if b'"event": "listening"' in line:
                self._listening.set()
        self._listening.set()  # exited: let the constructor see it

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> list[bytes]:
        """Stop (SIGTERM) and return every line the server wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(30)
        return self.lines


@pytest.fixture
def start() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def _start(model_dir: Path, *flags: str) -> Server:
        s = Server(model_dir, *flags)
        servers.append(s)
        return s

    yield _start
    for s in servers:
        s.stop()


@pytest.fixture
def server(start: Callable[..., Server], trained: TrainResult) -> Server:
    return start(trained.model_path.parent, "--header-timeout", "0.5", "--body-timeout", "0.5")


# --- raw HTTP over asyncio streams -------------------------------------------------------------


def request(body: bytes, *, path: str = V1, headers: dict[str, str] | None = None,
            length: int | None = None) -> bytes:
    h = {"Host": "127.0.0.1", "Content-Type": "application/json",
         "Content-Length": str(len(body) if length is None else length), **(headers or {})}
    return f"POST {path} HTTP/1.1\r\n".encode() + b"".join(f"{k}: {v}\r\n".encode() for k, v in h.items()) \
        + b"\r\n" + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split(" ", 2)[1]), headers, body


@pytest.fixture
async def connections() -> AsyncIterator[Callable[[int], Any]]:
    """Opens connections to a port; closes every one at teardown."""
    writers: list[asyncio.StreamWriter] = []

    async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        return reader, writer

    yield _open
    for w in writers:
        w.close()
    for w in writers:
        try:
            await w.wait_closed()
        except OSError:
            pass


async def exchange(port: int, payload: bytes, bound: float = BOUND) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        async with asyncio.timeout(bound):
            return await read_response(reader)
    finally:
        writer.close()
        await writer.wait_closed()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Wait (bounded) for the server to close: True at EOF or reset."""
    try:
        async with asyncio.timeout(BOUND):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def json_lines(lines: list[bytes]) -> list[dict[str, Any]]:
    """Every line parsed; fails on any line that is not one JSON object."""
    out = []
    for line in lines:
        doc = json.loads(line)
        assert isinstance(doc, dict), line
        out.append(doc)
    return out


# --- 12: deep JSON -------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 100_000])
async def test_deeply_nested_json_is_400(server: Server, depth: int) -> None:
    nest = b"[" * depth + b"]" * depth
    v1 = b'{"instances": ' + nest + b"}"
    v2 = b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": ' + nest + b"}]}"
    binary = {"Inference-Header-Content-Length": str(len(v2)), "Content-Type": "application/octet-stream"}
    for path, body, headers in ((V1, v1, {}), (V2, v2, {}), (V2, v2, binary),
                                (V1, b'{"a": ' * depth + b"1" + b"}" * depth, {})):
        status, _, answer = await exchange(server.port, request(body, path=path, headers=headers))
        assert status == 400, answer
        assert b"nested too deeply" in answer
    assert (await exchange(server.port, request(ONE)))[0] == 200
    assert not [d for d in json_lines(server.stop()) if d["level"] == "error"]


# --- 13: Content-Encoding ------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_body_that_is_not_its_content_encoding_is_400(server: Server, encoding: str) -> None:
    not_encoded = b"this is not " + encoding.encode() + MARKER
    status, headers, answer = await exchange(
        server.port, request(not_encoded, headers={"Content-Encoding": encoding}))
    assert status == 400, answer
    assert headers["content-type"].startswith("application/json")
    assert "Content-Encoding" in json.loads(answer)["error"]
    # A real compressed body still works.
    packed = gzip.compress(ONE) if encoding != "deflate" else zlib.compress(ONE)
    if encoding != "br":
        status, _, _ = await exchange(server.port, request(packed, headers={"Content-Encoding": encoding}))
        assert status == 200
    if encoding == "gzip":  # and a gzip bomb stops at the body limit
        bomb = gzip.compress(b" " * (64 * 1024 * 1024))  # 64 MiB of spaces in ~64 KiB
        status, _, answer = await exchange(server.port, request(bomb, headers={"Content-Encoding": "gzip"}))
        assert status == 413, answer
    lines = server.stop()
    assert not [d for d in json_lines(lines) if d["level"] in ("error", "warning")]
    assert not any(MARKER in line for line in lines)


# --- 14: logs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def failing_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real scikit-learn pipeline that raises inside predict for a negative feature (log -> NaN)."""
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    pipe = Pipeline([("log", FunctionTransformer(np.log)), ("clf", LogisticRegression(max_iter=500))])
    pipe.fit(x, y)
    out = tmp_path_factory.mktemp("failing")
    joblib.dump(pipe, out / "model.joblib")
    return out


async def test_repeated_500s_log_one_json_line_each_rate_limited(start: Callable[..., Server],
                                                                failing_model: Path) -> None:
    srv = start(failing_model)
    bad = b'{"instances": [[-7.123456, 3.5, 1.4, 0.2]]}'
    for _ in range(10):
        statuses = await asyncio.gather(*(exchange(srv.port, request(bad)) for _ in range(20)))
        assert {s for s, _, _ in statuses} == {500}
    assert (await exchange(srv.port, request(ONE)))[0] == 200
    lines = srv.stop()
    docs = json_lines(lines)
    failed = [d for d in docs if d["event"] == "request failed"]
    assert 1 <= len(failed) <= 5  # 200 errors of one kind: the burst, then one per 10 s
    assert failed[0]["error_type"] == "ValueError" and failed[0]["endpoint"] == "v1_predict"
    assert failed[0]["where"] and "exception" not in failed[0]
    text = b"".join(lines)
    assert b"-7.123456" not in text and b"contains NaN" not in text and b"Traceback" not in text


async def test_malformed_http_logs_one_json_line_without_request_bytes(server: Server) -> None:
    garbage = [
        b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nContent-Length: 1" + MARKER + b"\r\n\r\n",
        b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-" + MARKER + b"\x01: y\r\n\r\n",
        b"POST " + V1.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz" + MARKER
        + b"\r\n",
    ]
    for payload in garbage * 20:
        status, _, _ = await exchange(server.port, payload)
        assert status == 400
    assert (await exchange(server.port, request(ONE)))[0] == 200
    lines = server.stop()
    docs = json_lines(lines)
    assert not any(MARKER in line for line in lines)
    malformed = [d for d in docs if d["event"] == "malformed HTTP request"]
    assert 1 <= len(malformed) <= 3 * 5  # 60 bad requests: at most a burst per kind of error


# --- 15: slow clients ----------------------------------------------------------------------------


async def test_half_sent_headers_are_closed_after_the_header_timeout(
        server: Server, connections: Callable[[int], Any]) -> None:
    slow = []
    for i in range(20):
        reader, writer = await connections(server.port)
        if i % 2:
            writer.write(f"POST {V1} HTTP/1.1\r\nHost: x\r\nX-Slow: {i}\r\n".encode())  # never finished
        slow.append(reader)  # even ones connect and say nothing
    assert all(await asyncio.gather(*(closed_by_server(r) for r in slow)))
    # The same after a first request on a keep-alive connection: the next header must be timely too.
    reader, writer = await connections(server.port)
    writer.write(request(ONE))
    assert (await read_response(reader))[0] == 200
    writer.write(f"POST {V1} HTTP/1.1\r\nHost: x\r\n".encode())
    assert await closed_by_server(reader)
    assert (await exchange(server.port, request(ONE)))[0] == 200


async def test_slow_body_gets_408_and_the_connection_closes(server: Server,
                                                           connections: Callable[[int], Any]) -> None:
    for length in (100, 1_000_000):  # a small body and a large one (budget path)
        reader, writer = await connections(server.port)
        writer.write(request(b'{"instances": [[5.1,', length=length))
        async with asyncio.timeout(BOUND):
            status, _, answer = await read_response(reader)
        assert status == 408, answer
        assert "body" in json.loads(answer)["error"]
        assert await closed_by_server(reader)
    assert (await exchange(server.port, request(ONE)))[0] == 200
    assert not [d for d in json_lines(server.stop()) if d["level"] == "error"]


async def test_connection_cap_evicts_the_oldest_unfinished_header(
        start: Callable[..., Server], trained: TrainResult, connections: Callable[[int], Any]) -> None:
    srv = start(trained.model_path.parent, "--max-connections", "8", "--header-timeout", "60")
    slow = []
    for i in range(8):
        reader, writer = await connections(srv.port)
        writer.write(f"POST {V1} HTTP/1.1\r\nX-Slow: {i}\r\n".encode())
        slow.append(reader)
    # Real clients still get in, each new connection evicting the oldest half-sent one.
    for _ in range(3):
        reader, writer = await connections(srv.port)
        writer.write(request(ONE))
        assert (await read_response(reader))[0] == 200
    assert all(await asyncio.gather(*(closed_by_server(r) for r in slow[:3])))


async def test_connection_cap_refuses_when_no_connection_can_be_evicted(
        start: Callable[..., Server], trained: TrainResult, connections: Callable[[int], Any]) -> None:
    srv = start(trained.model_path.parent, "--max-connections", "8", "--header-timeout", "60")
    for _ in range(8):  # eight keep-alive connections, each past its first request
        reader, writer = await connections(srv.port)
        writer.write(request(ONE))
        assert (await read_response(reader))[0] == 200
    reader, writer = await connections(srv.port)
    writer.write(request(ONE))
    async with asyncio.timeout(BOUND):
        status, headers, answer = await read_response(reader)
    assert status == 503 and headers["connection"].lower() == "close", answer
    assert "max-connections" in json.loads(answer)["error"]
    assert await closed_by_server(reader)


# --- 16: memory ------------------------------------------------------------------------------------


def _kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def _reset_peak_rss(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := the current RSS


@pytest.mark.timeout(300)
async def test_concurrent_large_bodies_take_bounded_memory(start: Callable[..., Server],
                                                          trained: TrainResult) -> None:
    # Default limits, but for a body timeout that fits a busy CI machine: with the default 64 MiB
    # budget eight bodies are in flight and the others wait for it, which counts against that timeout.
    srv = start(trained.model_path.parent, "--body-timeout", "120")
    row = b"[5.1,3.5,1.4,0.2]"
    rows = 7_900_000 // (len(row) + 1)
    body = b'{"instances":[' + b",".join([row] * rows) + b"]}"
    assert 7_800_000 < len(body) < 8 * 1024 * 1024
    assert (await exchange(srv.port, request(body)))[0] == 200  # warm: allocator arenas, model paths
    before = _kb(srv.pid, "VmRSS")
    _reset_peak_rss(srv.pid)
    async with asyncio.TaskGroup() as tg:  # one failure cancels the others
        tasks = [tg.create_task(exchange(srv.port, request(body), bound=150)) for _ in range(16)]
    answers = [t.result() for t in tasks]
    assert [s for s, _, _ in answers] == [200] * 16
    assert json.loads(answers[0][2])["predictions"][:1] == [0]
    grew_mb = (_kb(srv.pid, "VmHWM") - before) / 1024
    # Before the fix this grew by ~1.9 GB (about 75 MB of Python objects per body, all alive at once).
    assert grew_mb < 700, f"peak RSS grew by {grew_mb:.0f} MB"


async def test_large_bodies_wait_for_the_body_budget_then_get_503(trained: TrainResult) -> None:
    """In process (the same server start as the CLI's), so that the test itself can hold the body
    budget the way a long model call on a large body does."""
    app = build_app(model_name=NAME, model_dir=trained.model_path.parent,
                    limits=Limits(body_timeout=0.5, max_inflight_body_bytes=100_000))
    runner, site = await serve(app, host="127.0.0.1", port=0)
    port = port_of(site)
    budget = app[BODY_LIMITS].budget
    big = request(b'{"instances": [' + b",".join([b"[5.1,3.5,1.4,0.2]"] * 9000) + b"]}")
    waiting = None
    try:
        # Budget taken: a large body waits (the gauge shows it), and goes through once it is free.
        lease = await budget.acquire(100_000)
        waiting = asyncio.create_task(exchange(port, big))
        async with asyncio.timeout(BOUND):
            while b"serving_body_budget_waiting_requests 1.0" not in (await exchange(
                    port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"))[2]:
                pass
        assert (await exchange(port, request(ONE)))[0] == 200  # small bodies never wait
        lease.release()
        assert (await waiting)[0] == 200
        # Budget taken for longer than the body timeout: 503, and the server goes on.
        lease = await budget.acquire(100_000)
        status, headers, answer = await exchange(port, big)
        assert status == 503 and b"too many large request bodies" in answer
        assert headers["retry-after"] == "1"
        lease.release()
        assert (await exchange(port, big))[0] == 200
        assert budget.used == 0
    finally:
        if waiting is not None:
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
        await runner.cleanup()


# --- issue 23: slow bodies, one budget for REST and gRPC, gRPC error logs ----------------------


@contextlib.asynccontextmanager
async def in_process(model_dir: Path, limits: Limits, *,
                     grpc_port: int = 0) -> AsyncIterator[tuple[web.Application, web.AppRunner, int]]:
    """The server as the CLI starts it (serving.limits.start), in the test's loop, so that a test
    can see the guard's and the budget's state; (app, runner, HTTP port)."""
    app = build_app(model_name=NAME, model_dir=model_dir, limits=limits, grpc_port=grpc_port,
                    grpc_host="127.0.0.1")
    runner, site = await serve(app, host="127.0.0.1", port=0)
    try:
        yield app, runner, port_of(site)
    finally:
        await runner.cleanup()


async def until(predicate: Callable[[], bool]) -> None:
    """Wait for server-side state (the guard's, the budget's) that no event announces: polled,
    bounded at BOUND."""
    for _ in range(int(BOUND / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {predicate}")


def padded(size: int) -> bytes:
    """A valid one-row V1 body of exactly ``size`` bytes (JSON whitespace pads it)."""
    return ONE[:-1] + b" " * (size - len(ONE)) + ONE[-1:]


async def test_body_below_the_minimum_rate_gets_408(start: Callable[..., Server], trained: TrainResult,
                                                    connections: Callable[[int], Any]) -> None:
    srv = start(trained.model_path.parent, "--body-min-rate", "100", "--body-grace", "0.3",
                "--body-timeout", "60")
    body = padded(1000)

    async def send(writer: asyncio.StreamWriter, part: int, every: float) -> None:
        for i in range(0, len(body), part):
            writer.write(body[i:i + part])
            await asyncio.sleep(every)  # the client's pace is what is under test

    # One byte every 0.1 s (10 bytes/s): 408 at ~0.3 s + 1/100 s a byte, far before --body-timeout.
    reader, writer = await connections(srv.port)
    writer.write(request(b"", length=len(body)))
    trickle = asyncio.create_task(send(writer, 1, 0.1))
    try:
        async with asyncio.timeout(BOUND):
            status, _, answer = await read_response(reader)
        assert status == 408, answer
        assert "100 bytes/s" in json.loads(answer)["error"]
        assert await closed_by_server(reader)
    finally:
        trickle.cancel()
        await asyncio.gather(trickle, return_exceptions=True)
    # 100 bytes every 0.1 s (1,000 bytes/s) keeps up: answered.
    reader, writer = await connections(srv.port)
    writer.write(request(b"", length=len(body)))
    await send(writer, 100, 0.1)
    async with asyncio.timeout(BOUND):
        assert (await read_response(reader))[0] == 200
    assert not [d for d in json_lines(srv.stop()) if d["level"] == "error"]


async def test_at_the_cap_the_slowest_body_makes_room_for_a_new_client(
        trained: TrainResult, connections: Callable[[int], Any]) -> None:
    limits = Limits(max_connections=8, header_timeout=120, body_grace=60)
    async with in_process(trained.model_path.parent, limits) as (app, _, port):
        guard = app[CONNECTIONS]
        slow = []
        for _ in range(8):  # every slot: a header in, then a body that does not come
            reader, writer = await connections(port)
            writer.write(request(b"", length=1000))
            slow.append((reader, writer))
        await until(lambda: len(guard.bodies) == 8)
        # All but one send 400 bytes, which buys each 0.8 s at the minimum rate: the one that
        # sent nothing is the slowest, whatever order the server took them in.
        laggard = slow[3]
        for _, writer in slow:
            if writer is not laggard[1]:
                writer.write(b" " * 400)
        loop = asyncio.get_running_loop()
        laggard_addr = laggard[1].get_extra_info("sockname")
        target = next(conn for transport, conn in guard.by_transport.items()
                      if transport.get_extra_info("peername") == laggard_addr)
        await until(lambda: guard.victim(loop.time()) is target)
        # A new client at the cap is served; the slowest body was closed to make room, only it.
        reader, writer = await connections(port)
        writer.write(request(ONE))
        async with asyncio.timeout(BOUND):
            assert (await read_response(reader))[0] == 200
        assert await closed_by_server(laggard[0])
        assert len(guard.bodies) == 7 and guard.open == 8
        for _, w in slow:  # gone before the server stops: its handlers need not wait out a body timeout
            w.close()
        await until(lambda: not guard.bodies)


async def test_a_body_the_server_is_not_reading_is_not_held_to_the_minimum_rate(
        trained: TrainResult) -> None:
    """While a large body waits for the budget, aiohttp stops reading its socket: the body's
    pace is then ours, not the client's, and must not earn it a 408."""
    limits = Limits(body_min_rate=1_000_000, body_grace=0.2, body_timeout=30,
                    max_inflight_body_bytes=100_000)
    async with in_process(trained.model_path.parent, limits) as (app, _, port):
        budget = app[BODY_LIMITS].budget
        lease = await budget.acquire(100_000)
        waiting = asyncio.create_task(exchange(port, request(padded(2_000_000))))
        try:
            await until(lambda: budget.waiting == 1)
            # Five graces: a server that held its own pause against the client would have
            # answered 408 by now (at ~0.2 s + what it had read / 1 MB/s).
            await asyncio.sleep(1.0)
            assert not waiting.done()
            lease.release()
            assert (await waiting)[0] == 200
        finally:
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
        assert budget.used == 0


def infer_request(rows: int, value: float = 5.1) -> pb.ModelInferRequest:
    arr = np.tile(np.array([value, 3.5, 1.4, 0.2], dtype=np.float32), (rows, 1))
    tensor = pb.ModelInferRequest.InferInputTensor(name="input-0", datatype="FP32", shape=arr.shape)
    return pb.ModelInferRequest(model_name=NAME, inputs=[tensor], raw_input_contents=[arr.tobytes()])


async def test_large_grpc_messages_take_from_the_rest_bodies_budget(
        trained: TrainResult, connections: Callable[[int], Any]) -> None:
    grpc_port = free_port()
    limits = Limits(max_inflight_body_bytes=1_000_000)
    async with in_process(trained.model_path.parent, limits, grpc_port=grpc_port) as (app, _, port), \
            grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        budget = app[BODY_LIMITS].budget
        large = infer_request(12_500)  # 200 kB of raw FP32: over LARGE_BODY_BYTES
        assert (await stub.ModelInfer(large)).outputs[0].name == "predict"
        assert budget.used == 0  # taken for the call, given back after it
        # A REST body of 900 kB takes its share at its header and holds it while it arrives.
        body = padded(900_000)
        reader, writer = await connections(port)
        writer.write(request(body[:100], length=len(body)))
        await until(lambda: budget.used == 900_000)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ModelInfer(large)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-inflight-body-bytes" in (refused.value.details() or "")
        assert ("grpc-retry-pushback-ms", "1000") in tuple(refused.value.trailing_metadata() or ())
        small = await stub.ModelInfer(infer_request(1))  # small messages never touch the budget
        assert list(small.outputs[0].shape) == [1]
        writer.write(body[100:])
        async with asyncio.timeout(BOUND):
            assert (await read_response(reader))[0] == 200
        await until(lambda: budget.used == 0)
        assert (await stub.ModelInfer(large)).outputs[0].name == "predict"
        assert budget.used == 0
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
            assert 'serving_requests_total{endpoint="grpc_ModelInfer",status="503"} 1.0' in await r.text()


async def test_grpc_errors_log_one_rate_limited_line_without_a_traceback(
        start: Callable[..., Server], failing_model: Path) -> None:
    grpc_port = free_port()
    srv = start(failing_model, "--grpc_port", str(grpc_port))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        bad = infer_request(1, value=-7.123456)  # the pipeline's log() makes a NaN: its predict raises

        async def call() -> grpc.StatusCode:
            try:
                await stub.ModelInfer(bad)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

        for _ in range(10):
            codes = await asyncio.gather(*(call() for _ in range(20)))
            assert set(codes) == {grpc.StatusCode.INTERNAL}
        assert (await stub.ModelInfer(infer_request(1))).outputs
    lines = srv.stop()
    failed = [d for d in json_lines(lines) if d["event"] == "grpc call failed"]
    assert 1 <= len(failed) <= 5  # 200 errors of one kind: the burst, then one per 10 s
    assert failed[0]["error_type"] == "ValueError" and failed[0]["method"] == "ModelInfer"
    assert failed[0]["where"] and "exception" not in failed[0]
    assert b"Traceback" not in b"".join(lines) and b"-7.123456" not in b"".join(lines)


async def test_the_private_aiohttp_state_the_guard_reads_is_still_there(
        trained: TrainResult, connections: Callable[[int], Any]) -> None:
    """serving.limits reads RequestHandler._waiter: pending exactly while aiohttp waits for a
    complete request message. If aiohttp changes that, this fails (and pyproject pins aiohttp <4)."""
    assert int(aiohttp.__version__.split(".")[0]) == AIOHTTP_MAJOR
    assert "_waiter" in RequestHandler.__slots__
    async with in_process(trained.model_path.parent, Limits()) as (_, runner, port):
        server = runner.server
        assert server is not None
        reader, writer = await connections(port)
        writer.write(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")  # half a header
        await until(lambda: len(server.connections) == 1)
        handler = server.connections[0]

        def waiting_for_a_request() -> bool:
            waiter = handler._waiter
            return waiter is not None and not waiter.done()

        await until(waiting_for_a_request)
        writer.write(b"\r\n")
        async with asyncio.timeout(BOUND):
            assert (await read_response(reader))[0] == 200
        await until(waiting_for_a_request)  # keep-alive: waiting for the next one
