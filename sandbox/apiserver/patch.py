"""The three non-apply patch formats, as pure functions on JSON values.

- JSON patch (RFC 6902, ``application/json-patch+json``),
- JSON merge patch (RFC 7386, ``application/merge-patch+json``),
- strategic merge patch (``application/strategic-merge-patch+json``): built-in kinds only; lists
  named in :data:`MERGE_KEYS` merge item by item on their key (``containers`` by ``name``,
  ``volumeMounts`` by ``mountPath``, ...), ``finalizers`` merge as a set, every other list is
  replaced; the ``$patch`` (``replace``/``delete``/``merge``), ``$deleteFromPrimitiveList/`` and
  ``$setElementOrder/`` directives are understood.

Inputs are never mutated; every function returns a new value. Errors raise :class:`PatchError`
(the server answers 422 for a patch that does not apply, 400 for one that does not parse).
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.apiserver.jsonval import clone

# Strategic-merge keys of the built-in kinds (from the `patchMergeKey` tags of k8s.io/api), by
# field name. `ports` depends on where it sits (container ports merge on containerPort, service
# ports on port): see `merge_key`.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "secrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
# Lists of scalars that strategic merge treats as sets (`patchStrategy:"merge"` on a []string).
SET_LISTS = frozenset({"finalizers"})


class PatchError(ValueError):
    """The patch does not apply to the object (422), or is malformed (see ``bad_request``)."""

    def __init__(self, message: str, *, bad_request: bool = False) -> None:
        super().__init__(message)
        self.bad_request = bad_request


def merge_key(field: str, items: list[Any]) -> str | None:
    """The merge key of list ``field`` (None: atomic list), given its items."""
    if field == "ports":
        for it in items:
            if isinstance(it, dict):
                return "containerPort" if "containerPort" in it else "port"
        return "containerPort"
    return MERGE_KEYS.get(field)


# --- RFC 7386 merge patch ---------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return clone(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- RFC 6902 JSON patch ----------------------------------------------------------------------


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"invalid JSON pointer {path!r}", bad_request=True)
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}")
    i = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if i > limit:
        raise PatchError(f"array index {i} out of bounds")
    return i


def _parent(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError(f"doc is missing path: /{'/'.join(tokens)}")
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t, allow_end=False)]
        else:
            raise PatchError(f"doc is missing path: /{'/'.join(tokens)}")
    return cur


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"doc is missing path: /{'/'.join(tokens)}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, allow_end=False)]
    raise PatchError(f"doc is missing path: /{'/'.join(tokens)}")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, allow_end=True), value)
    else:
        raise PatchError(f"doc is missing path: /{'/'.join(tokens)}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"unable to remove nonexistent key: {last}: missing value")
        del parent[last]
    elif isinstance(parent, list):
        del parent[_index(parent, last, allow_end=False)]
    else:
        raise PatchError(f"doc is missing path: /{'/'.join(tokens)}")
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("json patch must be a JSON array of operations", bad_request=True)
    result = clone(doc)
    for op in ops:
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise PatchError(f"invalid json patch operation: {op!r}", bad_request=True)
        kind = op["op"]
        path = _pointer(op.get("path"))
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"{kind} operation does not apply: missing value", bad_request=True)
        if kind == "add":
            result = _add(result, path, clone(op["value"]))
        elif kind == "remove":
            result = _remove(result, path)
        elif kind == "replace":
            _get(result, path)  # must exist
            value = clone(op["value"])
            if not path:
                result = value
            else:
                parent = _parent(result, path)
                if isinstance(parent, list):
                    parent[_index(parent, path[-1], allow_end=False)] = value
                else:
                    parent[path[-1]] = value
        elif kind == "test":
            if _get(result, path) != op["value"]:
                raise PatchError(f"testing value /{'/'.join(path)} failed: test failed")
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from"))
            value = clone(_get(result, src))
            if kind == "move":
                result = _remove(result, src)
            result = _add(result, path, value)
        else:
            raise PatchError(f"Unexpected kind: {kind}", bad_request=True)
    return result


# --- strategic merge patch --------------------------------------------------------------------

_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
_ELEMENT_ORDER = "$setElementOrder/"


def strategic_merge(original: Any, patch: Any) -> Any:
    """Apply a strategic merge patch to ``original`` (a built-in kind's JSON)."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object", bad_request=True)
    merged = _smp_map(original if isinstance(original, dict) else {}, patch)
    if merged is None:
        return {}
    # A field name alone does not say it all: a ServiceAccount's imagePullSecrets carry no
    # patchMergeKey (replaced whole), where a PodSpec's merge on name.
    for f in ATOMIC_TOP_LEVEL.get(str((original or {}).get("kind")), ()):
        if isinstance(patch.get(f), list):
            merged[f] = [clone(it) for it in patch[f] if not (isinstance(it, dict) and "$patch" in it)]
    return merged


ATOMIC_TOP_LEVEL: dict[str, frozenset[str]] = {"ServiceAccount": frozenset({"imagePullSecrets"})}


def _smp_map(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | None:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: clone(v) for k, v in patch.items() if not k.startswith("$")}
    if directive not in (None, "merge"):
        raise PatchError(f"Unknown patch type: {directive}", bad_request=True)
    result = dict(original)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith(_ELEMENT_ORDER):
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            field = key[len(_DELETE_PRIMITIVE) :]
            drop = value if isinstance(value, list) else []
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in drop]
            continue
        if value is None:
            result.pop(key, None)
            continue
        current = result.get(key)
        if isinstance(value, dict):
            merged = _smp_map(current if isinstance(current, dict) else {}, value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(key, current if isinstance(current, list) else [], value)
        else:
            result[key] = value
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(field: str, original: list[Any], patch: list[Any]) -> list[Any]:
    # A `{"$patch": "replace"}` element replaces the whole list with the other elements.
    if any(isinstance(it, dict) and it.get("$patch") == "replace" for it in patch):
        return [clone(it) for it in patch if not (isinstance(it, dict) and "$patch" in it)]
    if field in SET_LISTS:
        as_set = list(original)
        for v in patch:
            if v not in as_set:
                as_set.append(v)
        return as_set
    key = merge_key(field, patch or original)
    if key is None or not all(isinstance(it, dict) for it in patch):
        return [clone(it) for it in patch]
    def index(item: Any) -> int:
        return next((i for i, cur in enumerate(original)
                     if isinstance(cur, dict) and cur.get(key) == item.get(key)), -1)

    patched: list[Any] = []  # the patch's elements, merged with the live ones they name
    named = set()
    for item in patch:
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}")
        named.add(json.dumps(item[key], sort_keys=True))
        idx = index(item)
        if item.get("$patch") == "delete":
            continue
        if idx < 0:
            patched.append({k: clone(v) for k, v in item.items() if v is not None and not k.startswith("$")})
        else:
            merged = _smp_map(original[idx], item)
            if merged is not None:
                patched.append(merged)
    server_only = [it for it in original
                   if not (isinstance(it, dict) and json.dumps(it.get(key), sort_keys=True) in named)]
    # mergeSortedSlice: server-only elements are inserted among the patch's, in the live order
    # where both are live; an element new in the patch goes before the server-only ones.
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(patched):
        if j >= len(patched):
            out.append(server_only[i])
            i += 1
        elif i >= len(server_only):
            out.append(patched[j])
            j += 1
        else:
            li, ri = index(server_only[i]), index(patched[j])
            if li >= 0 and ri >= 0 and li < ri:
                out.append(server_only[i])
                i += 1
            else:
                out.append(patched[j])
                j += 1
    return out
