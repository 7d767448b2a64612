"""One Sandbox fixture for both control planes: the stand-in and the real one.

The real control plane (etcd, kube-apiserver, kube-controller-manager from
``scripts/control-plane.sh``; see :mod:`sandbox.realcp`) starts once per test session — about
7 s — and every Sandbox on it borrows it: :class:`sandbox.realcp.RealApi` first resets it to an
empty cluster (the seed's namespaces deleted by the real namespace controller), so tests stay
independent. When the binaries are missing the tests that need them FAIL with the command that
builds them (``make control-plane``); they never skip.

* :data:`CONTROL_PLANES` — the parameter values, ``("embedded", "real")``;
* :func:`real_control_plane` — the session's control plane (a sync fixture: it owns processes,
  not tasks, so it lives outside every test's event loop);
* :func:`make_sandbox` — ``Sandbox(...)`` on the named control plane;
* :func:`daemon_kubeconfig` — the daemon as its own ServiceAccount (below).

The daemon's ServiceAccount lives here, not in ``sandbox/`` (which never imports the daemon):
The daemon as its own ServiceAccount on the real control plane, with the RBAC it ships.

:func:`daemon_kubeconfig` does what installing ``config/deploy`` does, for any settings file:
the ``kserve-warden/kserve-warden`` ServiceAccount, and the ClusterRole/Roles and bindings that
``config/deploy/build.py`` renders from :func:`daemon.kube.rbac.required` for *those* settings and
their desired state (the same functions, so a test of the sandbox's settings checks the very rule
table the shipped manifests come from). Then it mints a token with TokenRequest and writes a
kubeconfig carrying it: the daemon run with it is authorised by the real RBAC authorizer, so a
missing permission is a real 403 and a surplus one is visible by comparison.

``drop`` removes rules before they are applied (a test's way of proving the daemon reports the
403 it then gets); every dropped rule must have matched something.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.util
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration

from daemon.core.logs import Redactor
from daemon.kube.effects import Kube
from daemon.kube.rbac import OWN_NAMESPACE, Rule, required
from daemon.process.config_files import load_desired, load_settings
from sandbox import Sandbox
from sandbox.apiserver import ApiServer
from sandbox.realcp import ControlPlane, ControlPlaneMissing, admin_client, api_call
from sandbox.realcp.controlplane import write_kubeconfig

CONTROL_PLANES = ("embedded", "real")

_SESSION: dict[str, ControlPlane] = {}


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to completion on its own loop in a helper thread: the fixture may be first
    requested from inside an async (module-scoped) fixture, whose loop is already running."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


def session_control_plane() -> ControlPlane:
    """The session's real control plane, started on first use (fails the test if it cannot be)."""
    cp = _SESSION.get("cp")
    if cp is not None and cp.alive():
        return cp
    cp = ControlPlane()
    try:
        _run(cp.start())
    except ControlPlaneMissing as exc:
        pytest.fail(f"the real control plane is not built: {exc}")
    _SESSION["cp"] = cp
    return cp


@pytest.fixture(scope="session")
def real_control_plane() -> Iterator[ControlPlane]:
    cp = session_control_plane()
    yield cp
    _run(cp.stop())
    _SESSION.clear()


@contextlib.asynccontextmanager
async def kube_on(target: ApiServer | ControlPlane, **kwargs: Any) -> AsyncIterator[Kube]:
    """The daemon's :class:`Kube` on either API: the stand-in (no auth) or the real one (admin)."""
    if isinstance(target, ControlPlane):
        api = admin_client(target)
    else:
        api = ApiClient(configuration=Configuration(host=target.url))
    try:
        yield Kube(api, redactor=kwargs.pop("redactor", Redactor()), **kwargs)
    finally:
        await api.close()


def make_sandbox(control_plane: str, *, workdir: Path, cp: ControlPlane | None = None, **kw: Any) -> Sandbox:
    """A Sandbox on ``control_plane`` (``real``: the shared ``cp``, reset when the sandbox starts)."""
    if control_plane == "real":
        assert cp is not None, "request the real_control_plane fixture"
        return Sandbox(workdir=workdir, control_plane="real", shared_control_plane=cp, **kw)
    return Sandbox(workdir=workdir, **kw)


# -- the daemon as its own ServiceAccount ----------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
SERVICE_ACCOUNT = "kserve-warden"
TOKEN_SECONDS = 3600

_BUILD: dict[str, ModuleType] = {}


def deploy_build() -> ModuleType:
    """``config/deploy/build.py`` (a script, not a package module), loaded once by path."""
    if "build" not in _BUILD:
        spec = importlib.util.spec_from_file_location("warden_deploy_build", ROOT / "config/deploy/build.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _BUILD["build"] = module
    return _BUILD["build"]


def rules_for(settings_path: Path) -> tuple[Rule, ...]:
    settings = load_settings(settings_path, environ={})
    return required(settings, load_desired(settings.desired.dir))


def rbac_documents(rules: tuple[Rule, ...]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = deploy_build().rbac_docs(rules)
    return docs


async def apply_doc(api: ApiClient, doc: dict[str, Any]) -> None:
    from sandbox.world import APPLY

    kind, meta = doc["kind"], doc["metadata"]
    plural = {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings", "Role": "roles",
              "RoleBinding": "rolebindings", "Namespace": "namespaces",
              "ServiceAccount": "serviceaccounts"}[kind]
    group = "/apis/rbac.authorization.k8s.io/v1" if doc["apiVersion"].startswith("rbac") else "/api/v1"
    ns = f"/namespaces/{meta['namespace']}" if meta.get("namespace") else ""
    await api_call(api, "PATCH", f"{group}{ns}/{plural}/{meta['name']}", doc, ctype=APPLY,
                query=[("fieldManager", "kserve-warden-install"), ("force", "true")])


async def daemon_kubeconfig(
    api: ApiClient,
    cp: ControlPlane,
    *,
    settings_path: Path,
    path: Path,
    drop: Callable[[Rule], bool] | None = None,
) -> tuple[Path, tuple[Rule, ...]]:
    """Install the daemon's ServiceAccount and RBAC for ``settings_path``; write its kubeconfig.

    Returns the kubeconfig and the rules applied (after ``drop``)."""
    rules = rules_for(settings_path)
    if drop is not None:
        kept = tuple(r for r in rules if not drop(r))
        if len(kept) == len(rules):
            raise ValueError("drop matched no rule")
        rules = kept
    await apply_doc(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OWN_NAMESPACE}})
    await apply_doc(api, {"apiVersion": "v1", "kind": "ServiceAccount",
                          "metadata": {"name": SERVICE_ACCOUNT, "namespace": OWN_NAMESPACE}})
    for doc in rbac_documents(rules):
        await apply_doc(api, doc)
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"expirationSeconds": TOKEN_SECONDS}}
    sa_path = f"/api/v1/namespaces/{OWN_NAMESPACE}/serviceaccounts/{SERVICE_ACCOUNT}"
    answer = await api_call(api, "POST", f"{sa_path}/token", request)
    token = str(answer["status"]["token"])
    write_kubeconfig(path, server=cp.url, ca_file=cp.ca_file,
                     user=f"system:serviceaccount:{OWN_NAMESPACE}:{SERVICE_ACCOUNT}", token=token,
                     namespace=OWN_NAMESPACE)
    return path, rules
