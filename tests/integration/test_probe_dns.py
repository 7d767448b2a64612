"""The DNS probe against the sandbox DNS server (every outcome, latency tracking) and real dnsmasq."""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import pytest

from probes.dns import DnsOutcome, DnsProbe, nameserver_from_resolv_conf, percentile
from sandbox.dns import ISTIOD_IP, DnsServer
from tests.conftest import find_tool, free_port

ISTIOD = "istiod.istio-system.svc"


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    s = DnsServer(seed=3)
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


def probe(server: DnsServer, *, names: tuple[str, ...] = (ISTIOD,), **kw: float | bool) -> DnsProbe:
    host, port = server.address
    return DnsProbe(names=names, nameserver=host, port=port, **kw)  # type: ignore[arg-type]


async def test_ok(server: DnsServer) -> None:
    obs = await probe(server, queries=5)()
    assert obs.ok and obs.outcome == DnsOutcome.OK and obs.probe == "dns"
    assert obs.values["queries"] == 5 and obs.values["timeouts"] == 0 and obs.values["loss_ratio"] == 0
    assert 0 < obs.values["p50_seconds"] <= obs.values["p95_seconds"] <= obs.values["max_seconds"]
    assert obs.evidence[0].startswith(f"lookup {ISTIOD}: 5/5 answered, p50 ")
    assert obs.evidence[0].endswith(f"-> {ISTIOD_IP}")
    assert obs.details["names"][ISTIOD]["addresses"] == [ISTIOD_IP]
    assert server.queries == 5


async def test_slow(server: DnsServer) -> None:
    server.delay = 0.06
    obs = await probe(server, queries=3, slow_threshold=0.05)()
    assert obs.outcome == DnsOutcome.SLOW and not obs.ok
    assert obs.values["p50_seconds"] >= 0.06
    assert "slow, 3/3 answered" in obs.evidence[0] and "(threshold 50 ms)" in obs.evidence[0]


async def test_timeout_when_coredns_is_degraded(server: DnsServer) -> None:
    server.degraded = True
    obs = await probe(server, queries=3, timeout=0.2)()
    assert obs.outcome == DnsOutcome.TIMEOUT
    # The run stops at the first unanswered query: the verdict is already known.
    assert obs.evidence == (f"lookup {ISTIOD}: i/o timeout (1/1 timed out)",)
    assert obs.values["timeouts"] == 1 and obs.values["loss_ratio"] == 1.0
    assert "p50_seconds" not in obs.values
    full = await probe(server, queries=3, timeout=0.2, stop_on_timeout=False)()
    assert full.evidence == (f"lookup {ISTIOD}: i/o timeout (3/3 timed out)",)
    assert full.values["timeouts"] == 3 and full.values["loss_ratio"] == 1.0


async def test_partial_loss_counts_timeouts() -> None:
    # The server's seeded RNG decides which queries are dropped: predict the count.
    seed, loss, n = 11, 0.5, 10
    rng = random.Random(seed)
    expected = sum(rng.random() < loss for _ in range(n))
    assert 0 < expected < n
    s = DnsServer(seed=seed)
    s.loss = loss
    await s.start()
    try:
        obs = await probe(s, queries=n, timeout=0.4, stop_on_timeout=False)()
    finally:
        await s.stop()
    assert obs.outcome == DnsOutcome.TIMEOUT
    assert obs.evidence == (f"lookup {ISTIOD}: i/o timeout ({expected}/{n} timed out)",)
    assert obs.values["loss_ratio"] == pytest.approx(expected / n)
    assert obs.details["names"][ISTIOD]["answered"] == n - expected


async def test_nxdomain(server: DnsServer) -> None:
    obs = await probe(server, names=("minio-service.kubeflow.svc",), queries=2)()
    assert obs.outcome == DnsOutcome.NXDOMAIN
    assert obs.evidence == ("lookup minio-service.kubeflow.svc: no such host, NXDOMAIN (2/2)",)


async def test_servfail(server: DnsServer) -> None:
    server.servfail = True
    obs = await probe(server, queries=2)()
    assert obs.outcome == DnsOutcome.SERVFAIL
    assert obs.evidence == (f"lookup {ISTIOD}: server misbehaving (SERVFAIL 2/2)",)


