"""The staleness family: ``ready-but-crash-looping`` — an InferenceService says Ready while its pods
crash-loop.

KServe's ``Ready`` is the state of the rollout it last saw, not of the pods now: a Serverless
revision that became ready once stays Ready while a restarted pod is stuck in
``Init:CrashLoopBackOff`` (kserve/kserve#1859, #2037), and in RawDeployment a Deployment stays
``Available`` while its new ReplicaSet's pod crash-loops behind the old one (a rollout stuck
for as long as the old pod lives). Every other check reads ``Ready`` and is satisfied, so nothing
is said until the old pod goes and the model with it.

This rule runs after the rules that can name *why* a container dies (OOM kill, model files,
storage, credentials): if one of them did, the crash is that cause's symptom (its evidence says
the InferenceService still reports Ready). What is left is the staleness itself, with the
container's last words: critical when no predictor pod is ready (the status is false), a warning
while an older pod still serves (the next restart takes the model down).
"""

from __future__ import annotations

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.model import Model
from daemon.core.diagnosis.resources import crash_evidence, crash_looping, serving_elsewhere
from daemon.core.findings import Code, Severity


def ready_but_crash_looping(ctx: Pass, m: Model) -> bool:
    """Whether ``m`` is Ready while a pod of it crash-loops for no named cause (then explained)."""
    if m.explained or m.conditions().get("Ready", {}).get("status") != "True":
        return False
    loops = crash_looping(m)
    if not loops:
        return False
    serving = serving_elsewhere(m)
    ev = [f"InferenceService {m.cfg.key} reports Ready=True", *crash_evidence(m, loops)]
    ev.append(
        "an older predictor pod still serves: the rollout is stuck behind it"
        if serving
        else "no predictor pod is ready: requests fail although the status says Ready"
    )
    c = loops[0]
    ns = m.cfg.namespace
    ctx.explain(
        m,
        code=Code.READY_BUT_CRASH_LOOPING,
        evidence=ev,
        severity=Severity.WARNING if serving else Severity.CRITICAL,
        remedy=(
            f"do not trust Ready here: kubectl logs {c.pod} -n {ns} -c {c.name} --previous names why it "
            "exits; fix that and the pod recovers (if the model was fine before, compare the storageUri "
            f"and runtime with the last working revision: kubectl get inferenceservice {m.cfg.name} "
            f"-n {ns} -o yaml)"
        ),
        explains=("storage", "runtime"),
    )
    return True
