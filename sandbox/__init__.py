"""A local stand-in cluster on loopback: Kubernetes API, S3, DNS and simulated controllers.

:class:`Sandbox` (in :mod:`sandbox.cluster`) wires the parts, each on a free loopback port, each
speaking its real wire protocol so that the daemon, the tests and ``kubectl`` use their ordinary
clients:

* :mod:`sandbox.apiserver` — the Kubernetes API (kubeconfig at :attr:`Sandbox.kubeconfig_path`),
  or with ``control_plane="real"`` :mod:`sandbox.realcp`: etcd, kube-apiserver and
  kube-controller-manager built from Go modules, KServe's own controller manager (its CRDs,
  RBAC, webhooks and ConfigMap from its Go module) and an Istio sidecar-injector webhook;
* :mod:`sandbox.s3` — moto with authentication on: bucket ``mlpipeline``, and the model the
  project's own trainer (``serving.train``) writes, uploaded as
  ``private-artifacts/user-example-com/iris/model`` (a file named ``model``, no extension,
  as the seed's bucket held it). The model is trained once per process and cached;
* :mod:`sandbox.mesh` — the Istio sidecars in front of S3, enforcing the AuthorizationPolicies
  read from the API; :meth:`Sandbox.daemon_sidecar` is the daemon's own egress (identity
  ``cluster.local/ns/kserve-warden/sa/kserve-warden``, admitted by the seeded
  ``kserve-warden-probe-minio`` policy, as the daemon's install manifests would);
* :mod:`sandbox.clusternet` — the cluster network (Service → Ready endpoint) as an HTTP forward
  proxy: how the daemon, outside the cluster, reaches an in-cluster ``status.address.url``
  (``probes.predictor.proxy``);
* :mod:`sandbox.dns` — CoreDNS's stand-in, degraded/healed by failure injection and by a
  rollout restart of ``kube-system/coredns``;
* :mod:`sandbox.controllers` — kubelet (image pulls, istio-proxy, storage-initializer, the real
  model server), CoreDNS, and on the stand-in only KServe (on the real control plane KServe's
  own manager runs instead): asyncio tasks that watch the API over the wire;
* :mod:`sandbox.world` — the seed's starting world, loaded at start (not the objects the
  daemon is meant to apply; :meth:`Sandbox.apply_healthy_world` applies those for tests);
* :mod:`sandbox.inject` — the seed's seven failures, each undoable (:attr:`Sandbox.FAILURES`).

``async with Sandbox() as sb:`` or ``await sb.start()`` … ``await sb.stop()``; stop leaves no
task running and removes the temp dirs it created.

What the stand-in does not model: scheduling and nodes, Services/Endpoints (the predictor's
address is its real loopback URL, published in ``status.address.url``; on the real control
plane KServe's Service URL is published and reached through :mod:`sandbox.clusternet`), Knative revisions
(one fixed revision ``-00001``; a new pod per input change, old pods removed once it is
ready), init containers re-running after a main-container crash, image digests, mTLS
certificates (only their dependency on DNS), PERMISSIVE mTLS, and RBAC/authentication on the
API (every client is admin; the real control plane has real RBAC).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.cluster import Sandbox, trained_model
    from sandbox.inject import FAILURES

__all__ = ["FAILURES", "Sandbox", "trained_model"]

# PEP 562: the package's names are imported on first use. An eager import here would load every
# part (moto, boto, xgboost: ~200 MB) for anyone who imports just ``sandbox.apiserver``.
_LAZY: dict[str, str] = {
    "Sandbox": "sandbox.cluster",
    "trained_model": "sandbox.cluster",
    "FAILURES": "sandbox.inject",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
