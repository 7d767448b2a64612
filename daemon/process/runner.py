"""``kserve-warden run``: build everything in one place, run until SIGTERM, shut down cleanly.

``run_command`` is ``main`` for the daemon. It configures logging once, validates the
settings and the desired state (any problem: one line each on stderr, exit 2, nothing
applied, nothing even connected), loads the Kubernetes client configuration (in-cluster,
else ``--kubeconfig`` / ``$KUBECONFIG`` / ``~/.kube/config``), then builds every object —
registry, metrics, health state, client, effects layer, informer, ledger, probes, reconciler,
leader elector, HTTP server — and passes each one to what needs it. No module-level state.

Shutdown on SIGTERM/SIGINT, in this order: stop acting (the reconciler drains in-flight work
within a deadline), release the Lease so a standby takes over at once, stop probes and
watches, stop the HTTP server, close the client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException
from prometheus_client import CollectorRegistry

from daemon.core import logs
from daemon.core.desired import DesiredError, DesiredState
from daemon.core.errors import InvalidError, KubeError, NotKubernetesError
from daemon.core.ledger import Ledger
from daemon.core.scope import unseen_desired
from daemon.core.settings import Settings, SettingsError
from daemon.kube.effects import Kube
from daemon.kube.informer import Informer
from daemon.kube.leader import LeaderElector, LeaseConfig
from daemon.kube.rbac import secret_read_names, secret_read_namespaces
from daemon.process import logging_setup
from daemon.process.config_files import load_desired, load_settings
from daemon.process.exitcodes import EXIT_BAD_INPUT, EXIT_FINDINGS, EXIT_OK
from daemon.process.loop import PASS, Reconciler
from daemon.process.metrics import WardenMetrics, configure_exposition, daemon_registry
from daemon.process.probing import ObservationStore, ProbeSet
from daemon.process.server import HealthServer, HealthState
from daemon.process.tasks import cancel_and_wait

log = logs.get_logger("runner")

SHUTDOWN_DEADLINE_SECONDS = 10.0
WORKERS = 4


class BadInput(Exception):
    """Configuration the daemon cannot start with: ``problems`` are printed one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, kw_only=True)
class Inputs:
    settings: Settings
    desired: DesiredState


def load_inputs(args: argparse.Namespace, *, environ: Mapping[str, str]) -> Inputs:
    """Settings and desired state, validated; :class:`BadInput` lists every problem."""
    try:
        path = Path(args.config) if getattr(args, "config", None) else None
        settings = load_settings(path, environ=environ)
    except SettingsError as err:
        raise BadInput(err.problems) from err
    try:
        desired = load_desired(settings.desired.dir)
    except DesiredError as err:
        raise BadInput([f"desired state: {p}" for p in err.problems]) from err
    return Inputs(settings=settings, desired=desired)


