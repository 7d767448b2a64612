"""``ApiServer``: the aiohttp application that speaks kube-apiserver's REST protocol.

One catch-all route parses Kubernetes paths itself (core ``/api/v1/...``, groups
``/apis/G/V/...``, namespaced and cluster-scoped, subresources, the legacy ``/watch/`` prefix),
maps the HTTP method to a Kubernetes verb, counts it in :attr:`ApiServer.stats`, lets
:attr:`ApiServer.faults` fail it, and hands it to :class:`~sandbox.apiserver.crud.Crud`. Any
error becomes a ``Status`` body; an unexpected exception becomes a 500 ``InternalError`` Status
without a traceback (the traceback goes to the server log).

Pod logs: the wire ``GET .../pods/NAME/log?container=C&tailLines=N`` answers text. Simulated
kubelets write them with the sandbox-only endpoint
``PUT`` (replace) or ``POST`` (append) ``/sandbox/v1/namespaces/NS/pods/NAME/log?container=C``
with a ``text/plain`` body, or in-process with :meth:`ApiServer.set_pod_log`. Logs go away with
the pod.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.apiserver import discovery, openapi
from sandbox.apiserver.crds import BUILTIN_CRDS
from sandbox.apiserver.crud import Crud, WriteOptions, decode_body
from sandbox.apiserver.faults import Faults, reason_for
from sandbox.apiserver.registry import Registry, ResourceKind, crd_not_served, page_not_found
from sandbox.apiserver.selectors import SelectorError, parse_field_selector, parse_label_selector
from sandbox.apiserver.stats import RequestStats
from sandbox.apiserver.status import (
    ApiError,
    bad_request,
    method_not_allowed,
    not_found,
    status_body,
    unsupported_media_type,
)
from sandbox.apiserver.store import Store
from sandbox.apiserver.table import to_table, wants_table
from sandbox.apiserver.watch import DEFAULT_TIMEOUT, WatchHub, WatchRequest

log = logging.getLogger("sandbox.apiserver")

MAX_BODY = 3 * 1024 * 1024
_TRUE = frozenset({"1", "t", "T", "true", "True", "TRUE"})
_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SEED_MANAGER = "sandbox-seed"
_RETURN_DELETED = frozenset({"pods", "services", "namespaces", "customresourcedefinitions"})


def _qbool(value: str | None) -> bool:
    return value is not None and value in _TRUE


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error(err: ApiError) -> web.Response:
    if err.plain:
        return web.Response(status=err.code, text=err.message + "\n", content_type="text/plain",
                            headers=err.headers or None)
    return _json(err.status(), status=err.code, headers=err.headers or None)


@dataclass(frozen=True, kw_only=True)
class Target:
    """A parsed resource path."""

    kind: ResourceKind
    namespace: str | None
    name: str | None
    subresource: str

    @property
    def resource(self) -> str:
        return f"{self.kind.plural}/{self.subresource}" if self.subresource else self.kind.plural


class ApiServer:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, watch_history: int = 1000) -> None:
        self.host = host
        self.port = port
        self.registry = Registry.with_builtins()
        self.store = Store(watch_history=watch_history)
        self.crud = Crud(registry=self.registry, store=self.store)
        self.watches = WatchHub(self.store, out=self.crud.out)
        self.stats = RequestStats()
        self.faults = Faults(on_compact=self.store.compact, on_drop_watches=self.watches.drop_all)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("ApiServer is not started")
        return self._url

    async def start(self) -> None:
        self._seed()
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self.port
        self.port = int(port)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._url = f"http://{host}:{self.port}"

    async def stop(self) -> None:
        await self.watches.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _seed(self) -> None:
        if self.store.revision:
            return
        opts = WriteOptions(manager=SEED_MANAGER)
        ns_kind = self.registry.lookup("", "v1", "namespaces")
        crd_kind = self.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert ns_kind is not None and crd_kind is not None
        for ns in _SYSTEM_NAMESPACES:
            self.crud.create(ns_kind, None, {"metadata": {"name": ns}}, opts)
        for crd in BUILTIN_CRDS:
            self.crud.create(crd_kind, None, crd, opts)
        self.store.mark_seeded()

    def mark_seeded(self) -> None:
        """Start the watch history window here (resuming from earlier answers 410)."""
        self.store.mark_seeded()

    def set_pod_log(
        self, namespace: str, pod: str, container: str, text: str, *, append: bool = False
    ) -> None:
        """Set (or append to) a container's log, as the sandbox-only endpoint does."""
        if self.store.get("pods", namespace, pod) is None:
            raise not_found(group="", resource="pods", name=pod)
        logs = self.crud.logs.setdefault((namespace, pod), {})
        logs[container] = (logs.get(container, "") + text) if append else text

    @property
    def open_watches(self) -> int:
        return self.watches.open_count

    async def wait_for_watches(self, count: int = 1) -> None:
        """Return once at least ``count`` watch streams are open (so a test's change is seen live)."""
        await self.watches.wait_open(count)

    # --- request handling ----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except ApiError as err:
            return _error(err)
        except web.HTTPRequestEntityTooLarge:
            return _error(
                ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {MAX_BODY}")
            )
        except (ConnectionResetError, ConnectionError):
            raise
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.path)
            return _error(ApiError(500, "InternalError", "Internal error occurred: unexpected server error"))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        method = request.method
        if not parts:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]})
        head = parts[0]
        if head in ("healthz", "livez", "readyz") and len(parts) == 1:
            return web.Response(text="ok")
        if head == "version" and len(parts) == 1:
            return _json(discovery.VERSION)
        if head == "sandbox":
            return await self._sandbox(request, parts)
        if head == "openapi" and len(parts) >= 2 and parts[1] == "v3":
            return self._openapi(parts[2:])
        if head == "api":
            if len(parts) == 1:
                return _json(discovery.api_versions(f"{self.host}:{self.port}"))
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return _json(discovery.api_group_list(self.registry))
            if not self.registry.serves_group(parts[1]):
                raise page_not_found()
            if len(parts) == 2:
                doc = discovery.api_group(self.registry, parts[1])
                if doc is None:
                    raise page_not_found()
                return _json(doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise page_not_found()
        if not rest:
            doc = discovery.resource_list(self.registry, group, version)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(doc)
        watch_path = rest[0] == "watch"
        if watch_path:
            rest = rest[1:]
        target = self._target(group, version, rest)
        verb = self._verb(method, target, watch=watch_path or _qbool(request.query.get("watch")))
        self.stats.record(verb, target.resource)
        rule = self.faults.take(verb, target.resource)
        if rule is not None:
            if rule.reset:
                self._reset(request)
                return web.Response(status=500)
            headers: dict[str, str] = {}
            details: dict[str, Any] | None = None
            if rule.retry_after is not None:
                ra = rule.retry_after
                headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
                details = {"retryAfterSeconds": max(1, round(ra))}
            reason = reason_for(rule.status)
            raise ApiError(
                rule.status,
                reason,
                f"injected fault: {reason} ({verb} {target.resource})",
                details=details,
                headers=headers,
            )
        return await self._serve(request, verb, target)

    def _openapi(self, rest: list[str]) -> web.Response:
        if not rest:
            return _json(openapi.root(self.registry))
        if rest[0] == "api" and len(rest) == 2:
            doc = openapi.group_version_doc(self.registry, "", rest[1])
        elif rest[0] == "apis" and len(rest) == 3:
            doc = openapi.group_version_doc(self.registry, rest[1], rest[2])
        else:
            doc = None
        if doc is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _json(doc)

    @staticmethod
    def _reset(request: web.Request) -> None:
        """Reset the TCP connection (RST): the client sees 'connection reset', not an answer."""
        transport = request.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        namespace: str | None = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        plural = rest[0]
        kind = self.registry.lookup(group, version, plural)
        if kind is None:
            raise crd_not_served(group, version, plural)
        if namespace is not None and not kind.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else ""
        if sub and not (
            (sub == "status" and kind.status_subresource) or (sub == "log" and kind.log_subresource)
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if kind.namespaced and name is not None and namespace is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return Target(kind=kind, namespace=namespace, name=name, subresource=sub)

    @staticmethod
    def _verb(method: str, target: Target, *, watch: bool) -> str:
        if method == "GET":
            if target.name is None:
                return "watch" if watch else "list"
            return "get"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if target.name is not None else "deletecollection",
        }.get(method, method.lower())

    def _write_options(self, request: web.Request, subresource: str) -> WriteOptions:
        q = request.query
        dry = q.getall("dryRun", [])
        for d in dry:
            if d != "All":
                raise ApiError(422, "Invalid", f'Unsupported value: "{d}": supported values: "All"')
        manager = q.get("fieldManager")
        if manager is not None and len(manager) > 128:
            raise ApiError(422, "Invalid", "fieldManager: Too long: may not be longer than 128")
        if manager is None and request.content_type != "application/apply-patch+yaml":
            manager = (request.headers.get("User-Agent") or "unknown").split("/", 1)[0] or "unknown"
        return WriteOptions(
            manager=manager or "",
            dry_run=bool(dry),
            force=_qbool(q.get("force")),
            subresource=subresource,
        )

    async def _body(self, request: web.Request, *, patch: bool = False) -> bytes:
        if request.method in ("POST", "PUT") and not patch:
            ctype = request.content_type
            if ctype not in ("application/json", "application/yaml", "application/octet-stream", ""):
                raise unsupported_media_type("application/json, application/yaml")
        return await request.read()

    async def _serve(self, request: web.Request, verb: str, t: Target) -> web.StreamResponse:
        q = request.query
        kind = t.kind
        crud = self.crud
        if verb in ("list", "watch", "deletecollection"):
            try:
                labels = parse_label_selector(q.get("labelSelector"))
                fields = parse_field_selector(q.get("fieldSelector"), allowed=kind.field_labels)
            except SelectorError as exc:
                raise bad_request(str(exc)) from exc
            if verb == "watch":
                return await self.watches.serve(request, self._watch_request(request, t, labels, fields))
            if verb == "deletecollection":
                listing = crud.list(kind, t.namespace, labels=labels, fields=fields)
                options, dry_run = self._delete_options(request, await self._body(request))
                deleted = [
                    crud.delete(
                        kind,
                        o["metadata"].get("namespace"),
                        o["metadata"]["name"],
                        options,
                        dry_run=dry_run,
                    )
                    for o in listing["items"]
                ]
                return _json({**listing, "items": deleted})
            limit = self._int(q.get("limit"), "limit") or 0
            rv = q.get("resourceVersion")
            if rv and rv.isdigit() and int(rv) > self.store.revision:
                # "Not older than" a resourceVersion the cache has not seen: wait, then 504.
                await self.watches.wait_fresh(int(rv), prefix="Timeout: ")
            listing = crud.list(
                kind, t.namespace, labels=labels, fields=fields, limit=limit, cont=q.get("continue")
            )
            if wants_table(request.headers.get("Accept", "")):
                return _json(to_table(kind, listing["items"], listing["metadata"]["resourceVersion"]))
            return _json(listing)
        if t.name is None and verb != "create":
            raise method_not_allowed()
        if verb == "get":
            assert t.name is not None
            if t.subresource == "log":
                return self._log(request, t)
            obj = crud.get(kind, t.namespace, t.name)
            if wants_table(request.headers.get("Accept", "")):
                return _json(to_table(kind, [obj], obj["metadata"]["resourceVersion"]))
            return _json(obj)
        if t.subresource == "log":
            raise method_not_allowed()
        if verb == "create":
            if t.name is not None:
                raise method_not_allowed()
            opts = self._write_options(request, "")
            body = self._decode(await self._body(request), request.content_type)
            return _json(crud.create(kind, t.namespace, body, opts), status=201)
        assert t.name is not None
        if verb == "update":
            opts = self._write_options(request, t.subresource)
            body = self._decode(await self._body(request), request.content_type)
            return _json(crud.replace(kind, t.namespace, t.name, body, opts))
        if verb == "patch":
            opts = self._write_options(request, t.subresource)
            raw = await self._body(request, patch=True)
            result = crud.patch(kind, t.namespace, t.name, raw, request.content_type, opts)
            return _json(result.obj, status=201 if result.created else 200)
        if verb == "delete":
            if t.subresource:
                raise method_not_allowed()
            options, dry_run = self._delete_options(request, await self._body(request))
            obj = crud.delete(kind, t.namespace, t.name, options, dry_run=dry_run)
            pending = crud.store.get(kind.group_resource, *crud.key(kind, t.namespace, t.name)) is not None
            # Like the real registry: pending deletions (finalizers) answer the object; immediate ones
            # answer the object for kinds whose store sets ReturnDeletedObject, else a Success Status.
            if pending or kind.plural in _RETURN_DELETED or not kind.builtin:
                return _json(obj)
            uid = obj["metadata"].get("uid")
            details = {"name": t.name, "group": kind.group, "kind": kind.plural, "uid": uid}
            return _json(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": details,
                }
            )
        raise method_not_allowed()

    @staticmethod
    def _decode(raw: bytes, content_type: str) -> Any:
        if not raw:
            raise bad_request("the body of the request is empty")
        return decode_body(raw, yaml_ok=content_type == "application/yaml")

    def _delete_options(self, request: web.Request, raw: bytes) -> tuple[Any, bool]:
        """DeleteOptions and whether this is a dry run, read as kube-apiserver reads them: from
        the body when there is one, and then *only* from it (a ``?dryRun=All`` beside a body is
        ignored, and the delete is real); from the query string when there is no body."""
        if raw.strip():
            options = decode_body(raw)
            if not isinstance(options, dict):
                raise bad_request("DeleteOptions must be an object")
            dry = options.get("dryRun") or []
            if not isinstance(dry, list):
                raise bad_request("DeleteOptions.dryRun must be a list of strings")
            for d in dry:
                if d != "All":
                    raise ApiError(422, "Invalid", f'Unsupported value: "{d}": supported values: "All"')
            return options, bool(dry)
        q = request.query
        extra: dict[str, Any] = {k: q[k] for k in ("propagationPolicy",) if k in q}
        if "orphanDependents" in q:
            extra["orphanDependents"] = _qbool(q["orphanDependents"])
        return extra or None, self._write_options(request, "").dry_run

    @staticmethod
    def _int(value: str | None, name: str) -> int | None:
        if value is None or value == "":
            return None
        try:
            return int(value)
        except ValueError as exc:
            raise bad_request(f"invalid {name}: {value!r} is not an integer") from exc

    def _watch_request(self, request: web.Request, t: Target, labels: Any, fields: Any) -> WatchRequest:
        q = request.query
        rv = q.get("resourceVersion")
        since: int | None = None
        if rv not in (None, "", "0"):
            if not rv.isdigit():
                # The watch cache parses it as etcd's uint64 and answers the parse error as an
                # internal error: 500, a Status without reason.
                raise ApiError(500, "", f'resourceVersion: Invalid value: "{rv}": strconv.ParseUint: '
                                        f'parsing "{rv}": invalid syntax')
            since = int(rv)
        timeout = self._int(q.get("timeoutSeconds"), "timeoutSeconds")
        return WatchRequest(
            kind=t.kind,
            namespace=t.namespace,
            labels=labels,
            fields=fields,
            since=since,
            timeout=float(timeout) if timeout and timeout > 0 else DEFAULT_TIMEOUT,
            bookmarks=_qbool(q.get("allowWatchBookmarks")),
        )

    # --- pod logs ------------------------------------------------------------------------------

    def _log_container(self, pod: dict[str, Any], container: str | None) -> str:
        spec = pod.get("spec") or {}
        names = [c.get("name") for c in spec.get("containers") or []]
        init = [c.get("name") for c in spec.get("initContainers") or []]
        name = pod["metadata"]["name"]
        if not container:
            if len(names) == 1:
                return str(names[0])
            choices = " ".join(map(str, names))
            msg = f"a container name must be specified for pod {name}, choose one of: [{choices}]"
            if init:
                msg += f" or one of the init containers: [{' '.join(map(str, init))}]"
            raise bad_request(msg)
        if container not in names and container not in init:
            raise bad_request(f"container {container} is not valid for pod {name}")
        return container

    def _log(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        pod = self.crud.get(t.kind, t.namespace, t.name)
        q = request.query
        container = self._log_container(pod, q.get("container"))
        if _qbool(q.get("previous")):
            raise bad_request(f'previous terminated container "{container}" in pod "{t.name}" not found')
        logs = self.crud.logs.get((t.namespace or "", t.name))
        if logs is None and not (pod.get("spec") or {}).get("nodeName"):
            # A pod not yet bound to a node has no kubelet to ask: the real server answers 204.
            return web.Response(status=204)
        text = (logs or {}).get(container, "")
        tail = self._int(q.get("tailLines"), "tailLines")
        if tail is not None and tail >= 0:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail:]) if tail else ""
        limit = self._int(q.get("limitBytes"), "limitBytes")
        body = text.encode()
        if limit is not None and limit > 0:
            body = body[:limit]
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    async def _sandbox(self, request: web.Request, parts: list[str]) -> web.Response:
        # /sandbox/v1/namespaces/NS/pods/NAME/log
        if (
            len(parts) != 7
            or parts[1] != "v1"
            or parts[2] != "namespaces"
            or parts[4] != "pods"
            or parts[6] != "log"
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if request.method not in ("PUT", "POST"):
            raise method_not_allowed()
        namespace, name = parts[3], parts[5]
        pod = self.store.get("pods", namespace, name)
        if pod is None:
            raise not_found(group="", resource="pods", name=name)
        container = self._log_container(pod, request.query.get("container"))
        text = (await request.read()).decode("utf-8", errors="replace")
        self.set_pod_log(namespace, name, container, text, append=request.method == "POST")
        return _json(status_body(code=200, reason="", message="log updated"))
