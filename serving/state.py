"""The one model a server instance serves, and whether it is ready.

A :class:`ModelSlot` starts empty and is filled by :meth:`ModelSlot.load` — once at start-up,
or by :class:`ModelWatcher` with ``--wait-for-model`` once a real model appears.
Until then every model endpoint answers 503 and readiness is false: there is no dummy model.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import xgboost

from serving.batcher import MicroBatcher
from serving.jsonio import RequestError
from serving.loader import LoadedModel, ModelLoadError, Reader, Refusals, load_model, read_file
from serving.logs import get_logger
from serving.metrics import ServingMetrics

log = get_logger("serving.state")


class ModelSlot:
    def __init__(self, *, name: str, model_dir: Path, metrics: ServingMetrics, nthread: int = 1) -> None:
        self.name = name
        self.model_dir = model_dir
        self.metrics = metrics
        self.nthread = nthread
        self.loaded: LoadedModel | None = None
        self.batcher: MicroBatcher | None = None
        metrics.model_ready.set(0)

    @property
    def ready(self) -> bool:
        return self.loaded is not None

    def load(self) -> LoadedModel:
        """Load from ``model_dir`` (raises :class:`ModelLoadError`) and start serving it."""
        model = load_model(self.model_dir, nthread=self.nthread)
        self.install(model)
        return model

    def install(self, model: LoadedModel) -> None:
        self.batcher = MicroBatcher(model.predictor.run, on_batch=self._observe_batch)
        self.loaded = model
        m = self.metrics
        m.model_load.set(model.load_seconds)
        m.model_info.info({
            "model_name": self.name,
            "path": str(model.path),
            "format": model.format,
            "sha256": model.sha256,
            "predictor": model.predictor.kind,
            "xgboost_version": xgboost.__version__,
        })
        m.model_ready.set(1)
        log.info("model loaded", model_name=self.name, path=str(model.path), format=model.format,
                 sha256=model.sha256, size_bytes=model.size_bytes, predictor=model.predictor.kind,
                 load_seconds=round(model.load_seconds, 4), also_present=list(model.skipped))

    def _observe_batch(self, rows: int, requests: int) -> None:
        self.metrics.batch_rows.observe(rows)
        self.metrics.batch_requests.observe(requests)

    def require(self, name: str) -> tuple[LoadedModel, MicroBatcher]:
        """The loaded model for a request naming ``name``: 404 if unknown, 503 if not loaded yet."""
        if name != self.name:
            raise RequestError(404, f"model {name!r} not found; this server serves {self.name!r}")
        if self.loaded is None or self.batcher is None:
            raise RequestError(503, f"model {self.name!r} is not loaded yet (no model found in "
                                    f"{self.model_dir}); see the server log")
        return self.loaded, self.batcher


class ModelWatcher:
    """``--wait-for-model``: look for a real model in the slot's directory until one loads.

    Each :meth:`poll` runs the loader in a worker thread (the reads, the parse and XGBoost stay off
    the event loop, so health probes keep answering) and remembers what it refused by file
    identity (:class:`serving.loader.Refusals`): a refused file is read again only once it has
    changed and then stayed the same for a poll (a copy in progress is read when complete).
    Waiting next to a 600 MB file that never loads used to re-read it every second: 28-77 % of a
    core, RSS swinging between 0.2 and 0.8 GB, ``/v2/health/live`` stalled up to 26 s on the
    shared machine; now it is read once: 1 %, RSS flat, liveness under 0.14 s after that first
    look (``bench/serving/wait_for_model.py``, figures in bench/README.md). Each new reason is
    logged once.
    """

    def __init__(self, slot: ModelSlot, *, read: Reader = read_file) -> None:
        self.slot = slot
        self.read = read
        self.refusals = Refusals()
        self._last = ""

    async def poll(self) -> bool:
        """One look at the directory; True once a model is loaded and installed."""
        slot = self.slot
        try:
            model = await asyncio.to_thread(load_model, slot.model_dir, nthread=slot.nthread, read=self.read,
                                            refusals=self.refusals)
        except ModelLoadError as exc:
            if str(exc) != self._last:
                log.warning("waiting for a model", model_name=slot.name, model_dir=str(slot.model_dir),
                            reason=str(exc))
                self._last = str(exc)
            return False
        slot.install(model)
        return True

    async def run(self, *, poll_seconds: float) -> None:
        while True:
            if self.slot.loaded is not None or await self.poll():
                return
            await asyncio.sleep(poll_seconds)  # a timer, not an event: files appear without notice


async def wait_for_model(slot: ModelSlot, *, poll_seconds: float = 1.0) -> None:
    """Poll ``model_dir`` until a real model loads (``--wait-for-model``); see :class:`ModelWatcher`."""
    await ModelWatcher(slot).run(poll_seconds=poll_seconds)
