"""The runtime: ``no-serving-runtime``, ``runtime-disabled``, ``runtime-version-unsupported``.

Judged from configuration, before KServe says so, the way KServe selects (its
``ModelSpec.GetSupportingRuntimes`` / ``RuntimeSupportsModel``):

* a runtime supports a model when its ``supportedModelFormats`` hold the model's *label*:
  ``mt:<name>``, or ``mt:<name>:<version>`` when the model gives ``modelFormat.version`` (so a
  versioned model needs a runtime entry with exactly that version; an unversioned one matches
  any entry of that name);
* with no ``runtime:`` named, only entries with ``autoSelect: true`` count; with a name, every
  entry of that runtime counts (autoSelect is irrelevant), the ServingRuntime of the namespace
  first, else the ClusterServingRuntime;
* ``disabled: true`` runtimes and multi-model (ModelMesh) runtimes are skipped, and the
  runtime must serve the model's ``protocolVersion`` when it lists ``protocolVersions`` (a
  runtime that lists none accepts any). Unset, it is what KServe's defaulting webhook writes —
  v2 for Triton and vLLM formats and the older triton/onnx/huggingface keys — else v1 for
  auto-selection; a *named* runtime is not checked against an unset protocol (KServe takes the
  runtime's own);
* among the candidates KServe takes the highest ``priority`` for the format (that of the
  format's first entry; none ranks last), ties going to the runtime whose lowest protocol
  version is lowest, then the newest, then by name (:func:`ranked`) — namespace runtimes
  before cluster ones (the chosen one is named in the evidence of other findings).

The older predictor shapes (``spec.predictor.sklearn``…) are judged by the format they are
converted to; custom containers need no runtime, and ModelMesh InferenceServices are judged
only from their conditions. KServe's own verdict (``lastFailureInfo`` ``NoSupportingRuntime``
while it is current, see :meth:`Model.failure_reason`, or a condition saying "no runtime found")
counts too, even when a runtime looks right. When
the desired state declares a runtime that lists the format, its drift is claimed and the
finding applies it; otherwise a person must create or fix one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.fields import meta
from daemon.core.diagnosis.model import Model
from daemon.core.diagnosis.spec import MODELMESH
from daemon.core.diagnosis.unobserved import unreadable
from daemon.core.findings import Code
from daemon.core.objects import ObjectRef


def _formats(rt: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [f for f in (rt.get("spec") or {}).get("supportedModelFormats") or [] if isinstance(f, Mapping)]


def supports(rt: Mapping[str, Any], fmt: str, version: str | None, *, need_auto: bool) -> bool:
    """KServe's label match (see the module doc); ``disabled`` and protocol are checked apart."""
    for f in _formats(rt):
        if str(f.get("name")) != fmt or (need_auto and not f.get("autoSelect")):
            continue
        if version is None or str(f.get("version")) == version:
            return True
    return False


def protocol_ok(rt: Mapping[str, Any], protocol: str) -> bool:
    versions = [str(v).lower() for v in (rt.get("spec") or {}).get("protocolVersions") or []]
    return protocol in versions if versions else True  # KServe: no list, any protocol


def _usable(rt: Mapping[str, Any]) -> bool:
    spec = rt.get("spec") or {}
    return not spec.get("disabled") and not spec.get("multiModel")


def _name(rt: Mapping[str, Any]) -> str:
    return f"{meta(rt).get('namespace') or '(cluster)'}/{meta(rt).get('name')}"


def chosen_runtime(ctx: Pass, m: Model) -> Mapping[str, Any] | None:
    """The runtime KServe would pick for ``m`` (None: none, or a custom container)."""
    sp = m.spec
    if sp.format is None:
        return None
    ns_rts = ctx.world.list("ServingRuntime", m.cfg.namespace)
    cl_rts = ctx.world.list("ClusterServingRuntime")
    if sp.runtime:
        named = [r for r in ns_rts if meta(r).get("name") == sp.runtime] or [
            r for r in cl_rts if meta(r).get("name") == sp.runtime
        ]
        return named[0] if named else None

    for group in (ns_rts, cl_rts):
        cands = [
            r for r in group
            if _usable(r)
            and supports(r, sp.format, sp.version, need_auto=True)
            and protocol_ok(r, sp.protocol)
        ]
        if cands:
            return ranked(cands, sp.format)[0]
    return None


# KServe's ProtocolVersion enum (constants.GetProtocolVersionInt); a runtime listing none ranks
# as Unknown.
_PROTOCOL_RANK = {"v1": 1, "v2": 2, "grpc-v1": 3, "grpc-v2": 4}
_UNKNOWN_PROTOCOL = 5


