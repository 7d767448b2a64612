"""The effects layer: the one module that talks to the Kubernetes API (``kubernetes_asyncio``).

Everything else in the daemon is pure or speaks through :class:`Kube`. What it does, and the
wire details it gets right:

* **Server-side apply** (:meth:`Kube.apply`): ``PATCH`` with ``application/apply-patch+yaml``,
  ``fieldManager=kserve-warden`` and ``force=false``. The daemon owns only the fields it sends; a
  field another manager owns with a different value is a 409 that names that manager, raised as
  :class:`~daemon.core.errors.ConflictError`. We never retry with ``force=true`` over someone else.
* **Raw responses**: every call goes out with ``_preload_content=False`` and the body is parsed
  here. That sidesteps the client's model deserialisation (an SSA that *creates* answers 201,
  which ``CustomObjectsApi`` does not parse) and gives us the status code, the headers
  (``Retry-After``) and the ``metav1.Status`` body to build typed errors from.
* **Content types**: JSON merge patch (``application/merge-patch+json``) for annotations on any
  kind (custom resources refuse strategic merge with 415), strategic merge for the Deployment
  rollout restart, as ``kubectl rollout restart`` does.
* **Dry run**: in dry-run mode every write carries ``dryRun=All``; the server validates and
  answers as if it had written, and stores nothing.
* **Events** (:meth:`Kube.emit_event`): core/v1 Events on the object concerned, reason = the
  finding code, source component ``kserve-warden``; repeats of the same event are folded into
  one object with a ``count``, like client-go's event recorder.
* **Secrets**: :meth:`Kube.derive_secret` reads the source secret's values through the API and
  writes the target; the values exist only in that method's locals, are registered with the
  log :class:`~daemon.core.logs.Redactor`, and what it returns is the hashed form (``World`` style); the
  declaration it takes is normalised in :mod:`daemon.core.secret_derivation`.

Errors: non-2xx answers become the typed errors of ``daemon/core/errors.py``; a dropped connection
or a client-side timeout becomes :class:`~daemon.core.errors.UnavailableError`. Back-off and retries
are *not* done here: the caller (the loop's single requeue function, the informer) decides.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import aiohttp
from kubernetes_asyncio import client

from daemon.core.errors import (
    InvalidError,
    KubeError,
    NotFoundError,
    NotKubernetesError,
    UnavailableError,
    from_status,
)
from daemon.core.logs import Redactor
from daemon.core.objects import ObjectRef
from daemon.core.resources import Resource, resource_for, resource_of
from daemon.core.secret_derivation import DerivedSecretDecl, DeriveError, derivation
from daemon.core.timestamps import rfc3339
from daemon.core.world import hash_secret
from daemon.kube.translate import translate

FIELD_MANAGER: Final = "kserve-warden"
COMPONENT: Final = "kserve-warden"
APPLY_PATCH: Final = "application/apply-patch+yaml"
MERGE_PATCH: Final = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
RESTARTED_AT: Final = "kubectl.kubernetes.io/restartedAt"

# Metadata the server owns: sending it in an apply would claim (or fight over) it.
_SERVER_META: Final = frozenset({
    "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
    "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds",
})


class _TypedCalls(NamedTuple):
    """One kind's methods on its typed kubernetes_asyncio API."""

    read: Callable[..., Awaitable[Any]]
    list: Callable[..., Awaitable[Any]]
    patch: Callable[..., Awaitable[Any]]
    list_namespaced: Callable[..., Awaitable[Any]] | None = None
    """One namespace's list (the informer's per-namespace watches: Secrets, scoped reads)."""


@dataclass(frozen=True, kw_only=True)
class ListResult:
    items: list[dict[str, Any]]
    resource_version: str


@dataclass(frozen=True, kw_only=True)
class WatchEvent:
    type: str
    """``ADDED``, ``MODIFIED``, ``DELETED`` or ``BOOKMARK`` (``ERROR`` is raised, not yielded)."""
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        return str((self.object.get("metadata") or {}).get("resourceVersion") or "")


@dataclass
class _EventRecord:
    name: str
    namespace: str
    count: int


