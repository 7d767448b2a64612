"""The simulated node's kubelet endpoint: container logs, as the real apiserver fetches them.

``GET pods/{name}/log`` on a real kube-apiserver is proxied to the kubelet of the pod's node
(``https://<node InternalIP>:<daemonEndpoints.kubeletEndpoint.Port>/containerLogs/{ns}/{pod}/
{container}``). This server is that endpoint for the one Node the sandbox registers; the
simulated kubelet writes its containers' logs here (``PUT /sandbox/v1/namespaces/{ns}/pods/
{pod}/log?container=``, on a plain-HTTP loopback port: the same call it makes to the stand-in).
The apiserver's ``tailLines`` and ``previous`` parameters are honoured the same simple way the
stand-in does (last N lines; no previous instance kept).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from aiohttp import web

Key = tuple[str, str, str]


class NodeLogs:
    def __init__(self, *, cert: Path, key: Path, host: str = "127.0.0.1") -> None:
        self._cert, self._key, self._host = cert, key, host
        self.logs: dict[Key, str] = {}
        self._runner: web.AppRunner | None = None
        self.https_port = 0
        self.http_port = 0

    @property
    def put_url(self) -> str:
        """Base URL the simulated kubelet writes logs to (``{put_url}/sandbox/v1/...``)."""
        return f"http://{self._host}:{self.http_port}"

    async def _put(self, request: web.Request) -> web.Response:
        ns, pod = request.match_info["ns"], request.match_info["pod"]
        container = request.query.get("container", "")
        self.logs[(ns, pod, container)] = (await request.read()).decode(errors="replace")
        return web.Response(status=204)

    async def _get(self, request: web.Request) -> web.Response:
        key = (request.match_info["ns"], request.match_info["pod"], request.match_info["container"])
        if key not in self.logs:
            return web.Response(status=404, text=f"container {key[2]!r} of pod {key[1]!r} has no log yet")
        text = self.logs[key]
        tail = request.query.get("tailLines")
        if tail and tail.isdigit():
            text = "".join(text.splitlines(keepends=True)[-int(tail):]) if int(tail) else ""
        return web.Response(text=text, content_type="text/plain")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_put("/sandbox/v1/namespaces/{ns}/pods/{pod}/log", self._put)
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self._get)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(str(self._cert), str(self._key))
        https = web.TCPSite(self._runner, self._host, 0, ssl_context=tls)
        http = web.TCPSite(self._runner, self._host, 0)
        await https.start()
        await http.start()
        self.https_port = _port(https)
        self.http_port = _port(http)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _port(site: web.TCPSite) -> int:
    server: Any = site._server  # aiohttp keeps the asyncio server here; it has the bound port
    assert server is not None
    return int(server.sockets[0].getsockname()[1])
