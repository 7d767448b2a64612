"""Istio AuthorizationPolicy evaluation, as the storage workload's sidecar does it (pure).

Given the raw ``security.istio.io/v1`` AuthorizationPolicy objects of the cluster, the
workload they protect (namespace + pod labels) and one request (the caller's mTLS
principal, method, path, port, host), :func:`evaluate` answers allow or deny the way
Envoy's RBAC filters configured by istiod do:

1. Policies that apply to the workload: those in the workload's namespace or in the root
   namespace (``istio-system``) whose ``selector.matchLabels`` are a subset of the
   workload's labels, or that have no selector. Policies using ``targetRef(s)`` attach to
   gateways/services, not pods by selector, and are skipped.
2. ``CUSTOM`` (ext-authz) and ``AUDIT`` policies never change the decision here.
3. ``DENY`` first: any matching DENY rule denies.
4. Then ``ALLOW``: if at least one ALLOW policy applies, the request must match one of
   their rules, otherwise it is denied (an ALLOW policy with no rules allows nothing).
   No ALLOW policy → allowed.

Rule matching: ``from`` entries OR'ed, each ``source`` AND's its fields (``principals``,
``notPrincipals``, ``namespaces``, ``notNamespaces``); ``to`` entries OR'ed, each
``operation`` AND's ``methods``/``notMethods``, ``paths``/``notPaths``, ``ports``/``notPorts``,
``hosts``/``notHosts``. Values match exactly, by prefix (``x*``), suffix (``*x``), or ``*``
(any non-empty value). The caller's namespace is read from its SPIFFE-style principal
``cluster.local/ns/NS/sa/SA``.

Not evaluated: ``when`` conditions, ``requestPrincipals`` (JWT) and IP blocks. A rule
using one of them is handled fail-closed, as istiod does for rules it cannot translate:
in an ALLOW policy such a rule never matches; in a DENY policy it matches on its other
fields alone.

Parallel to :mod:`daemon.core.authz` by design, not by accident: the sandbox is the stand-in the
daemon is tested against, and it may not import ``daemon`` or ``probes`` (enforced by
``tests/unit/test_import_direction.py``). A shared evaluator would make a bug in it invisible:
both sides would agree on the wrong answer. So each side implements Istio's rules from the
documentation on its own, and the two are table-tested separately.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

ROOT_NAMESPACE = "istio-system"

_UNSUPPORTED_SOURCE = (
    "requestPrincipals",
    "notRequestPrincipals",
    "ipBlocks",
    "notIpBlocks",
    "remoteIpBlocks",
    "notRemoteIpBlocks",
)


class PolicyMetadata(TypedDict, total=False):
    name: str
    namespace: str


class AuthorizationPolicy(TypedDict, total=False):
    """The parts of a raw AuthorizationPolicy object this module reads."""

    apiVersion: str
    kind: str
    metadata: PolicyMetadata
    spec: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Request:
    """What the server-side sidecar knows about one request."""

    principal: str | None
    """The caller's mTLS identity, e.g. ``cluster.local/ns/user-example-com/sa/iris-sa``."""
    method: str = "GET"
    path: str = "/"
    port: int = 9000
    host: str = ""

    @property
    def namespace(self) -> str | None:
        return namespace_of(self.principal)


@dataclass(frozen=True, kw_only=True)
class Decision:
    allowed: bool
    reason: str
    """Why, naming the policy (``ns/name``) that decided, for logs and evidence."""


def namespace_of(principal: str | None) -> str | None:
    """``cluster.local/ns/NS/sa/SA`` → ``NS`` (None when not of that shape)."""
    if not principal:
        return None
    parts = principal.split("/")
    if len(parts) >= 5 and parts[1] == "ns" and parts[3] == "sa":
        return parts[2]
    return None


def match_value(pattern: str, value: str | None) -> bool:
    """Istio string match: exact, ``prefix*``, ``*suffix``, or ``*`` (any non-empty value)."""
    if value is None or value == "":
        return False
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


def _any_match(patterns: Iterable[Any], value: str | None) -> bool:
    return any(match_value(str(p), value) for p in patterns)


