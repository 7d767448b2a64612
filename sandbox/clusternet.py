"""The cluster network, played by an HTTP forward proxy on loopback: kube-proxy and cluster DNS.

In a cluster, ``http://iris-model-predictor.user-example-com.svc.cluster.local`` (the
``status.address.url`` KServe writes) is resolved by CoreDNS to the Service's ClusterIP, and
kube-proxy sends the connection to one Ready endpoint of the Service: a pod its selector
matches, on the target port. Nothing outside the cluster can reach it. A daemon or
``kserve-warden check`` run outside (a laptop, the sandbox, the tests) reaches it through an HTTP
forward proxy into the cluster network: ``probes.predictor.proxy``. :class:`ClusterNetwork` is
that proxy for the sandbox, on a free loopback port (:attr:`ClusterNetwork.url`).

For an absolute-form request ``METHOD http://NAME.NS.svc[.cluster.local][:PORT]/path?query``
it does what the cluster would, reading everything through the API on *every* request (nothing
is cached, so nothing goes stale; one GET and one LIST, a sandbox's request rate):

1. the Service ``NS/NAME`` (absent: **502**, ``no service NS/NAME``);
2. its port ``PORT`` (default 80; absent: **502**);
3. the pods in ``NS`` its selector matches that are Ready (condition), not terminating, and
   carry :data:`~sandbox.controllers.predictor_pod.URL_ANNOTATION`: where the simulated kubelet
   really runs that pod's predictor (none: **503**, ``no endpoints available for service NS/NAME``,
   the text of the API server's service proxy). One is chosen at random, as kube-proxy does.
   The pod's own loopback URL stands for ``podIP:targetPort``: the simulated kubelet listens on
   exactly one port per pod;
4. method, path and query (raw, as received), end-to-end headers (``Host`` included, as an L4
   hop leaves it; hop-by-hop and ``Proxy-*`` dropped) and the body (capped at ``max_body``:
   **413** past it) go to that URL; the answer is streamed back as it arrives, with its own
   status and end-to-end headers.

Every answer the proxy writes itself says so in an RFC 9209 ``Proxy-Status`` header (name
:data:`PROXY_NAME`): ``destination_not_found`` (no Service, no such port),
``destination_unavailable`` (no endpoint), ``http_request_denied`` (403: a host outside the
cluster's service names, a CONNECT, an origin-form request; this is not an open proxy),
``http_request_error`` (413), ``proxy_internal_error`` (the API could not be read), and for
the pod it chose: ``connection_refused`` (502), ``connection_timeout`` /
``http_response_timeout`` (504), ``http_response_incomplete`` (502). The predictor probe reads
that header to tell its own path failing from the predictor failing (:mod:`probes.proxy_status`).

Not modelled: ClusterIPs and ``IP:port`` targets, headless Services, named target ports,
session affinity, NetworkPolicies, HTTPS through CONNECT.
"""

from __future__ import annotations

import errno
import random
import re
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException
from yarl import URL

from sandbox.controllers.predictor_pod import URL_ANNOTATION
from sandbox.controllers.watch import Obj, read_json

__all__ = ["MAX_BODY", "PROXY_NAME", "ClusterNetwork"]

log = structlog.get_logger("sandbox.clusternet")

PROXY_NAME = "clusternet"
MAX_BODY = 8 * 1024 * 1024
"""Request bodies larger than this are refused (413): the predictor's canaries are a few hundred bytes."""

# NAME.NS.svc or NAME.NS.svc.cluster.local (a trailing dot allowed): DNS labels, as Service
# and namespace names are.
_SERVICE_HOST = re.compile(
    r"(?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?P<ns>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc(\.cluster\.local)?\.?"
)

# One hop's headers (RFC 9110 section 7.6.1), Expect (answered here), and Content-Length (the
# body is re-sent whole; aiohttp writes its length).
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade", "expect", "content-length",
})


def _dropped(name: str, connection: str) -> bool:
    low = name.lower()
    listed = {h.strip().lower() for h in connection.split(",")}
    return low in _HOP_BY_HOP or low.startswith("proxy-") or low in listed


def _ready(pod: Obj) -> bool:
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp") or not (meta.get("annotations") or {}).get(URL_ANNOTATION):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _own_answer(status: int, error: str, text: str) -> web.Response:
    """An answer the proxy writes itself, marked as its own (RFC 9209 ``Proxy-Status``)."""
    details = text.replace("\\", "\\\\").replace('"', '\\"')
    return web.Response(
        status=status,
        text=text + "\n",
        headers={"Proxy-Status": f'{PROXY_NAME}; error={error}; details="{details}"'},
    )


