"""Knative Serving's own controller and webhook on the real control plane, as processes.

The commands are ``knative.dev/serving/cmd/...`` at the version KServe v0.20.0's go.mod
requires, built by ``scripts/control-plane.sh`` (component ``knative``: ``knative-controller``,
``knative-webhook``, ``knative-autoscaler``, ``knative-activator``, ``queue-proxy``). Everything
a release installs as manifests — the CRDs, the Namespace, RBAC, the ``config-*`` ConfigMaps,
the webhook configurations — is read from the modules at run time by :mod:`sandbox.realcp.knative_manifests`;
nothing of Knative is copied into this repository.

How each runs outside a cluster (``cmd/*/main.go`` and ``knative.dev/pkg/injection/sharedmain``
of the pinned release):

* ``KUBECONFIG`` (``injection.ParseAndGetRESTConfigOrDie`` reads it when there is no in-cluster
  environment) holds a TokenRequest token of the ServiceAccount the release's Deployment names:
  ``knative-serving/controller`` for both, bound to Knative's own aggregated ClusterRole
  ``knative-serving-admin`` (aggregated by kube-controller-manager's clusterrole-aggregation
  controller, as in a cluster), so the shipped RBAC is exercised, not an admin's;
* ``SYSTEM_NAMESPACE=knative-serving``, ``POD_NAME`` (in its log lines; its leader-election
  identity is the host name and a UUID), ``CONFIG_LOGGING_NAME``/``CONFIG_OBSERVABILITY_NAME`` as the
  Deployments set them; ``PROFILING_PORT`` on a free port (default 8008 for every command);
* the webhook: ``WEBHOOK_PORT`` on a free port. It makes its own CA and serving certificate for
  ``webhook.knative-serving.svc`` (Secret ``webhook-certs``) and reconciles its three webhook
  configurations itself — rules, path, ``caBundle`` — refusing any without a Service reference.
  So the configurations keep Knative's Service reference, with the port set to the webhook's
  (:func:`knative_manifests.webhooks`), and the Service ``knative-serving/webhook`` is a
  **stand-in**: ``type: ExternalName``, ``externalName: 127.0.0.1``. kube-apiserver resolves an
  ExternalName Service to ``https://<externalName>:<port>`` (``k8s.io/apiserver/pkg/util/proxy.
  ResolveCluster``) and verifies the certificate for ``webhook.knative-serving.svc`` as for any
  Service, so Knative's own certificate and ``caBundle`` are what is checked. (A ClusterIP
  Service would need a route from the apiserver to the service network, which loopback has not.)
  Readiness is that path working end to end: a server-side dry-run create of a Knative Service
  passes Knative's defaulting and validation webhooks;
* the controller: its health probes listen on ``:8080``, fixed (``injection.
  HealthCheckDefaultPort``; no flag or variable moves it), and the process exits when that port
  is taken: :meth:`Knative.start` says so before starting it. Readiness is its leader election
  done: the Leases of the Service, Configuration, Revision and Route reconcilers held (a
  previous run's Leases are deleted first: their holders are gone, and the new controller
  would wait out their 60 s lease duration).

Not run here, and why (read in v0.48.1's code, and the autoscaler tried):

* **autoscaler**: its stats server listens on ``:8080`` too (``statsServerAddr``, a constant),
  so it cannot share a network namespace with the controller; in a cluster they are two pods.
  Started beside the controller, its stats server fails at once, it stops its reconcilers within
  milliseconds and then does not exit (still running 30 s later). Without it nobody reconciles
  the PodAutoscaler (class ``kpa.autoscaling.knative.dev``) the controller creates: a Revision
  whose image resolves (or is in ``registries-skipping-tag-resolving``) gets its Deployment and
  PodAutoscaler and stays ``Ready``/``Active`` Unknown, reason ``Deploying``;
* **activator**: it listens on ``:8012``/``:8013`` (fixed) and reports to the autoscaler at
  ``ws://autoscaler.knative-serving.svc.cluster.local:8080`` — a name the host cannot resolve;
  without the autoscaler it has nothing to report to and stays unready;
* **queue-proxy** is built (``queue-proxy``), and ``config-deployment``'s
  ``queue-sidecar-image`` names it, but no kubelet here runs it yet;
* **networking**: ``knative.dev/net-istio`` and ``net-kourier`` are not on the module proxy and
  Envoy cannot be built here, so nobody reconciles the KIngress the Route creates (class
  ``istio.ingress.networking.knative.dev``, ``config-network``'s default): a Route stays not
  Ready with Knative's own reason for that. A KIngress stand-in (in ``sandbox/``, named as one)
  must do what net-istio's reconciler does for Knative to see a Route Ready: mark the Ingress's
  ``NetworkConfigured`` and ``LoadBalancerReady`` conditions True (so ``Ready`` is True) with
  ``status.privateLoadBalancer``/``publicLoadBalancer`` ingress entries naming a host
  (``domainInternal``) that serves the Route's hosts, after probing that each host answers the
  Revision's traffic split (net-istio probes every gateway pod with the ``K-Network-Probe``
  header before it says Ready).

Lifecycle, as :class:`sandbox.realcp.kserve.KServe`'s: :meth:`Knative.install_crds` once the
control plane is up; :meth:`Knative.start` installs the rest, starts the webhook and the
controller and waits until both work; :meth:`Knative.stop` removes the webhook configurations
first — their failure policy is ``Fail``, so one left registered without its server would refuse
every later Knative object and every change to Knative's ConfigMaps — then stops the processes.
Objects of Knative's kinds carry its finalizers (``Configuration``: the labeler's): delete them
while the controller runs, or the namespace holding them waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from sandbox.realcp import knative_manifests
from sandbox.realcp.controlplane import (
    ControlPlane,
    ControlPlaneFailed,
    ControlPlaneMissing,
    free_ports,
    spawn,
    terminate,
    write_kubeconfig,
)
from sandbox.realcp.kserve import apply, apply_crds_once, delete, service_account_token

NAMESPACE = knative_manifests.NAMESPACE
FIELD_MANAGER = "sandbox-knative-install"
READY_TIMEOUT = 90.0
WEBHOOK_HOST = "127.0.0.1"
"""The ExternalName of the stand-in ``webhook`` Service: where the webhook process listens."""
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"
LEASED_RECONCILERS = ("service", "configuration", "revision", "route")
"""The controller is ready when it holds the Lease of each of these reconcilers (one bucket each,
``config-leader-election``'s default)."""


@dataclass(frozen=True, kw_only=True)
class Command:
    """One Knative command as its Deployment in ``config/core/deployments`` runs it."""

    binary: str
    pod_name: str
    service_account: str
    fixed_ports: tuple[int, ...] = ()
    """Ports it binds on every interface with no flag or variable to move them."""
    stop_grace: float = 10.0
    """Seconds between SIGTERM and SIGKILL."""


CONTROLLER = Command(binary="knative-controller", pod_name="controller", service_account="controller",
                     fixed_ports=(8080,))
WEBHOOK = Command(binary="knative-webhook", pod_name="webhook", service_account="controller", stop_grace=2.0)
"""On SIGTERM the webhook keeps serving until no request has come for 45 s (knative.dev/pkg's
``network.DefaultDrainTimeout``; no flag), for a Service's endpoints to catch up. Its
configurations are removed before it is stopped, so no request can come: it is not waited for."""
COMMANDS = (WEBHOOK, CONTROLLER)


def component_dir(bin_dir: Path) -> Path:
    """``<cache>/knative-serving-<version>``: where the controller binary of ``bin_dir`` lives
    (``bin/`` holds links into it; the modules are linked beside its ``bin/``)."""
    binary = bin_dir / CONTROLLER.binary
    if not os.access(binary, os.X_OK):
        raise ControlPlaneMissing(f"{binary} is missing: run `make control-plane`")
    return binary.resolve().parent.parent


def port_taken(port: int) -> bool:
    """Whether ``:port`` (every interface, as a Go ``net.Listen(":port")``) is taken."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go sets it: TIME_WAIT is no conflict
        try:
            s.bind(("", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def webhook_service(port: int) -> dict[str, Any]:
    """The stand-in for Knative's ``webhook`` Service (see the module docstring)."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": knative_manifests.WEBHOOK_SERVICE, "namespace": NAMESPACE,
                     "annotations": {"sandbox.kserve-warden.io/stand-in":
                                     "ExternalName to the knative-webhook process on loopback"}},
        "spec": {"type": "ExternalName", "externalName": WEBHOOK_HOST,
                 "ports": [{"name": "https-webhook", "port": port, "protocol": "TCP"}]},
    }


