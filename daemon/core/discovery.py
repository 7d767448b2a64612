"""Which InferenceServices a pass diagnoses: every one in scope, with no configuration.

A real cluster holds hundreds of InferenceServices that nobody lists in a settings file, so
the daemon and ``check`` diagnose *every* InferenceService they can read. The settings only
narrow that (``scope.namespaces``; ``scope.selector`` is a label selector the informer hands
to the API server, so objects outside it never reach the World) and override per model
(``models:``: protocol, canary; an override never widens the scope). The desired state's
InferenceServices in scope (a selector judged by their own labels, :mod:`daemon.core.scope`)
are included even before they exist, so their root causes are named statically before a pod
tries.

The canary (a known input and its answer) is opt-in per InferenceService: the settings'
override, else the ``kserve-warden.io/canary`` annotation on the object, a JSON document
``{"instances": [[...]], "expected": [...]}``. An annotation that does not parse is reported
in :attr:`Discovered.problems` (the model is still diagnosed, without a canary).

Pure: the World and the desired manifests in, :class:`Discovered` out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from daemon.core.scope import in_scope
from daemon.core.settings import Canary, ModelSettings, Settings
from daemon.core.world import World

CANARY_ANNOTATION = "kserve-warden.io/canary"


@dataclass(frozen=True, kw_only=True)
class Discovered:
    models: tuple[ModelSettings, ...]
    """One per InferenceService in scope (live or desired, or named in ``models:``), by key."""
    problems: Mapping[str, str]
    """``namespace/name`` → why its canary annotation was ignored."""


def protocol_of(isvc: Mapping[str, Any] | None) -> Literal["v1", "v2"]:
    """The REST protocol the predictor speaks: ``protocolVersion`` (``v2``/``grpc-v2``), else v1."""
    predictor = ((isvc or {}).get("spec") or {}).get("predictor") or {}
    model = predictor.get("model") if isinstance(predictor.get("model"), dict) else {}
    version = str((model or {}).get("protocolVersion") or "").lower()
    return "v2" if version in ("v2", "grpc-v2") else "v1"


def parse_canary(text: str) -> Canary:
    """The canary annotation's JSON; :class:`ValueError` with the reason when it is not one."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{CANARY_ANNOTATION}: not JSON ({exc.msg})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{CANARY_ANNOTATION}: must be a JSON object with instances and expected")
    instances, expected = doc.get("instances"), doc.get("expected")
    if not isinstance(instances, list) or not instances:
        raise ValueError(f"{CANARY_ANNOTATION}: instances must be a non-empty list")
    if not isinstance(expected, list) or len(expected) != len(instances):
        raise ValueError(f"{CANARY_ANNOTATION}: expected must list one answer per instance")
    rows: list[tuple[Any, ...]] = []
    for row in instances:
        rows.append(tuple(row) if isinstance(row, list) else (row,))
    return Canary(instances=tuple(rows), expected=tuple(expected))


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def discover(*, world: World, desired: Sequence[Mapping[str, Any]], settings: Settings) -> Discovered:
    """Every InferenceService in scope, each with its overrides, in ``namespace/name`` order."""
    scope_ns = frozenset(settings.scope.namespaces)
    selector = settings.scope.selector
    objs: dict[tuple[str, str], Mapping[str, Any]] = {}
    for d in desired:
        # A desired InferenceService outside the selector (by its own labels) is out of scope.
        if d.get("kind") == "InferenceService" and in_scope(d, namespaces=(), selector=selector):
            objs[_key(d)] = d
    for live in world.list("InferenceService"):
        objs[_key(live)] = live  # the live object wins: its annotations are what KServe sees
    overrides = {(m.namespace, m.name): m for m in settings.models}
    # ``models:`` overrides, it does not widen the scope: an override outside the namespaces is
    # not listed, nor, under a selector, one whose object the World and the desired state lack
    # (the API server filtered it out, or it does not exist: kubectl lists neither).
    named = {k for k in overrides if not selector or k in objs}
    keys = {k for k in objs.keys() | named if not scope_ns or k[0] in scope_ns}
    models: list[ModelSettings] = []
    problems: dict[str, str] = {}
    for ns, name in sorted(keys):
        obj = objs.get((ns, name))
        over = overrides.get((ns, name))
        canary = over.canary if over is not None else None
        if canary is None and obj is not None:
            text = ((obj.get("metadata") or {}).get("annotations") or {}).get(CANARY_ANNOTATION)
            if text is not None:
                try:
                    canary = parse_canary(str(text))
                except ValueError as exc:
                    problems[f"{ns}/{name}"] = str(exc)
        protocol = over.protocol if over is not None and over.protocol is not None else protocol_of(obj)
        models.append(ModelSettings(namespace=ns, name=name, protocol=protocol, canary=canary))
    return Discovered(models=tuple(models), problems=problems)