async def test_worst_name_decides(server: DnsServer) -> None:
    obs = await probe(server, names=(ISTIOD, "missing.svc"), queries=2)()
    assert obs.outcome == DnsOutcome.NXDOMAIN
    assert obs.target == f"{ISTIOD},missing.svc"
    assert obs.details["names"][ISTIOD]["outcome"] == "ok"
    assert obs.values["queries"] == 4


async def test_probe_error_never_raises() -> None:
    obs = await DnsProbe(names=[ISTIOD], nameserver="kube-dns.kube-system", port=53)()
    assert obs.outcome == DnsOutcome.PROBE_ERROR and not obs.ok
    assert obs.evidence[0].startswith("probe crashed: ValueError")


async def test_percentiles_track_injected_delay(server: DnsServer) -> None:
    p50: dict[float, float] = {}
    for delay in (0.0, 0.020, 0.050):
        server.delay = delay
        obs = await probe(server, queries=15, timeout=2.0)()
        assert obs.outcome == DnsOutcome.OK, obs.evidence
        p50[delay] = obs.values["p50_seconds"]
        # An answer can never come back before the injected delay: tight lower bound.
        assert min(obs.details["latencies_seconds"]) >= delay
        # Upper bound loose: a loaded 2-core machine adds scheduling noise.
        assert p50[delay] < delay + 0.25
        assert obs.values["p50_seconds"] <= obs.values["p95_seconds"] <= obs.values["max_seconds"]
    assert p50[0.0] < p50[0.020] < p50[0.050]
    assert p50[0.0] < 0.020


def test_percentile_interpolates() -> None:
    assert percentile([1.0], 95) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([4.0, 1.0, 3.0, 2.0, 5.0], 95) == pytest.approx(4.8)
    with pytest.raises(ValueError):
        percentile([], 50)


def test_nameserver_from_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# generated\nsearch user-example-com.svc.cluster.local svc.cluster.local\n"
        "nameserver 10.96.0.10 # kube-dns\nnameserver 8.8.8.8\noptions ndots:5\n"
    )
    assert nameserver_from_resolv_conf(conf) == "10.96.0.10"
    assert nameserver_from_resolv_conf(tmp_path / "missing") is None
    (tmp_path / "empty").write_text("search x\n")
    assert nameserver_from_resolv_conf(tmp_path / "empty") is None


# -- real dnsmasq --------------------------------------------------------------------


@pytest.fixture
def dnsmasq() -> Iterator[tuple[str, int]]:
    binary = find_tool("dnsmasq")  # fails, not skips, when missing
    port = free_port(kind=socket.SOCK_DGRAM)
    proc = subprocess.Popen(
        [
            binary,
            "--no-daemon",
            "--port",
            str(port),
            "--listen-address",
            "127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--user=root",
            f"--address=/{ISTIOD}/10.0.0.1",
            "--local=/svc/",
            "--local=/cluster.local/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


async def _wait_ready(host: str, port: int) -> None:
    for _ in range(50):
        try:
            await dns.asyncquery.udp(dns.message.make_query(ISTIOD, "A"), host, port=port, timeout=0.1)
            return
        except (dns.exception.Timeout, OSError):
            await asyncio.sleep(0.1)
    pytest.fail("dnsmasq did not answer within 5 s")


async def test_against_real_dnsmasq(dnsmasq: tuple[str, int]) -> None:
    host, port = dnsmasq
    await _wait_ready(host, port)
    obs = await DnsProbe(names=[ISTIOD], nameserver=host, port=port, queries=5)()
    assert obs.outcome == DnsOutcome.OK, obs.evidence
    assert obs.details["names"][ISTIOD]["addresses"] == ["10.0.0.1"]
    assert 0 < obs.values["p50_seconds"] <= obs.values["p95_seconds"] <= obs.values["max_seconds"]
    missing = await DnsProbe(names=["nope.istio-system.svc"], nameserver=host, port=port, queries=2)()
    assert missing.outcome == DnsOutcome.NXDOMAIN
    assert missing.evidence == ("lookup nope.istio-system.svc: no such host, NXDOMAIN (2/2)",)
    # Nothing configured for this name and no upstream: dnsmasq refuses.
    refused = await DnsProbe(names=["example.org"], nameserver=host, port=port, queries=1)()
    assert refused.outcome == DnsOutcome.SERVFAIL
    assert "REFUSED 1/1" in refused.evidence[0]
