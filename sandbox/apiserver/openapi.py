"""A minimal OpenAPI v3 surface: enough for kubectl to choose server-side field validation.

kubectl (1.27+) validates manifests before create/apply. It first asks ``/openapi/v3`` whether
the server supports the ``fieldValidation`` query parameter for the kind (a PATCH operation
tagged with the kind's ``x-kubernetes-group-version-kind`` that lists the parameter); if so it
leaves validation to the server, otherwise it downloads full schemas and, finding none, fails
unless ``--validate=false``. These documents declare exactly that operation per served kind,
and carry no schemas: ``kubectl explain`` has nothing to show, and kubectl's apply falls back
to its compiled-in types for strategic merge, as it does against servers without OpenAPI.
The server accepts ``fieldValidation`` and does not act on it (no schema validation).
"""

from __future__ import annotations

import hashlib

from sandbox.apiserver.registry import Registry, ResourceKind
from sandbox.apiserver.status import JSON

_PARAMS = ("fieldValidation", "fieldManager", "dryRun", "force")


def _prefix(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _path(kind: ResourceKind) -> str:
    base = "/" + _prefix(kind.group, kind.version)
    if kind.namespaced:
        return f"{base}/namespaces/{{namespace}}/{kind.plural}/{{name}}"
    return f"{base}/{kind.plural}/{{name}}"


def group_version_doc(registry: Registry, group: str, version: str) -> JSON | None:
    kinds = registry.in_group_version(group, version)
    if kinds is None:
        return None
    paths: JSON = {}
    for k in sorted(kinds, key=lambda k: k.plural):
        paths[_path(k)] = {
            "patch": {
                "operationId": f"patch{k.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": k.group, "version": k.version, "kind": k.kind},
                "parameters": [{"name": p, "in": "query", "schema": {"type": "string"}} for p in _PARAMS],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.31.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def root(registry: Registry) -> JSON:
    gvs = [("", "v1")] + [(g, v) for g, versions in registry.group_versions() for v in versions]
    paths: JSON = {}
    for g, v in gvs:
        # The hash lets clients cache per document; it changes when the served kinds change.
        kinds = registry.in_group_version(g, v) or []
        digest = hashlib.sha256(",".join(sorted(k.plural for k in kinds)).encode()).hexdigest()[:16].upper()
        prefix = _prefix(g, v)
        paths[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}?hash={digest}"}
    return {"paths": paths}