async def api_client_for(kubeconfig: str | None) -> client.ApiClient:
    """In-cluster config, else the kubeconfig (``--kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config``)."""
    cfg = client.Configuration()
    try:
        if kubeconfig:
            await config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        else:
            try:
                config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            except ConfigException:
                await config.load_kube_config(client_configuration=cfg)
    except yaml.YAMLError as err:
        # One line, not PyYAML's multi-line report (and never the file's content).
        mark = getattr(err, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise BadInput([f"kubeconfig {_kubeconfig_path(kubeconfig)}: not valid YAML{at}: "
                        f"{getattr(err, 'problem', None) or type(err).__name__}"]) from err
    except (ConfigException, OSError, ValueError, TypeError) as err:
        raise BadInput([f"kubeconfig: cannot load a Kubernetes configuration (not in a cluster; "
                        f"{_kubeconfig_path(kubeconfig)}): {_one_line(err)}"]) from err
    try:
        # The TLS context is built here: a certificate-authority-data that is not a certificate
        # fails now (ssl.SSLError, an OSError), not at the first request.
        return client.ApiClient(configuration=cfg)
    except (OSError, ValueError) as err:
        raise BadInput([f"kubeconfig {_kubeconfig_path(kubeconfig)}: unusable TLS settings "
                        f"(certificate-authority / client certificate): {_one_line(err)}"]) from err


def _kubeconfig_path(kubeconfig: str | None) -> str:
    return kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def watch_namespaces(settings: Settings, desired: DesiredState) -> frozenset[str] | None:
    """Where namespaced kinds are read: ``None`` (every namespace) when ``scope.namespaces`` is
    empty; else the scope plus what the diagnosis needs around it (CoreDNS, the KServe config,
    the mesh, the desired objects' namespaces, the models' overrides)."""
    if not settings.scope.namespaces:
        return None
    names: set[str] = set(settings.scope.namespaces)
    names |= {settings.coredns.namespace, settings.kserve_config.namespace,
              settings.mesh.storage_namespace, settings.mesh.root_namespace}
    names |= {m.namespace for m in settings.models}
    for m in desired.manifests:
        ns = (m.get("metadata") or {}).get("namespace")
        if ns:
            names.add(str(ns))
    for d in desired.derived:
        names |= {d.namespace, d.source_namespace}
    return frozenset(names)


def secret_namespaces(settings: Settings, desired: DesiredState) -> frozenset[str]:
    """Where all Secrets of a namespace are read: the opt-in (``secrets.namespaces``; ``"*"`` =
    all). Outside it only :func:`daemon.kube.rbac.secret_read_names`, by name. The same sets the
    generated RBAC grants."""
    return secret_read_namespaces(settings, desired)


def read_by_name(settings: Settings, desired: DesiredState) -> dict[str, tuple[str, str]]:
    """Kinds read as one named object (``fieldSelector=metadata.name=``), so RBAC can grant them
    by ``resourceNames``: KServe's ConfigMap and the CoreDNS Deployment — unless the desired
    state manages objects of that kind too."""
    managed = {str(m.get("kind")) for m in desired.manifests}
    out = {"ConfigMap": (settings.kserve_config.namespace, settings.kserve_config.name),
           "Deployment": (settings.coredns.namespace, settings.coredns.deployment)}
    return {k: v for k, v in out.items() if k not in managed}


def informer_for(kube: Kube, settings: Settings, desired: DesiredState) -> Informer:
    """The informer of ``run`` and ``check``: the settings' scope, applied by the API server."""
    return Informer(kube, namespaces=watch_namespaces(settings, desired),
                    secret_namespaces=secret_namespaces(settings, desired),
                    selector=settings.scope.selector, by_name=read_by_name(settings, desired),
                    secret_names=secret_read_names(settings, desired),
                    rediscover_seconds=settings.kube.discovery_seconds)


def identity() -> str:
    """This replica's name in the Lease: the pod name when running in a cluster."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


def print_problems(problems: Iterable[str], *, command: str) -> None:
    for p in problems:
        print(f"kserve-warden {command}: {p}", file=sys.stderr)


@dataclass
class Daemon:
    """Everything ``run`` builds, wired together (built by :func:`build_daemon`)."""

    settings: Settings
    api: client.ApiClient
    kube: Kube
    informer: Informer
    reconciler: Reconciler
    probes: ProbeSet
    metrics: WardenMetrics
    health: HealthState
    registry: CollectorRegistry
    elector: LeaderElector | None


def build_daemon(*, inputs: Inputs, api: client.ApiClient, redactor: logs.Redactor, dry_run: bool,
                 name: str | None = None) -> Daemon:
    settings = inputs.settings
    dry = dry_run or settings.remediation.dry_run
    registry = daemon_registry()
    metrics = WardenMetrics(registry, version=_version())
    health = HealthState(clock=time.time)
    me = name or identity()
    kube = Kube(api, field_manager=settings.kube.field_manager, dry_run=dry, redactor=redactor, instance=me,
                request_timeout=settings.kube.request_timeout_seconds,
                on_error=lambda err: metrics.api_error(code=err.status or "unavailable"))
    informer = informer_for(kube, settings, inputs.desired)
    store = ObservationStore()
    reconciler = Reconciler(settings=settings, desired=inputs.desired, kube=kube, informer=informer,
                            metrics=metrics, health=health, ledger=Ledger(), observations=store, dry_run=dry)
    informer.subscribe(reconciler.on_change)
    probes = ProbeSet(settings=settings, kube=kube, informer=informer, api=api, store=store,
                      desired=inputs.desired.manifests, redactor=redactor,
                      on_observation=reconciler.on_observation)
    elector = None
    le = settings.leader_election
    # A dry-run replica writes nothing, the Lease included: it decides as if leading.
    if le.enabled and not dry:
        elector = LeaderElector(
            kube, LeaseConfig(namespace=le.lease_namespace, name=le.lease_name, identity=me,
                              lease_duration=le.lease_duration_seconds,
                              renew_deadline=le.renew_deadline_seconds, retry_period=le.retry_period_seconds),
            on_started_leading=lambda: reconciler.set_leading(True),
            on_stopped_leading=lambda: reconciler.set_leading(False))
    return Daemon(settings=settings, api=api, kube=kube, informer=informer, reconciler=reconciler,
                  probes=probes, metrics=metrics, health=health, registry=registry, elector=elector)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("kserve-warden")
    except Exception:  # not installed (a source checkout)
        return "unknown"


async def run_daemon(d: Daemon, *, stop: asyncio.Event, once: bool = False) -> int:
    """Run until ``stop`` is set (or one pass with ``once``); always shuts down cleanly."""
    settings = d.settings
    server = HealthServer(host=settings.server.host, port=settings.server.port, registry=d.registry,
                          health=d.health)
    try:
        await server.start()
    except OSError as err:
        raise BadInput([f"server: cannot listen on {settings.server.host}:{settings.server.port}: "
                        f"{err.strerror or err}"]) from err
    d.health.set_config_valid(True)
    log.info("serving metrics and health", url=server.url, dry_run=d.kube.dry_run)
    informer_task: asyncio.Task[None] | None = None
    elector_task: asyncio.Task[None] | None = None
    probes_task: asyncio.Task[None] | None = None
    heartbeat_task: asyncio.Task[None] | None = None
    rec = d.reconciler
    try:
        # The heartbeat starts first: an API server that is down delays readiness, but the
        # daemon is alive (a liveness failure would only restart it into the same outage).
        heartbeat_task = asyncio.create_task(rec.heartbeat(), name="heartbeat")
        informer_task = asyncio.create_task(d.informer.run(), name="informer")
        synced = asyncio.create_task(d.informer.wait_synced())
        stopper = asyncio.create_task(stop.wait())
        # --once is a bounded command: an API that cannot be read within the request timeout
        # ends it (exit 2, one line); ``run`` waits, not ready, until the API is back.
        bound = settings.kube.request_timeout_seconds if once else None
        await asyncio.wait({synced, stopper, informer_task}, timeout=bound,
                           return_when=asyncio.FIRST_COMPLETED)
        gave_up = not (synced.done() or stopper.done() or informer_task.done())
        if gave_up:
            # Stop asking at once, before anything else is awaited: the lists were sent with the
            # same timeout, so theirs is about to fire, and each would be retried.
            informer_task.cancel()
        await cancel_and_wait(synced, stopper)
        if informer_task.done() and not informer_task.cancelled():
            _informer_result(informer_task)
        if stop.is_set():
            return EXIT_OK
        if gave_up:
            raise BadInput([f"api: cannot read the cluster within {bound:g} s "
                            f"(kube.request_timeout_seconds): {d.informer.last_error or 'no answer'}"])
        d.health.set_synced(True)
        log.info("caches synced", kinds=len(d.informer.resources), lists=d.informer.stats.lists)
        rec.restore_ledger()
        if once:
            return await _once(d)
        if d.elector is not None:
            elector_task = asyncio.create_task(d.elector.run(), name="leader-election")
        else:
            rec.set_leading(True)
        rec.start(workers=WORKERS)
        probes_task = asyncio.create_task(d.probes.run(), name="probes")
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({stopper, informer_task}, return_when=asyncio.FIRST_COMPLETED)
        await cancel_and_wait(stopper)
        if informer_task.done():
            _informer_result(informer_task)
        log.info("shutting down")
        return EXIT_OK
    finally:
        # Stop acting first, then give the Lease away, then stop observing.
        clean = await rec.shutdown(deadline=SHUTDOWN_DEADLINE_SECONDS)
        await cancel_and_wait(elector_task)
        if d.elector is not None:
            await d.elector.release()
        await cancel_and_wait(probes_task, heartbeat_task, informer_task)
        await server.stop()
        log.info("stopped", clean=clean)


def _informer_result(task: asyncio.Task[None]) -> None:
    """Re-raise what stopped the informer; a request the server refuses (a bad
    ``scope.selector``) is bad input: one line, exit 2."""
    try:
        task.result()
    except NotKubernetesError as err:
        raise BadInput([f"cannot read the cluster: {err}"]) from err
    except InvalidError as err:
        raise BadInput([f"cannot read the cluster (check scope.selector): {err}"]) from err


async def _once(d: Daemon) -> int:
    """``--once``: probe once, one pass, act on what it allows, report what is left."""
    rec = d.reconciler
    leading = True
    if d.elector is not None:
        try:
            leading = await d.elector.try_acquire_or_renew()
        except KubeError as err:
            log.error("cannot take the leader Lease; observing only", error=str(err))
            leading = False
    rec.set_leading(leading)
    # The Lease taken here is released by run_daemon's shutdown, once (a release that fails
    # leaves it held, and a second try would cost another request timeout).
    await d.probes.run_once()
    await rec.reconcile(PASS)
    while len(rec.queue):
        key = await rec.queue.get()
        try:
            await rec.reconcile(key)
        finally:
            rec.queue.done(key)
    ev = rec.evaluate()
    return EXIT_FINDINGS if ev.findings else EXIT_OK


def configure_logging(args: argparse.Namespace, settings: Settings | None, redactor: logs.Redactor) -> None:
    """Logging, once. A flag given on the command line wins; otherwise the settings file (and
    its ``WARDEN_LOG_*`` environment overrides) decide. The flags' defaults are json/info."""
    fmt, level = args.log_format, args.log_level
    if settings is not None:
        if fmt == "json":
            fmt = settings.log.format
        if level == "info":
            level = settings.log.level
    logging_setup.configure(fmt=fmt, level=level, redactor=redactor)


def run_command(args: argparse.Namespace) -> int:
    configure_exposition()
    redactor = logs.Redactor()
    try:
        inputs = load_inputs(args, environ=os.environ)
    except BadInput as err:
        print_problems(err.problems, command="run")
        return EXIT_BAD_INPUT
    # ``check`` narrows its desired state by the scope; ``run`` keeps all of it applied, so a
    # desired model its own selector hides from it is a contradiction (see daemon.core.scope).
    unseen = unseen_desired(inputs.desired, selector=inputs.settings.scope.selector)
    if unseen:
        print_problems(unseen, command="run")
        return EXIT_BAD_INPUT
    configure_logging(args, inputs.settings, redactor)
    try:
        return asyncio.run(_main(args, inputs, redactor))
    except BadInput as err:
        print_problems(err.problems, command="run")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


async def _main(args: argparse.Namespace, inputs: Inputs, redactor: logs.Redactor) -> int:
    api = await api_client_for(getattr(args, "kubeconfig", None))
    try:
        d = build_daemon(inputs=inputs, api=api, redactor=redactor, dry_run=bool(args.dry_run))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            return await run_daemon(d, stop=stop, once=bool(args.once))
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    finally:
        await api.close()
