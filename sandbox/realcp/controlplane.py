"""The real control plane as local processes: etcd, kube-apiserver, kube-controller-manager.

Each flag is explained where :meth:`ControlPlane.start` passes it; the certificates and tokens
at :func:`make_pki`. Admission plugins are kube-apiserver's default set (ServiceAccount,
NamespaceLifecycle, Mutating/ValidatingAdmissionWebhook, ResourceQuota, ...).
The binaries come from ``scripts/control-plane.sh`` (built from Go modules into the user's cache;
a warm run takes about a second): :func:`binaries` runs it, or reads ``$KSW_CP_BIN``. Nothing is
downloaded here and nothing is skipped: a missing binary raises :class:`ControlPlaneMissing`
with the one command that builds it.

All state (certificates from ``openssl``, etcd's data, logs, kubeconfigs) lives in one work
directory; every process listens on a free loopback port, so several control planes (a test
session and a demo) can run side by side. :meth:`ControlPlane.stop` stops the processes in
reverse start order (the apiserver before etcd, so it does not spend its shutdown retrying etcd).

Once started, each process is kept running as the kubelet keeps a static pod running
(:class:`sandbox.realcp.supervise.Supervised`): one that exits is started again, on the same
ports and data, with the kubelet's crash back-off. The fault tests use that:
:meth:`ControlPlane.kill` (SIGKILL etcd; wait for :meth:`ControlPlane.restarted`),
:meth:`ControlPlane.restart` (SIGTERM, SIGKILL after a grace period, as the kubelet does) and
:meth:`ControlPlane.suspend` / :meth:`ControlPlane.resume` (an API outage: the apiserver's
manifest taken out and put back).

kube-scheduler (from the same ``k8s.io/kubernetes`` module) runs on demand,
:meth:`ControlPlane.start_scheduler`: a Sandbox on this control plane starts it with its Nodes
(:data:`NODES`: two CPU nodes and a tainted GPU node, with realistic allocatable), so pods are bound
— or left ``PodScheduled=False`` ``Unschedulable`` with the scheduler's own message — as in a
cluster, and stops it when it stops (the API-tier tests that share the control plane create pods
no scheduler should touch). There is no kubelet: the sandbox's simulated one runs the pods bound to
those Nodes, whose kubelet endpoint is :class:`sandbox.realcp.nodelogs.NodeLogs` (``pods/log``
through the real apiserver reaches it, as it would reach a node).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from sandbox.realcp.supervise import RestartPolicy, Supervised

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "control-plane.sh"
NODE_NAME = "sandbox-node"
AUDITED_USERS = ("system:serviceaccount:kserve-warden:kserve-warden",)
"""The daemon's ServiceAccount: only its requests are written to the audit log."""
READY_TIMEOUT = 120.0
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kserve-manager")
GPU = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU, "value": "present", "effect": "NoSchedule"}


@dataclass(frozen=True, kw_only=True)
class NodeShape:
    """A Node the sandbox registers: what a kubelet would report as allocatable, its labels, taints."""

    name: str
    allocatable: dict[str, str]
    labels: dict[str, str]
    taints: tuple[dict[str, str], ...] = ()


_CPU_NODE = {"cpu": "8", "memory": "32Gi", "ephemeral-storage": "100Gi", "pods": "110"}
NODES: tuple[NodeShape, ...] = (
    NodeShape(name=NODE_NAME, allocatable=_CPU_NODE, labels={"node.kubernetes.io/instance-type": "cpu-8"}),
    NodeShape(name="sandbox-node-2", allocatable=_CPU_NODE,
              labels={"node.kubernetes.io/instance-type": "cpu-8"}),
    # A GPU node as GPU operators set one up: one device advertised by the device plugin, the
    # feature-discovery label, and the taint that keeps pods without a toleration off it.
    NodeShape(name="sandbox-gpu", allocatable={"cpu": "16", "memory": "64Gi", "ephemeral-storage": "200Gi",
                                               "pods": "110", GPU: "1"},
              labels={"node.kubernetes.io/instance-type": "gpu-1", "nvidia.com/gpu.present": "true"},
              taints=(GPU_TAINT,)),
)
"""The sandbox's Nodes on the real control plane (its kubelet stand-in runs what is bound to them)."""
# Deployments -> ReplicaSets -> Pods; ownerReference garbage collection (cascading deletes);
# namespace deletion; each namespace's `default` ServiceAccount (the ServiceAccount admission
# plugin rejects Pods until it exists) and legacy token Secrets; kube-root-ca.crt; the rules of
# the aggregated ClusterRoles admin/edit/view (empty without it); and the release of the
# kubernetes.io/pvc-protection finalizer the admission chain puts on every claim (without it
# claims, and so their namespaces, are never deleted).
KCM_CONTROLLERS = (
    "deployment,replicaset,garbagecollector,namespace,serviceaccount,serviceaccount-token,"
    "root-ca-cert-publisher,clusterrole-aggregation,pvc-protection"
)


