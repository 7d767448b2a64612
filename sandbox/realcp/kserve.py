"""KServe's own controller manager on the real control plane: the real runtime selection, the
real pod webhook, the real status — replacing the sandbox's simulated KServe controller there.

``kserve-manager`` is ``github.com/kserve/kserve/cmd/manager`` built by ``scripts/control-plane.sh``
(pinned release; the ``versions.env`` beside it names the module directory in the Go module
cache). Everything KServe ships as manifests — its CRDs (``config/crd/full``), its RBAC
(``config/rbac``), its webhook configurations and the ``inferenceservice-config`` ConfigMap — is
read from that module at run time by :mod:`sandbox.realcp.kserve_manifests`; nothing of KServe
is copied into this repository.

How it runs outside a cluster (``cmd/manager/main.go`` of the pinned release):

* ``KUBECONFIG``: controller-runtime's ``config.GetConfig()`` reads it (there is no in-cluster
  environment). It holds a TokenRequest token of the ServiceAccount
  ``kserve/kserve-controller-manager``, bound to KServe's own ClusterRole ``kserve-manager-role``
  (``config/rbac``), so the shipped RBAC is exercised, not an admin's;
* ``POD_NAMESPACE=kserve``: where it reads ``inferenceservice-config`` (``constants.
  KServeNamespace``); it exits at start-up without that ConfigMap;
* ``TMPDIR``: the webhook server has no cert-dir flag; controller-runtime reads
  ``$TMPDIR/k8s-webhook-server/serving-certs/tls.{crt,key}``. The certificate is signed by the
  control plane's CA, and the webhook configurations (``config/webhook/manifests.yaml``) point at
  ``https://127.0.0.1:PORT/<path>`` with that CA as caBundle instead of at a Service: the
  InferenceService defaulter and validator, the pod mutator (storage-initializer/agent injection
  into pods labelled ``serving.kserve.io/inferenceservice``) and the v1alpha1 validators. The
  CRDs (``config/crd/full``) serve one version each, so no conversion webhook is needed;
* ``-webhook-port``: it listens on all interfaces (there is no host flag); ``-metrics-addr`` and
  ``-health-probe-addr`` on free ports, as their defaults (:8080, :8081) collide;
  ``-leader-elect=false``: one instance;
* RawDeployment ("Standard") mode, ingress creation off: there is no Knative, no Istio control
  plane and no ingress controller (without Knative, Istio, KEDA or OpenTelemetry CRDs it logs
  that it won't watch those kinds and carries on). An InferenceService becomes a Deployment and
  a Service ``<name>-predictor``; kube-controller-manager makes the ReplicaSet and the Pods, and
  the sandbox's simulated kubelet runs them;
* KServe's shipped ClusterServingRuntimes (``config/runtimes``) are not installed: the only
  runtimes are those the daemon applies (its desired state, see :mod:`sandbox.world`) or a
  test creates, so KServe's choice among them is the one under test.

Lifecycle: :meth:`KServe.install_crds` once the control plane is up (before the world is seeded,
which creates KServe objects); :meth:`KServe.start` after the world is seeded (the manager needs
the ``kserve`` namespace and its ConfigMap); :meth:`KServe.stop` removes the webhook
configurations first — their failure policy is ``Fail``, so a webhook left registered without
its server would refuse every later InferenceService — then stops the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from sandbox.realcp import kserve_manifests
from sandbox.realcp.controlplane import (
    ControlPlane,
    ControlPlaneFailed,
    ControlPlaneMissing,
    free_ports,
    issue_serving_cert,
    spawn,
    terminate,
    write_kubeconfig,
)

NAMESPACE = "kserve"
SERVICE_ACCOUNT = "kserve-controller-manager"
MODE = "RawDeployment"
FIELD_MANAGER = "sandbox-kserve-install"
SOURCE_ANNOTATION = "sandbox.kserve-warden.io/kserve-module"
READY_TIMEOUT = 90.0
CONFIG_KEYS_FROM_WORLD = ("credentials", "storageInitializer")
"""``inferenceservice-config`` keys the seeded world owns (the seed's storage-credential setup);
every other key is KServe's shipped default, with the deployment mode and ingress set above."""

_CLUSTER_PATHS = {
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    "Namespace": "/api/v1/namespaces",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "MutatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    "ValidatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
}
_NAMESPACED_PATHS = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "Service": "/api/v1/namespaces/{ns}/services",
}