def ranked(runtimes: Sequence[Mapping[str, Any]], fmt: str) -> list[Mapping[str, Any]]:
    """``runtimes`` in KServe's order of preference for ``fmt`` (``GetSupportingRuntimes``).

    First listed by the lowest protocol version each serves, then newest first
    (``creationTimestamp``), then by name; then a stable sort by the priority of the *first*
    entry of the format (an entry without one ranks after every entry with one). (KServe sorts
    with ``sort.Slice``, stable for lists this short.)"""

    def protocol_rank(rt: Mapping[str, Any]) -> int:
        versions = (rt.get("spec") or {}).get("protocolVersions") or []
        ranks = [_PROTOCOL_RANK.get(str(v), _UNKNOWN_PROTOCOL) for v in versions]
        return min(ranks, default=_UNKNOWN_PROTOCOL)

    def priority(rt: Mapping[str, Any]) -> tuple[int, int]:
        first = next((f for f in _formats(rt) if f.get("name") == fmt), {})
        p = first.get("priority")
        return (1, 0) if p is None else (0, -int(p))

    out = sorted(runtimes, key=lambda r: str(meta(r).get("name")))
    out.sort(key=lambda r: str(meta(r).get("creationTimestamp") or ""), reverse=True)
    out.sort(key=protocol_rank)
    out.sort(key=priority)
    return out


def _problem(ctx: Pass, m: Model) -> tuple[Code, list[str]] | None:
    """The static verdict: None when a runtime would be selected, else the code and why."""
    sp = m.spec
    assert sp.format is not None
    fmt, ver = sp.format, sp.version
    label = f"{fmt}:{ver}" if ver else fmt
    ns_rts = ctx.world.list("ServingRuntime", m.cfg.namespace)
    cl_rts = ctx.world.list("ClusterServingRuntime")
    if sp.runtime:
        rt = chosen_runtime(ctx, m)
        if rt is None:
            return Code.NO_SERVING_RUNTIME, [
                f"runtime {sp.runtime} named by the InferenceService does not exist "
                f"(no ServingRuntime in {m.cfg.namespace}, no ClusterServingRuntime)"]
        if (rt.get("spec") or {}).get("disabled"):
            return Code.RUNTIME_DISABLED, [f"runtime {_name(rt)} is disabled (spec.disabled: true)"]
        if not supports(rt, fmt, ver, need_auto=False):
            if supports(rt, fmt, None, need_auto=False):
                vs = sorted({str(f.get("version")) for f in _formats(rt) if f.get("name") == fmt})
                return Code.RUNTIME_VERSION_UNSUPPORTED, [
                    f"runtime {_name(rt)} supports {fmt} versions {vs}, not {ver}"]
            return Code.NO_SERVING_RUNTIME, [
                f"runtime {_name(rt)} does not list {label} in spec.supportedModelFormats "
                f"({[str(f.get('name')) for f in _formats(rt)]})"]
        if sp.protocol_set and not protocol_ok(rt, sp.protocol):
            return Code.NO_SERVING_RUNTIME, [
                f"runtime {_name(rt)} does not serve protocol {sp.protocol} "
                f"(protocolVersions {(rt.get('spec') or {}).get('protocolVersions') or ['v1 (default)']})"]
        return None
    if chosen_runtime(ctx, m) is not None:
        return None
    everyone = ns_rts + cl_rts
    auto = [r for r in everyone if supports(r, fmt, ver, need_auto=True)]
    disabled = [r for r in auto if (r.get("spec") or {}).get("disabled")]
    if disabled and len(disabled) == len(auto):
        return Code.RUNTIME_DISABLED, [
            f"the only runtimes that auto-select {label} are disabled: {[_name(r) for r in disabled]}"]
    if ver is not None:
        other = [r for r in everyone if _usable(r) and supports(r, fmt, None, need_auto=True)]
        if other:
            vs = sorted({f"{_name(r)}: {f.get('version')}" for r in other for f in _formats(r)
                         if f.get("name") == fmt})
            return Code.RUNTIME_VERSION_UNSUPPORTED, [
                f"no auto-selectable runtime supports {fmt} version {ver}; versions offered: {vs}"]
    why = [f"no runtime with autoSelect: true lists {label} and serves protocol {sp.protocol}"]
    protocols = other_protocols(ctx, m)
    if protocols:
        why.append(f"runtimes auto-select {label} with another protocol: {protocols}")
    named_only = [_name(r) for r in everyone if supports(r, fmt, ver, need_auto=False) and r not in auto]
    if named_only:
        why.append(f"{named_only} list {fmt} without autoSelect: name one in spec.predictor.model.runtime")
    return Code.NO_SERVING_RUNTIME, why


def other_protocols(ctx: Pass, m: Model) -> dict[str, list[str]]:
    """Auto-selectable runtimes that list ``m``'s format but not its protocol, with the protocols
    they serve (the ONNX or Triton model without protocolVersion: v1 asked, Triton serves v2)."""
    sp = m.spec
    if sp.runtime or sp.format is None:
        return {}
    everyone = ctx.world.list("ServingRuntime", m.cfg.namespace) + ctx.world.list("ClusterServingRuntime")
    return {
        _name(r): [str(v).lower() for v in (r.get("spec") or {}).get("protocolVersions") or []]
        for r in everyone
        if _usable(r) and supports(r, sp.format, sp.version, need_auto=True)
        and not protocol_ok(r, sp.protocol)
    }


