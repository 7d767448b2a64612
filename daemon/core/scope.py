"""What a scope (namespaces and a label selector) means for any object, desired ones included.

The informer hands the scope to the API server, which applies ``labelSelector`` only to the
InferenceServices it lists: the desired state never passes through it. Left alone, a narrowed
``check -l app=iris`` compared every desired object outside the selector with a World that
could not hold it (a false "does not exist" drift), and ``check -n nosuch`` still listed the
desired models. So ``check`` narrows the desired state by the same scope, with kubectl's rule
(``kubectl apply -f DIR -l SELECTOR``): the selector applies to the object's *own* labels, not
to those of the InferenceService it serves. A ServiceAccount, ServingRuntime, Secret or
AuthorizationPolicy without the selector's labels is outside ``-l``, as kubectl would skip it;
a DerivedSecret is judged by the Secret it renders (its ``labels`` plus
``app.kubernetes.io/managed-by``). ``-n`` keeps the objects in those namespaces (every desired
kind is namespaced). An object outside the scope is neither diffed nor diagnosed.

``run`` does not narrow its desired state: it keeps every object it was told to own applied,
and its scope says which InferenceServices it diagnoses. One combination cannot work there: a
desired InferenceService that ``scope.selector`` excludes. The API server drops it from the
informer's watch, so the daemon would never see it, call it missing on every pass and apply it
again each time; :func:`unseen_desired` names such objects and the settings are refused.

Pure: manifests and the scope in, the objects in scope out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from daemon.core.desired import DesiredState
from daemon.core.label_selector import parse_selector, selector_matches
from daemon.core.objects import ObjectRef


def in_scope(obj: Mapping[str, Any], *, namespaces: Collection[str], selector: str | None) -> bool:
    """Whether ``obj`` (a manifest) lies in ``namespaces`` (empty: all) and matches ``selector``
    by its own labels (``None``/empty: every object). ``selector`` must be valid
    (:func:`daemon.core.label_selector.selector_problem`); :class:`ValueError` otherwise."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    if namespaces and ns is not None and str(ns) not in namespaces:
        return False
    if not selector:
        return True
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    return selector_matches(parse_selector(selector), labels)


def narrow_desired(desired: DesiredState, *, namespaces: Collection[str],
                   selector: str | None) -> DesiredState:
    """The desired state without the objects outside the scope (see the module docstring)."""
    if not namespaces and not selector:
        return desired
    manifests = tuple(m for m in desired.manifests
                      if in_scope(m, namespaces=namespaces, selector=selector))
    derived = tuple(d for d in desired.derived
                    if in_scope(d.render(None), namespaces=namespaces, selector=selector))
    kept = {ObjectRef.of(dict(m)) for m in manifests} | {d.ref for d in derived}
    sources = {ref: where for ref, where in desired.sources.items() if ref in kept}
    return replace(desired, manifests=manifests, derived=derived, sources=sources)


def unseen_desired(desired: DesiredState, *, selector: str | None) -> list[str]:
    """The desired InferenceServices ``selector`` excludes (the informer sends it to the API
    server on the InferenceService watch only), each as a problem for the settings' reader."""
    if not selector:
        return []
    return [f"desired InferenceService {ref.namespace}/{ref.name} ({desired.sources.get(ref, '?')}) does not "
            f"match scope.selector {selector!r}: the daemon would never see it and would apply it again on "
            f"every pass; add the selector's labels to it, or widen the selector"
            for m in desired.manifests if m.get("kind") == "InferenceService"
            and not in_scope(m, namespaces=(), selector=selector)
            for ref in [ObjectRef.of(dict(m))]]