class ControlPlaneMissing(RuntimeError):
    """The binaries are not built (and could not be built): one line saying how to get them."""


class ControlPlaneFailed(RuntimeError):
    """A process exited or did not become ready; the message ends with its log's last lines."""


def binaries(*, build: bool = True) -> Path:
    """The directory holding the binaries: ``$KSW_CP_BIN``, else ``scripts/control-plane.sh``'s.

    ``build=False`` only looks at the cache the script would use (no ``go`` run); the script
    itself is warm in about a second when everything is built.
    """
    env_bin = os.environ.get("KSW_CP_BIN")
    if env_bin:
        path = Path(env_bin)
    elif build:
        proc = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            capture_output=True,
            text=True,
            check=False,
        )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise ControlPlaneMissing(f"`bash {BUILD_SCRIPT}` failed (run `make control-plane`):\n{tail}")
        path = Path(lines[-1])
    else:
        cache = Path(os.environ.get("KSW_CACHE") or Path.home() / ".cache" / "kserve-warden")
        path = cache / "control-plane" / "bin"
    missing = [b for b in BINARIES if not os.access(path / b, os.X_OK)]
    if missing:
        raise ControlPlaneMissing(f"{', '.join(missing)} missing in {path}: run `make control-plane`")
    return path


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(pki: Path) -> None:
    """The CA, the apiserver's serving cert, the front-proxy client cert, the SA key pair.

    * ``ca.crt``/``ca.key``: a self-signed CA (EC P-256), trusted by the kubeconfigs and by the
      apiserver for client certificates (``--client-ca-file``).
    * ``apiserver.crt``: its serving cert, for 127.0.0.1, localhost, 10.0.0.1 (the first IP of
      the service range: the ``kubernetes`` Service) and ``kubernetes.default.svc[.cluster.local]``.
    * ``front-proxy-client.crt``: the client cert (CN front-proxy-client) the apiserver presents
      to aggregated API servers (``--proxy-client-*``, ``--requestheader-*``).
    * ``sa.key``/``sa.pub`` (RSA 2048): service-account tokens. The apiserver signs TokenRequest
      tokens with ``sa.key`` and verifies them with ``sa.pub``; the controller manager signs
      legacy Secret tokens with ``sa.key``.

    Kept when already made (``sa.pub`` is written last): a control plane started again in the
    same directory keeps its identity, so its clients' CA bundles and tokens stay valid."""
    if (pki / "sa.pub").is_file():
        return
    pki.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-days", "2", "-keyout", "ca.key", "-out", "ca.crt",
             "-subj", "/CN=ksw-control-plane-ca", cwd=pki)
    sans = ("IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
            "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")
    (pki / "server.ext").write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n")
    (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, cn, ext in (
        ("apiserver", "kube-apiserver", "server.ext"),
        ("front-proxy-client", "front-proxy-client", "client.ext"),
        # The simulated node's kubelet endpoint (serving cert; the apiserver does not verify it
        # without --kubelet-certificate-authority, but a real cert keeps the TLS ordinary).
        ("kubelet", NODE_NAME, "server.ext"),
    ):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=pki)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f"{name}.crt", cwd=pki)
    openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    for key in pki.glob("*.key"):
        key.chmod(0o600)


def issue_serving_cert(pki: Path, *, name: str, dest: Path, ext: str = "server.ext") -> tuple[Path, Path]:
    """``dest/tls.crt`` and ``dest/tls.key`` for a loopback HTTPS server (an admission webhook),
    signed by the CA in ``pki`` (``ca.crt``/``ca.key``), with the extensions file ``pki/ext``
    (default: the control plane's serving SANs): its ``caBundle`` is then ``pki/ca.crt``."""
    dest.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    csr = dest / "tls.csr"
    openssl("req", *ec, "-keyout", str(dest / "tls.key"), "-out", str(csr), "-subj", f"/CN={name}", cwd=pki)
    openssl("x509", "-req", "-in", str(csr), "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", ext, "-out", str(dest / "tls.crt"), cwd=pki)
    (dest / "tls.key").chmod(0o600)
    csr.unlink()
    return dest / "tls.crt", dest / "tls.key"


