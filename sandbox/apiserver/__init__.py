"""A kube-apiserver stand-in: the real REST wire protocol on loopback, for the real clients.

Split by concept: :mod:`registry` (served kinds, CRDs) and :mod:`crds` (the KServe and Istio
CRDs it starts with), :mod:`store` (objects, resourceVersion, watch history, owner index),
:mod:`crud` (verb semantics) and :mod:`kinds` (per-kind defaulting and validation),
:mod:`patch` and :mod:`managed` (patch formats, server-side apply), :mod:`selectors`,
:mod:`status`, :mod:`watch`, :mod:`eventsv1`, :mod:`faults`, :mod:`stats`, :mod:`discovery`, :mod:`table`
(kubectl's Table output), :mod:`openapi` (just enough for kubectl's validation choice), and
:mod:`server` (the aiohttp application, :class:`ApiServer`).

What it does not model (by design; the daemon does not depend on these):

- authentication, authorization (RBAC), admission webhooks, API priority and fairness;
- protobuf, CBOR, aggregated discovery, OpenAPI schemas (``/openapi/v3`` only declares
  server-side field validation, which is then not enforced; ``kubectl explain`` finds nothing);
- schema validation, pruning and defaulting of custom resources, and conversion between CRD
  versions (one storage, ``apiVersion`` rewritten on the way out);
- Services beyond storing them, node/kubelet behaviour (pods do nothing unless the sandbox's
  simulated controllers act on them); ``events.k8s.io/v1`` is served as a view of core Events
  (:mod:`eventsv1`), with field selectors on metadata, ``reason`` and ``type`` only;
- graceful pod deletion (pods are removed at once unless a finalizer holds them), foreground
  cascading deletion (owner-reference garbage collection is background, done synchronously);
- server-side apply on custom resources keys no lists (all atomic, as for CRDs without
  ``x-kubernetes-list-type: map``); on built-ins, lists are keyed by their strategic-merge keys;
- consistent paging snapshots (``continue`` resumes after the last key against current data),
  ``resourceVersionMatch``, streaming lists (``sendInitialEvents``), ``follow`` on logs.
"""

from sandbox.apiserver.faults import Faults
from sandbox.apiserver.server import ApiServer
from sandbox.apiserver.stats import RequestStats

__all__ = ["ApiServer", "Faults", "RequestStats"]
