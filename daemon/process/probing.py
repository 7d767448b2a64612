"""Probe timers for every discovered InferenceService: bounded, spread, following the informer.

Which probes run follows :func:`daemon.core.discovery.discover` over the informer's World and
the desired manifests: every InferenceService in scope, with its overrides. The set of
schedules is recomputed when an InferenceService, ServiceAccount, Secret or ConfigMap changes
(debounced: a burst of events is one recompute), so an InferenceService created or deleted
starts or stops its probes without a restart. Three kinds run on timers (periods from
``probes.*.period_seconds``):

* ``dns`` — one probe of the cluster resolver (istiod's name);
* ``predictor`` — one per InferenceService: status, pods, logs and its own readiness endpoint;
  a canary prediction only when one is opted in (settings or annotation). It reads the
  InferenceService and its pods from the informer's caches
  (:class:`~daemon.process.probe_sources.InformerPredictorSource`), not with a GET and a LIST
  per run. A schedule is rebuilt when the model's settings (protocol, canary) change;
* ``storage`` — one per **distinct store and credential**, not per model: the ``s3://``
  models are grouped by the endpoint, region, https/verify flags and credential secret that
  KServe's resolution gives them (computed from the caches, where Secrets are hashed), and
  each group is one :class:`probes.storage.StoreProbe` (one client, one auth check, one
  listing per model) that still yields one observation per InferenceService. The group's
  real credentials are read through the API for that run only (never from the hashed
  caches) and dropped after. Other schemes get no storage probe (the diagnosis judges them
  statically). In a namespace whose Secrets the daemon may not read
  (``secrets.namespaces``), the observation is ``not-checked`` with the reason, and no
  request is made.

A semaphore caps concurrent runs (``probes.max_concurrency``), for ``check``'s one pass too,
and each schedule's first run is offset within its period by a stable hash of its target
(jitter), so a thousand models do not probe at the same instant.

Every result is an :class:`~probes.observation.Observation` (probes never raise; a crash in
building one becomes ``probe-error``), recorded in metrics and in an
:class:`ObservationStore` (the last few runs per target: ``diagnose()`` counts consecutive bad
DNS runs from it), and the ``on_observation`` callback wakes the reconciler immediately.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from daemon.core.discovery import discover
from daemon.core.errors import KubeError
from daemon.core.logs import Redactor, get_logger
from daemon.core.objects import ObjectRef
from daemon.core.settings import ModelSettings, Settings
from daemon.kube.effects import Kube
from daemon.kube.informer import Informer
from daemon.process.probe_sources import InformerPredictorSource
from probes.observation import Observation, probe_error
from probes.observation import not_checked as not_checked_observation

if TYPE_CHECKING:
    from probes.storage import StoreProbe

log = get_logger("probing")

STORAGE_SECRET_ANNOTATIONS = ("serving.kserve.io/storageSecretName", "serving.kserve.io/secretName")
RECOMPUTE_KINDS = frozenset({"InferenceService", "ServiceAccount", "Secret", "ConfigMap"})
"""Changes of these kinds can add, remove or regroup probes."""
DEBOUNCE_SECONDS = 0.5


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


Outcome = Observation | Sequence[Observation]


@dataclass(frozen=True, kw_only=True)
class Schedule:
    probe: str
    target: str
    """What it probes: the resolver's names, ``namespace/name``, or a storage group's key."""
    period: float
    timeout: float
    run: Callable[[], Awaitable[Outcome]]
    fingerprint: str = ""
    """When it changes between two recomputes, the running timer is replaced."""

    @property
    def key(self) -> tuple[str, str]:
        return self.probe, self.target


@dataclass(frozen=True, kw_only=True)
class StoragePlan:
    """One storage group: its models and what is needed to resolve their shared credential."""

    namespace: str
    members: tuple[Any, ...]  # probes.storage.StoreMember (imported lazily: botocore is heavy)
    isvc: Mapping[str, Any]
    """A representative InferenceService (every member resolves to the same credential)."""
    service_account: str
    secret_names: tuple[str, ...]
    not_checked: str | None = None
    """Set: no request is made; every member's observation is ``not-checked`` with this reason."""


@dataclass
class _Running:
    schedule: Schedule
    task: asyncio.Task[None]


