"""The predictor container: the project's real model server, run in-process on loopback.

When the kubelet has the model downloaded, the image pulled and the sidecar ready, it starts
:class:`PredictorServer`: ``serving.app.build_app`` over the pod's model directory (the
pod's ``/mnt/models``), served by an aiohttp ``AppRunner``/``TCPSite`` on a free loopback
port. ``build_app`` loads the model before it returns and raises ``ModelLoadError`` when the
directory holds no real model — there is no dummy model — which the kubelet turns into the
container's ``CrashLoopBackOff`` with that error in the container log. The address
``http://127.0.0.1:PORT`` is what the ISVC's ``status.address.url`` carries.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from serving.app import build_app
from serving.loader import ModelLoadError

MOUNT = "/mnt/models"


@dataclass(frozen=True, kw_only=True)
class StartResult:
    ok: bool
    log: str
    url: str = ""


class PredictorServer:
    def __init__(self, *, model_name: str, model_dir: Path, host: str = "127.0.0.1") -> None:
        self._name = model_name
        self._dir = model_dir
        self._host = host
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> StartResult:
        """Load and serve; never raises for a bad model (the result carries the log)."""
        head = f"INFO:serve:Loading model {self._name!r} from {MOUNT}\n"
        try:
            # The load reads files and parses XGBoost JSON: off the event loop.
            app = await asyncio.to_thread(build_app, model_name=self._name, model_dir=self._dir)
        except ModelLoadError as exc:
            text = str(exc).replace(str(self._dir), MOUNT)
            return StartResult(ok=False, log=head + f"serving.loader.ModelLoadError: {text}")
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self._host, 0)
        await site.start()
        self._runner = runner
        server = site._server  # aiohttp exposes the bound port only through the server
        assert isinstance(server, asyncio.Server)
        port = int(server.sockets[0].getsockname()[1])
        self.url = f"http://{self._host}:{port}"
        files = sorted(p.name for p in self._dir.iterdir()) if self._dir.is_dir() else []
        return StartResult(
            ok=True,
            url=self.url,
            log=head + f"INFO:serve:Model loaded successfully from {MOUNT} (files: {files})\n"
            f"INFO:serve:Serving on http://0.0.0.0:8080 (sandbox: {self.url})",
        )

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