class ClusterNetwork:
    """An HTTP forward proxy to the sandbox's Services (see the module docstring)."""

    def __init__(self, api: ApiClient, *, host: str = "127.0.0.1", max_body: int = MAX_BODY,
                 upstream_timeout: float = 60.0) -> None:
        self._core = CoreV1Api(api)
        self._host = host
        self._max_body = max_body
        self._timeout = aiohttp.ClientTimeout(total=upstream_timeout, sock_connect=5.0)
        self._runner: web.ServerRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._url = ""

    def __repr__(self) -> str:
        return f"ClusterNetwork(url={self._url or None!r})"

    @property
    def url(self) -> str:
        """``http://HOST:PORT``: the value for ``probes.predictor.proxy``."""
        if not self._url:
            raise RuntimeError("ClusterNetwork is not started")
        return self._url

    async def start(self) -> None:
        if self._runner is not None:
            return
        # A fresh connection per request: a pooled one could lead to a pod that is gone.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), auto_decompress=False, timeout=self._timeout
        )
        runner = web.ServerRunner(web.Server(self._handle), access_log=None, handle_signals=False,
                                  shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self._host, 0)
        await site.start()
        self._runner = runner
        address = runner.addresses[0]
        self._url = f"http://{self._host}:{address[1]}"

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self._url = ""

    # -- one request ---------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        target = request.raw_path
        if request.method == "CONNECT" or not target.lower().startswith("http://"):
            return _own_answer(403, "http_request_denied",
                               "only absolute-form http:// requests to cluster Services are forwarded")
        url = URL(target, encoded=True)
        match = _SERVICE_HOST.fullmatch((url.host or "").lower())
        if match is None:
            return _own_answer(403, "http_request_denied", f"{url.host} is not a cluster Service name "
                               "(NAME.NAMESPACE.svc[.cluster.local])")
        ns, name = match["ns"], match["name"]
        port = url.port or 80
        endpoint = await self._endpoint(ns, name, port)
        if isinstance(endpoint, web.Response):
            return endpoint
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        return await self._forward(request, endpoint + url.raw_path_qs, body)

    async def _endpoint(self, ns: str, name: str, port: int) -> str | web.Response:
        """The predictor URL of one Ready endpoint of Service ``ns/name``, or the answer why none."""
        try:
            service = await read_json(self._core.read_namespaced_service, name, ns)
        except ApiException as exc:
            if exc.status == 404:
                return _own_answer(502, "destination_not_found", f"no service {ns}/{name}")
            return _own_answer(502, "proxy_internal_error",
                               f"cannot read service {ns}/{name}: {exc.status} {exc.reason or ''}".rstrip())
        except (aiohttp.ClientError, TimeoutError) as exc:
            return _own_answer(502, "proxy_internal_error", f"cannot read service {ns}/{name}: {exc!r}")
        spec: dict[str, Any] = service.get("spec") or {}
        if not any(p.get("port") == port for p in spec.get("ports") or []):
            return _own_answer(502, "destination_not_found", f"service {ns}/{name} has no port {port}")
        selector: dict[str, str] = spec.get("selector") or {}
        pods: list[Obj] = []
        if selector:  # no selector: endpoints are managed by hand, none here
            try:
                wanted = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
                listed = await read_json(self._core.list_namespaced_pod, ns, label_selector=wanted)
            except (ApiException, aiohttp.ClientError, TimeoutError) as exc:
                return _own_answer(502, "proxy_internal_error", f"cannot list pods in {ns}: {exc!r}")
            pods = [p for p in listed.get("items") or [] if _ready(p)]
        if not pods:
            return _own_answer(503, "destination_unavailable",
                               f"no endpoints available for service {ns}/{name}")
        chosen = random.choice(pods)
        return str(chosen["metadata"]["annotations"][URL_ANNOTATION]).rstrip("/")

    async def _body(self, request: web.BaseRequest) -> bytes | web.Response:
        too_big = _own_answer(413, "http_request_error", f"request body over {self._max_body} bytes")
        if (request.content_length or 0) > self._max_body:
            return too_big
        if request.headers.get("Expect", "").lower() == "100-continue":
            # The low-level server leaves the interim answer to the handler.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = bytearray()
        while chunk := await request.content.read(64 * 1024):
            body += chunk
            if len(body) > self._max_body:
                return too_big
        return bytes(body)

    async def _forward(self, request: web.BaseRequest, url: str, body: bytes) -> web.StreamResponse:
        assert self._session is not None, "ClusterNetwork.start() not called"
        connection = request.headers.get("Connection", "")
        headers = [(k, v) for k, v in request.headers.items() if not _dropped(k, connection)]
        try:
            upstream = await self._session.request(
                request.method, URL(url, encoded=True), headers=headers,
                data=body or None, allow_redirects=False,
                skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            )
        except aiohttp.ClientConnectorError as exc:
            refused = exc.os_error.errno == errno.ECONNREFUSED
            return _own_answer(502, "connection_refused" if refused else "destination_unavailable",
                               f"{url}: {exc.os_error.strerror or exc}")
        except aiohttp.ConnectionTimeoutError:
            return _own_answer(504, "connection_timeout", f"{url}: no connection")
        except TimeoutError:
            return _own_answer(504, "http_response_timeout", f"{url}: no answer")
        except aiohttp.ClientError as exc:
            return _own_answer(502, "http_response_incomplete", f"{url}: {type(exc).__name__}")
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            upstream_connection = upstream.headers.get("Connection", "")
            for k, v in upstream.headers.items():
                if not _dropped(k, upstream_connection) or k.lower() == "content-length":
                    response.headers.add(k, v)
            await response.prepare(request)
            try:
                if request.method != "HEAD":
                    async for chunk in upstream.content.iter_chunked(64 * 1024):
                        await response.write(chunk)
            except (aiohttp.ClientError, TimeoutError) as exc:
                # The status is sent: all that is left is to cut the connection, as a broken
                # TCP stream through kube-proxy would.
                log.info("clusternet.upstream_broke", url=url, error=type(exc).__name__)
                if request.transport is not None:
                    request.transport.abort()
                return response
            await response.write_eof()
            return response
