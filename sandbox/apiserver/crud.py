"""The verbs: get, list, create, replace, patch, delete, on top of the store.

This is where kube-apiserver's generic registry behaviour lives: filling in server-owned
metadata (uid, creationTimestamp, resourceVersion, generation), optimistic concurrency,
status-subresource rules (a main-resource write keeps the old status; a ``/status`` write
changes only status; neither bumps generation for the other's fields), finalizers and
``deletionTimestamp``, namespace lifecycle (no creates in missing or terminating namespaces;
deleting a namespace deletes its contents), CRDs registering their kinds, managedFields
bookkeeping, and ``dryRun``.

A write whose result equals the stored object (ignoring managedFields timestamps) is a no-op:
the object and its resourceVersion stay as they are and no watch event is sent, exactly like the
real server (which compares before writing to etcd).

Every failure raises :class:`~sandbox.apiserver.status.ApiError`.
"""

from __future__ import annotations

import base64
import json
import secrets as _random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import yaml

from sandbox.apiserver import eventsv1, managed, patch
from sandbox.apiserver import kinds as kindrules
from sandbox.apiserver.jsonval import clone
from sandbox.apiserver.registry import Registry, ResourceKind, kinds_from_crd, validate_crd
from sandbox.apiserver.selectors import FieldSelector, LabelSelector
from sandbox.apiserver.status import (
    STALE,
    ApiError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    not_found,
    unsupported_media_type,
)
from sandbox.apiserver.store import Key, Obj, Store, key_order

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)
_CR_PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)

CRD_RESOURCE = "customresourcedefinitions.apiextensions.k8s.io"
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
# The NamespaceLifecycle admission plugin refuses to delete these.
_UNDELETABLE_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, kw_only=True)
class WriteOptions:
    manager: str
    dry_run: bool = False
    force: bool = False
    subresource: str = ""  # "" or "status"


@dataclass(frozen=True, kw_only=True)
class WriteResult:
    obj: Obj
    created: bool = False


def decode_body(raw: bytes, *, yaml_ok: bool = False) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        if yaml_ok:
            try:
                return yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            except yaml.YAMLError as yexc:
                raise bad_request(f"error decoding YAML: {str(yexc).splitlines()[0]}") from yexc
        raise bad_request(f"the object provided is unrecognized (must be of type JSON): {exc}") from exc