async def remove_webhooks(api: ApiClient, mods: knative_manifests.Modules) -> None:
    """Delete Knative's webhook configurations (a previous run's, or ours)."""
    for doc in knative_manifests.webhooks_unbound(mods):
        await delete(api, doc)


class Knative:
    """Knative Serving's webhook and controller as subprocesses against a :class:`ControlPlane`."""

    def __init__(self, *, control_plane: ControlPlane, workdir: Path) -> None:
        if control_plane.bin_dir is None:
            raise ControlPlaneFailed("the control plane is not started")
        self._cp = control_plane
        self._bin_dir = control_plane.bin_dir
        try:
            self.modules = knative_manifests.Modules.of(component_dir(control_plane.bin_dir))
        except FileNotFoundError as exc:
            raise ControlPlaneMissing(str(exc)) from exc
        self.dir = workdir
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.webhook_port, self._webhook_profiling, self._controller_profiling = free_ports(3)

    def log_path(self, command: Command) -> Path:
        return self.dir / f"{command.binary}.log"

    async def install_crds(self, api: ApiClient) -> list[dict[str, Any]]:
        """Knative's CRDs, applied unless this version's are there already; returns them, for the
        caller to wait until they are served (:func:`sandbox.realcp.install_crds`)."""
        return await apply_crds_once(api, knative_manifests.crds(self.modules),
                                     source=f"knative-serving@{self.modules.version}", manager=FIELD_MANAGER)

    async def start(self, api: ApiClient) -> None:
        """Install the rest, start the webhook and the controller, wait until both work."""
        from sandbox.realcp import api_call

        for command in COMMANDS:
            if not os.access(self._bin_dir / command.binary, os.X_OK):
                raise ControlPlaneMissing(f"{self._bin_dir / command.binary} is missing: "
                                          "run `make control-plane`")
            for port in command.fixed_ports:
                if port_taken(port):
                    raise ControlPlaneFailed(
                        f"port {port} is taken: Knative's {command.pod_name} listens on :{port} "
                        "(fixed in its code) and exits without it")
        await remove_webhooks(api, self.modules)  # a crashed previous run's, pointing nowhere
        for doc in knative_manifests.core(self.modules):
            await apply(api, doc, manager=FIELD_MANAGER)
        await apply(api, webhook_service(self.webhook_port), manager=FIELD_MANAGER)
        # The configurations before the webhook starts: its reconcilers fetch them by name.
        for doc in knative_manifests.webhooks(self.modules, self.webhook_port):
            await apply(api, doc, manager=FIELD_MANAGER)
        # A previous run's Leases name holders long gone: the new controller would wait out
        # their lease-duration (60 s) before leading, and they would pass for its own.
        await api_call(api, "DELETE", LEASES)
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            self._procs[WEBHOOK.pod_name] = await self._spawn(api, WEBHOOK, extra={
                "WEBHOOK_NAME": knative_manifests.WEBHOOK_SERVICE,
                "WEBHOOK_PORT": str(self.webhook_port),
                "PROFILING_PORT": str(self._webhook_profiling),
            })
            self._procs[CONTROLLER.pod_name] = await self._spawn(api, CONTROLLER, extra={
                "PROFILING_PORT": str(self._controller_profiling),
            })
            deadline = time.monotonic() + READY_TIMEOUT
            await self._wait_webhook(api, deadline)
            await self._wait_controller(api, deadline)
        except BaseException:
            await self.stop(api)
            raise

    async def _spawn(self, api: ApiClient, command: Command, *,
                     extra: dict[str, str]) -> subprocess.Popen[bytes]:
        token = await service_account_token(api, namespace=NAMESPACE, name=command.service_account)
        kubeconfig = write_kubeconfig(self.dir / f"{command.binary}.kubeconfig", server=self._cp.url,
                                      ca_file=self._cp.ca_file, user=f"knative-{command.pod_name}",
                                      token=token, namespace=NAMESPACE)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.dir),
            "KUBECONFIG": str(kubeconfig),
            "SYSTEM_NAMESPACE": NAMESPACE,
            "POD_NAME": command.pod_name,
            "CONFIG_LOGGING_NAME": "config-logging",
            "CONFIG_OBSERVABILITY_NAME": "config-observability",
            **extra,
        }
        return spawn([str(self._bin_dir / command.binary)], log=self.log_path(command), env=env)

    def _tail(self, command: Command, n: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path(command).read_text(errors="replace").splitlines()[-n:])
        return ""

    def alive(self) -> bool:
        return len(self._procs) == len(COMMANDS) and all(p.poll() is None for p in self._procs.values())

    def _check(self, deadline: float, what: str, last: str) -> None:
        for command in COMMANDS:
            proc = self._procs.get(command.pod_name)
            if proc is not None and proc.poll() is not None:
                raise ControlPlaneFailed(
                    f"{command.binary} exited ({proc.returncode}):\n{self._tail(command)}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {c.binary}\n{self._tail(c)}" for c in COMMANDS)
            raise ControlPlaneFailed(f"Knative: {what} after {READY_TIMEOUT:.0f}s (last: {last})\n{logs}")

    async def _wait_webhook(self, api: ApiClient, deadline: float) -> None:
        """Until a dry-run create of a Knative Service passes Knative's admission webhooks."""
        from sandbox.realcp import api_call

        probe = {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                 "metadata": {"name": "sandbox-webhook-probe", "namespace": NAMESPACE},
                 "spec": {"template": {"spec": {"containers": [{"image": "probe.invalid/probe"}]}}}}
        while True:
            try:
                await api_call(api, "POST", f"/apis/serving.knative.dev/v1/namespaces/{NAMESPACE}/services",
                               probe, query=[("dryRun", "All")])
                return
            except ApiException as exc:
                # 500 "failed calling webhook" until it serves with the certificate it made.
                if exc.status != 500:
                    raise
                last = str(exc.body)[:300]
            self._check(deadline, "the webhook is not admitting", last)
            await asyncio.sleep(0.2)

    async def _wait_controller(self, api: ApiClient, deadline: float) -> None:
        """Until the controller holds the Lease of each of :data:`LEASED_RECONCILERS` (its
        identity is the host name and a UUID; the Leases were deleted before it started)."""
        from sandbox.realcp import api_call

        while True:
            leases = await api_call(api, "GET", LEASES)
            held = {lease["metadata"]["name"] for lease in leases.get("items") or []
                    if (lease.get("spec") or {}).get("holderIdentity")}
            missing = [r for r in LEASED_RECONCILERS
                       if not any(f".reconciler.{r}.reconciler." in name for name in held)]
            if not missing:
                return
            self._check(deadline, "the controller has not taken its leases",
                        f"no lease held for the {', '.join(missing)} reconcilers; held: {sorted(held)}")
            await asyncio.sleep(0.2)

    async def stop(self, api: ApiClient | None) -> None:
        if api is not None:
            with contextlib.suppress(Exception):
                await remove_webhooks(api, self.modules)
        procs, self._procs = self._procs, {}
        await asyncio.gather(*(terminate(procs[c.pod_name], grace=c.stop_grace)
                               for c in COMMANDS if c.pod_name in procs))
