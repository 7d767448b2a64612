"""The Istio sidecars around the storage workload, played on loopback.

In the seed's cluster a pod in ``user-example-com`` reaches MinIO through two Envoys: its
own sidecar (which gives the connection the pod's mTLS identity) and MinIO's sidecar
(which enforces the AuthorizationPolicies selecting MinIO). Here one :class:`Mesh` stands
for both. Each call to :meth:`Mesh.sidecar` opens a loopback listener that *is* one
workload's egress: requests arriving there carry that workload's identity (``principal``,
e.g. ``cluster.local/ns/user-example-com/sa/iris-sa``). For every request the mesh lists
the AuthorizationPolicies (from a :class:`PolicySource`: the sandbox API in the sandbox,
a static list in tests) and evaluates them for the storage workload with
:func:`sandbox.authz.evaluate`:

* denied → ``403``, body ``RBAC: access denied``, ``server: envoy``, ``text/plain``:
  exactly Envoy's local reply, which is what the storage probe must recognise;
* allowed → the request is proxied to the upstream (moto) unchanged: method, the raw
  percent-encoded path and query, and every end-to-end header including ``Host`` are
  forwarded as received, and the body is streamed. SigV4 signs ``Host``, the path and
  the signed headers, so the client signs for the sidecar's address and moto verifies the
  same bytes — wrong keys still get moto's own ``403 InvalidAccessKeyId`` /
  ``SignatureDoesNotMatch`` through the mesh.

``sidecar(principal=None)`` is a workload *without* a sidecar: its plaintext connection
into a STRICT-mTLS mesh is reset by the server-side Envoy before any HTTP is exchanged
(the seed's ``EndpointConnectionError``, and why "disable injection" did not help).

Not modelled: PERMISSIVE mTLS, PeerAuthentication objects, policy propagation delay
(policies take effect on the next request), ``when`` conditions (see ``authz``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
import structlog
from aiohttp import web
from yarl import URL

from sandbox.authz import Request, evaluate

log = structlog.get_logger("sandbox.mesh")

DENIED_BODY = b"RBAC: access denied"

# Headers that belong to one hop (RFC 9110 §7.6.1) plus Expect, which aiohttp's server
# already answered with 100-continue; botocore never signs any of them.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Expect",
    )
)


class PolicySource(Protocol):
    """Lists the cluster's AuthorizationPolicies as raw JSON objects."""

    async def __call__(self) -> list[dict[str, Any]]: ...


class _ResetOnAccept(asyncio.Protocol):
    """A STRICT-mTLS server sidecar receiving plaintext: the connection is reset at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER with a zero timeout turns close() into an RST.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


class Mesh:
    """Sidecar listeners for workload identities, enforcing policies for the storage workload."""

    def __init__(
        self,
        *,
        upstream: str,
        policies: PolicySource,
        storage_namespace: str = "kubeflow",
        storage_labels: Mapping[str, str] | None = None,
        storage_port: int = 9000,
        host: str = "127.0.0.1",
    ) -> None:
        self._upstream = upstream.rstrip("/")
        self._policies = policies
        self._namespace = storage_namespace
        self._labels = dict(storage_labels if storage_labels is not None else {"app": "seaweedfs"})
        self._storage_port = storage_port
        self._host = host
        self._session: aiohttp.ClientSession | None = None
        self._runners: list[web.BaseRunner] = []
        self._plain_servers: list[asyncio.AbstractServer] = []
        self._by_principal: dict[str | None, str] = {}
        self._last_policies: list[dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Mesh(upstream={self._upstream!r}, sidecars={len(self._by_principal)})"

    async def start(self) -> None:
        if self._session is None:
            # auto_decompress off: bodies are relayed byte for byte.
            self._session = aiohttp.ClientSession(auto_decompress=False)

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
        for server in self._plain_servers:
            server.close()
            await server.wait_closed()
        self._plain_servers.clear()
        self._by_principal.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def sidecar(self, *, principal: str | None) -> str:
        """``"127.0.0.1:PORT"``: the egress of one workload identity (None: no sidecar)."""
        async with self._lock:
            if principal in self._by_principal:
                return self._by_principal[principal]
            if principal is None:
                loop = asyncio.get_running_loop()
                server = await loop.create_server(_ResetOnAccept, self._host, 0)
                self._plain_servers.append(server)
                port = server.sockets[0].getsockname()[1]
            else:
                port = await self._start_listener(principal)
            address = f"{self._host}:{port}"
            self._by_principal[principal] = address
            return address

    async def _start_listener(self, principal: str) -> int:
        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            return await self._handle(request, principal)

        runner = web.ServerRunner(web.Server(handler), access_log=None)
        await runner.setup()
        # Bind the socket ourselves: the OS picks the port and we can read it back.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self._host, 0))
        site = web.SockSite(runner, sock)
        await site.start()
        self._runners.append(runner)
        return int(sock.getsockname()[1])

    async def _current_policies(self) -> list[dict[str, Any]] | None:
        try:
            self._last_policies = list(await self._policies())
        except Exception as exc:  # the API is down: Envoy keeps its last config
            log.warning("mesh.policies_unavailable", error=type(exc).__name__)
        return self._last_policies

    async def _handle(self, request: web.BaseRequest, principal: str) -> web.StreamResponse:
        policies = await self._current_policies()
        if policies is None:
            return _denied()
        decision = evaluate(
            policies,
            Request(
                principal=principal,
                method=request.method,
                path=request.path,
                port=self._storage_port,
                host=request.host,
            ),
            namespace=self._namespace,
            labels=self._labels,
        )
        if not decision.allowed:
            log.info("mesh.denied", principal=principal, method=request.method, reason=decision.reason)
            return _denied()
        return await self._forward(request)

    async def _forward(self, request: web.BaseRequest) -> web.StreamResponse:
        assert self._session is not None, "Mesh.start() not called"
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.raw_headers
            if k.decode("latin-1").lower() not in _HOP_BY_HOP
        ]
        url = URL(self._upstream + request.raw_path, encoded=True)
        if request.headers.get("Expect", "").lower() == "100-continue":
            # Like Envoy (proxy_100_continue off): answer 100 locally, drop Expect upstream.
            # aiohttp's low-level server leaves this to the handler, and botocore waits for it.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        data = request.content if request.body_exists else None
        try:
            upstream = await self._session.request(
                request.method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            )
        except aiohttp.ClientError as exc:
            # Envoy's answer when the upstream cannot be reached.
            log.warning("mesh.upstream_error", error=type(exc).__name__)
            return web.Response(
                status=503,
                body=b"upstream connect error or disconnect/reset before headers",
                headers={"server": "envoy", "content-type": "text/plain"},
            )
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.raw_headers:
                name = k.decode("latin-1")
                if name.lower() not in _HOP_BY_HOP:
                    response.headers.add(name, v.decode("latin-1"))
            await response.prepare(request)
            if request.method != "HEAD":
                async for chunk in upstream.content.iter_chunked(64 * 1024):
                    await response.write(chunk)
            await response.write_eof()
            return response


def _denied() -> web.Response:
    return web.Response(
        status=403,
        body=DENIED_BODY,
        headers={"server": "envoy", "content-type": "text/plain"},
    )