def spawn(argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout and stderr appended to ``log``."""
    logf = log.open("ab")  # the child keeps its own descriptor
    try:
        return subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env)
    finally:
        logf.close()


async def terminate(proc: subprocess.Popen[bytes], *, grace: float) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns once the process is reaped."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        await asyncio.to_thread(proc.wait, grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait)


def kubeconfig_dict(*, server: str, ca_file: Path, user: str, token: str, namespace: str = "default") -> dict[
    str, object
]:
    """A kubeconfig with a bearer token and the CA inlined (the file stands alone)."""
    ca = base64.b64encode(ca_file.read_bytes()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "ksw", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "ksw", "context": {"cluster": "ksw", "user": user, "namespace": namespace}}],
        "current-context": "ksw",
    }


def write_kubeconfig(path: Path, **kw: object) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(yaml.safe_dump(kubeconfig_dict(**kw), sort_keys=False))  # type: ignore[arg-type]
    tmp.replace(path)
    return path


@dataclass(frozen=True, kw_only=True)
class Ports:
    etcd: int
    peer: int
    api: int
    kcm: int
    scheduler: int


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on loopback; ``await start()``/``stop()``."""

    def __init__(self, *, workdir: Path | None = None, bin_dir: Path | None = None,
                 restart_policy: RestartPolicy | None = None) -> None:
        self._own_dir = workdir is None
        self.dir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="ksw-realcp-"))
        self._bin_dir = bin_dir
        self.pki = self.dir / "pki"
        self.admin_token = secrets.token_hex(16)
        self._kcm_token = secrets.token_hex(16)
        self._scheduler_token = secrets.token_hex(16)
        names = ("etcd", "peer", "api", "kcm", "scheduler")
        self.ports = Ports(**dict(zip(names, free_ports(len(names)), strict=True)))
        self._procs: dict[str, Supervised] = {}
        self._restart_policy = restart_policy or RestartPolicy()
        self._starting = False
        # kube-scheduler is started per Sandbox (not supervised: a Sandbox's lifetime, not the
        # control plane's).
        self._scheduler: subprocess.Popen[bytes] | None = None
        self.version = ""
        self.bin_dir: Path | None = bin_dir

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.ports.api}"

    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"

    @property
    def audit_log(self) -> Path:
        """JSON lines, one per request of :data:`AUDITED_USERS` (level Metadata)."""
        return self.dir / "audit.log"

    def _audit_policy(self) -> Path:
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [{"level": "Metadata", "users": list(AUDITED_USERS)}, {"level": "None"}],
        }
        path = self.dir / "audit-policy.yaml"
        path.write_text(yaml.safe_dump(policy))
        return path

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    # -- processes -------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = self.dir / f"{name}.log"
        log.unlink(missing_ok=True)  # each start's log from its first line; restarts append
        proc = Supervised(name, lambda: spawn(argv, log=log), policy=self._restart_policy, grace=15)
        self._procs[name] = proc
        proc.start()

    def _tail(self, name: str, n: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.dir / f"{name}.log").read_text(errors="replace").splitlines()[-n:])
        return ""

    def _check_alive(self) -> None:
        """While starting, a process that exits is a failure (its restarts would only repeat it);
        afterwards an exit is a fault the supervision answers. The scheduler is not supervised."""
        if self._scheduler is not None and self._scheduler.poll() is not None:
            raise ControlPlaneFailed(f"kube-scheduler exited with {self._scheduler.returncode}:\n"
                                     f"{self._tail('kube-scheduler')}")
        if not self._starting:
            return
        for name, proc in self._procs.items():
            if proc.exits:
                raise ControlPlaneFailed(f"{name} exited with {proc.exits[0]}:\n{self._tail(name)}")

    async def _wait_ready(self, what: str, url: str, *, token: str | None, verify: bool) -> None:
        import aiohttp

        ctx: ssl.SSLContext | bool = self.ssl_context() if verify else False
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        deadline = time.monotonic() + READY_TIMEOUT
        async with aiohttp.ClientSession() as s:
            while True:
                self._check_alive()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    timeout = aiohttp.ClientTimeout(total=2)
                    async with s.get(url, ssl=ctx, headers=headers, timeout=timeout) as r:
                        if r.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise ControlPlaneFailed(f"{what} not ready after {READY_TIMEOUT:.0f}s")
                await asyncio.sleep(0.2)

    async def start(self) -> None:
        self._starting = True
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        finally:
            self._starting = False

    async def _start(self) -> None:
        bin_dir = self._bin_dir if self._bin_dir is not None else await asyncio.to_thread(binaries)
        self.bin_dir = bin_dir
        if shutil.which("openssl") is None:
            raise ControlPlaneMissing("openssl is needed to make the control plane's certificates")
        self.dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(make_pki, self.pki)
        # Static bearer tokens (--token-auth-file): ``admin`` in system:masters, and the
        # controller manager's user, to which the bootstrap RBAC (ClusterRoleBinding
        # system:kube-controller-manager, the kube-system leader-locking Role) grants what it needs.
        tokens = self.pki / "tokens.csv"
        tokens.write_text(
            f'{self.admin_token},admin,admin,"system:masters"\n'
            f"{self._kcm_token},system:kube-controller-manager,system:kube-controller-manager\n"
            # kube-scheduler's user: the bootstrap RBAC binds system:kube-scheduler and
            # system:volume-scheduler to it, and lets it read the authentication ConfigMap.
            f"{self._scheduler_token},system:kube-scheduler,system:kube-scheduler\n"
        )
        tokens.chmod(0o600)
        write_kubeconfig(self.admin_kubeconfig, server=self.url, ca_file=self.ca_file, user="admin",
                         token=self.admin_token)
        kcm_kubeconfig = write_kubeconfig(self.dir / "kcm.kubeconfig", server=self.url, ca_file=self.ca_file,
                                          user="system:kube-controller-manager", token=self._kcm_token)
        p, pki = self.ports, self.pki
        self._spawn("etcd", [
            str(bin_dir / "etcd"), "--name", "ksw", "--data-dir", str(self.dir / "etcd"),
            # Plain HTTP on loopback only; metrics stay on the client port (etcd refuses an
            # empty --listen-metrics-urls).
            "--listen-client-urls", f"http://127.0.0.1:{p.etcd}",
            "--advertise-client-urls", f"http://127.0.0.1:{p.etcd}",
            # A one-member cluster on a free peer port (the default 2380 may be another run's).
            "--listen-peer-urls", f"http://127.0.0.1:{p.peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{p.peer}",
            "--initial-cluster", f"ksw=http://127.0.0.1:{p.peer}",
            # Throwaway data: skip fsync, as envtest does (much faster on a busy disk).
            "--unsafe-no-fsync", "--log-level", "warn",
        ])
        self._spawn("kube-apiserver", [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{p.etcd}",
            # HTTPS on loopback only (there is no insecure port); without --advertise-address it
            # would pick the host's first interface.
            "--bind-address=127.0.0.1", f"--secure-port={p.api}", "--advertise-address=127.0.0.1",
            # The default (lease) reconciler writes the advertise address into the `kubernetes`
            # Endpoints, where a loopback address is invalid; nothing here needs that Service's
            # endpoints.
            "--endpoint-reconciler-type=none",
            # A serving cert from our CA, which clients trust (--cert-dir would self-sign one).
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            # x509 client-cert authentication; also what the extension-apiserver-authentication
            # ConfigMap publishes.
            f"--client-ca-file={pki / 'ca.crt'}",
            # kubeadm's front-proxy (aggregation) settings. Without them that ConfigMap lacks the
            # requestheader CA, and every delegating server (the controller manager's /healthz)
            # logs "missing content for CA bundle" forever.
            f"--requestheader-client-ca-file={pki / 'ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            f"--token-auth-file={tokens}",
            "--authorization-mode=Node,RBAC",  # as kubeadm; RBAC is what matters here
            # Service-account tokens: verified with sa.pub; TokenRequest tokens signed with
            # sa.key (required once an issuer is set).
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",  # ClusterIPs; 10.0.0.1 is in apiserver.crt
            "--allow-privileged=true",  # KServe- and Istio-like pod specs may ask for it
            # pods/log goes to the node's kubelet endpoint: the simulated node publishes its
            # loopback InternalIP; the first preferred type must be one the node has.
            "--kubelet-preferred-address-types=InternalIP",
            # What the daemon's ServiceAccount did, request by request (verb, resource,
            # namespace, name, response code): a test compares it with the RBAC it was given.
            f"--audit-policy-file={self._audit_policy()}", f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--profiling=false", "--v=1",
        ])
        await self._wait_ready("kube-apiserver", f"{self.url}/readyz", token=self.admin_token, verify=True)
        self._spawn("kube-controller-manager", [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kcm_kubeconfig}",
            # So its own /healthz server delegates authn/authz instead of warning and failing.
            f"--authentication-kubeconfig={kcm_kubeconfig}", f"--authorization-kubeconfig={kcm_kubeconfig}",
            # Its health endpoint on a free loopback port (the default 10257 may be taken), with a
            # self-signed serving cert in kcm-certs (hence no verification below).
            "--bind-address=127.0.0.1", f"--secure-port={p.kcm}", f"--cert-dir={self.dir / 'kcm-certs'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",  # signs legacy Secret tokens
            # Published as the kube-root-ca.crt ConfigMap in every namespace, which every Pod's
            # projected service-account volume refers to.
            f"--root-ca-file={pki / 'ca.crt'}",
            # Each controller runs as its own ServiceAccount in kube-system, as in real clusters.
            "--use-service-account-credentials=true",
            f"--controllers={KCM_CONTROLLERS}",
            "--leader-elect=false",  # one instance: no lease to wait for on a restart
            "--v=1",
        ])
        await self._wait_ready("kube-controller-manager", f"https://127.0.0.1:{p.kcm}/healthz", token=None,
                               verify=False)

    async def start_scheduler(self) -> None:
        """kube-scheduler against this control plane (no-op when it runs): binds pods to Nodes,
        or records ``PodScheduled=False`` with its message. Stopped by :meth:`stop_scheduler`."""
        if self._scheduler is not None and self._scheduler.poll() is None:
            return
        assert self.bin_dir is not None, "start() the control plane first"
        kubeconfig = write_kubeconfig(self.dir / "scheduler.kubeconfig", server=self.url,
                                      ca_file=self.ca_file, user="system:kube-scheduler",
                                      token=self._scheduler_token)
        log = self.dir / "kube-scheduler.log"
        log.unlink(missing_ok=True)
        self._scheduler = spawn([
            str(self.bin_dir / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            # Health on a free loopback port with a self-signed cert (as the controller manager).
            "--bind-address=127.0.0.1", f"--secure-port={self.ports.scheduler}",
            f"--cert-dir={self.dir / 'scheduler-certs'}",
            "--leader-elect=false",  # one instance, started and stopped per sandbox
            "--v=1",
        ], log=log)
        await self._wait_ready("kube-scheduler", f"https://127.0.0.1:{self.ports.scheduler}/healthz",
                               token=None, verify=False)

    async def stop_scheduler(self) -> None:
        proc, self._scheduler = self._scheduler, None
        if proc is not None:
            await terminate(proc, grace=15)

    def alive(self) -> bool:
        """Started and every process supervised (running, or being restarted); not stopped or
        suspended."""
        return bool(self._procs) and all(proc.supervised() for proc in self._procs.values())

    def process(self, name: str) -> Supervised:
        """The supervised process ``name`` (``etcd``, ``kube-apiserver``, ``kube-controller-manager``)."""
        return self._procs[name]

    async def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to ``name``'s process; returns its restart count before (for :meth:`restarted`)."""
        proc = self._procs[name]
        before = proc.restarts
        proc.signal(sig)
        return before

    async def restart(self, name: str, *, grace: float) -> int:
        """Restart ``name`` as a kubelet restarts a static pod: SIGTERM, SIGKILL after ``grace`` s
        (kube-apiserver with watches open takes 60 s to shut its HTTP server down on SIGTERM);
        the supervision starts it again. Returns its restart count before (for :meth:`restarted`)."""
        return await asyncio.to_thread(self._procs[name].terminate, grace=grace)

    async def restarted(self, name: str, *, after: int, timeout: float = READY_TIMEOUT) -> None:
        """Wait until ``name`` was restarted since its count was ``after``; for the apiserver (or
        etcd, which the apiserver needs), until the apiserver is ready again too."""
        await self._procs[name].restarted(after=after, timeout=timeout)
        if name in ("kube-apiserver", "etcd"):
            await self.api_ready()

    async def suspend(self, name: str) -> None:
        """Stop ``name`` and keep it stopped until :meth:`resume` (no restart meanwhile)."""
        await asyncio.to_thread(self._procs[name].suspend)

    async def resume(self, name: str) -> None:
        """Start ``name`` again after :meth:`suspend`; for the apiserver, wait until it is ready."""
        await asyncio.to_thread(self._procs[name].resume)
        if name == "kube-apiserver":
            await self.api_ready()

    async def api_ready(self) -> None:
        """The apiserver answers ``/readyz`` 200 (etcd reachable, every post-start hook done)."""
        await self._wait_ready("kube-apiserver", f"{self.url}/readyz", token=self.admin_token, verify=True)

    async def stop(self) -> None:
        await self.stop_scheduler()
        procs, self._procs = self._procs, {}
        for proc in reversed(list(procs.values())):
            await asyncio.to_thread(proc.stop)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
