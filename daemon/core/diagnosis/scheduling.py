"""The scheduling family: a predictor pod the scheduler cannot place (``PodScheduled=False``,
reason ``Unschedulable``), and which of the cluster's Nodes blocks it, and why.

The scheduler's own message (``0/4 nodes are available: 1 node(s) had untolerated taint
{nvidia.com/gpu: present}, 3 Insufficient nvidia.com/gpu``) is evidence, but it counts nodes; it
does not say what to change. So the Nodes are read (allocatable, taints, labels, ``unschedulable``,
the ``Ready`` condition) and each is checked the way kube-scheduler's filters check it, in their
order: NodeUnschedulable, TaintToleration (``NoSchedule``/``NoExecute`` taints the pod does not
tolerate), NodeAffinity (``nodeSelector`` and required node affinity), NodeResourcesFit (the pod's
requests — containers summed, init containers at their peak, plus overhead — against allocatable
minus the requests of the pods already bound there).

**One cause.** A node whose allocatable is below the request can never hold the pod (a CPU node
for a GPU pod); if every node is like that, the cause is ``unschedulable-insufficient-resources``
(no node is large enough). Otherwise the cause is read off the node that comes *closest*: the
fewest failed filters, and among equals one that matches the pod's own nodeSelector/affinity (the
node the user meant). Its first failure names the code: an untolerated taint
(``unschedulable-untolerated-taint``: add the toleration), a selector or affinity no node satisfies
(``unschedulable-no-matching-node``), capacity in use (``unschedulable-insufficient-resources``),
a cordoned or not-ready node (``pod-unschedulable``). With no Node visible (RBAC, or a kind the daemon
may not read) the scheduler's message alone is classified, and the evidence says so.

Threads: kserve/kserve#794 (``Insufficient nvidia.com/gpu``, ``didn't match node selector``),
kserve/kserve#1601 (a second revision Pending on insufficient memory), kserve/kserve#730
(nodeSelector, affinity and tolerations on the predictor).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.fields import meta, predictor_spec
from daemon.core.diagnosis.model import Model
from daemon.core.diagnosis.pods import pod_ready
from daemon.core.findings import Code, Severity
from daemon.core.quantity import format_quantity, parse_quantity

BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
NODE_LIFECYCLE_TAINTS = {
    "node.kubernetes.io/not-ready": "not-ready",
    "node.kubernetes.io/unreachable": "not-ready",
    "node.kubernetes.io/unschedulable": "cordoned",
}
"""Taints the node lifecycle controller sets: a node problem, not something to tolerate."""

Requests = dict[str, int]
"""Resource → amount in milli-units (``1`` CPU is ``1000``; ``1Gi`` is ``1073741824000``): whole
numbers, as kube-scheduler compares them, and cheap to sum over every pod bound to a node."""


def _milli(text: object) -> int | None:
    return _milli_of(text if isinstance(text, str) else str(text) if isinstance(text, int) else "")


@functools.lru_cache(maxsize=1024)
def _milli_of(text: str) -> int | None:
    # Cached: every pod bound to a node is summed once per pass, and they repeat a few quantities.
    q = parse_quantity(text)
    return None if q is None else math.ceil(q * 1000)


def _shown(milli: int, resource: str) -> str:
    return format_quantity(Fraction(milli, 1000), resource=resource)


@dataclass(frozen=True, kw_only=True)
class Block:
    """Why one node cannot take the pod (one failed filter)."""

    kind: str
    """``cordoned``, ``not-ready``, ``taint``, ``selector``, ``affinity`` or ``resources``."""
    detail: str
    never: bool = False
    """``resources`` only: the node's allocatable itself is below the request (it can never fit)."""
    fix: str = ""


# -- the pod's side ---------------------------------------------------------------------------------


def _requests_of(container: Mapping[str, Any]) -> Requests:
    res = container.get("resources") or {}
    # The API server defaults a request to its limit when only the limit is set.
    merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
    return {k: q for k, v in merged.items() if (q := _milli(v)) is not None}


def _add(a: Requests, b: Requests) -> Requests:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}}


