"""``component-not-ready``: a transformer, an explainer or the ingress is not ready.

An InferenceService has up to three components, each with its own condition
(``PredictorReady``, ``TransformerReady``, ``ExplainerReady``) plus ``IngressReady``; the
predictor's is judged by the other rules and :func:`daemon.core.diagnosis.predictor.not_ready`.
A transformer or explainer that is not ready is its own root cause (its pods are labelled
``component=transformer|explainer``); the finding names the component, its condition and its
pods' container states. It does not mark the predictor explained: a predictor failing for its
own reason is still reported, and the generic "not ready" symptoms stay the predictor's.
"""

from __future__ import annotations

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.fields import ISVC_LABEL, container_states, meta
from daemon.core.diagnosis.model import Model
from daemon.core.findings import Code

_CONDITION = {"transformer": "TransformerReady", "explainer": "ExplainerReady", "ingress": "IngressReady"}


def components_not_ready(ctx: Pass, m: Model) -> None:
    cond = m.conditions()
    pred_ok = cond.get("PredictorReady", {}).get("status") == "True"
    for comp, ctype in _CONDITION.items():
        c = cond.get(ctype)
        if c is None or c.get("status") == "True":
            continue
        if comp == "ingress" and not pred_ok:
            continue  # no route to a predictor that is not there yet: the predictor's cause explains it
        ev = [f"condition {ctype}={c.get('status')} {c.get('reason') or ''} {c.get('message') or ''}".strip()]
        for p in m.pods:
            if (meta(p).get("labels") or {}).get("component") == comp:
                states = [f"{s['name']}: {s['reason'] or ('ready' if s['ready'] else 'not ready')}"
                          for s in container_states(p)]
                ev.append(f"pod {meta(p).get('name')}: {', '.join(states)}")
        ns, name = m.cfg.namespace, m.cfg.name
        ctx.explain(
            m,
            code=Code.COMPONENT_NOT_READY,
            evidence=ev,
            remedy=(
                f"kubectl logs -n {ns} -l {ISVC_LABEL}={name},component={comp} --all-containers --tail=50"
                if comp != "ingress"
                else f"kubectl get virtualservice,ingress -n {ns}; "
                f"kubectl describe inferenceservice {name} -n {ns}"
            ),
            explains=(comp,),
            primary=False,
        )
