"""Server-side apply and ``metadata.managedFields``: who owns which field.

A *field set* is a set of paths in the FieldsV1 encoding of structured-merge-diff: each path is
a tuple of tokens ``f:<field>`` (map key), ``k:{"name":"c"}`` (keyed list item), ``v:<json>``
(set-list value) and ``.`` (the list item itself). Leaves are members; their ancestors are only
implied. ``to_fields_v1``/``from_fields_v1`` convert to and from the nested-dict wire form seen
in ``metadata.managedFields[].fieldsV1``.

:func:`apply` is server-side apply for one manager:

1. the applied config's field set is what the manager now owns;
2. fields it sets that another manager owns *with a different value* are conflicts: 409 naming
   the manager, unless ``force``, which takes the fields away from their owners;
3. the config is merged into the live object (maps recursively, keyed lists by key, set lists as
   sets, everything else replaced);
4. fields the manager owned by its previous apply and no longer sends are removed, unless
   another manager still owns them (or something beneath them).

:func:`record_update` does the bookkeeping for ordinary writes (create, PUT, non-apply patch):
the writer takes every field whose value it changed, away from any previous owner, and fields
that disappeared leave every set. Nothing here touches the store or the clock; the caller
passes ``now``.

Lists are keyed as for strategic merge (:data:`sandbox.apiserver.patch.MERGE_KEYS`) on built-in
kinds and atomic on custom resources, as the real server does for CRDs whose schema does not
declare ``x-kubernetes-list-type: map``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sandbox.apiserver.jsonval import clone
from sandbox.apiserver.patch import SET_LISTS, merge_key

Path = tuple[str, ...]
FieldSet = frozenset[Path]

# Metadata fields the server owns; never part of a manager's field set.
_SERVER_META = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "generateName",
    }
)


@dataclass(frozen=True, kw_only=True)
class Scope:
    """Which part of an object a write covers, and how its lists are keyed."""

    builtin: bool  # keyed lists on built-in kinds; atomic lists on custom resources
    status_only: bool = False  # a write through the /status subresource
    exclude_status: bool = False  # a main-resource write on a kind with a status subresource


@dataclass(frozen=True, kw_only=True)
class Conflict:
    manager: str
    operation: str
    api_version: str
    path: Path
    subresource: str = ""


class ApplyConflict(Exception):
    def __init__(self, conflicts: list[Conflict]) -> None:
        self.conflicts = conflicts
        n = len(conflicts)
        if n == 1:
            c = conflicts[0]
            text = f"Apply failed with 1 conflict: conflict with {_who(c)}: {render_path(c.path)}"
        else:
            # Grouped by manager, managers in name order, as the apiserver's fieldmanager prints them.
            by_manager: dict[str, list[str]] = {}
            for c in sorted(conflicts, key=_who):
                by_manager.setdefault(_who(c), []).append(render_path(c.path))
            blocks = [
                f"conflicts with {who}:" + "".join(f"\n- {p}" for p in paths)
                for who, paths in by_manager.items()
            ]
            text = f"Apply failed with {n} conflicts: " + "\n".join(blocks)
        super().__init__(text)


def _who(c: Conflict) -> str:
    who = f'"{c.manager}"'
    if c.subresource:
        who += f' with subresource "{c.subresource}"'
    return who if c.operation == "Apply" else f"{who} using {c.api_version}"


def render_path(path: Path) -> str:
    """``.spec.containers[name="c"].image``: how the real server names a field in messages."""
    out = []
    for tok in path:
        if tok.startswith("f:"):
            out.append("." + tok[2:])
        elif tok.startswith("k:"):
            key = json.loads(tok[2:])
            out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]")
        elif tok.startswith("v:"):
            out.append(f"[={tok[2:]}]")
    return "".join(out)


# --- field sets -------------------------------------------------------------------------------


def _key_token(key: str, item: dict[str, Any]) -> str:
    return "k:" + json.dumps({key: item[key]}, separators=(",", ":"), sort_keys=True)


def _list_key(field: str, items: list[Any], builtin: bool) -> str | None:
    if not builtin or not items or not all(isinstance(it, dict) for it in items):
        return None
    key = merge_key(field, items)
    if key is None or not all(key in it for it in items):
        return None
    return key


# Keyed lists whose elements are atomic structs (``+structType=atomic``: a ServiceAccount's
# ``secrets`` are ObjectReferences): managedFields name the element, not its fields.
ATOMIC_ITEMS = frozenset({"secrets"})


def _walk(value: Any, prefix: Path, field: str, builtin: bool, out: set[Path]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            if v is None:
                continue
            _walk(v, (*prefix, "f:" + k), k, builtin, out)
        return
    if isinstance(value, list) and value:
        if field in SET_LISTS and all(not isinstance(v, dict | list) for v in value):
            for v in value:
                out.add((*prefix, "v:" + json.dumps(v, separators=(",", ":"))))
            return
        key = _list_key(field, value, builtin)
        if key is not None:
            for item in value:
                kp = (*prefix, _key_token(key, item))
                if field in ATOMIC_ITEMS:
                    out.add(kp)  # the element is owned whole: no "." and no member fields
                    continue
                out.add((*kp, "."))
                _walk(item, kp, "", builtin, out)
            return
    out.add(prefix)


def field_set(obj: dict[str, Any], scope: Scope) -> FieldSet:
    """The members of ``obj`` a writer in ``scope`` can own."""
    out: set[Path] = set()
    for k, v in obj.items():
        if k in ("apiVersion", "kind") or v is None:
            continue
        if scope.status_only and k != "status":
            continue
        if scope.exclude_status and k == "status":
            continue
        if k == "metadata" and isinstance(v, dict):
            for mk, mv in v.items():
                if mk in _SERVER_META or mv is None:
                    continue
                _walk(mv, ("f:metadata", "f:" + mk), mk, scope.builtin, out)
            continue
        _walk(v, ("f:" + k,), k, scope.builtin, out)
    return frozenset(out)


_MISSING = object()


def value_at(obj: Any, path: Path) -> Any:
    """The value a path names in ``obj`` (``_MISSING`` when absent)."""
    cur = obj
    for tok in path:
        if tok == ".":
            continue
        if tok.startswith("f:"):
            if not isinstance(cur, dict) or tok[2:] not in cur:
                return _MISSING
            cur = cur[tok[2:]]
        elif tok.startswith("k:"):
            if not isinstance(cur, list):
                return _MISSING
            want = json.loads(tok[2:])
            cur = next(
                (it for it in cur if isinstance(it, dict) and all(it.get(k) == v for k, v in want.items())),
                _MISSING,
            )
            if cur is _MISSING:
                return _MISSING
        elif tok.startswith("v:"):
            if not isinstance(cur, list):
                return _MISSING
            v = json.loads(tok[2:])
            return v if v in cur else _MISSING
    return cur


def _remove_at(obj: Any, path: Path) -> None:
    toks = [t for t in path if t != "."]
    if not toks:
        return
    parent = value_at(obj, tuple(toks[:-1]))
    last = toks[-1]
    if parent is _MISSING:
        return
    if last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
    elif last.startswith("k:") and isinstance(parent, list):
        want = json.loads(last[2:])
        parent[:] = [
            it for it in parent if not (isinstance(it, dict) and all(it.get(k) == v for k, v in want.items()))
        ]
    elif last.startswith("v:") and isinstance(parent, list):
        v = json.loads(last[2:])
        parent[:] = [x for x in parent if x != v]


def to_fields_v1(fields: FieldSet) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(fields):
        node = root
        for tok in path:
            node = node.setdefault(tok, {})
    return root


def from_fields_v1(tree: Any, prefix: Path = ()) -> FieldSet:
    out: set[Path] = set()
    if isinstance(tree, dict):
        for tok, sub in tree.items():
            p = (*prefix, tok)
            if isinstance(sub, dict) and sub:
                out |= from_fields_v1(sub, p)
            else:
                out.add(p)
    return frozenset(out)


# --- managedFields entries --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Entry:
    manager: str
    operation: str  # "Apply" or "Update"
    api_version: str
    time: str
    fields: FieldSet
    subresource: str = ""

    @property
    def ident(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(self.fields),
        }
        if self.subresource:
            d["subresource"] = self.subresource
        return d


def entries_of(obj: dict[str, Any]) -> list[Entry]:
    out = []
    for e in (obj.get("metadata") or {}).get("managedFields") or []:
        if not isinstance(e, dict):
            continue
        out.append(
            Entry(
                manager=str(e.get("manager", "")),
                operation=str(e.get("operation", "Update")),
                api_version=str(e.get("apiVersion", "")),
                time=str(e.get("time", "")),
                fields=from_fields_v1(e.get("fieldsV1") or {}),
                subresource=str(e.get("subresource", "")),
            )
        )
    return out


def _set_entries(obj: dict[str, Any], entries: list[Entry]) -> None:
    meta = obj.setdefault("metadata", {})
    kept = [e.to_json() for e in entries if e.fields]
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)


def _owned_under(fields: FieldSet, prefix: Path) -> bool:
    n = len(prefix)
    return any(p[:n] == prefix for p in fields)


# --- apply ------------------------------------------------------------------------------------


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _merge(live: Any, applied: Any, field: str, builtin: bool) -> Any:
    if isinstance(live, dict) and isinstance(applied, dict):
        out = dict(live)
        for k, v in applied.items():
            out[k] = _merge(live.get(k), v, k, builtin)
        return out
    if isinstance(live, list) and isinstance(applied, list):
        if field in SET_LISTS:
            return live + [v for v in applied if v not in live]
        key = _list_key(field, applied, builtin)
        if (key is not None and _list_key(field, live, builtin) == key) or (key is not None and not live):
            out_list = list(live)
            for item in applied:
                idx = next((i for i, cur in enumerate(out_list) if cur.get(key) == item[key]), None)
                if idx is None:
                    out_list.append(clone(item))
                else:
                    out_list[idx] = _merge(out_list[idx], item, "", builtin)
            return out_list
    return clone(applied)


def apply(
    live: dict[str, Any],
    config: dict[str, Any],
    *,
    manager: str,
    api_version: str,
    scope: Scope,
    force: bool,
    now: str,
) -> dict[str, Any]:
    """Server-side apply ``config`` by ``manager`` onto ``live`` (``{}`` when creating).

    Returns the new object with its managedFields updated; raises :class:`ApplyConflict`.
    """
    config = _strip_nulls(config)
    subresource = "status" if scope.status_only else ""
    new_set = field_set(config, scope)
    entries = entries_of(live)
    mine = next((e for e in entries if e.ident == (manager, "Apply", subresource)), None)
    old_set = mine.fields if mine else frozenset()
    others = [e for e in entries if e.manager != manager]

    conflicts: list[Conflict] = []
    lost: dict[tuple[str, str, str], set[Path]] = {}
    for e in others:
        for p in sorted(e.fields & new_set):
            if p[-1] == ".":
                continue
            if value_at(live, p) != value_at(config, p):
                conflicts.append(
                    Conflict(
                        manager=e.manager,
                        operation=e.operation,
                        api_version=e.api_version,
                        path=p,
                        subresource=e.subresource,
                    )
                )
                lost.setdefault(e.ident, set()).add(p)
    if conflicts and not force:
        raise ApplyConflict(conflicts)

    body = {k: v for k, v in config.items() if k not in ("apiVersion", "kind")}
    meta = dict(body.get("metadata") or {})
    for k in _SERVER_META:
        meta.pop(k, None)
    body["metadata"] = meta
    if scope.status_only:
        body = {"status": body.get("status")} if "status" in body else {}
    elif scope.exclude_status:
        body.pop("status", None)
    merged: dict[str, Any] = _merge(clone(live), body, "", scope.builtin)

    others_after = [
        Entry(
            manager=e.manager,
            operation=e.operation,
            api_version=e.api_version,
            time=e.time,
            fields=e.fields - frozenset(lost.get(e.ident, ())),
            subresource=e.subresource,
        )
        for e in entries
        if e.ident != (manager, "Apply", subresource)
    ]
    others_union: set[Path] = set()
    for e in others_after:
        if e.manager != manager or e.operation != "Apply":
            others_union |= e.fields
    frozen_union = frozenset(others_union)
    # Drop what this manager stopped sending, unless someone else still owns it (or beneath it).
    # Shallowest first, so a dropped list item goes whole before its fields are looked at.
    for p in sorted(old_set - new_set, key=lambda p: (len(p) - (p[-1] == "."), p[-1] != ".")):
        prefix = p[:-1] if p[-1] == "." else p
        if _owned_under(frozen_union, prefix):
            continue
        _remove_at(merged, prefix)

    mine_new = Entry(
        manager=manager,
        operation="Apply",
        api_version=api_version,
        time=mine.time if (mine and mine.fields == new_set and not lost) else now,
        fields=new_set,
        subresource=subresource,
    )
    # The real server keeps managers in a stable order; keep the existing position when updating.
    result_entries: list[Entry] = []
    placed = False
    for e in entries:
        if e.ident == mine_new.ident:
            result_entries.append(mine_new)
            placed = True
        else:
            result_entries.append(next(o for o in others_after if o.ident == e.ident))
    if not placed:
        result_entries.append(mine_new)
    _set_entries(merged, result_entries)
    return merged


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    api_version: str,
    scope: Scope,
    now: str,
) -> None:
    """Record an ordinary write of ``new`` (replacing ``old``; None on create) by ``manager``."""
    old_obj = old or {}
    subresource = "status" if scope.status_only else ""
    new_fields = field_set(new, scope)
    changed = frozenset(p for p in new_fields if value_at(old_obj, p) != value_at(new, p))
    entries = entries_of(old_obj)
    result: list[Entry] = []
    mine: Entry | None = None
    for e in entries:
        # Fields that no longer exist leave every set; fields this writer changed leave the others.
        kept = frozenset(p for p in e.fields if value_at(new, p) is not _MISSING)
        if e.ident == (manager, "Update", subresource):
            mine = Entry(
                manager=manager,
                operation="Update",
                api_version=api_version,
                time=now if changed else e.time,
                fields=kept | changed,
                subresource=subresource,
            )
            result.append(mine)
            continue
        kept = kept - changed
        if kept != e.fields:
            e = Entry(
                manager=e.manager,
                operation=e.operation,
                api_version=e.api_version,
                time=e.time,
                fields=kept,
                subresource=e.subresource,
            )
        result.append(e)
    if mine is None and changed:
        result.append(
            Entry(
                manager=manager,
                operation="Update",
                api_version=api_version,
                time=now,
                fields=changed,
                subresource=subresource,
            )
        )
    _set_entries(new, result)


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without managedFields timestamps: two writes that differ only there are no-ops."""
    meta = dict(obj.get("metadata") or {})
    mf = meta.get("managedFields")
    if isinstance(mf, list):
        meta["managedFields"] = [
            {k: v for k, v in e.items() if k != "time"} for e in mf if isinstance(e, dict)
        ]
    out = dict(obj)
    out["metadata"] = meta
    return out