def pod_requests(spec: Mapping[str, Any]) -> Requests:
    """What the scheduler reserves for a pod: its containers' requests summed; init containers at
    their peak (a sidecar — an init container with ``restartPolicy: Always`` — keeps running and adds
    to everything after it); the pod overhead on top."""
    running: Requests = {}
    peak: Requests = {}
    for c in spec.get("initContainers") or []:
        req = _requests_of(c)
        if c.get("restartPolicy") == "Always":
            running = _add(running, req)
        else:
            during = _add(running, req)
            peak = {k: max(peak.get(k, 0), during.get(k, 0)) for k in {*peak, *during}}
    main: Requests = dict(running)
    for c in spec.get("containers") or []:
        main = _add(main, _requests_of(c))
    total = {k: max(main.get(k, 0), peak.get(k, 0)) for k in {*main, *peak}}
    overhead = {k: q for k, v in (spec.get("overhead") or {}).items() if (q := _milli(v)) is not None}
    return {k: v for k, v in _add(total, overhead).items() if v > 0}


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """Kubernetes' toleration matching: same effect (or none), same key (or an empty key with
    ``Exists``), and ``Exists`` or an equal value."""
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        if not t.get("key"):
            if op == "Exists":
                return True
            continue
        if t.get("key") != taint.get("key"):
            continue
        if op == "Exists" or (op == "Equal" and str(t.get("value") or "") == str(taint.get("value") or "")):
            return True
    return False


def _expr_matches(values_of: Mapping[str, str], expr: Mapping[str, Any]) -> bool:
    key, op, values = str(expr.get("key")), expr.get("operator"), [str(v) for v in expr.get("values") or []]
    present, value = key in values_of, values_of.get(key)
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and values:
        try:
            a, b = int(str(value)), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def _term_matches(node: Mapping[str, Any], term: Mapping[str, Any]) -> bool:
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no node
    labels = {str(k): str(v) for k, v in (meta(node).get("labels") or {}).items()}
    name = {"metadata.name": str(meta(node).get("name", ""))}
    return all(_expr_matches(labels, e) for e in exprs) and all(_expr_matches(name, f) for f in fields)


def _taint_text(t: Mapping[str, Any]) -> str:
    value = f"={t.get('value')}" if t.get("value") else ""
    return f"{t.get('key')}{value}:{t.get('effect')}"


# -- one node -------------------------------------------------------------------------------------


def node_blocks(
    node: Mapping[str, Any], *, spec: Mapping[str, Any], requests: Requests, used: Requests
) -> list[Block]:
    """Every filter ``node`` fails for a pod with ``spec`` and ``requests`` (``used``: the
    requests of the pods already bound to it), in kube-scheduler's order."""
    name = str(meta(node).get("name", ""))
    nspec, status = node.get("spec") or {}, node.get("status") or {}
    tolerations = spec.get("tolerations") or []
    blocks: list[Block] = []
    if nspec.get("unschedulable") and not tolerates(
        tolerations, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    ):
        blocks.append(
            Block(
                kind="cordoned",
                detail=f"node {name} is cordoned (spec.unschedulable)",
                fix=f"kubectl uncordon {name}",
            )
        )
    ready = {c.get("type"): c for c in status.get("conditions") or []}.get("Ready")
    if ready is not None and ready.get("status") != "True":
        blocks.append(
            Block(
                kind="not-ready",
                detail=f"node {name} is not Ready ({ready.get('reason') or ''})",
                fix=f"kubectl describe node {name}",
            )
        )
    for t in nspec.get("taints") or []:
        if t.get("effect") not in BLOCKING_EFFECTS or tolerates(tolerations, t):
            continue
        lifecycle = NODE_LIFECYCLE_TAINTS.get(str(t.get("key")))
        if lifecycle is not None:
            if not any(b.kind == lifecycle for b in blocks):
                blocks.append(
                    Block(
                        kind=lifecycle,
                        detail=f"node {name} has taint {_taint_text(t)}",
                        fix=f"kubectl describe node {name}",
                    )
                )
            continue
        blocks.append(
            Block(
                kind="taint",
                detail=f"node {name} has taint {_taint_text(t)}, not tolerated",
                fix=json.dumps(
                    {"key": t.get("key"), "operator": "Exists", "effect": t.get("effect")},
                    separators=(",", ":"),
                ),
            )
        )
    labels = {str(k): str(v) for k, v in (meta(node).get("labels") or {}).items()}
    missing = {k: v for k, v in (spec.get("nodeSelector") or {}).items() if labels.get(str(k)) != str(v)}
    if missing:
        blocks.append(
            Block(
                kind="selector",
                detail=f"node {name} lacks the nodeSelector labels "
                + ", ".join(f"{k}={v}" for k, v in sorted(missing.items())),
            )
        )
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if required and not any(_term_matches(node, t) for t in terms or []):
        blocks.append(
            Block(
                kind="affinity", detail=f"node {name} matches none of the pod's required node affinity terms"
            )
        )
    allocatable = {
        k: q for k, v in (status.get("allocatable") or {}).items() if (q := _milli(v)) is not None
    }
    for res, want in sorted(requests.items()):
        have = allocatable.get(res, 0)
        free = have - used.get(res, 0)
        if want <= free:
            continue
        shown = {
            x: _shown(v, res) for x, v in (("want", want), ("have", have), ("free", free))
        }
        if want > have:
            detail = (
                f"node {name} has {shown['have']} {res} allocatable, the pod requests {shown['want']}"
                if have
                else f"node {name} has no {res}, the pod requests {shown['want']}"
            )
            blocks.append(Block(kind="resources", detail=detail, never=True))
        else:
            blocks.append(
                Block(
                    kind="resources",
                    detail=(
                        f"node {name} has {shown['free']} of {shown['have']} {res} free (the rest is "
                        f"requested by the pods bound to it), the pod requests {shown['want']}"
                    ),
                )
            )
    return blocks


