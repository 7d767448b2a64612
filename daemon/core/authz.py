"""Istio AuthorizationPolicy evaluation, statically, for one source → workload request.

The daemon asks "would the model's storage-initializer (principal
``cluster.local/ns/user-example-com/sa/iris-sa``) be admitted by the object store's
sidecar?" *before* any pod tries (``istioctl analyze`` does not check principals against
ServiceAccounts). The evaluation follows Istio's documented order:

1. Policies that apply to the workload: those in the workload's namespace whose
   ``selector.matchLabels`` match its labels (no selector: the whole namespace), and those
   in the root namespace (``istio-system``), which apply mesh-wide.
2. ``CUSTOM`` policies are external authorizers: not judged here (noted in the reason).
3. Any matching ``DENY`` rule → denied.
4. No ``ALLOW`` policy applies → allowed. Otherwise a matching ``ALLOW`` rule is needed.

A rule matches when all of its ``from``, ``to`` and ``when`` match; ``from`` matches when any
of its sources does; a source matches when every field it sets does (``principals``,
``notPrincipals``, ``namespaces``, ``notNamespaces``...). Values support Istio's forms:
exact, ``*`` (any non-empty), ``prefix*`` and ``*suffix``. An ALLOW policy with no rules
admits nothing; a rule ``{}`` admits everything.

Attributes we cannot know statically (request paths, IP blocks, JWT claims) are judged
*in the policy's favour of not surprising the operator*: for ALLOW they are assumed to match
(we report "would be admitted for some requests"), for DENY they are assumed not to match
(we only report a denial that surely applies). ``principal=None`` is a plaintext caller
(no sidecar): it has no identity and matches no principal or namespace rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_UNKNOWN = "unknown"


@dataclass(frozen=True, kw_only=True)
class AuthzResult:
    allowed: bool
    deciding_policy: str | None
    """``namespace/name`` of the policy that decided, or ``None`` (no policy applied)."""
    reason: str
    applicable: tuple[str, ...] = ()
    """``namespace/name`` of every policy that applies to the workload."""
    unevaluated: tuple[str, ...] = ()
    """What could change the verdict but was not judged: CUSTOM policies (external
    authorizers), and DENY/ALLOW rules whose outcome depends on attributes not known
    statically (paths, IP blocks, JWT claims, ``when`` keys). The caller reports these as
    "not evaluated", never as healthy by silence."""


def match_value(pattern: str, value: str | None) -> bool:
    """Istio string match: exact, ``*`` (any non-empty), ``prefix*``, ``*suffix``."""
    if value is None or value == "":
        return False
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return pattern == value


def _principal(p: str | None) -> str | None:
    if p is None:
        return None
    return p.removeprefix("spiffe://")


def _applies(policy: Mapping[str, Any], *, workload_namespace: str, workload_labels: Mapping[str, str],
             root_namespace: str) -> bool:
    meta = policy.get("metadata") or {}
    ns = meta.get("namespace")
    if ns not in (workload_namespace, root_namespace):
        return False
    spec = policy.get("spec") or {}
    if spec.get("targetRef") or spec.get("targetRefs"):
        # Gateway / waypoint attachment: not a sidecar policy.
        return False
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    return all(workload_labels.get(k) == v for k, v in sel.items())


def _values_match(patterns: Sequence[str] | None, value: str | None) -> bool:
    return any(match_value(str(p), value) for p in (patterns or ()))


def _source_matches(src: Mapping[str, Any], *, principal: str | None, namespace: str | None) -> bool | str:
    """True / False, or ``"unknown"`` when the source uses attributes we cannot judge."""
    result: bool | str = True
    if "principals" in src and not _values_match(src["principals"], principal):
        return False
    if "notPrincipals" in src and _values_match(src["notPrincipals"], principal):
        return False
    if "namespaces" in src and not _values_match(src["namespaces"], namespace):
        return False
    if "notNamespaces" in src and _values_match(src["notNamespaces"], namespace):
        return False
    for attr in ("ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks",
                 "requestPrincipals", "notRequestPrincipals", "serviceAccounts", "notServiceAccounts"):
        if attr in src:
            if attr == "serviceAccounts" and principal is not None:
                # Newer Istio: "ns/sa" shorthand for the principal.
                sa = principal.split("/ns/", 1)[-1].replace("/sa/", "/")
                if not _values_match(src[attr], sa):
                    return False
                continue
            if attr == "notServiceAccounts" and principal is not None:
                sa = principal.split("/ns/", 1)[-1].replace("/sa/", "/")
                if _values_match(src[attr], sa):
                    return False
                continue
            result = _UNKNOWN
    return result


def _when_matches(conds: Sequence[Mapping[str, Any]], *, principal: str | None,
                  namespace: str | None) -> bool | str:
    result: bool | str = True
    for c in conds:
        key = c.get("key")
        value = {"source.principal": principal, "source.namespace": namespace}.get(str(key), _UNKNOWN)
        if value == _UNKNOWN:
            result = _UNKNOWN
            continue
        if "values" in c and not _values_match(c["values"], value):
            return False
        if "notValues" in c and _values_match(c["notValues"], value):
            return False
    return result


def _rule_matches(rule: Mapping[str, Any], *, principal: str | None, namespace: str | None) -> bool | str:
    result: bool | str = True
    froms = rule.get("from")
    if froms:
        outcomes = [_source_matches((f or {}).get("source") or {}, principal=principal, namespace=namespace)
                    for f in froms]
        if True in outcomes:
            pass
        elif _UNKNOWN in outcomes:
            result = _UNKNOWN
        else:
            return False
    if rule.get("to"):
        # Operations (hosts, ports, methods, paths): a storage client uses many; unknown.
        result = _UNKNOWN
    if rule.get("when"):
        w = _when_matches(rule["when"], principal=principal, namespace=namespace)
        if w is False:
            return False
        if w == _UNKNOWN:
            result = _UNKNOWN
    return result


def _name(policy: Mapping[str, Any]) -> str:
    meta = policy.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def evaluate(policies: Sequence[Mapping[str, Any]], *, workload_namespace: str,
             workload_labels: Mapping[str, str], principal: str | None, source_namespace: str | None,
             root_namespace: str = "istio-system") -> AuthzResult:
    """Would a request from ``principal`` (in ``source_namespace``) reach the workload?"""
    principal = _principal(principal)
    applicable = [p for p in policies if _applies(
        p, workload_namespace=workload_namespace, workload_labels=workload_labels,
        root_namespace=root_namespace)]
    names = tuple(sorted(_name(p) for p in applicable))
    who = principal or "a caller without a mesh identity (no sidecar)"

    def action(p: Mapping[str, Any]) -> str:
        return str((p.get("spec") or {}).get("action") or "ALLOW").upper()

    custom = [p for p in applicable if action(p) == "CUSTOM"]
    note = (f" (CUSTOM policies {', '.join(_name(p) for p in custom)} call an external authorizer "
            "and were not judged)") if custom else ""
    unevaluated = [f"CUSTOM policy {_name(p)} (external authorizer)" for p in sorted(custom, key=_name)]

    for p in sorted((p for p in applicable if action(p) == "DENY"), key=_name):
        for i, rule in enumerate((p.get("spec") or {}).get("rules") or ()):
            m = _rule_matches(rule or {}, principal=principal, namespace=source_namespace)
            if m is True:
                return AuthzResult(allowed=False, deciding_policy=_name(p), applicable=names,
                                   reason=f"DENY policy {_name(p)} rule {i} matches {who}{note}",
                                   unevaluated=tuple(unevaluated))
            if m == _UNKNOWN:
                unevaluated.append(f"DENY policy {_name(p)} rule {i} (depends on request attributes)")

    allows = sorted((p for p in applicable if action(p) == "ALLOW"), key=_name)
    if not allows:
        return AuthzResult(allowed=True, deciding_policy=None, applicable=names,
                           reason=f"no ALLOW policy applies to the workload: all callers are admitted{note}",
                           unevaluated=tuple(unevaluated))
    for p in allows:
        for i, rule in enumerate((p.get("spec") or {}).get("rules") or ()):
            m = _rule_matches(rule or {}, principal=principal, namespace=source_namespace)
            if m is True or m == _UNKNOWN:
                extra = "" if m is True else " (for requests matching its other conditions)"
                if m == _UNKNOWN:
                    unevaluated.append(f"ALLOW policy {_name(p)} rule {i} (depends on request attributes)")
                return AuthzResult(allowed=True, deciding_policy=_name(p), applicable=names,
                                   reason=f"ALLOW policy {_name(p)} rule {i} admits {who}{extra}{note}",
                                   unevaluated=tuple(unevaluated))
    return AuthzResult(
        allowed=False, deciding_policy=_name(allows[0]) if len(allows) == 1 else None,
        applicable=names,
        reason=(f"ALLOW policies apply to the workload ({', '.join(_name(p) for p in allows)}) "
                f"and none of their rules admits {who}{note}"),
        unevaluated=tuple(unevaluated),
    )