def _field_ok(spec: Mapping[str, Any], key: str, value: str | None) -> bool:
    """A positive/negative field pair: ``key`` must match if set, ``notKey`` must not."""
    positive = spec.get(key)
    negative = spec.get("not" + key[0].upper() + key[1:])
    if positive is not None and not _any_match(positive, value):
        return False
    return not (negative is not None and _any_match(negative, value))


def _source_matches(source: Mapping[str, Any], request: Request) -> bool:
    return _field_ok(source, "principals", request.principal) and _field_ok(
        source, "namespaces", request.namespace
    )


def _operation_matches(operation: Mapping[str, Any], request: Request) -> bool:
    return (
        _field_ok(operation, "methods", request.method.upper())
        and _field_ok(operation, "paths", request.path.split("?", 1)[0])
        and _field_ok(operation, "ports", str(request.port))
        and _field_ok(operation, "hosts", request.host)
    )


def _uses_unsupported(rule: Mapping[str, Any]) -> bool:
    if rule.get("when"):
        return True
    for entry in rule.get("from") or []:
        source = (entry or {}).get("source") or {}
        if any(source.get(k) for k in _UNSUPPORTED_SOURCE):
            return True
    return False


def rule_matches(rule: Mapping[str, Any], request: Request) -> bool:
    """A rule matches when one of its ``from`` and one of its ``to`` entries match.

    Missing ``from``/``to`` match anything; an empty rule ``{}`` matches every request.
    """
    sources: Sequence[Any] = rule.get("from") or []
    operations: Sequence[Any] = rule.get("to") or []
    if sources and not any(_source_matches((s or {}).get("source") or {}, request) for s in sources):
        return False
    return not operations or any(
        _operation_matches((o or {}).get("operation") or {}, request) for o in operations
    )


def applies_to(policy: Mapping[str, Any], *, namespace: str, labels: Mapping[str, str]) -> bool:
    """Does the policy select the workload (namespace + labels)?"""
    meta = policy.get("metadata") or {}
    spec = policy.get("spec") or {}
    if meta.get("namespace") not in (namespace, ROOT_NAMESPACE):
        return False
    if spec.get("targetRef") or spec.get("targetRefs"):
        return False
    selector = spec.get("selector") or {}
    match_labels: Mapping[str, str] = selector.get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in match_labels.items())


def _name(policy: Mapping[str, Any]) -> str:
    meta = policy.get("metadata") or {}
    return f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"


def evaluate(
    policies: Iterable[Mapping[str, Any]],
    request: Request,
    *,
    namespace: str,
    labels: Mapping[str, str],
) -> Decision:
    """Allow or deny ``request`` to the workload ``namespace``/``labels`` (see module doc)."""
    allow_policies: list[Mapping[str, Any]] = []
    for policy in policies:
        if not applies_to(policy, namespace=namespace, labels=labels):
            continue
        spec = policy.get("spec") or {}
        action = str(spec.get("action") or "ALLOW").upper()
        rules: Sequence[Mapping[str, Any]] = spec.get("rules") or []
        if action == "DENY":
            for rule in rules:
                # Fail-closed: an unsupported condition is assumed to hold for DENY.
                if rule_matches(rule, request):
                    return Decision(allowed=False, reason=f"denied by DENY policy {_name(policy)}")
        elif action == "ALLOW":
            allow_policies.append(policy)
        # CUSTOM and AUDIT: not part of this decision.
    if not allow_policies:
        return Decision(allowed=True, reason="no ALLOW policy applies")
    for policy in allow_policies:
        for rule in (policy.get("spec") or {}).get("rules") or []:
            # Fail-closed: an ALLOW rule we cannot fully evaluate never matches.
            if not _uses_unsupported(rule) and rule_matches(rule, request):
                return Decision(allowed=True, reason=f"allowed by {_name(policy)}")
    names = ", ".join(sorted(_name(p) for p in allow_policies))
    return Decision(allowed=False, reason=f"no ALLOW rule matches (policies: {names})")
