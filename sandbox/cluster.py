"""The :class:`Sandbox`: every stand-in part of the local cluster, wired and started together.

Kept out of the package's ``__init__`` so that importing one part (``sandbox.apiserver`` for a
test, ``sandbox.dns`` for a benchmark) does not load them all (moto, boto, the model trainer);
``from sandbox import Sandbox`` still works through the package's lazy ``__getattr__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import yaml
from kubernetes_asyncio.client import ApiClient, Configuration, CustomObjectsApi

from sandbox import inject as _inject
from sandbox import world
from sandbox.apiserver import ApiServer
from sandbox.clusternet import ClusterNetwork
from sandbox.controllers.coredns import CoreDnsController
from sandbox.controllers.kserve import KServeController
from sandbox.controllers.kubelet import Kubelet
from sandbox.dns import DnsServer
from sandbox.kubeconfig import write_kubeconfig
from sandbox.mesh import Mesh
from sandbox.s3 import S3Credentials, S3Server

if TYPE_CHECKING:
    from sandbox.realcp import ControlPlane, RealApi

__all__ = ["CONTROL_PLANES", "Sandbox", "trained_model"]

CONTROL_PLANES = ("embedded", "real")

SEED_DESIRED_DIR = Path(__file__).resolve().parent / "demo" / "desired"
"""The seed's desired state, corrected (``config/desired`` holds the same files as the configured
example). The daemon's embedded default has *no* desired state; the sandbox's settings point here."""

_MODEL_CACHE: dict[str, bytes] = {}
# A thread lock, not an asyncio one: tests run each on its own event loop.
_MODEL_LOCK = threading.Lock()


def _train_once() -> bytes:
    with _MODEL_LOCK:
        if "model" not in _MODEL_CACHE:
            from serving.train import train

            tmp = Path(tempfile.mkdtemp(prefix="kserve-warden-model-"))
            try:
                _MODEL_CACHE["model"] = train(out=tmp, name="model").model_path.read_bytes()
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return _MODEL_CACHE["model"]


async def trained_model() -> bytes:
    """The iris model (XGBoost JSON) from ``serving.train``; trained once per process, kept in memory."""
    return await asyncio.to_thread(_train_once)


class Sandbox:
    FAILURES: tuple[str, ...] = _inject.FAILURES

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        controllers: bool = True,
        workdir: Path | None = None,
        control_plane: str = "embedded",
        shared_control_plane: ControlPlane | None = None,
    ) -> None:
        """``control_plane``: ``embedded`` (the stand-in) or ``real`` (etcd, kube-apiserver,
        kube-controller-manager, kube-scheduler from :mod:`sandbox.realcp`; ``shared_control_plane`` borrows a
        running one, which is reset to an empty cluster first)."""
        if control_plane not in CONTROL_PLANES:
            raise ValueError(f"control_plane must be one of {CONTROL_PLANES}, not {control_plane!r}")
        self.control_plane = control_plane
        self.host = host
        self.controllers_enabled = controllers
        self._own_workdir = workdir is None
        self.workdir = (
            Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="kserve-warden-sandbox-"))
        )
        self.apiserver: ApiServer | RealApi
        if control_plane == "real":
            from sandbox.realcp import RealApi

            self.apiserver = RealApi(control_plane=shared_control_plane, host=host)
        else:
            self.apiserver = ApiServer(host=host)
        self.s3 = S3Server(host=host)
        self.dns = DnsServer(host=host)
        self.mesh: Mesh | None = None
        self.api: ApiClient | None = None
        self.kserve: KServeController | None = None
        self.clusternet: ClusterNetwork | None = None
        self.kubelet: Kubelet | None = None
        self.coredns: CoreDnsController | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._creds: S3Credentials | None = None
        self._injector: _inject.Injector | None = None
        self._daemon_sidecar = ""
        self._started = False

    def __repr__(self) -> str:
        return f"Sandbox(api={self.api_url if self._started else None!r}, workdir={str(self.workdir)!r})"

    # -- endpoints -------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self.apiserver.url

    @property
    def kubeconfig_path(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def dns_address(self) -> tuple[str, int]:
        return self.dns.address

    @property
    def s3_url(self) -> str:
        return self.s3.url

    def api_auth_headers(self) -> dict[str, str]:
        """Headers a plain HTTP client needs for the API (the admin's token on the real one)."""
        if isinstance(self.apiserver, ApiServer):
            return {}
        return {"Authorization": f"Bearer {self.apiserver.cp.admin_token}"}

    def api_ssl(self) -> ssl.SSLContext | bool:
        """TLS for a plain HTTP client: the control plane's CA on the real one (True: defaults)."""
        if isinstance(self.apiserver, ApiServer):
            return True
        return self.apiserver.cp.ssl_context()

    def new_api_client(self) -> ApiClient:
        """A kubernetes_asyncio client for the sandbox API (the caller closes it)."""
        if not isinstance(self.apiserver, ApiServer):
            return self.apiserver.new_api_client()  # admin's bearer token, the control plane's CA
        cfg = Configuration(host=self.api_url)
        return ApiClient(configuration=cfg)

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            model = await trained_model()
            await self.apiserver.start()
            await self.s3.start()
            await self.dns.start()
            self._creds = await asyncio.to_thread(
                self.s3.seed, bucket=world.BUCKET, objects={world.MODEL_KEY: model}
            )
            self.api = self.new_api_client()
            api = self.api
            self.mesh = Mesh(upstream=self.s3.url, policies=self._policies, host=self.host)
            await self.mesh.start()
            self._daemon_sidecar = await self.mesh.sidecar(principal=world.DAEMON_PRINCIPAL)
            await world.apply_all(
                api,
                world.seed_objects(
                    access_key_id=self._creds.access_key_id, secret_access_key=self._creds.secret_access_key
                ),
            )
            self.apiserver.mark_seeded()
            self.write_kubeconfig(self.kubeconfig_path, namespace=world.USER_NS)
            if not isinstance(self.apiserver, ApiServer) and self.controllers_enabled:
                # KServe's own manager replaces the simulated controller on the real control
                # plane; it needs the seeded kserve namespace and inferenceservice-config.
                await self.apiserver.start_kserve(api)
                # Its status.address is the in-cluster Service URL: the daemon, outside the
                # cluster, reaches it through this stand-in for the cluster network.
                self.clusternet = ClusterNetwork(api, host=self.host)
                await self.clusternet.start()
            self._injector = _inject.Injector(api=api, dns=self.dns, bucket=self.s3)
            if self.controllers_enabled:
                self._start_controllers(api)
            self._started = True
        except BaseException:
            await self.stop()
            raise

    def write_kubeconfig(self, path: Path, *, namespace: str = world.USER_NS) -> None:
        """A kubeconfig for this sandbox's API (on the real control plane: admin's token and CA)."""
        if isinstance(self.apiserver, ApiServer):
            write_kubeconfig(path, server=self.api_url, namespace=namespace)
        else:
            self.apiserver.write_kubeconfig(path, namespace=namespace)

    def _start_controllers(self, api: ApiClient) -> None:
        mesh = self.mesh
        assert mesh is not None

        async def sidecar_for(principal: str | None) -> str:
            return await mesh.sidecar(principal=principal)

        if isinstance(self.apiserver, ApiServer):
            self.kserve = KServeController(api)
            self.kubelet = Kubelet(api, workdir=self.workdir, dns=self.dns.address, sidecar_for=sidecar_for)
        else:
            # kube-scheduler binds the pods to the sandbox's Nodes; the kubelet runs what is bound
            # to them, and its logs go to their kubelet endpoint (pods/log reaches them).
            from sandbox.realcp import NODES

            assert self.apiserver.nodelogs is not None
            self.kubelet = Kubelet(
                api, workdir=self.workdir, dns=self.dns.address, sidecar_for=sidecar_for,
                node_names=tuple(n.name for n in NODES), log_url=self.apiserver.nodelogs.put_url,
            )
        self.coredns = CoreDnsController(api, dns=self.dns)
        if self.kserve is not None:
            self._tasks.append(asyncio.create_task(self.kserve.run(), name="sandbox-kserve"))
        for name, coro in (("kubelet", self.kubelet.run()), ("coredns", self.coredns.run())):
            self._tasks.append(asyncio.create_task(coro, name=f"sandbox-{name}"))

    async def _policies(self) -> list[dict[str, Any]]:
        assert self.api is not None
        body = await CustomObjectsApi(self.api).list_cluster_custom_object(
            "security.istio.io", "v1", "authorizationpolicies"
        )
        return list(body.get("items") or [])

    async def stop(self) -> None:
        if self.clusternet is not None:
            await self.clusternet.stop()
            self.clusternet = None
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.mesh is not None:
            await self.mesh.stop()
            self.mesh = None
        if self.api is not None:
            await self.api.close()
            self.api = None
        with contextlib.suppress(Exception):
            await self.dns.stop()
        with contextlib.suppress(Exception):
            await self.s3.stop()
        with contextlib.suppress(Exception):
            await self.apiserver.stop()
        self._started = False
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            shutil.rmtree(self.workdir / "pods", ignore_errors=True)

    # -- the daemon's view -----------------------------------------------------------------------

    async def daemon_sidecar(self) -> str:
        """``host:port`` of the daemon's egress sidecar (its S3 probe's endpoint override)."""
        if self.mesh is None:
            raise RuntimeError("Sandbox is not started")
        return await self.mesh.sidecar(principal=world.DAEMON_PRINCIPAL)

    def warden_config(self) -> dict[str, Any]:
        """Settings for ``kserve-warden run`` against this sandbox (``config/warden.yaml`` schema)."""
        if not self._daemon_sidecar:
            raise RuntimeError("Sandbox is not started")
        host, port = self.dns.address
        return {
            "secrets": {"namespaces": [world.USER_NS, "kubeflow"]},
            "models": [
                {
                    "namespace": world.USER_NS,
                    "name": "iris-model",
                    "protocol": "v1",
                    "canary": {"instances": [[5.1, 3.5, 1.4, 0.2]], "expected": [0]},
                }
            ],
            # Short periods: the sandbox is for seeing the daemon work in seconds.
            "probes": {
                "dns": {
                    "nameserver": host,
                    "port": port,
                    "period_seconds": 1.0,
                    "timeout_seconds": 0.5,
                    "names": ["istiod.istio-system.svc.cluster.local"],
                    "queries": 3,
                    "latency_threshold_seconds": 0.3,
                },
                "storage": {
                    "period_seconds": 2.0,
                    "timeout_seconds": 2.0,
                    "endpoint_overrides": {world.S3_ENDPOINT: self._daemon_sidecar},
                },
                "predictor": {
                    "period_seconds": 1.0,
                    "timeout_seconds": 1.0,
                    **({"proxy": self.clusternet.url} if self.clusternet is not None else {}),
                },
            },
            "mesh": {
                "root_namespace": "istio-system",
                "storage_namespace": "kubeflow",
                "storage_labels": {"app": "seaweedfs"},
            },
            "remediation": {"backoff_initial_seconds": 2.0, "backoff_max_seconds": 60.0, "dns_hysteresis": 2,
                            "verify_after_seconds": 20.0},
            "leader_election": {"lease_namespace": "kserve-warden"},
            "server": {"host": "127.0.0.1"},
            "coredns": {"namespace": "kube-system", "deployment": "coredns"},
            "kserve_config": {"namespace": "kserve", "name": "inferenceservice-config"},
            # The seed's manifests: the demo converges and heals against them.
            "desired": {"dir": str(SEED_DESIRED_DIR)},
        }

    def write_warden_config(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        head = "# kserve-warden settings for the sandbox (written by `kserve-warden sandbox`).\n"
        path.write_text(head + yaml.safe_dump(self.warden_config(), sort_keys=False), encoding="utf-8")

    # -- worlds and failures ---------------------------------------------------------------------

    async def apply_healthy_world(self) -> None:
        """Apply the seed's final working state (what the daemon would apply)."""
        assert self.api is not None and self._creds is not None, "Sandbox is not started"
        await world.apply_all(
            self.api,
            world.healthy_objects(
                access_key_id=self._creds.access_key_id, secret_access_key=self._creds.secret_access_key
            ),
        )

    async def inject(self, name: str) -> None:
        if self._injector is None:
            raise RuntimeError("Sandbox is not started")
        await self._injector.inject(name)

    async def undo(self, name: str) -> None:
        if self._injector is None:
            raise RuntimeError("Sandbox is not started")
        await self._injector.undo(name)