def _apply_body(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest as sent in an apply: server-owned metadata and status stripped."""
    body = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_META}
    body["metadata"] = meta
    return body


class Kube:
    """All reads and writes of the daemon, over one ``kubernetes_asyncio`` ``ApiClient``.

    ``dry_run=True`` makes *every* write (events included) carry ``dryRun=All`` whatever the
    per-call argument says, so a daemon started with ``--dry-run`` cannot write by mistake.
    """

    def __init__(self, api: client.ApiClient, *, field_manager: str = FIELD_MANAGER,
                 dry_run: bool = False, redactor: Redactor | None = None,
                 clock: Callable[[], float] = time.time, instance: str = "",
                 request_timeout: float = 30.0, on_error: Callable[[KubeError], None] | None = None) -> None:
        self.api = api
        self.field_manager = field_manager
        self.dry_run = dry_run
        self.redactor = redactor
        self.clock = clock
        self.instance = instance
        self.request_timeout = request_timeout
        self.on_error = on_error
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.coordination = client.CoordinationV1Api(api)
        # The kinds with a typed API; every other kind goes through ``CustomObjectsApi``. The
        # methods are named literally (no getattr on built names) so that the static RBAC scan
        # (tests/unit/test_rbac_matches_code.py) sees every permission this class can use.
        core, apps, coord = self.core, self.apps, self.coordination
        self._typed: dict[str, _TypedCalls] = {
            "Namespace": _TypedCalls(core.read_namespace, core.list_namespace, core.patch_namespace),
            "ServiceAccount": _TypedCalls(core.read_namespaced_service_account,
                                          core.list_service_account_for_all_namespaces,
                                          core.patch_namespaced_service_account,
                                          core.list_namespaced_service_account),
            "Secret": _TypedCalls(core.read_namespaced_secret, core.list_secret_for_all_namespaces,
                                  core.patch_namespaced_secret, core.list_namespaced_secret),
            "ConfigMap": _TypedCalls(core.read_namespaced_config_map, core.list_config_map_for_all_namespaces,
                                     core.patch_namespaced_config_map, core.list_namespaced_config_map),
            "Pod": _TypedCalls(core.read_namespaced_pod, core.list_pod_for_all_namespaces,
                               core.patch_namespaced_pod, core.list_namespaced_pod),
            "Event": _TypedCalls(core.read_namespaced_event, core.list_event_for_all_namespaces,
                                 core.patch_namespaced_event),
            "Deployment": _TypedCalls(apps.read_namespaced_deployment,
                                      apps.list_deployment_for_all_namespaces,
                                      apps.patch_namespaced_deployment, apps.list_namespaced_deployment),
            "Lease": _TypedCalls(coord.read_namespaced_lease, coord.list_lease_for_all_namespaces,
                                 coord.patch_namespaced_lease),
            # Read only (a model's store Service, its pvc:// claim): core kinds need the typed API.
            "Service": _TypedCalls(core.read_namespaced_service, core.list_service_for_all_namespaces,
                                   core.patch_namespaced_service, core.list_namespaced_service),
            "PersistentVolumeClaim": _TypedCalls(
                core.read_namespaced_persistent_volume_claim,
                core.list_persistent_volume_claim_for_all_namespaces,
                core.patch_namespaced_persistent_volume_claim,
                core.list_namespaced_persistent_volume_claim),
            # Read only, cluster-scoped: where an Unschedulable predictor pod could go.
            "Node": _TypedCalls(core.read_node, core.list_node, core.patch_node),
        }
        self._events: OrderedDict[tuple[str, str, str, str], _EventRecord] = OrderedDict()

    # -- plumbing -------------------------------------------------------------------------

    def _dry(self, dry_run: bool) -> dict[str, str]:
        return {"dry_run": "All"} if (dry_run or self.dry_run) else {}

    async def _send(self, call: Callable[[], Awaitable[Any]]) -> tuple[int, dict[str, Any]]:
        """Run one client call with a raw response; typed errors for non-2xx and no answer.

        The request timeout is ``asyncio.timeout`` around the request and the body's read, not
        aiohttp's ``total``: aiohttp enters its total timer twice per request (the request and
        the response's start), and when a cancel from outside lands as that timer fires, the
        second exit takes back the outside cancel too and raises TimeoutError — the cancel is
        lost, and a watch stream being shut down retries instead (seen: ``run --once`` kept a
        stream asking a silent server for the 5 s shutdown limit). asyncio's own timeout takes
        back only its own cancel."""
        with self._reported():
            try:
                async with asyncio.timeout(self.request_timeout):
                    resp = await _open(call)
                    try:
                        raw = await resp.read()
                    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                        raise UnavailableError(f"{type(exc).__name__} reading the response") from exc
                    finally:
                        resp.release()
            except TimeoutError as exc:
                raise UnavailableError(f"TimeoutError: no answer within {self.request_timeout:g} s") from exc
            if not 200 <= resp.status < 300:
                raise from_status(resp.status, body=raw, headers=dict(resp.headers))
            try:
                data = json.loads(raw) if raw else {}
            except ValueError as exc:
                raise InvalidError(f"unparseable answer ({resp.status}, {len(raw)} bytes)",
                                   status=resp.status) from exc
            return resp.status, data if isinstance(data, dict) else {}

    @contextlib.contextmanager
    def _reported(self) -> Iterator[None]:
        """Every typed error on its way out goes past ``on_error`` first (the metrics count them)."""
        try:
            yield
        except KubeError as err:
            if self.on_error is not None:
                self.on_error(err)
            raise

    def _opts(self, **extra: Any) -> dict[str, Any]:
        # No aiohttp total: _send's asyncio.timeout bounds the request (see there).
        return {"_preload_content": False, "_request_timeout": _NO_TOTAL, **extra}

    # -- reads ----------------------------------------------------------------------------

    async def get(self, ref: ObjectRef) -> dict[str, Any]:
        """The live object (raises :class:`NotFoundError`). Secrets come back *hashed*."""
        obj = await self._get_raw(ref)
        return hash_secret(obj) if ref.kind == "Secret" else obj

    async def read_secret(self, namespace: str, name: str) -> dict[str, Any]:
        """A Secret *with its values* (the storage probe needs the model's real credentials).

        Every value is registered with the redactor before it is returned; callers keep the
        object only for the duration of one probe run.
        """
        obj = await self._get_raw(ObjectRef(api_version="v1", kind="Secret", namespace=namespace, name=name))
        if self.redactor is not None:
            for v in (obj.get("data") or {}).values():
                self._register(str(v))
            for v in (obj.get("stringData") or {}).values():
                self.redactor.add(str(v))
        return obj

    def _register(self, b64_value: str) -> None:
        """Teach the redactor a secret value in both its base64 and decoded forms."""
        if self.redactor is None:
            return
        self.redactor.add(b64_value)
        try:
            self.redactor.add(base64.b64decode(b64_value, validate=True).decode("utf-8"))
        except (binascii.Error, ValueError):
            pass

    async def _get_raw(self, ref: ObjectRef) -> dict[str, Any]:
        res = resource_of(ref)
        ns, name = ref.namespace or "", ref.name
        _, obj = await self._send(self._call("read", res, ns, name, **self._opts()))
        return _with_type(obj, res)

    def _list_call(self, res: Resource, namespace: str | None = None,
                   **params: Any) -> Callable[[], Awaitable[Any]]:
        """List (or watch) a kind in every namespace, or in ``namespace`` only (least privilege:
        a Role in that namespace is enough)."""
        o = self._opts(**{k: v for k, v in params.items() if v is not None})
        typed = self._typed.get(res.kind)
        if namespace is not None and res.namespaced:
            if typed is not None:
                by_ns = typed.list_namespaced
                if by_ns is None:
                    raise ValueError(f"no per-namespace list for {res.kind}")
                return lambda: by_ns(namespace, **o)
            return lambda: self.custom.list_namespaced_custom_object(res.group, res.version, namespace,
                                                                    res.plural, **o)
        if typed is not None:
            return lambda: typed.list(**o)
        # For a namespaced custom resource the cluster path lists every namespace.
        return lambda: self.custom.list_cluster_custom_object(res.group, res.version, res.plural, **o)

    def _call(self, verb: str, res: Resource, ns: str, name: str, *body: Any,
              **o: Any) -> Callable[[], Awaitable[Any]]:
        """``verb`` (``read`` or ``patch``) of one object, through the typed API of its kind
        (``read_namespaced_pod(name, ns)``, ``patch_namespace(name, body)``) or, for a custom
        resource, ``CustomObjectsApi`` (``get_namespaced_custom_object(group, version, ns,
        plural, name)``)."""
        typed = self._typed.get(res.kind)
        fn: Callable[..., Awaitable[Any]]
        args: tuple[Any, ...]
        if typed is not None:
            fn = typed.read if verb == "read" else typed.patch
            args = (name, ns, *body) if res.namespaced else (name, *body)
        elif res.namespaced:
            c = self.custom
            fn = c.get_namespaced_custom_object if verb == "read" else c.patch_namespaced_custom_object
            args = (res.group, res.version, ns, res.plural, name, *body)
        else:
            c = self.custom
            fn = c.get_cluster_custom_object if verb == "read" else c.patch_cluster_custom_object
            args = (res.group, res.version, res.plural, name, *body)
        return lambda: fn(*args, **o)

    async def list_objects(self, res: Resource, *, namespace: str | None = None,
                           label_selector: str | None = None,
                           field_selector: str | None = None) -> ListResult:
        """Every object of a kind (all namespaces, or ``namespace``), optionally narrowed by
        the API server with ``label_selector``/``field_selector``, and the list's resourceVersion."""
        _, body = await self._send(self._list_call(res, namespace, label_selector=label_selector,
                                                   field_selector=field_selector))
        items = [_with_type(i, res) for i in body.get("items") or [] if isinstance(i, dict)]
        rv = str((body.get("metadata") or {}).get("resourceVersion") or "")
        return ListResult(items=items, resource_version=rv)

    async def served(self, group_versions: Iterable[str]) -> dict[str, frozenset[str]]:
        """Discovery: for each group version (``v1``, ``apps/v1``, ``security.istio.io/v1``) the
        plurals the server serves there; a group version it does not serve maps to an empty set
        (a CRD that is not installed). Legacy discovery documents, one request per group version:
        every API server and the stand-in serve them, and RBAC's ``system:discovery`` role grants
        them to every authenticated user.

        First ``GET /api/``: anything but an ``APIVersions`` document there (a 404 from a proxy
        or a plain web server, HTML, another JSON) raises
        :class:`~daemon.core.errors.NotKubernetesError` — without it every kind would look "not
        served" and the cluster empty."""
        core = client.CoreApi(self.api)
        host = self.api.configuration.host
        try:
            _, versions = await self._send(lambda: core.get_api_versions(**self._opts()))
        except (NotFoundError, InvalidError) as err:
            answer = f"HTTP {err.status}" if isinstance(err, NotFoundError) else "a body that is not JSON"
            raise NotKubernetesError(f"{host} is not a Kubernetes API server (GET /api/ answered {answer})",
                                     reason="NotKubernetes") from err
        if versions.get("kind") != "APIVersions":
            raise NotKubernetesError(f"{host} is not a Kubernetes API server (GET /api/ answered JSON "
                                     f"that is not an APIVersions document)", reason="NotKubernetes")
        out: dict[str, frozenset[str]] = {}
        for gv in dict.fromkeys(group_versions):
            path = f"/api/{gv}" if "/" not in gv else f"/apis/{gv}"
            try:
                _, doc = await self._send(self._get_path(path))
            except NotFoundError:
                out[gv] = frozenset()
                continue
            out[gv] = frozenset(str(r.get("name")) for r in doc.get("resources") or []
                                if isinstance(r, dict) and "/" not in str(r.get("name")))
        return out

    def _get_path(self, path: str) -> Callable[[], Awaitable[Any]]:
        """``GET path`` as JSON, for the documents no typed API method reads (discovery)."""
        return lambda: self.api.call_api(path, "GET", header_params={"Accept": "application/json"},
                                         auth_settings=["BearerToken"], **self._opts())

    async def check_reached(self, res: Resource, *, resource_version: str, namespace: str | None = None,
                            label_selector: str | None = None,
                            field_selector: str | None = None) -> str:
        """Whether the server's history has reached ``resource_version``: a one-item list "not
        older than" it (served from the watch cache). The list's resourceVersion when it has; when
        it never had it (another history: an etcd restore), kube-apiserver waits for its cache
        (3 s) and answers 504 ``ResourceVersionTooLarge``, raised as
        :class:`~daemon.core.errors.ResourceVersionTooLargeError`.

        Why a list: a *watch* from such a resourceVersion is not refused there. kube-apiserver
        holds it open and drops every event (bookmarks included) up to that number, so the watch
        alone can never tell that the history is gone."""
        _, body = await self._send(self._list_call(
            res, namespace, label_selector=label_selector, field_selector=field_selector,
            resource_version=resource_version, resource_version_match="NotOlderThan", limit=1))
        return str((body.get("metadata") or {}).get("resourceVersion") or "")

    async def watch(self, res: Resource, *, resource_version: str, namespace: str | None = None,
                    label_selector: str | None = None, field_selector: str | None = None,
                    timeout_seconds: int = 300,
                    on_open: Callable[[], None] | None = None) -> AsyncIterator[WatchEvent]:
        """Events of a kind after ``resource_version``, until the server ends the watch.

        An ``ERROR`` event becomes its typed error (410 Expired → :class:`GoneError`); a dropped
        connection → :class:`UnavailableError`. The caller resumes from the last event's RV.
        ``on_open``: called once the server accepted the watch (the stream is connected).
        """
        call = self._list_call(
            res, namespace, label_selector=label_selector, field_selector=field_selector,
            watch=True, resource_version=resource_version, allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _request_timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.request_timeout,
                                                   sock_read=timeout_seconds + 30))
        with self._reported():
            resp = await _open(call)
            try:
                if not 200 <= resp.status < 300:
                    raise from_status(resp.status, body=await resp.read(), headers=dict(resp.headers))
                if on_open is not None:
                    on_open()
                while True:
                    try:
                        line = await resp.content.readline()
                    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                        raise UnavailableError(
                            f"watch on {res.plural} dropped: {type(exc).__name__}") from exc
                    if not line:
                        return
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        ev = json.loads(line)
                    except ValueError as exc:
                        raise UnavailableError(f"watch on {res.plural}: truncated event") from exc
                    etype = str(ev.get("type", ""))
                    obj = ev.get("object") or {}
                    if etype == "ERROR":
                        raise from_status(int(obj.get("code") or 500), body=json.dumps(obj))
                    yield WatchEvent(type=etype, object=_with_type(obj, res))
            finally:
                resp.release()

    # -- writes ---------------------------------------------------------------------------

    async def apply(self, obj: Mapping[str, Any], *, dry_run: bool, force: bool = False) -> dict[str, Any]:
        """Server-side apply of ``obj`` as field manager ``kserve-warden``; the object after.

        A conflict with another manager is raised as :class:`ConflictError` (with ``managers``);
        ``force`` takes the sent fields back (``remediation.take_back_fields``, decided by the loop).
        """
        res = resource_for(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        body = _apply_body(obj)
        body["apiVersion"], body["kind"] = res.api_version, res.kind
        meta = body["metadata"]
        name = str(meta.get("name") or "")
        ns = str(meta.get("namespace") or "") if res.namespaced else ""
        if not name or (res.namespaced and not ns):
            need = "metadata.name and metadata.namespace" if res.namespaced else "metadata.name"
            raise InvalidError(f"{res.kind} manifest needs {need}", status=422, reason="Invalid")
        _, out = await self._patch(res, ns, name, body, content_type=APPLY_PATCH, dry_run=dry_run,
                                        field_manager=self.field_manager, force=force)
        if not out.get("metadata") and not (dry_run or self.dry_run):
            # An empty 201 body from an SSA create: read the object back.
            out = await self._get_raw(res.ref(ns, name))
        out = _with_type(out, res)
        return hash_secret(out) if res.kind == "Secret" else out

    async def merge_patch(self, ref: ObjectRef, patch: Mapping[str, Any], *, dry_run: bool) -> dict[str, Any]:
        """JSON merge patch (RFC 7386): works on every kind, custom resources included."""
        res = resource_of(ref)
        _, out = await self._patch(res, ref.namespace or "", ref.name, dict(patch), content_type=MERGE_PATCH,
                                   dry_run=dry_run, field_manager=self.field_manager)
        out = _with_type(out, res)
        return hash_secret(out) if res.kind == "Secret" else out

    async def _patch(self, res: Resource, ns: str, name: str, body: dict[str, Any], *, content_type: str,
                     dry_run: bool, field_manager: str,
                     force: bool | None = None) -> tuple[int, dict[str, Any]]:
        params: dict[str, Any] = {"field_manager": field_manager, "_content_type": content_type,
                                  **self._dry(dry_run)}
        if force is not None and content_type == APPLY_PATCH:
            params["force"] = force
        return await self._send(self._call("patch", res, ns, name, body, **self._opts(**params)))

    async def restart_deployment(self, namespace: str, name: str, *, at: str, dry_run: bool,
                                 annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``kubectl rollout restart``: a new ``restartedAt`` on the pod template.

        ``annotations`` are set on the Deployment's own metadata in the same patch (the daemon
        keeps its CoreDNS restart history there, so the budget survives a daemon restart).
        """
        body: dict[str, Any] = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}}
        if annotations:
            body["metadata"] = {"annotations": dict(annotations)}
        res = resource_for("apps/v1", "Deployment")
        _, out = await self._patch(res, namespace, name, body, content_type=STRATEGIC_MERGE_PATCH,
                                   dry_run=dry_run, field_manager=self.field_manager)
        return _with_type(out, res)

    async def remove_annotation(self, ref: ObjectRef, key: str, *, dry_run: bool) -> dict[str, Any]:
        """Drop one annotation (merge patch with ``null``: the one patch CRs accept for it)."""
        return await self.merge_patch(ref, {"metadata": {"annotations": {key: None}}}, dry_run=dry_run)

    async def delete_pod(self, namespace: str, name: str, *, dry_run: bool, uid: str | None = None) -> bool:
        """Delete a pod (the stuck-ImagePullBackOff case only). False if it was already gone.

        ``uid`` becomes a precondition: the daemon deletes exactly the pod it diagnosed, not a
        replacement that took its name meanwhile.
        """
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if uid:
            body["preconditions"] = {"uid": uid}
        if dry_run or self.dry_run:
            # In the body: kube-apiserver reads DeleteOptions from the body when there is one and
            # then ignores the query string, so a ``?dryRun=All`` beside this body deleted for real.
            body["dryRun"] = ["All"]
        o = self._opts(body=body)
        try:
            await self._send(lambda: self.core.delete_namespaced_pod(name, namespace, **o))
        except NotFoundError:
            return False
        return True

    async def derive_secret(self, decl: DerivedSecretDecl | Mapping[str, Any], *,
                            dry_run: bool, force: bool = False) -> dict[str, Any]:
        """Build the target secret from the source secret's keys, through the API; apply it.

        ``force``: take back the declared keys from another field manager (a hand-edited
        derived secret), like :meth:`apply` with ``force``; only the keys it sends are taken.

        The credential values are read from the API into this function's locals, registered
        with the redactor (decoded and base64 forms) and sent straight back to the API. What
        is returned is the *hashed* secret, safe to log or compare.
        """
        d = derivation(decl)
        src = await self._get_raw(ObjectRef(api_version="v1", kind="Secret", namespace=d.source_namespace,
                                            name=d.source_name))
        data: dict[str, str] = dict(src.get("data") or {})
        for k, v in (src.get("stringData") or {}).items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        missing = sorted(k for k in d.keys if k not in data)
        if missing:
            raise DeriveError(
                f"source secret {d.source_namespace}/{d.source_name} has no key(s) {', '.join(missing)} "
                f"(it has: {', '.join(sorted(data)) or 'none'})", status=0, reason="SourceKeyMissing")
        target: dict[str, str] = {}
        for src_key, dst_key in d.keys.items():
            value = data[src_key]
            self._register(value)
            target[dst_key] = value
        render = getattr(decl, "render", None)
        if callable(render):
            # The declaration's own rendering (labels, the derived-from annotation) with the
            # data left out: the same metadata ``diff`` compares against, real values added here.
            shape = render(None)
            meta = dict(shape.get("metadata") or {})
            kind_type = str(shape.get("type") or d.type)
        else:
            meta = {"name": d.name, "namespace": d.namespace}
            if d.annotations:
                meta["annotations"] = dict(d.annotations)
            if d.labels:
                meta["labels"] = dict(d.labels)
            kind_type = d.type
        manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": kind_type, "data": target}
        return await self.apply(manifest, dry_run=dry_run, force=force)

    async def emit_event(self, ref: ObjectRef, *, type: str, reason: str, message: str,
                         uid: str | None = None) -> dict[str, Any]:
        """A core/v1 Event about ``ref`` (``Normal``/``Warning``; reason = a finding code).

        The same (object, type, reason, message) seen again bumps ``count`` and
        ``lastTimestamp`` on the existing Event instead of creating another, as client-go's
        recorder does; if that Event has expired meanwhile, a new one is created.
        """
        if type not in ("Normal", "Warning"):
            raise ValueError(f"event type must be Normal or Warning, got {type!r}")
        if self.redactor is not None:
            message = self.redactor.scrub(message)
        message = message[:1024]
        namespace = ref.namespace or "default"
        now = self.clock()
        key = (str(ref), type, reason, message)
        rec = self._events.get(key)
        res = resource_for("v1", "Event")
        if rec is not None:
            try:
                _, out = await self._patch(
                    res, rec.namespace, rec.name,
                    {"count": rec.count + 1, "lastTimestamp": rfc3339(now)},
                    content_type=MERGE_PATCH, dry_run=False, field_manager=self.field_manager)
                rec.count += 1
                self._events.move_to_end(key)
                return out
            except NotFoundError:
                del self._events[key]
        involved: dict[str, Any] = {"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name}
        if ref.namespace:
            involved["namespace"] = ref.namespace
        if uid:
            involved["uid"] = uid
        name = f"{ref.name}.{time.time_ns():x}"
        body: Any = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": type,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT, "reportingInstance": self.instance or COMPONENT,
            "firstTimestamp": rfc3339(now), "lastTimestamp": rfc3339(now), "count": 1,
        }
        o = self._opts(**self._dry(False))
        _, out = await self._send(lambda: self.core.create_namespaced_event(namespace, body, **o))
        if not self.dry_run:
            self._events[key] = _EventRecord(name=name, namespace=namespace, count=1)
            while len(self._events) > 4096:
                self._events.popitem(last=False)
        return out

    # -- leases (leader election) ---------------------------------------------------------

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._get_raw(ObjectRef(api_version="coordination.k8s.io/v1", kind="Lease",
                                             namespace=namespace, name=name))

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        o = self._opts()
        b: Any = dict(body)
        _, out = await self._send(lambda: self.coordination.create_namespaced_lease(namespace, b, **o))
        return out

    async def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT with the body's resourceVersion: a 409 means someone else wrote it first."""
        o = self._opts()
        b: Any = dict(body)
        _, out = await self._send(lambda: self.coordination.replace_namespaced_lease(name, namespace, b, **o))
        return out


_NO_TOTAL = aiohttp.ClientTimeout(total=None)


async def _open(call: Callable[[], Awaitable[Any]]) -> Any:
    """Send the request; a client-side failure (no answer, an ApiException) becomes a typed error."""
    try:
        return await call()
    except Exception as exc:
        raise translate(exc) from exc


def _with_type(obj: dict[str, Any], res: Resource) -> dict[str, Any]:
    """List items and some answers omit apiVersion/kind; the daemon keys on them."""
    if obj and ("kind" not in obj or "apiVersion" not in obj):
        obj = {"apiVersion": res.api_version, "kind": res.kind, **obj}
    return obj