# -- the rule -------------------------------------------------------------------------------------


def _unschedulable(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if (pod.get("spec") or {}).get("nodeName"):
        return None
    for c in (pod.get("status") or {}).get("conditions") or []:
        if (
            c.get("type") == "PodScheduled"
            and c.get("status") == "False"
            and c.get("reason") == "Unschedulable"
        ):
            return dict(c)
    return None


def _usage(ctx: Pass) -> dict[str, Requests]:
    """Requests already bound to each node (pods not finished), built once per pass."""
    memo: dict[str, Requests] | None = ctx.memo.get("scheduling.usage")
    if memo is None:
        memo = {}
        for p in ctx.world.list("Pod"):
            node = (p.get("spec") or {}).get("nodeName")
            if node and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                memo[node] = _add(memo.get(node, {}), pod_requests(p.get("spec") or {}))
        ctx.memo["scheduling.usage"] = memo
    return memo


_FROM_MESSAGE = (
    (re.compile(r"untolerated taint|had taint", re.I), Code.UNSCHEDULABLE_UNTOLERATED_TAINT),
    (
        re.compile(r"didn't match (Pod's )?node (affinity|selector)|node\(s\) didn't match", re.I),
        Code.UNSCHEDULABLE_NO_MATCHING_NODE,
    ),
    (re.compile(r"Insufficient \S+", re.I), Code.UNSCHEDULABLE_INSUFFICIENT_RESOURCES),
)


def _from_message(cond: Mapping[str, Any]) -> Code:
    """The cause the scheduler's message names (when the Nodes cannot say more)."""
    message = str(cond.get("message") or "")
    return next((c for rx, c in _FROM_MESSAGE if rx.search(message)), Code.UNSCHEDULABLE)


def unschedulable(ctx: Pass, m: Model) -> bool:
    """Whether a predictor pod of ``m`` is unschedulable (then the model is explained)."""
    pending = [(p, c) for p in m.pods if (c := _unschedulable(p)) is not None]
    if not pending:
        return False
    pod, cond = pending[0]
    spec = pod.get("spec") or {}
    pname = str(meta(pod).get("name", ""))
    requests = pod_requests(spec)
    ev = [f"pod {pname}: PodScheduled=False Unschedulable: {cond.get('message') or ''}".rstrip(": ")]
    if requests:
        ev.append(
            "the pod requests "
            + ", ".join(f"{k}={_shown(v, k)}" for k, v in sorted(requests.items()))
        )
    nodes = ctx.world.list("Node")
    if not nodes:
        code = _from_message(cond)
        ev.append("no Node is visible to the daemon: judged from the scheduler's message alone")
        remedy = (
            f"kubectl describe pod {pname} -n {m.cfg.namespace}; kubectl describe nodes "
            "(allocatable, taints, labels) and change the predictor's resources, tolerations or "
            f"nodeSelector (kubectl edit inferenceservice {m.cfg.name} -n {m.cfg.namespace})"
        )
        _add_finding(ctx, m, code, ev, remedy)
        return True
    usage = _usage(ctx)
    judged = sorted(
        (
            (
                node,
                node_blocks(
                    node, spec=spec, requests=requests, used=usage.get(str(meta(node).get("name")), {})
                ),
            )
            for node in nodes
        ),
        key=lambda nb: str(meta(nb[0]).get("name", "")),
    )
    fits = [nb for nb in judged if not any(b.never for b in nb[1])]
    if not fits:
        code = Code.UNSCHEDULABLE_INSUFFICIENT_RESOURCES
        ev += [next(b.detail for b in blocks if b.never) for _, blocks in judged]
        remedy = _insufficient_remedy(m, requests, judged, never=True)
        _add_finding(ctx, m, code, ev, remedy)
        return True
    intent = ("selector", "affinity")
    best_node, best = min(fits, key=lambda nb: (len(nb[1]), any(b.kind in intent for b in nb[1])))
    if not best:
        # The scheduler found no room, yet by the Nodes the daemon sees one would take the pod:
        # its view is newer (a pod bound since), or capacity is held by pods outside the scope.
        code = _from_message(cond)
        ev.append(
            f"node {meta(best_node).get('name')} would take the pod by what the daemon sees: the scheduler "
            "counts pods the daemon does not (outside its scope) or a newer state; it retries by itself"
        )
        _add_finding(
            ctx, m, code, ev, f"kubectl describe pod {pname} -n {m.cfg.namespace}", severity=Severity.WARNING
        )
        return True
    first = best[0]
    ev += [b.detail for b in best]
    others = [b.detail for node, blocks in judged if node is not best_node for b in blocks[:1]]
    ev += others[:5]
    code, remedy = _remedy(m, first, best, requests, judged)
    _add_finding(ctx, m, code, ev, remedy)
    return True


def _add_finding(
    ctx: Pass, m: Model, code: Code, ev: list[str], remedy: str, severity: Severity | None = None
) -> None:
    serving = m.conditions().get("Ready", {}).get("status") == "True" and any(pod_ready(p) for p in m.pods)
    sev = severity or (Severity.WARNING if serving else Severity.CRITICAL)
    if serving:
        ev.append("another predictor pod is ready and serving: this one (a new revision or replica) waits")
    ctx.explain(m, code=code, evidence=ev, remedy=remedy, severity=sev)


def _patch(m: Model, predictor: Mapping[str, Any]) -> str:
    body = json.dumps({"spec": {"predictor": predictor}}, separators=(",", ":"))
    return f"kubectl patch inferenceservice {m.cfg.name} -n {m.cfg.namespace} --type merge -p '{body}'"


def _remedy(
    m: Model,
    first: Block,
    best: list[Block],
    requests: Requests,
    judged: Sequence[tuple[Mapping[str, Any], list[Block]]],
) -> tuple[Code, str]:
    ns = m.cfg.namespace
    if first.kind == "taint":
        have = list(predictor_spec(m.isvc).get("tolerations") or [])
        add = [json.loads(b.fix) for b in best if b.kind == "taint"]
        return Code.UNSCHEDULABLE_UNTOLERATED_TAINT, (
            "tolerate the node's taint on the predictor (the merge patch replaces the list: it keeps the "
            f"tolerations it has): {_patch(m, {'tolerations': have + add})}"
        )
    if first.kind in ("selector", "affinity"):
        sel = predictor_spec(m.isvc).get("nodeSelector") or {}
        labels = " ".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<label>=<value>"
        return Code.UNSCHEDULABLE_NO_MATCHING_NODE, (
            "no node carries what the predictor's "
            + ("nodeSelector" if first.kind == "selector" else "required node affinity")
            + f" asks for: label the node meant for it (kubectl label node <node> {labels}) or change "
            f"spec.predictor.{'nodeSelector' if first.kind == 'selector' else 'affinity'} "
            f"(kubectl edit inferenceservice {m.cfg.name} -n {ns})"
        )
    if first.kind == "resources":
        return Code.UNSCHEDULABLE_INSUFFICIENT_RESOURCES, _insufficient_remedy(
            m, requests, judged, never=False
        )
    fixes = "; ".join(dict.fromkeys(b.fix for b in best if b.fix))
    return Code.UNSCHEDULABLE, f"the node that would take the pod is {first.kind}: {fixes}"


def _insufficient_remedy(
    m: Model, requests: Requests, judged: Sequence[tuple[Mapping[str, Any], list[Block]]], *, never: bool
) -> str:
    short = sorted(
        {
            r
            for _, blocks in judged
            for b in blocks
            if b.kind == "resources"
            for r in requests
            if f" {r}" in b.detail
        }
    )
    want = ", ".join(f"{r}={_shown(requests[r], r)}" for r in short) or "its requests"
    if never:
        return (
            f"no node has {want} allocatable at all: lower the predictor's resources (kubectl edit "
            f"inferenceservice {m.cfg.name} -n {m.cfg.namespace}) or add a node that has it (a GPU node "
            "pool for nvidia.com/gpu; the device plugin must advertise it)"
        )
    return (
        f"the nodes that could hold {want} have it requested by other pods: free it (kubectl describe node "
        f"shows who holds it), lower the predictor's requests (kubectl edit inferenceservice {m.cfg.name} "
        f"-n {m.cfg.namespace}), or add capacity"
    )