class Crud:
    def __init__(self, *, registry: Registry, store: Store) -> None:
        self.registry = registry
        self.store = store
        # Pod logs by (namespace, pod) -> {container: text}; see ApiServer.set_pod_log.
        self.logs: dict[Key, dict[str, str]] = {}

    # --- helpers -------------------------------------------------------------------------------

    @staticmethod
    def key(kind: ResourceKind, namespace: str | None, name: str) -> Key:
        return ((namespace or "") if kind.namespaced else "", name)

    def out(self, kind: ResourceKind, obj: Obj) -> Obj:
        """An object as served at ``kind``'s version (no conversion but Events: apiVersion only)."""
        if kind.group == "events.k8s.io":
            return eventsv1.to_v1(obj)
        if obj.get("apiVersion") != kind.api_version:
            return {**obj, "apiVersion": kind.api_version}
        return obj

    def _stored_as(self, kind: ResourceKind, body: Any) -> tuple[ResourceKind, Any]:
        """The kind that stores ``kind``'s objects, and ``body`` converted to it."""
        if kind.group == "events.k8s.io":
            core = self.registry.lookup("", "v1", "events")
            assert core is not None
            return core, eventsv1.to_core(body)
        return kind, body

    def _existing(self, kind: ResourceKind, namespace: str | None, name: str) -> Obj:
        obj = self.store.get(kind.group_resource, *self.key(kind, namespace, name))
        if obj is None:
            raise not_found(group=kind.group, resource=kind.plural, name=name)
        return obj

    def _check_namespace(self, kind: ResourceKind, namespace: str | None) -> None:
        if not kind.namespaced:
            return
        ns = self.store.get("namespaces", "", namespace or "")
        if ns is None:
            raise not_found(group="", resource="namespaces", name=namespace or "")
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            raise forbidden(
                f"{kind.plural} is forbidden: unable to create new content in namespace {namespace} "
                "because it is being terminated"
            )

    def _check_body(self, kind: ResourceKind, body: Any, namespace: str | None, name: str | None) -> Obj:
        if not isinstance(body, dict):
            raise bad_request(f"the body of the request must be a {kind.kind} object")
        err = kindrules.type_errors(body)
        if err:
            raise bad_request(err)
        if kind.group == "" and kind.plural == "secrets":
            # Secret data is []byte: the real server decodes the base64 while reading the JSON,
            # so bad data is a 400 before any validation.
            bad = kindrules.bad_base64(body.get("data"))
            if bad is not None:
                raise bad_request('Secret in version "v1" cannot be handled as a Secret: '
                                  'illegal base64 data '
                                  f"at input byte {bad}")
        if body.get("metadata") is None:
            body["metadata"] = {}  # `metadata: null` decodes as an empty ObjectMeta
        av, k = body.get("apiVersion"), body.get("kind")
        if av is not None and av != kind.api_version:
            # A kind served at several versions accepts any of them (no conversion needed here).
            group = str(av).rpartition("/")[0]
            if (
                group != kind.group
                or self.registry.lookup(group, str(av).rpartition("/")[2], kind.plural) is None
            ):
                raise bad_request(
                    f"the API version in the data ({av}) does not match the expected API version "
                    f"({kind.api_version})"
                )
        if k is not None and k != kind.kind:
            raise bad_request(f"the kind in the data ({k}) does not match the expected kind ({kind.kind})")
        meta = body.get("metadata") or {}
        if name is not None and meta.get("name") not in (None, "", name):
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        body_ns = meta.get("namespace")
        if kind.namespaced and body_ns not in (None, "", namespace):
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        return body

    def _finish(
        self, kind: ResourceKind, obj: Obj, *, namespace: str | None, name: str, creating: bool
    ) -> None:
        """Common validation and defaulting of the object about to be stored."""
        obj["apiVersion"] = kind.api_version
        obj["kind"] = kind.kind
        meta = obj.setdefault("metadata", {})
        meta["name"] = name
        if kind.namespaced:
            meta["namespace"] = namespace or ""
        else:
            meta.pop("namespace", None)
        for f in ("labels", "annotations", "finalizers"):
            if f in meta and not meta[f]:
                del meta[f]
        errors: list[tuple[str, str]] = []
        msg = kindrules.validate_name(kind, name)
        if msg:
            errors.append(("metadata.name", msg))
        errors += kindrules.validate_labels(meta.get("labels"), "metadata.labels")
        errors += kindrules.validate_labels(meta.get("annotations"), "metadata.annotations")
        errors += kindrules.normalize(kind, obj, creating=creating)
        if kind.plural == "customresourcedefinitions":
            errors += validate_crd(obj)
        if errors:
            raise invalid(group=kind.group, kind=kind.kind, name=name, causes=errors)

    @staticmethod
    def _spec_part(obj: Obj) -> Obj:
        return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}

    # --- reads ---------------------------------------------------------------------------------

    def get(self, kind: ResourceKind, namespace: str | None, name: str) -> Obj:
        return self.out(kind, self._existing(kind, namespace, name))

    def list(
        self,
        kind: ResourceKind,
        namespace: str | None,
        *,
        labels: LabelSelector,
        fields: FieldSelector,
        limit: int = 0,
        cont: str | None = None,
    ) -> Obj:
        items = self.store.items(kind.group_resource, namespace if kind.namespaced else None)
        if not labels.empty or not fields.empty:
            items = [o for o in items if labels.matches(o["metadata"].get("labels")) and fields.matches(o)]
        start = 0
        if cont:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont.encode()))
                after = (str(token["ns"]), str(token["name"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise bad_request(
                    "continue key is not valid: incorrect encoded start resourceVersion"
                ) from exc
            start = next(
                (
                    i
                    for i, o in enumerate(items)
                    if key_order((o["metadata"].get("namespace", ""), o["metadata"]["name"]))
                    > key_order(after)
                ),
                len(items),
            )
        meta: Obj = {"resourceVersion": str(self.store.revision)}
        page = items[start:]
        if limit > 0 and len(page) > limit:
            page = page[:limit]
            last = page[-1]["metadata"]
            token = {"ns": last.get("namespace", ""), "name": last["name"]}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        return {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version,
            "metadata": meta,
            "items": [self.out(kind, o) for o in page],
        }

    # --- writes --------------------------------------------------------------------------------

    def create(self, kind: ResourceKind, namespace: str | None, body: Any, opts: WriteOptions) -> Obj:
        stored, body = self._stored_as(kind, body)
        if stored is not kind:
            return self.out(kind, self.create(stored, namespace, body, opts))
        body = self._check_body(kind, body, namespace, None)
        obj = clone(body)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            gen = meta.get("generateName")
            if not gen:
                raise invalid(
                    group=kind.group,
                    kind=kind.kind,
                    name="",
                    causes=[("metadata.name", "Required value: name or generateName is required")],
                )
            name = gen + "".join(_random.choice(_NAME_CHARS) for _ in range(5))
        self._check_namespace(kind, namespace)
        if self.store.get(kind.group_resource, *self.key(kind, namespace, name)) is not None:
            raise already_exists(group=kind.group, resource=kind.plural, name=name)
        if kind.status_subresource and not kind.builtin:
            obj.pop("status", None)
        if kind.group == "" and kind.plural == "pods":
            self._admit_service_account(namespace or "", name, obj)
        return self._create_obj(kind, namespace, name, obj, opts, via_apply=False)

    def _admit_service_account(self, namespace: str, name: str, pod: Obj) -> None:
        """The ServiceAccount admission plugin: a pod's ServiceAccount must exist when it is created
        (a Deployment's ReplicaSet retries until it does; a direct create is refused)."""
        spec: Obj = pod["spec"] if isinstance(pod.get("spec"), dict) else {}
        sa = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        if "kubernetes.io/config.mirror" in annotations:
            return  # mirror pods (a kubelet's static pods) are exempt
        if self.store.get("serviceaccounts", namespace, sa) is None:
            raise ApiError(
                403, "Forbidden",
                f'pods "{name}" is forbidden: error looking up service account {namespace}/{sa}: '
                f'serviceaccount "{sa}" not found',
                details={"name": name, "kind": "pods"},
            )

    def _create_obj(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        obj: Obj,
        opts: WriteOptions,
        *,
        via_apply: bool,
    ) -> Obj:
        meta = obj["metadata"]
        for f in (
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ):
            meta.pop(f, None)
        if not via_apply:
            meta.pop("managedFields", None)
        self._finish(kind, obj, namespace=namespace, name=name, creating=True)
        now = now_rfc3339()
        if not via_apply:
            self._record_update(kind, opts, None, obj, now=now)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now
        if kindrules.tracks_generation(kind):
            meta["generation"] = 1
        if kind.plural == "customresourcedefinitions":
            obj["status"] = self._crd_status(obj)
        if opts.dry_run:
            return self.out(kind, obj)
        rv = self.store.next_revision()
        meta["resourceVersion"] = str(rv)
        self.store.put(
            kind.group_resource, self.key(kind, namespace, name), obj, rv=rv, created=True, old=None
        )
        if kind.plural == "customresourcedefinitions":
            self.registry.register_crd(obj)
        if kind.group == "" and kind.plural == "namespaces":
            self._default_service_account(name)
        return self.out(kind, obj)

    def _default_service_account(self, namespace: str) -> None:
        """What kube-controller-manager's serviceaccount controller does for a new namespace (at
        once here, a moment later there): its ``default`` ServiceAccount, which pods use unless
        they name another, and which ServiceAccount admission requires."""
        sa_kind = self.registry.lookup("", "v1", "serviceaccounts")
        assert sa_kind is not None
        if self.store.get("serviceaccounts", namespace, "default") is None:
            self.create(sa_kind, namespace, {"metadata": {"name": "default"}},
                        WriteOptions(manager="kube-controller-manager"))

    @classmethod
    def _record_update(
        cls, kind: ResourceKind, opts: WriteOptions, old: Obj | None, new: Obj, *, now: str
    ) -> None:
        """managedFields for a create, update or patch (apply records its own)."""
        scope = cls._scope(kind, opts)
        managed.record_update(
            old, new, manager=opts.manager, api_version=kind.api_version, scope=scope, now=now
        )

    @staticmethod
    def _scope(kind: ResourceKind, opts: WriteOptions) -> managed.Scope:
        return managed.Scope(
            builtin=kind.builtin,
            status_only=opts.subresource == "status",
            exclude_status=kind.status_subresource and opts.subresource != "status",
        )

    @staticmethod
    def _crd_status(crd: Obj) -> Obj:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        return {
            "acceptedNames": {
                k: names[k] for k in ("plural", "singular", "kind", "listKind", "shortNames") if k in names
            },
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                },
            ],
            "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")],
        }

    def replace(
        self, kind: ResourceKind, namespace: str | None, name: str, body: Any, opts: WriteOptions
    ) -> Obj:
        stored, body = self._stored_as(kind, body)
        if stored is not kind:
            _check_event_update(self._existing(stored, namespace, name), body, name)
            return self.out(kind, self.replace(stored, namespace, name, body, opts))
        body = self._check_body(kind, body, namespace, name)
        old = self._existing(kind, namespace, name)
        want_rv = (body.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != old["metadata"]["resourceVersion"]:
            raise conflict(group=kind.group, resource=kind.plural, name=name, why=STALE)
        return self._update(kind, namespace, name, old, clone(body), opts, via_apply=False)

    def patch(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        raw: bytes,
        content_type: str,
        opts: WriteOptions,
    ) -> WriteResult:
        if content_type not in PATCH_TYPES:
            raise unsupported_media_type(", ".join(PATCH_TYPES))
        if not kind.builtin and content_type not in _CR_PATCH_TYPES:
            raise unsupported_media_type(", ".join(_CR_PATCH_TYPES))
        view = kind
        if content_type == APPLY_PATCH:
            kind, config = self._stored_as(view, decode_body(raw, yaml_ok=True))
            result = self._apply(kind, namespace, name, config, opts)
            return WriteResult(obj=self.out(view, result.obj), created=result.created)
        body = decode_body(raw)
        old = self._existing(kind, namespace, name)
        # The patch applies to the object as the client sees it at this version.
        base = clone(self.out(view, old))
        try:
            if content_type == JSON_PATCH:
                new = patch.json_patch(base, body)
            elif content_type == MERGE_PATCH:
                if not isinstance(body, dict):
                    raise bad_request("merge patch must be a JSON object")
                new = patch.merge_patch(base, body)
            else:
                new = patch.strategic_merge(base, body)
        except patch.PatchError as exc:
            if exc.bad_request:
                raise bad_request(str(exc)) from exc
            raise ApiError(422, "Invalid", str(exc)) from exc
        if not isinstance(new, dict):
            raise bad_request("the patch did not produce an object")
        kind, new = self._stored_as(view, new)
        if kind is not view:
            _check_event_update(old, new, name)
        new_meta: dict[str, Any] = new["metadata"] if isinstance(new.get("metadata"), dict) else {}
        if new_meta.get("resourceVersion") not in (None, old["metadata"]["resourceVersion"]):
            raise conflict(group=kind.group, resource=kind.plural, name=name, why=STALE)
        if new_meta.get("name") not in (None, name):
            raise bad_request(
                f"the name of the object ({new_meta.get('name')}) does not match the name on the URL ({name})"
            )
        self._check_body(kind, new, namespace, name)
        return WriteResult(
            obj=self.out(view, self._update(kind, namespace, name, old, new, opts, via_apply=False))
        )

    def _apply(
        self, kind: ResourceKind, namespace: str | None, name: str, config: Any, opts: WriteOptions
    ) -> WriteResult:
        if not opts.manager:
            raise ApiError(
                422, "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch",
                details={"group": "meta.k8s.io", "kind": "PatchOptions",
                         "causes": [{"reason": "FieldValueRequired", "field": "fieldManager",
                                     "message": "Required value: is required for apply patch"}]},
            )
        if not isinstance(config, dict):
            raise bad_request("the body of an apply patch must be an object")
        config = self._check_body(kind, config, namespace, name)
        if not config.get("apiVersion") or not config.get("kind"):
            raise bad_request("apiVersion and kind must be set in an apply configuration")
        want_rv = (config.get("metadata") or {}).get("resourceVersion")
        key = self.key(kind, namespace, name)
        old = self.store.get(kind.group_resource, *key)
        if want_rv and (old is None or want_rv != old["metadata"]["resourceVersion"]):
            raise conflict(group=kind.group, resource=kind.plural, name=name, why=STALE)
        scope = self._scope(kind, opts)
        now = now_rfc3339()

        def applied(base: Obj) -> Obj:
            """``config`` applied by ``opts.manager`` over ``base`` (the live object, or nothing yet)."""
            return managed.apply(
                base, config, manager=opts.manager, api_version=kind.api_version, scope=scope,
                force=opts.force, now=now,
            )

        if old is None:
            if opts.subresource:
                raise not_found(group=kind.group, resource=kind.plural, name=name)
            self._check_namespace(kind, namespace)
            obj = applied({})
            obj.setdefault("metadata", {})
            if kind.status_subresource and not kind.builtin:
                obj.pop("status", None)
            return WriteResult(
                obj=self._create_obj(kind, namespace, name, obj, opts, via_apply=True), created=True
            )
        try:
            new = applied(clone(old))
        except managed.ApplyConflict as exc:
            raise ApiError(
                409,
                "Conflict",
                str(exc),
                details={
                    "name": name,
                    "group": kind.group,
                    "kind": kind.plural,
                    "causes": [
                        {
                            "reason": "FieldManagerConflict",
                            "message": f'conflict with "{c.manager}"',
                            "field": managed.render_path(c.path),
                        }
                        for c in exc.conflicts
                    ],
                },
            ) from exc
        return WriteResult(obj=self._update(kind, namespace, name, old, new, opts, via_apply=True))

    def _update(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        old: Obj,
        new: Obj,
        opts: WriteOptions,
        *,
        via_apply: bool,
    ) -> Obj:
        old_meta = old["metadata"]
        if opts.subresource == "status":
            # Only status changes through /status (metadata and spec come from the stored object).
            status = new.get("status")
            mf = (new.get("metadata") or {}).get("managedFields")
            new = clone(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            if via_apply:
                new["metadata"]["managedFields"] = mf
        elif kind.status_subresource:
            # Main-resource writes cannot change status on kinds that have the subresource.
            if "status" in old:
                new["status"] = clone(old["status"])
            else:
                new.pop("status", None)
        meta = new.setdefault("metadata", {})
        if not via_apply:
            meta["managedFields"] = old_meta.get("managedFields")
        for f in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if f in old_meta:
                meta[f] = old_meta[f]
            else:
                meta.pop(f, None)
        if not meta.get("managedFields"):
            meta.pop("managedFields", None)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        self._finish(kind, new, namespace=namespace, name=name, creating=False)
        # Stored at the version it was created with, whichever version this write came through
        # (otherwise a no-op write through another served version would count as a change).
        new["apiVersion"] = old.get("apiVersion", kind.api_version)
        if not via_apply:
            self._record_update(kind, opts, old, new, now=now_rfc3339())
        if kind.plural == "customresourcedefinitions":
            new["status"] = self._crd_status(new)
            if self._spec_part(new) != self._spec_part(old):
                try:
                    kinds_from_crd(new)
                except (KeyError, TypeError) as exc:
                    raise invalid(
                        group=kind.group, kind=kind.kind, name=name, causes=[("spec", str(exc))]
                    ) from exc
        if kindrules.tracks_generation(kind) and self._spec_part(new) != self._spec_part(old):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if managed.comparable(new) == managed.comparable(old):
            return self.out(kind, old)  # no-op: nothing stored, no event, same resourceVersion
        if opts.dry_run:
            return self.out(kind, new)
        key = self.key(kind, namespace, name)
        rv = self.store.next_revision()
        if old_meta.get("deletionTimestamp") and not meta.get("finalizers"):
            meta["resourceVersion"] = str(rv)
            self._remove(kind, key, new, rv)
            return self.out(kind, new)
        meta["resourceVersion"] = str(rv)
        self.store.put(kind.group_resource, key, new, rv=rv, created=False, old=old)
        if kind.plural == "customresourcedefinitions":
            self.registry.register_crd(new)
        return self.out(kind, new)

    def delete(
        self, kind: ResourceKind, namespace: str | None, name: str, options: Any, *, dry_run: bool
    ) -> Obj:
        old = self._existing(kind, namespace, name)
        if kind.plural == "namespaces" and name in _UNDELETABLE_NAMESPACES:
            raise forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        if options is not None and not isinstance(options, dict):
            raise bad_request("DeleteOptions must be an object")
        pre = (options or {}).get("preconditions") or {}
        if not isinstance(pre, dict):
            raise bad_request("DeleteOptions.preconditions must be an object")
        # As rest.BeforeDelete checks them (the UID first), naming the Kind where the
        # resource would go: 'Operation cannot be fulfilled on Pod "p": the UID in ...'.
        for field_name, label, meaning in (
            ("uid", "UID", "deleted and then recreated"),
            ("resourceVersion", "ResourceVersion", "modified"),
        ):
            want, have = pre.get(field_name), old["metadata"][field_name]
            if want and want != have:
                raise conflict(
                    group=kind.group,
                    resource=kind.kind,
                    name=name,
                    why=f"the {label} in the precondition ({want}) does not match the {label} in "
                    f"record ({have}). The object might have been {meaning}",
                )
        key = self.key(kind, namespace, name)
        needs_wait = bool(old["metadata"].get("finalizers")) or kind.plural == "namespaces"
        if dry_run:
            return self.out(kind, old)
        if needs_wait:
            if old["metadata"].get("deletionTimestamp"):
                return self.out(kind, old)
            new = clone(old)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if kind.plural == "namespaces":
                new["status"] = {**(new.get("status") or {}), "phase": "Terminating"}
            rv = self.store.next_revision()
            new["metadata"]["resourceVersion"] = str(rv)
            self.store.put(kind.group_resource, key, new, rv=rv, created=False, old=old)
            if kind.plural == "namespaces":
                self._empty_namespace(name)
                return self.out(kind, self.store.get("namespaces", "", name) or new)
            return self.out(kind, new)
        rv = self.store.next_revision()
        final = {**old, "metadata": {**old["metadata"], "resourceVersion": str(rv)}}
        orphan = (options or {}).get("propagationPolicy") == "Orphan" or (options or {}).get(
            "orphanDependents"
        ) is True
        self._remove(kind, key, final, rv, orphan=orphan)
        return self.out(kind, final)

    def _remove(self, kind: ResourceKind, key: Key, final: Obj, rv: int, *, orphan: bool = False) -> None:
        self.store.delete(kind.group_resource, key, final, rv=rv)
        if kind.plural == "pods":
            self.logs.pop(key, None)
        if not orphan:
            self._collect_garbage(final)
        if kind.plural == "customresourcedefinitions":
            self._drop_crd(final)
        if kind.namespaced:
            self._maybe_finish_namespace(key[0])

    def _collect_garbage(self, owner: Obj) -> None:
        """Background-propagation garbage collection, done at once rather than by a controller.

        Dependents whose only owner is gone are deleted (finalizers still hold them); dependents
        with other owners just lose the dangling reference.
        """
        uid = owner["metadata"].get("uid")
        if not uid:
            return
        by_gr = {k.group_resource: k for k in self.registry.kinds()}
        for gr, key in self.store.dependents(str(uid)):
            kind = by_gr.get(gr)
            obj = self.store.get(gr, *key)
            if kind is None or obj is None:
                continue
            refs = obj["metadata"].get("ownerReferences") or []
            rest = [r for r in refs if not (isinstance(r, dict) and r.get("uid") == uid)]
            if not rest:
                self.delete(kind, key[0] or None, key[1], None, dry_run=False)
            else:
                new = clone(obj)
                new["metadata"]["ownerReferences"] = rest
                opts = WriteOptions(manager="generic-garbage-collector")
                self._update(kind, key[0] or None, key[1], obj, new, opts, via_apply=False)

    def _drop_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        gr = f"{names.get('plural')}.{spec.get('group')}"
        for obj in self.store.items(gr):
            rv = self.store.next_revision()
            final = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(rv)}}
            self.store.delete(
                gr, (obj["metadata"].get("namespace", ""), obj["metadata"]["name"]), final, rv=rv
            )
        self.registry.unregister_crd(crd["metadata"]["name"])
        self.store.end_watches(gr)

    def _empty_namespace(self, namespace: str) -> None:
        by_gr = {k.group_resource: k for k in self.registry.kinds()}
        for gr, key in list(self.store.namespaced_keys(namespace)):
            kind = by_gr.get(gr)
            if kind is None or not kind.namespaced:
                continue
            if self.store.get(gr, *key) is not None:
                self.delete(kind, namespace, key[1], None, dry_run=False)
        self._maybe_finish_namespace(namespace)

    def _maybe_finish_namespace(self, namespace: str) -> None:
        ns = self.store.get("namespaces", "", namespace)
        if ns is None or not ns["metadata"].get("deletionTimestamp") or ns["metadata"].get("finalizers"):
            return
        if any(True for _ in self.store.namespaced_keys(namespace)):
            return
        rv = self.store.next_revision()
        final = {**ns, "metadata": {**ns["metadata"], "resourceVersion": str(rv)}}
        self.store.delete("namespaces", ("", namespace), final, rv=rv)


# What events.k8s.io/v1 may not change on an Event (ValidateEventUpdate; core/v1 writes may):
# the core field paths, as the real server names them in its answer.
_EVENT_IMMUTABLE = ("involvedObject", "reason", "message", "source", "type", "action", "related",
                    "reportingComponent", "reportingInstance", "eventTime")


def _check_event_update(old: Obj, new: Obj, name: str) -> None:
    causes = []
    for f in _EVENT_IMMUTABLE:
        before, after = old.get(f) or None, new.get(f) or None
        if before != after:
            causes.append((f, f"Invalid value: {json.dumps(after)}: field is immutable"))
    if causes:
        raise invalid(group="", kind="Event", name=name, causes=causes)
