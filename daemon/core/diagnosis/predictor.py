"""The predictor itself: ``wrong-model``, and ``predictor-not-ready`` as the last word.

:func:`wrong_model`: the predictor is up but its canary answer is wrong (the seed's silent
dummy-model fallback), found by the predictor probe. :func:`not_ready`: the catch-all, only
for a model no other rule explained, so an unready predictor with a known cause is never
reported twice; a predictor that is merely slow (and ready) is a warning.
:func:`not_declared`: a model configured to be watched whose InferenceService neither
exists nor is in the desired state (when it is, its absence is ordinary drift).
"""

from __future__ import annotations

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.draft import Draft
from daemon.core.diagnosis.fields import ISVC_LABEL
from daemon.core.diagnosis.model import Model
from daemon.core.diagnosis.model_files import stored_files_line
from daemon.core.findings import Code, Severity


def not_declared(ctx: Pass, m: Model) -> None:
    ctx.add(
        Draft(
            code=Code.PREDICTOR_NOT_READY,
            severity=Severity.CRITICAL,
            subject=m.ref,
            evidence=[f"InferenceService {m.cfg.key} does not exist and is not in the desired state"],
            inferenceservice=m.cfg.key,
            data={"human": True},
            remedy=(
                f"create it (kubectl apply -f <manifest> -n {m.cfg.namespace}) or add it to "
                "config/desired/, or remove it from models in warden.yaml"
            ),
        )
    )


def wrong_model(ctx: Pass, m: Model) -> None:
    pr = m.predictor
    if pr is None or pr.outcome != "wrong-model":
        return
    canary = pr.details.get("canary") or {}
    ev = list(pr.evidence)
    if canary:
        ev.append(
            f"canary {canary.get('instances')} expected {canary.get('expected')}, "
            f"got {canary.get('predicted')}"
        )
    files_line = stored_files_line(m)
    if files_line:
        ev.append(files_line)
    ctx.explain(
        m,
        code=Code.WRONG_MODEL,
        evidence=ev,
        remedy=(
            f"the server at {m.cfg.key} is not serving the trained model: check the "
            f"runtime's log (kubectl logs -l {ISVC_LABEL}={m.cfg.name} -n {m.cfg.namespace} "
            "-c kserve-container) "
            "for a fallback; use a runtime that loads the model by content and fails when it "
            "cannot (never a dummy), then roll the predictor"
        ),
    )


def not_ready(ctx: Pass, m: Model) -> None:
    if m.explained:
        return
    pr = m.predictor
    cond = m.conditions()
    components_bad = any(
        cond.get(t, {}).get("status") not in (None, "True") for t in ("TransformerReady", "ExplainerReady")
    )
    # Ready is the AND of every component: with a transformer or explainer down and the
    # predictor ready, it is that component's finding, not the predictor's.
    looked_at = ("PredictorReady",) if "PredictorReady" in cond or components_bad else ("Ready",)
    unready = [t for t in looked_at if t in cond and cond[t].get("status") != "True"]
    probe_bad = pr is not None and not pr.ok and pr.outcome not in ("probe-error", "not-checked")
    if probe_bad and components_bad and cond.get("PredictorReady", {}).get("status") == "True":
        probe_bad = False  # the probe reads Ready, which a transformer/explainer holds down
    if not unready and not probe_bad:
        return
    ev: list[str] = []
    for t in unready:
        c = cond[t]
        ev.append(f"condition {t}={c.get('status')} {c.get('reason') or ''} {c.get('message') or ''}".strip())
    if pr is not None and not pr.ok:
        ev.append(f"predictor probe: {pr.outcome}")
        ev.extend(pr.evidence)
    slow_only = pr is not None and pr.outcome == "slow" and not unready
    ns, name = m.cfg.namespace, m.cfg.name
    ctx.add(
        Draft(
            code=Code.PREDICTOR_NOT_READY,
            severity=Severity.WARNING if slow_only else Severity.CRITICAL,
            subject=m.ref,
            evidence=ev,
            data={"human": True},
            caused=m.take(),
            inferenceservice=m.cfg.key,
            remedy=(
                f"kubectl describe inferenceservice {name} -n {ns}; kubectl get pods -n {ns} "
                f"-l {ISVC_LABEL}={name}; kubectl logs -n {ns} -l {ISVC_LABEL}={name} "
                "--all-containers --tail=50"
            ),
        )
    )