def jitter(*, probe: str, target: str, period: float) -> float:
    """A stable offset in ``[0, period)`` from the schedule's identity (same on every restart)."""
    digest = hashlib.sha256(f"{probe}|{target}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * period


def storage_uri_of(isvc: Mapping[str, Any]) -> str:
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    model = predictor.get("model") if isinstance(predictor.get("model"), dict) else {}
    return str((model or {}).get("storageUri") or predictor.get("storageUri") or "")


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
    """Builds the probe schedules from discovery; runs them until cancelled, following changes."""

    def __init__(self, *, settings: Settings, kube: Kube, informer: Informer, api: Any,
                 store: ObservationStore, desired: Sequence[Mapping[str, Any]] = (),
                 redactor: Redactor | None = None,
                 on_observation: Callable[[Observation], None] | None = None,
                 clock: Callable[[], float] = time.time, debounce: float = DEBOUNCE_SECONDS,
                 in_cluster: bool | None = None) -> None:
        self.settings = settings
        # In a pod the kubelet sets KUBERNETES_SERVICE_HOST, and resolv.conf names the cluster DNS.
        self.in_cluster = "KUBERNETES_SERVICE_HOST" in os.environ if in_cluster is None else in_cluster
        self.kube = kube
        self.informer = informer
        self.api = api
        self.store = store
        self.desired = tuple(desired)
        self.redactor = redactor
        self.on_observation = on_observation
        self.clock = clock
        self.debounce = debounce
        self.runs = 0
        self.in_flight = 0
        self.max_in_flight = 0
        """The most runs seen at once (the semaphore's cap holds it down)."""
        self.recomputes = 0
        self._sem = asyncio.Semaphore(settings.probes.max_concurrency)
        self._dirty = asyncio.Event()
        self._plans: dict[str, StoragePlan] = {}
        self._running: dict[tuple[str, str], _Running] = {}
        self._source: InformerPredictorSource | None = None
        informer.subscribe(self._on_change)

    def _on_change(self, ref: ObjectRef, event: str) -> None:
        if ref.kind in RECOMPUTE_KINDS:
            self._dirty.set()

    @property
    def active(self) -> frozenset[tuple[str, str]]:
        """``(probe, target)`` of every running timer."""
        return frozenset(self._running)

    # -- building -------------------------------------------------------------------------

    def models(self) -> tuple[ModelSettings, ...]:
        return discover(world=self.informer.world(), desired=self.desired, settings=self.settings).models

    def _isvc(self, m: ModelSettings) -> Mapping[str, Any] | None:
        live = self.informer.get("InferenceService", m.namespace, m.name)
        if live is not None:
            return live
        for d in self.desired:
            meta = d.get("metadata") or {}
            if d.get("kind") == "InferenceService" and (meta.get("namespace"), meta.get("name")) == (
                    m.namespace, m.name):
                return d
        return None

    def schedules(self) -> list[Schedule]:
        p = self.settings.probes
        out: list[Schedule] = []
        dns = self._dns_probe()
        out.append(Schedule(probe="dns", target=",".join(p.dns.names), period=p.dns.period_seconds,
                            timeout=p.dns.timeout_seconds * max(1, p.dns.queries) + 1, run=dns))
        models = self.models()
        for m in models:
            out.append(Schedule(probe="predictor", target=m.key, period=p.predictor.period_seconds,
                                timeout=p.predictor.timeout_seconds + 1, run=self._predictor_probe(m),
                                fingerprint=repr(m)))
        self._plans = self._storage_plans(models)
        for key, plan in sorted(self._plans.items()):
            # A group's run is bounded per step; its whole run by the steps it makes.
            timeout = p.storage.timeout_seconds * (2 + len(plan.members)) + 1
            out.append(Schedule(probe="storage", target=key, period=p.storage.period_seconds,
                                timeout=timeout, run=self._storage_run(key)))
        return out

    def _dns_probe(self) -> RunProbe:
        from probes.dns import DnsProbe

        d = self.settings.probes.dns
        if d.nameserver is None and not self.in_cluster:
            # Outside a cluster (``check`` from a laptop) resolv.conf's server is not the cluster
            # DNS: an NXDOMAIN for istiod there says nothing about CoreDNS. Judge nothing.
            return _DnsNotChecked(target=",".join(d.names))
        probe: RunProbe = DnsProbe(names=list(d.names), nameserver=d.nameserver or resolv_conf_nameserver(),
                                   port=d.port, queries=d.queries, timeout=d.timeout_seconds,
                                   slow_threshold=d.latency_threshold_seconds)
        return probe

    def _predictor_probe(self, m: ModelSettings) -> RunProbe:
        from probes.predictor import PredictorProbe
        from probes.predictor_source import ApiPredictorSource

        pp = self.settings.probes.predictor
        # Status and pods from the watch caches: no GET/LIST per run (see daemon.process.probe_sources);
        # one source for every model, so the pod index is built once per change, not per probe.
        if self._source is None:
            self._source = InformerPredictorSource(informer=self.informer,
                                                   fallback=ApiPredictorSource(self.api))
        source = self._source
        canary = m.canary
        probe: RunProbe = PredictorProbe(
            api=self.api, namespace=m.namespace, name=m.name,
            canary_instances=[list(i) for i in canary.instances] if canary is not None else None,
            expected=list(canary.expected) if canary is not None else None,
            protocol=m.protocol or "v1", timeout=pp.timeout_seconds, slow_threshold=pp.slow_threshold_seconds,
            redact=self.redactor.scrub if self.redactor is not None else None, source=source,
            proxy=pp.proxy, in_cluster=self.in_cluster)
        return probe

    def _storage_plans(self, models: Iterable[ModelSettings]) -> dict[str, StoragePlan]:
        """The ``s3://`` models grouped by store and credential (see the module docstring)."""
        from probes.credentials import resolve, storage_spec_secret
        from probes.storage import StoreMember, parse_storage_uri

        cfg = self.settings.kserve_config
        kserve_config = self.informer.get("ConfigMap", cfg.namespace, cfg.name)
        groups: dict[str, list[tuple[Any, Mapping[str, Any], str, tuple[str, ...]]]] = {}
        for m in models:
            isvc = self._isvc(m)
            if isvc is None:
                continue
            uri = storage_uri_of(isvc)
            if not uri.startswith("s3://"):
                continue  # other schemes: judged statically by the diagnosis
            try:
                bucket, key = parse_storage_uri(uri)
            except ValueError:
                continue
            member = StoreMember(target=m.key, bucket=bucket, key=key)
            ns = m.namespace
            if not self.settings.secrets.readable(ns):
                groups.setdefault(f"not-checked|{ns}", []).append((member, isvc, "", ()))
                continue
            predictor = (isvc.get("spec") or {}).get("predictor") or {}
            sa_name = str(predictor.get("serviceAccountName") or "default")
            sa = self.informer.get("ServiceAccount", ns, sa_name)
            names = {str(s.get("name")) for s in (sa or {}).get("secrets") or [] if isinstance(s, dict)}
            ann = (isvc.get("metadata") or {}).get("annotations") or {}
            names |= {str(ann[a]) for a in STORAGE_SECRET_ANNOTATIONS if ann.get(a)}
            if spec_secret := storage_spec_secret(isvc, kserve_config):
                names.add(spec_secret)  # a storage spec: KServe reads its storage-config key instead
            names = {n for n in names if n}
            # Hashed secrets from the cache: resolution needs only key names and annotations.
            cached = {n: s for n in names if (s := self.informer.get("Secret", ns, n)) is not None}
            res = resolve(isvc=isvc, service_account=sa, secrets=cached, kserve_config=kserve_config)
            if res.secret_name:
                gkey = (f"{res.endpoint_url or res.endpoint or ''}|{res.region or ''}|"
                        f"https={int(res.use_https)}|verify={int(res.verify_ssl)}|{ns}/{res.secret_name}"
                        + (f"/{res.storage_key}" if res.storage_key else ""))
            else:
                # No credential resolved from the caches: group only models that resolve alike.
                ann_names = ",".join(sorted(str(ann[a]) for a in STORAGE_SECRET_ANNOTATIONS if ann.get(a)))
                gkey = f"unresolved|{ns}|sa={sa_name}|ann={ann_names}"
            groups.setdefault(gkey, []).append((member, isvc, sa_name, tuple(sorted(names))))
        plans: dict[str, StoragePlan] = {}
        for gkey, entries in groups.items():
            member0, isvc0, sa0, names0 = entries[0]
            ns = member0.target.split("/", 1)[0]
            reason = f"no access to secrets in {ns}" if gkey.startswith("not-checked|") else None
            all_names = tuple(sorted({n for *_, ns_names in entries for n in ns_names}))
            plans[gkey] = StoragePlan(namespace=ns, members=tuple(e[0] for e in entries), isvc=isvc0,
                                      service_account=sa0, secret_names=all_names or names0,
                                      not_checked=reason)
        return plans

    def _storage_run(self, key: str) -> Callable[[], Awaitable[Outcome]]:
        async def run() -> Outcome:
            from probes.storage import not_checked

            plan = self._plans.get(key)
            if plan is None:
                return []
            if plan.not_checked is not None:
                return [not_checked(target=m.target, reason=plan.not_checked) for m in plan.members]
            started = self.clock()
            try:
                probe = await self._store_probe(plan)
            except Exception as exc:  # building the probe read the API; never let that escape
                return [probe_error(probe="storage", target=m.target, started=started, exc=exc)
                        for m in plan.members]
            return await probe()

        return run

    async def _store_probe(self, plan: StoragePlan) -> StoreProbe:
        from probes.credentials import resolve
        from probes.storage import StoreProbe

        ns = plan.namespace
        sa = self.informer.get("ServiceAccount", ns, plan.service_account)
        secrets: dict[str, dict[str, Any]] = {}
        for name in plan.secret_names:
            try:
                secrets[name] = await self.kube.read_secret(ns, name)
            except KubeError as err:
                if err.status != 404:
                    raise
        cfg = self.settings.kserve_config
        kserve_config = self.informer.get("ConfigMap", cfg.namespace, cfg.name)
        resolution = resolve(isvc=plan.isvc, service_account=sa, secrets=secrets, kserve_config=kserve_config)
        secrets.clear()
        override = None
        if resolution.endpoint:
            override = self.settings.probes.storage.endpoint_overrides.get(resolution.endpoint)
        where = resolution.endpoint or resolution.endpoint_url or f"s3.{resolution.region or 'us-east-1'}"
        store = f"{where}|{ns}/{resolution.secret_name or '-'}"
        return StoreProbe(store=store, members=plan.members, resolution=resolution,
                          endpoint_override=override, timeout=self.settings.probes.storage.timeout_seconds)

    # -- running --------------------------------------------------------------------------

    async def run_once(self, schedules: Iterable[Schedule] | None = None) -> list[Observation]:
        """Every probe once, concurrently up to the cap (``check``, ``run --once``)."""
        scheds = list(schedules if schedules is not None else self.schedules())
        results = await asyncio.gather(*(self._one(s) for s in scheds))
        return [o for r in results for o in r]

    async def _one(self, s: Schedule) -> list[Observation]:
        async with self._sem:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            started = self.clock()
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that lands as the run finishes, and the timer would outlive its shutdown.
                async with asyncio.timeout(s.timeout + 5):
                    result = await s.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # probes never raise; a timeout or a bug still must not stop us
                result = probe_error(probe=s.probe, target=s.target, started=started, exc=exc)
            finally:
                self.in_flight -= 1
        observations = [result] if isinstance(result, Observation) else list(result)
        self.runs += 1
        for obs in observations:
            self.store.add(obs)
            if self.on_observation is not None:
                try:
                    self.on_observation(obs)
                except Exception as exc:  # the timer must outlive a failing listener
                    log.error("observation listener failed", probe=obs.probe, target=obs.target,
                              error=repr(exc))
        return observations

    async def run(self, schedules: Iterable[Schedule] | None = None, *, first_delay: float = 0.0) -> None:
        """Each schedule on its own timer, until cancelled; the set follows the informer.

        Given ``schedules``, exactly those run (no recompute)."""
        try:
            if schedules is not None:
                self._sync(list(schedules), first_delay=first_delay)
                await asyncio.Event().wait()
            self._sync(self.schedules(), first_delay=first_delay)
            while True:
                await self._dirty.wait()
                await asyncio.sleep(self.debounce)  # one recompute for a burst of events
                self._dirty.clear()
                self.recomputes += 1
                try:
                    scheds = self.schedules()
                except Exception as exc:  # an object we cannot read must not stop every probe
                    log.error("probe schedules not recomputed; keeping the current ones", error=repr(exc))
                    continue
                self._sync(scheds, first_delay=0.0)
        finally:
            running = [r.task for r in self._running.values()]
            self._running.clear()
            for t in running:
                t.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def _sync(self, scheds: Sequence[Schedule], *, first_delay: float) -> None:
        """Start new schedules, stop removed ones, replace changed ones; keep the rest running."""
        wanted = {s.key: s for s in scheds}
        for key in [k for k in self._running if k not in wanted]:
            self._running.pop(key).task.cancel()
            log.info("probe stopped", probe=key[0], target=key[1])
        for key, s in wanted.items():
            cur = self._running.get(key)
            if cur is not None and cur.schedule.fingerprint == s.fingerprint:
                continue
            if cur is not None:
                cur.task.cancel()
            delay = first_delay + jitter(probe=s.probe, target=s.target, period=s.period)
            task = asyncio.create_task(self._timer(s, delay), name=f"probe-{s.probe}-{s.target}")
            self._running[key] = _Running(schedule=s, task=task)

    async def _timer(self, s: Schedule, first_delay: float) -> None:
        if first_delay:
            await asyncio.sleep(first_delay)
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await self._one(s)
            await asyncio.sleep(max(0.0, s.period - (loop.time() - t0)))


class _DnsNotChecked:
    """The DNS probe's stand-in when no cluster nameserver is known: ``not-checked``, ``ok``."""

    REASON = ("not running in a cluster and probes.dns.nameserver is not set: this machine's "
              "resolver is not the cluster DNS (set probes.dns.nameserver to CoreDNS's address)")

    def __init__(self, *, target: str) -> None:
        self.target = target

    async def __call__(self) -> Observation:
        return not_checked_observation(probe="dns", target=self.target, reason=self.REASON)
