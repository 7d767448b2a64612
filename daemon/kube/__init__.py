"""The Kubernetes edge: everything that talks to the Kubernetes API.

What lives here: :mod:`~daemon.kube.effects` (the only module that writes: server-side apply
with field manager ``kserve-warden``, rollout restarts, Events, the derived secret's values);
:mod:`~daemon.kube.informer` (list once, then watch; the caches the core's ``World`` is built
from); :mod:`~daemon.kube.leader` (the ``coordination.k8s.io/v1`` Lease);
:mod:`~daemon.kube.translate` (``ApiException`` and aiohttp errors to the core's typed errors);
:mod:`~daemon.kube.rbac` (the verbs this edge uses, from which the deployed Role is generated).

May import: :mod:`daemon.core`, ``kubernetes_asyncio``, ``aiohttp``, ``asyncio``. Never
:mod:`daemon.process`, ``sandbox`` or ``serving``.
"""
