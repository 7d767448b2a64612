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

The wire-level tests (tests/integration/apiserver, test_informer*.py) run against this and a real
kube-apiserver 1.36 alike (issue 12 part 4). What the real server answered differently, and this
stand-in now answers the same way:

- ServiceAccount admission: a pod whose ServiceAccount does not exist is refused, ``403
  Forbidden`` ``pods "p" is forbidden: error looking up service account NS/SA: serviceaccount
  "SA" not found`` (details name/kind only); every new namespace gets its ``default``
  ServiceAccount (the serviceaccount controller's job, done at once here);
- containers and init containers need an ``image`` (422 ``spec.containers[0].image: Required
  value``), in a Deployment's template too, whose labels its selector must match (422
  ``spec.template.metadata.labels: Invalid value: ...: `selector` does not match template
  `labels```); Deployment status counts are bounded (``readyReplicas`` <= ``replicas`` ...);
- several field errors are reported as ``[a, b]`` (``ErrorList.ToAggregate``), not ``a; b``;
- lists are in etcd key order, the string ``namespace/name`` (``a-b/x`` before ``a/x``);
- a path in a group the server does not serve is ``404 page not found`` as text/plain (its HTTP
  mux), not a Status; an unknown resource in a served group is a Status with empty details;
- ``pods/log`` of a pod not bound to a node (and with no log) is ``204 No Content``;
- ``events.k8s.io/v1`` may not change an Event's note, reason, type, regarding, action...
  (422 ``field is immutable``; only the series may change); core/v1 may;
- apply without ``fieldManager`` is 422 Invalid (PatchOptions), not 400; Secret data that is
  not base64 is a 400 from decoding (``illegal base64 data at input byte N``), not a 422; a
  watch with a non-numeric resourceVersion is a 500 Status without reason;
- a list "not older than" a resourceVersion the server never had waits for its cache, then
  answers ``504 Timeout: Too large resource version: X, current: Y`` (it was served at once);
- an unknown field selector on a kind with only metadata fields reads ``"x" is not a known field
  selector: only "metadata.name", "metadata.namespace"``;
- strategic merge: a ServiceAccount's ``imagePullSecrets`` has no merge key (replaced whole);
  elements new in a keyed list go before the live elements the patch does not name
  (``mergeSortedSlice``); server-side apply owns a ServiceAccount's ``secrets`` elements whole
  (ObjectReference is an atomic struct); apply conflicts are listed by manager name.

- a watch from a resourceVersion newer than any the server has is held open with no event
  (bookmarks included) until the store passes it or the watch times out; only a *list* answers
  504 ``Timeout: Too large resource version`` (this answered the watch 504);
- a DELETE with a body reads its DeleteOptions from the body only: a ``?dryRun=All`` beside a
  body is ignored and the object is deleted (this read ``dryRun`` from the query whatever the
  body held); without a body they come from the query string;
- a delete precondition that fails is checked as ``rest.BeforeDelete`` does, the UID first, and
  names the Kind: 409 ``Operation cannot be fulfilled on Pod "p": the UID in the precondition
  (x) does not match the UID in record (y). The object might have been deleted and then
  recreated`` (details kind ``Pod``), not the storage layer's ``Precondition failed: ...``.

Known and not modelled: YAML 1.1 booleans (a bare ``y`` is true there); the real pod
defaults (``generation`` on pods, the projected service-account token volume, ``dnsPolicy``...);
the root CA ConfigMap (``kube-root-ca.crt``) in every namespace.
"""

from sandbox.apiserver.faults import Faults
from sandbox.apiserver.server import ApiServer
from sandbox.apiserver.stats import RequestStats

__all__ = ["ApiServer", "Faults", "RequestStats"]