def module_dir(bin_dir: Path) -> Path:
    """KServe's module directory, from ``versions.env`` beside the binaries."""
    env = bin_dir / "versions.env"
    with contextlib.suppress(OSError):
        for line in env.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "KSERVE_MODULE_DIR" and Path(value, "config", "crd", "full").is_dir():
                return Path(value)
    raise ControlPlaneMissing(f"KServe's module is not in {env}: run `make control-plane`")


def object_path(doc: dict[str, Any]) -> str:
    """The API path of one object (the kinds KServe's and Knative's installs use)."""
    kind, meta = doc["kind"], doc["metadata"]
    if kind in _CLUSTER_PATHS:
        return f"{_CLUSTER_PATHS[kind]}/{meta['name']}"
    if kind in _NAMESPACED_PATHS:
        return f"{_NAMESPACED_PATHS[kind].format(ns=meta['namespace'])}/{meta['name']}"
    raise ValueError(f"no API path known for kind {kind}")


async def apply(api: ApiClient, doc: dict[str, Any], *, manager: str = FIELD_MANAGER) -> Any:
    """Server-side apply as the installer (force: the install owns what it declares)."""
    from sandbox.realcp import api_call

    return await api_call(api, "PATCH", object_path(doc), doc, ctype="application/apply-patch+yaml",
                          query=[("fieldManager", manager), ("force", "true")])


async def apply_crds_once(api: ApiClient, docs: list[dict[str, Any]], *, source: str,
                          manager: str = FIELD_MANAGER) -> list[dict[str, Any]]:
    """Apply CRDs unless the live ones carry :data:`SOURCE_ANNOTATION` = ``source`` already
    (they are megabytes: a shared control plane gets them once); returns them, for the caller to
    wait until they are served."""
    from sandbox.realcp import api_call

    for doc in docs:
        doc["metadata"].setdefault("annotations", {})[SOURCE_ANNOTATION] = source
        try:
            live = await api_call(api, "GET", object_path(doc))
            if (live["metadata"].get("annotations") or {}).get(SOURCE_ANNOTATION) == source:
                continue
        except ApiException as exc:
            if exc.status != 404:
                raise
        await apply(api, doc, manager=manager)
    return docs


async def service_account_token(api: ApiClient, *, namespace: str, name: str) -> str:
    """A TokenRequest token (one day) of ServiceAccount ``namespace/name``."""
    from sandbox.realcp import api_call

    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 86400}}
    answer = await api_call(api, "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token", body)
    return str(answer["status"]["token"])


async def delete(api: ApiClient, doc: dict[str, Any]) -> None:
    from sandbox.realcp import api_call

    try:
        await api_call(api, "DELETE", object_path(doc))
    except ApiException as exc:
        if exc.status != 404:
            raise


def config_data(module: Path) -> dict[str, str]:
    """KServe's shipped ``inferenceservice-config`` data in :data:`MODE`, ingress creation off,
    without :data:`CONFIG_KEYS_FROM_WORLD` (the seeded world brings those)."""
    (cm,) = kserve_manifests.configmap(module, NAMESPACE, MODE)
    return {k: v for k, v in cm["data"].items() if k not in CONFIG_KEYS_FROM_WORLD}


async def remove_webhooks(api: ApiClient, module: Path) -> None:
    """Delete KServe's webhook configurations (a previous run's, or ours)."""
    for doc in kserve_manifests.webhooks_unbound(module):
        await delete(api, doc)


