"""``no-serving-runtime``: no ServingRuntime supports the model's format.

Judged from configuration, before KServe says so: the model's ``modelFormat`` against the
``supportedModelFormats`` of the runtimes present (the one it names, or any with
``autoSelect`` when it names none, as KServe selects). KServe's own verdict
(``lastFailureInfo`` ``NoSupportingRuntime``, or a condition saying "no runtime found")
counts too, even when a runtime looks right. When the desired state declares a runtime
that lists the format, its drift is claimed and the finding applies it; otherwise a person
must create one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.fields import meta, predictor_spec
from daemon.core.diagnosis.model import Model
from daemon.core.findings import Code
from daemon.core.objects import ObjectRef


def _supports(rt: Mapping[str, Any], fmt: str, *, need_auto: bool) -> bool:
    spec_rt = rt.get("spec") or {}
    if spec_rt.get("disabled"):
        return False
    return any(
        str(f.get("name")) == fmt and (f.get("autoSelect") or not need_auto)
        for f in spec_rt.get("supportedModelFormats") or []
    )


def no_serving_runtime(ctx: Pass, m: Model) -> None:
    model = predictor_spec(m.isvc).get("model") or {}
    fmt = str((model.get("modelFormat") or {}).get("name") or "")
    wanted = model.get("runtime")
    ns = m.cfg.namespace
    reason, message = m.failure_reason()
    cond_msgs = [str(c.get("message") or "") for c in m.conditions().values()]
    said = reason == "NoSupportingRuntime" or any("no runtime found" in s.lower() for s in cond_msgs)
    if not fmt and not said:
        return
    runtimes = ctx.world.list("ServingRuntime", ns) + ctx.world.list("ClusterServingRuntime")
    if wanted:
        chosen = [r for r in runtimes if meta(r).get("name") == wanted]
        ok = any(_supports(r, fmt, need_auto=False) for r in chosen)
    else:
        ok = any(_supports(r, fmt, need_auto=True) for r in runtimes)
    if ok and not said:
        return
    ev = [f"InferenceService {m.cfg.key}: modelFormat {fmt or '?'}, runtime {wanted or '(auto-select)'}"]
    if message:
        ev.append(f"lastFailureInfo {reason}: {message}")
    ev.extend(f"condition: {s}" for s in cond_msgs if "runtime" in s.lower())
    names = [f"{meta(r).get('namespace') or '(cluster)'}/{meta(r).get('name')}" for r in runtimes]
    ev.append(f"runtimes present: {names or 'none'}")
    sr_name = str(wanted) if wanted else None
    target = None
    for (_kind, d_ns, name), d in ctx.desired_of_kind("ServingRuntime"):
        if (d_ns == ns and (sr_name is None or name == sr_name)) and any(
            str(f.get("name")) == fmt for f in (d.get("spec") or {}).get("supportedModelFormats") or []
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
    else:
        remedy = (
            f"create a ServingRuntime in {ns} whose supportedModelFormats lists {fmt} "
            "(autoSelect: true, or name it in spec.predictor.model.runtime) and add it to config/desired/"
        )
    ctx.explain(
        m,
        code=Code.NO_SERVING_RUNTIME,
        subject=target or m.ref,
        evidence=ev,
        remedy=remedy,
        data=data or {"human": True},
    )
