"""The istio-proxy sidecar's start-up dependency: resolving istiod to get its certificate.

An injected Envoy asks istiod (``istiod.istio-system.svc:15012``) to sign its workload
certificate before it can carry mTLS traffic. In the seed, CoreDNS was so slow that the
lookup timed out, the proxy logged ``dial tcp: lookup istiod.istio-system.svc: i/o timeout``
and never became ready. :func:`check_istiod` does that lookup against the sandbox DNS
server with dnspython (explicit nameserver and port, a short timeout, no cache) and returns
the proxy's readiness and its log line. The kubelet repeats it periodically, so a CoreDNS
rollout restart (which clears the DNS server's degraded state) makes the proxy ready again.

The proxy is modelled as a *native* sidecar (Istio's ``ENABLE_NATIVE_SIDECARS``): it starts
before the storage-initializer, whose S3 traffic goes through it — so while the proxy has no
certificate, the init container's mTLS connection fails too (the seed's attempt 4:
``EndpointConnectionError`` although the credentials were right).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode

ISTIOD = "istiod.istio-system.svc"
SEARCH_SUFFIX = "cluster.local"


@dataclass(frozen=True, kw_only=True)
class ProxyState:
    ready: bool
    log: str
    seconds: float


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def failure_line(reason: str) -> str:
    """The proxy's log line when it cannot reach istiod (the seed's exact wording)."""
    return (
        f"{_stamp()}\terror\tcache\tresource:default failed to sign: create certificate: rpc error: "
        f'code = Unavailable desc = connection error: desc = "transport: Error while dialing: '
        f'dial tcp: lookup {ISTIOD}: {reason}"'
    )


async def check_istiod(*, nameserver: str, port: int, timeout: float = 0.5) -> ProxyState:
    """Resolve istiod (with the pod's ``cluster.local`` search suffix) and judge readiness."""
    t0 = time.perf_counter()
    query = dns.message.make_query(f"{ISTIOD}.{SEARCH_SUFFIX}", "A")
    try:
        answer = await dns.asyncquery.udp(query, nameserver, port=port, timeout=timeout)
    except dns.exception.Timeout:
        return ProxyState(ready=False, log=failure_line("i/o timeout"), seconds=time.perf_counter() - t0)
    except OSError as exc:
        reason = f"read udp: {exc.strerror or exc}"
        return ProxyState(ready=False, log=failure_line(reason), seconds=time.perf_counter() - t0)
    elapsed = time.perf_counter() - t0
    if answer.rcode() != dns.rcode.NOERROR or not answer.answer:
        return ProxyState(ready=False, log=failure_line("no such host"), seconds=elapsed)
    address = answer.answer[0][0].to_text()
    return ProxyState(
        ready=True,
        seconds=elapsed,
        log=f"{_stamp()}\tinfo\tcache\tgenerated new workload certificate (istiod at {address})\n"
        f"{_stamp()}\tinfo\tEnvoy proxy is ready",
    )