class KServe:
    """KServe's controller manager as a subprocess against a :class:`ControlPlane`."""

    def __init__(self, *, control_plane: ControlPlane, workdir: Path, host: str = "127.0.0.1") -> None:
        if control_plane.bin_dir is None:
            raise ControlPlaneFailed("the control plane is not started")
        self._cp = control_plane
        self._bin = control_plane.bin_dir / "kserve-manager"
        self.module = module_dir(control_plane.bin_dir)
        self.dir = workdir
        self._host = host
        self._proc: subprocess.Popen[bytes] | None = None
        self.webhook_port, self.metrics_port, self.probe_port = free_ports(3)

    @property
    def log_path(self) -> Path:
        return self.dir / "kserve-manager.log"

    async def install_crds(self, api: ApiClient) -> list[dict[str, Any]]:
        """KServe's CRDs (``config/crd/full``), applied unless this module's are there already
        (:func:`apply_crds_once`); returns them, for the caller to wait until they are served."""
        return await apply_crds_once(api, kserve_manifests.crds(self.module),
                                     source=self.module.resolve().name)

    async def start(self, api: ApiClient) -> None:
        """Install the rest (RBAC, ConfigMap keys), start the manager, register its webhooks."""
        if not os.access(self._bin, os.X_OK):
            raise ControlPlaneMissing(f"{self._bin} is missing: run `make control-plane`")
        await remove_webhooks(api, self.module)  # a crashed previous run's, pointing nowhere
        for doc in kserve_manifests.rbac(self.module, NAMESPACE):
            await apply(api, doc)
        await apply(api, {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "inferenceservice-config", "namespace": NAMESPACE},
            "data": config_data(self.module),
        })
        certs = self.dir / "tmp" / "k8s-webhook-server" / "serving-certs"
        await asyncio.to_thread(issue_serving_cert, self._cp.pki, name="kserve-webhook-server", dest=certs)
        kubeconfig = write_kubeconfig(self.dir / "kserve.kubeconfig", server=self._cp.url,
                                      ca_file=self._cp.ca_file, user="kserve",
                                      token=await service_account_token(api, namespace=NAMESPACE,
                                                                        name=SERVICE_ACCOUNT),
                                      namespace=NAMESPACE)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.dir),
            "KUBECONFIG": str(kubeconfig),
            "POD_NAMESPACE": NAMESPACE,
            "TMPDIR": str(self.dir / "tmp"),
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        self._proc = spawn(
            [str(self._bin), f"-webhook-port={self.webhook_port}",
             f"-metrics-addr={self._host}:{self.metrics_port}",
             f"-health-probe-addr={self._host}:{self.probe_port}", "-leader-elect=false"],
            log=self.log_path, env=env)
        try:
            await self._wait_ready()
            url = f"https://{self._host}:{self.webhook_port}"
            for doc in kserve_manifests.webhooks(self.module, url, str(self._cp.ca_file)):
                await apply(api, doc)
        except BaseException:
            await self.stop(api)
            raise

    def _tail(self, n: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    async def _wait_ready(self) -> None:
        import aiohttp

        deadline = time.monotonic() + READY_TIMEOUT
        url = f"http://{self._host}:{self.probe_port}/readyz"
        async with aiohttp.ClientSession() as s:
            while True:
                if not self.alive():
                    raise ControlPlaneFailed(f"kserve-manager exited:\n{self._tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with s.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise ControlPlaneFailed(
                        f"kserve-manager not ready after {READY_TIMEOUT:.0f}s:\n{self._tail()}")
                await asyncio.sleep(0.2)

    async def stop(self, api: ApiClient | None) -> None:
        if api is not None:
            with contextlib.suppress(Exception):
                await remove_webhooks(api, self.module)
        proc, self._proc = self._proc, None
        if proc is not None:
            await terminate(proc, grace=10)