def selection(ctx: Pass, m: Model) -> tuple[Mapping[str, Any] | None, Code | None]:
    """The static answer to what KServe's selection gives ``m``: the runtime it takes (and no
    code), or no runtime and the code saying why. ``(None, None)``: no runtime is selected at
    all (a custom container; a ModelMesh model, which ModelMesh places itself)."""
    if m.mode == MODELMESH or m.spec.format is None:
        return None, None
    problem = _problem(ctx, m)
    if problem is not None:
        return None, problem[0]
    return chosen_runtime(ctx, m), None


def no_serving_runtime(ctx: Pass, m: Model) -> bool:
    """Whether a runtime finding was added (then the model's runtime is its root cause)."""
    sp = m.spec
    reason, message = m.failure_reason()
    cond_msgs = [str(c.get("message") or "") for c in m.conditions().values()]
    said = reason == "NoSupportingRuntime" or any("no runtime found" in s.lower() for s in cond_msgs)
    if m.mode == MODELMESH or sp.format is None:
        # ModelMesh places models itself; custom containers need no runtime.
        if not said:
            return False
        verdict: tuple[Code, list[str]] | None = None
    else:
        verdict = _problem(ctx, m)
    if verdict is None and not said:
        return False
    hidden = unreadable(ctx, "ServingRuntime", "ClusterServingRuntime")
    if hidden and not said:
        # Our verdict rests on runtimes we may not read (and KServe has not said it): no guess.
        ctx.not_checked(m, what="runtime selection",
                        why="; ".join(f"{k}: {why}" for k, why in hidden.items()))
        return False
    code, why = verdict if verdict is not None else (Code.NO_SERVING_RUNTIME, [])
    fmt = sp.format or "?"
    ns = m.cfg.namespace
    ev = [
        f"InferenceService {m.cfg.key}: modelFormat {fmt}{':' + sp.version if sp.version else ''}, "
        f"runtime {sp.runtime or '(auto-select)'}, protocol {sp.protocol}",
        *why,
    ]
    if message and reason in ("NoSupportingRuntime", "RuntimeNotRecognized", "RuntimeDisabled"):
        ev.append(f"lastFailureInfo {reason}: {message}")
    ev.extend(f"condition: {s}" for s in cond_msgs if "runtime" in s.lower())
    runtimes = ctx.world.list("ServingRuntime", ns) + ctx.world.list("ClusterServingRuntime")
    ev.append(f"runtimes present: {[_name(r) for r in runtimes] or 'none'}")
    target = None
    for (_kind, d_ns, name), d in ctx.desired_of_kind("ServingRuntime"):
        if (d_ns == ns and (sp.runtime is None or name == sp.runtime)) and supports(
            d, fmt, sp.version, need_auto=sp.runtime is None
        ):
            target = ObjectRef.of(dict(d))
            break
    data: dict[str, Any] = {}
    if target is not None:
        drift = ctx.claim("ServingRuntime", ns, target.name)
        if drift is not None:
            ev.extend(drift.describe())
            data = {"apply": [target]}
        remedy = (
            f"apply the desired ServingRuntime {target.name} (lists {fmt}): kubectl apply "
            f"--server-side --field-manager=kserve-warden -f config/desired/ (done automatically)"
        )
    elif code is Code.RUNTIME_DISABLED:
        remedy = (
            f"enable the runtime (kubectl patch servingruntime/clusterservingruntime <name> --type merge "
            f"-p '{{\"spec\":{{\"disabled\":false}}}}') or name another runtime that lists {fmt}"
        )
    elif code is Code.RUNTIME_VERSION_UNSUPPORTED:
        remedy = (
            f"set spec.predictor.model.modelFormat.version of {m.cfg.key} to a version a runtime lists, "
            f"or add {fmt} version {sp.version} to a runtime's supportedModelFormats"
        )
    elif served := sorted({p for ps in other_protocols(ctx, m).values() for p in ps}):
        remedy = (
            f"set spec.predictor.model.protocolVersion of {m.cfg.key} to one the runtimes listing {fmt} "
            f"serve ({', '.join(served)}), or create a runtime listing {fmt} that serves {sp.protocol}"
        )
    else:
        remedy = (
            f"create a ServingRuntime in {ns} (or a ClusterServingRuntime) whose supportedModelFormats "
            f"lists {fmt} (autoSelect: true, or name it in spec.predictor.model.runtime)"
        )
    ctx.explain(
        m,
        code=code,
        subject=target or m.ref,
        evidence=ev,
        remedy=remedy,
        data=data or {"human": True},
        explains=("runtime",),
    )
    return True
