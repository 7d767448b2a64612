"""Drift: how a live object differs from its desired manifest, path by path.

Semantics follow server-side apply's ownership idea: the daemon owns only the fields its
manifest *sets*, so only those are compared.

* Fields the desired object does not set are never drift (server defaults such as
  ``terminationMessagePath``, other managers' annotations, ``status``…).
* ``metadata``: only ``labels`` and ``annotations`` are compared, key by key (identity,
  ``resourceVersion``, ``managedFields``, ``uid``… are bookkeeping, not configuration).
* Lists of mappings that all carry ``name`` are *keyed* (like SSA's ``listType=map``):
  items are matched by name, order is ignored, and extra live items belong to someone else.
  Every other list (``args``, AuthorizationPolicy ``rules``) is atomic: compared as a whole,
  so an extra rule admitting a whole namespace *is* drift.
* A Secret's ``data``/``stringData`` are compared by hash (the World holds
  ``sha256:`` hashes) and a difference is shown as ``<hash differs>``, never as a value.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from daemon.core.objects import ObjectRef
from daemon.core.world import secret_value_hash

ABSENT = "<absent>"
HASH_DIFFERS = "<hash differs>"
_REPR_MAX = 120
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_COMPARED_METADATA = ("labels", "annotations")
_SECRET_FIELDS = ("data", "stringData")


@dataclass(frozen=True, kw_only=True)
class DriftPath:
    path: str
    """``spec.predictor.model.runtime``, ``metadata.annotations["serving.kserve.io/s3-region"]``,
    ``spec.containers[name=kserve-container].image``."""
    desired_repr: str
    live_repr: str

    def __str__(self) -> str:
        return f"{self.path}: want {self.desired_repr}, have {self.live_repr}"


@dataclass(frozen=True, kw_only=True)
class Drift:
    ref: ObjectRef
    missing: bool = False
    paths: tuple[DriftPath, ...] = ()

    @property
    def drifted(self) -> bool:
        return self.missing or bool(self.paths)

    def describe(self) -> list[str]:
        """Evidence lines (safe to log: secret values never appear)."""
        if self.missing:
            return [f"{self.ref} does not exist"]
        return [f"{self.ref}: {p}" for p in self.paths]

    def to_dict(self) -> dict[str, Any]:
        return {"ref": str(self.ref), "missing": self.missing,
                "paths": [{"path": p.path, "desired": p.desired_repr, "live": p.live_repr}
                          for p in self.paths]}


def diff(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> Drift:
    """Compare ``live`` against the fields ``desired`` sets. ``live=None``: the object is missing."""
    ref = ObjectRef.of(dict(desired))
    if live is None:
        return Drift(ref=ref, missing=True)
    out: list[DriftPath] = []
    is_secret = desired.get("kind") == "Secret"
    for key, want in desired.items():
        if key in ("apiVersion", "kind", "status"):
            continue
        have = live.get(key)
        if key == "metadata":
            want_meta = want if isinstance(want, Mapping) else {}
            have_meta = have if isinstance(have, Mapping) else {}
            for mk in _COMPARED_METADATA:
                if mk in want_meta:
                    _compare_map_keys(want_meta[mk], have_meta.get(mk), f"metadata.{mk}", out)
        elif is_secret and key in _SECRET_FIELDS:
            _compare_secret(want, live, out, base64_encoded=key == "data")
        else:
            _compare(want, have, key, out, present=key in live)
    return Drift(ref=ref, paths=tuple(out))


def diff_all(desired: Sequence[Mapping[str, Any]],
             lookup: Mapping[tuple[str, str | None, str], Mapping[str, Any]]) -> list[Drift]:
    """Diff each desired object against ``lookup[(kind, namespace, name)]``."""
    drifts = []
    for d in desired:
        r = ObjectRef.of(dict(d))
        drifts.append(diff(d, lookup.get((r.kind, r.namespace, r.name))))
    return drifts


def _repr(value: Any) -> str:
    if isinstance(value, Mapping):
        value = dict(value)
    try:
        text = json.dumps(_plain(value), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _REPR_MAX else text[: _REPR_MAX - 1] + "…"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENT.match(key) else f"{path}[{json.dumps(key)}]"


def _is_keyed(items: Sequence[Any]) -> bool:
    return bool(items) and all(isinstance(i, Mapping) and isinstance(i.get("name"), str) for i in items)


def _same_scalar(want: Any, have: Any) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have
    if isinstance(want, int | float) and isinstance(have, int | float):
        return float(want) == float(have)
    return bool(want == have)


def _compare(want: Any, have: Any, path: str, out: list[DriftPath], *, present: bool = True) -> None:
    if not present:
        out.append(DriftPath(path=path, desired_repr=_repr(want), live_repr=ABSENT))
        return
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            out.append(DriftPath(path=path, desired_repr=_repr(want), live_repr=_repr(have)))
            return
        for k, v in want.items():
            _compare(v, have.get(k), _child(path, str(k)), out, present=k in have)
        return
    if isinstance(want, list | tuple):
        if not isinstance(have, list | tuple):
            out.append(DriftPath(path=path, desired_repr=_repr(want), live_repr=_repr(have)))
            return
        if _is_keyed(want) and all(isinstance(i, Mapping) for i in have):
            by_name = {i.get("name"): i for i in have}
            for item in want:
                name = item["name"]
                p = f"{path}[name={name}]"
                if name not in by_name:
                    out.append(DriftPath(path=p, desired_repr=_repr(item), live_repr=ABSENT))
                else:
                    _compare(item, by_name[name], p, out)
            return
        if not _same_list(want, have):
            out.append(DriftPath(path=path, desired_repr=_repr(want), live_repr=_repr(have)))
        return
    if not _same_scalar(want, have):
        out.append(DriftPath(path=path, desired_repr=_repr(want), live_repr=_repr(have)))


def _same_list(want: Sequence[Any], have: Sequence[Any]) -> bool:
    return len(want) == len(have) and all(_same_value(w, h) for w, h in zip(want, have, strict=True))


def _same_value(want: Any, have: Any) -> bool:
    """Exact structural equality (atomic lists: the whole item must match)."""
    if isinstance(want, Mapping):
        return isinstance(have, Mapping) and set(want) == set(have) and all(
            _same_value(v, have[k]) for k, v in want.items())
    if isinstance(want, list | tuple):
        return isinstance(have, list | tuple) and _same_list(want, have)
    return _same_scalar(want, have)


def _compare_map_keys(want: Any, have: Any, path: str, out: list[DriftPath]) -> None:
    want_m = want if isinstance(want, Mapping) else {}
    have_m = have if isinstance(have, Mapping) else {}
    for k, v in want_m.items():
        p = _child(path, str(k))
        if k not in have_m:
            out.append(DriftPath(path=p, desired_repr=_repr(v), live_repr=ABSENT))
        elif not _same_scalar(v, have_m[k]):
            out.append(DriftPath(path=p, desired_repr=_repr(v), live_repr=_repr(have_m[k])))


def _hashed(value: Any, *, base64_encoded: bool) -> str:
    v = str(value)
    if v.startswith("sha256:"):
        return v
    if not base64_encoded:
        v = base64.b64encode(v.encode()).decode()
    return secret_value_hash(v)


def _secret_values(obj: Mapping[str, Any]) -> dict[str, str]:
    vals = {k: _hashed(v, base64_encoded=True) for k, v in (obj.get("data") or {}).items()}
    vals.update({k: _hashed(v, base64_encoded=False) for k, v in (obj.get("stringData") or {}).items()})
    return vals


def _compare_secret(want: Any, live: Mapping[str, Any], out: list[DriftPath], *,
                    base64_encoded: bool) -> None:
    # Called per desired field (data or stringData); both map onto the live ``data``.
    if not isinstance(want, Mapping):
        return
    have = _secret_values(live)
    field_ = "data"
    for k, v in want.items():
        p = _child(field_, str(k))
        want_h = _hashed(v, base64_encoded=base64_encoded)
        if k not in have:
            out.append(DriftPath(path=p, desired_repr="<set>", live_repr=ABSENT))
        elif have[k] != want_h:
            out.append(DriftPath(path=p, desired_repr=HASH_DIFFERS, live_repr=HASH_DIFFERS))
