"""Probe timers: run each probe on its period, keep a short history, tell the loop at once.

Three kinds of probe run on timers (periods from ``probes.*.period_seconds``):

* ``dns`` — one probe of the cluster resolver (istiod's name), built once;
* ``predictor`` — one per model: status, pods, logs, canary prediction, built once; it reads
  the InferenceService and its pods from the informer's caches
  (:class:`~daemon.process.probe_sources.InformerPredictorSource`), not with a GET and a LIST per run;
* ``storage`` — one per model, **built for each run**: which credentials KServe would mount
  depends on the live InferenceService, ServiceAccount, KServe ConfigMap and secrets, and the
  probe must use the model's *real* credentials. Those are read through the API for that run
  only (never from the hashed caches), registered with the log redactor, and dropped after.

Every result is an :class:`~probes.observation.Observation` (probes never raise; a crash in
building one becomes ``probe-error``), recorded in metrics and in an
:class:`ObservationStore` (the last few runs per target: ``diagnose()`` counts consecutive bad
DNS runs from it), and the ``on_observation`` callback wakes the reconciler immediately.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from daemon.core.errors import KubeError
from daemon.core.logs import Redactor, get_logger
from daemon.core.settings import ModelSettings, Settings
from daemon.kube.effects import Kube
from daemon.kube.informer import Informer
from daemon.process.probe_sources import InformerPredictorSource
from probes.observation import Observation, probe_error

log = get_logger("probing")

STORAGE_SECRET_ANNOTATIONS = ("serving.kserve.io/storageSecretName", "serving.kserve.io/secretName")


class ObservationStore:
    """The last ``depth`` observations per (probe, target)."""

    def __init__(self, *, depth: int = 10) -> None:
        self.depth = depth
        self._runs: dict[tuple[str, str], deque[Observation]] = {}

    def add(self, obs: Observation) -> None:
        self._runs.setdefault((obs.probe, obs.target), deque(maxlen=self.depth)).append(obs)

    def all(self) -> list[Observation]:
        """Every kept observation, oldest first."""
        return sorted((o for runs in self._runs.values() for o in runs), key=lambda o: o.finished)

    def latest(self) -> list[Observation]:
        return [runs[-1] for runs in self._runs.values() if runs]


class RunProbe(Protocol):
    async def __call__(self) -> Observation: ...


@dataclass(frozen=True, kw_only=True)
class Schedule:
    probe: str
    target: str
    period: float
    timeout: float
    run: Callable[[], Awaitable[Observation]]


def resolv_conf_nameserver(path: Path = Path("/etc/resolv.conf")) -> str:
    """The first ``nameserver`` of resolv.conf (the pod's cluster DNS), else 127.0.0.1."""
    try:
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                return parts[1]
    except OSError:
        pass
    return "127.0.0.1"


class ProbeSet:
    """Builds the probe schedules from the settings; runs them until cancelled."""

    def __init__(self, *, settings: Settings, kube: Kube, informer: Informer, api: Any,
                 store: ObservationStore, redactor: Redactor | None = None,
                 on_observation: Callable[[Observation], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.kube = kube
        self.informer = informer
        self.api = api
        self.store = store
        self.redactor = redactor
        self.on_observation = on_observation
        self.clock = clock
        self.runs = 0

    # -- building -------------------------------------------------------------------------

    def schedules(self) -> list[Schedule]:
        p = self.settings.probes
        out: list[Schedule] = []
        dns = self._dns_probe()
        out.append(Schedule(probe="dns", target=",".join(p.dns.names), period=p.dns.period_seconds,
                            timeout=p.dns.timeout_seconds * max(1, p.dns.queries) + 1, run=dns))
        for m in self.settings.models:
            if m.canary is None:
                continue
            out.append(Schedule(probe="predictor", target=m.key, period=p.predictor.period_seconds,
                                timeout=p.predictor.timeout_seconds + 1, run=self._predictor_probe(m)))
            out.append(Schedule(probe="storage", target=m.key, period=p.storage.period_seconds,
                                timeout=p.storage.timeout_seconds + 1, run=self._storage_run(m)))
        return out

    def _dns_probe(self) -> RunProbe:
        from probes.dns import DnsProbe

        d = self.settings.probes.dns
        probe: RunProbe = DnsProbe(names=list(d.names), nameserver=d.nameserver or resolv_conf_nameserver(),
                                   port=d.port, queries=d.queries, timeout=d.timeout_seconds,
                                   slow_threshold=d.latency_threshold_seconds)
        return probe

    def _predictor_probe(self, m: ModelSettings) -> RunProbe:
        assert m.canary is not None
        from probes.predictor import PredictorProbe
        from probes.predictor_source import ApiPredictorSource

        pp = self.settings.probes.predictor
        # Status and pods from the watch caches: no GET/LIST per run (see daemon.process.probe_sources).
        source = InformerPredictorSource(informer=self.informer, fallback=ApiPredictorSource(self.api))
        probe: RunProbe = PredictorProbe(
            api=self.api, namespace=m.namespace, name=m.name,
            canary_instances=[list(i) for i in m.canary.instances],
            expected=[int(e) for e in m.canary.expected if isinstance(e, int | float)],
            protocol=m.protocol or "v1", timeout=pp.timeout_seconds, slow_threshold=pp.slow_threshold_seconds,
            redact=self.redactor.scrub if self.redactor is not None else None, source=source)
        return probe

    def _storage_run(self, m: ModelSettings) -> Callable[[], Awaitable[Observation]]:
        async def run() -> Observation:
            started = self.clock()
            try:
                probe = await self._storage_probe(m)
            except Exception as exc:  # building the probe read the API; never let that escape
                return probe_error(probe="storage", target=m.key, started=started, exc=exc)
            return await probe()

        return run

    async def _storage_probe(self, m: ModelSettings) -> RunProbe:
        from probes.credentials import resolve
        from probes.storage import StorageProbe, parse_storage_uri

        isvc = self.informer.get("InferenceService", m.namespace, m.name)
        if isvc is None:
            raise LookupError(f"InferenceService {m.key} does not exist")
        predictor = (isvc.get("spec") or {}).get("predictor") or {}
        sa_name = str(predictor.get("serviceAccountName") or "default")
        sa = self.informer.get("ServiceAccount", m.namespace, sa_name)
        names = {str(s.get("name")) for s in (sa or {}).get("secrets") or [] if isinstance(s, dict)}
        ann = (isvc.get("metadata") or {}).get("annotations") or {}
        names |= {str(ann[a]) for a in STORAGE_SECRET_ANNOTATIONS if ann.get(a)}
        secrets: dict[str, dict[str, Any]] = {}
        for name in sorted(n for n in names if n):
            try:
                secrets[name] = await self.kube.read_secret(m.namespace, name)
            except KubeError as err:
                if err.status != 404:
                    raise
        cfg = self.settings.kserve_config
        kserve_config = self.informer.get("ConfigMap", cfg.namespace, cfg.name)
        resolution = resolve(isvc=isvc, service_account=sa, secrets=secrets, kserve_config=kserve_config)
        secrets.clear()
        uri = str((predictor.get("model") or {}).get("storageUri") or predictor.get("storageUri") or "")
        bucket, key = parse_storage_uri(uri)
        override = None
        if resolution.endpoint:
            override = self.settings.probes.storage.endpoint_overrides.get(resolution.endpoint)
        probe: RunProbe = StorageProbe(target=m.key, bucket=bucket, key=key, resolution=resolution,
                                       endpoint_override=override,
                                       timeout=self.settings.probes.storage.timeout_seconds)
        return probe

    # -- running --------------------------------------------------------------------------

    async def run_once(self, schedules: Iterable[Schedule] | None = None) -> list[Observation]:
        """Every probe once, concurrently (``check``, and the first pass of ``run``)."""
        scheds = list(schedules if schedules is not None else self.schedules())
        return list(await asyncio.gather(*(self._one(s) for s in scheds)))

    async def _one(self, s: Schedule) -> Observation:
        started = self.clock()
        try:
            obs = await asyncio.wait_for(s.run(), timeout=s.timeout + 5)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # probes never raise; a timeout or a bug still must not stop us
            obs = probe_error(probe=s.probe, target=s.target, started=started, exc=exc)
        self.runs += 1
        self.store.add(obs)
        if self.on_observation is not None:
            self.on_observation(obs)
        return obs

    async def run(self, schedules: Iterable[Schedule] | None = None, *, first_delay: float = 0.0) -> None:
        """Each schedule on its own timer, until cancelled."""
        scheds = list(schedules if schedules is not None else self.schedules())
        async with asyncio.TaskGroup() as tg:
            for s in scheds:
                tg.create_task(self._timer(s, first_delay), name=f"probe-{s.probe}-{s.target}")

    async def _timer(self, s: Schedule, first_delay: float) -> None:
        if first_delay:
            await asyncio.sleep(first_delay)
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await self._one(s)
            await asyncio.sleep(max(0.0, s.period - (loop.time() - t0)))
