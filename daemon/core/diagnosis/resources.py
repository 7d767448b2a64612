"""The resources family: ``oom-killed``, ``evicted-ephemeral-storage`` and ``crash-loop``.

What the kubelet records on the pod, read as the operator would read ``kubectl describe pod``:

* **OOMKilled** — ``lastState.terminated.reason: OOMKilled`` (exit code 137) on the model server,
  the storage-initializer (a large model downloaded into a 1Gi-limited init container: kserve/kserve
  #5162, #5326) or any other container; or KServe's own record of it, ``lastFailureInfo.exitCode:
  137`` (kserve/kserve#2290, written since KServe 0.9). The limit that was hit is read from the
  pod's spec, and the remedy raises it *where it is set*: the predictor's ``resources`` on the
  InferenceService for the model server, ``storageInitializer.memoryLimit`` in
  ``inferenceservice-config`` for the storage-initializer (KServe has no per-InferenceService
  override of it), the ``sidecar.istio.io/proxyMemoryLimit`` annotation for istio-proxy. A
  container without a memory limit was killed because its *node* ran out: the remedy is a
  request, so the scheduler reserves the memory. KServe's ``ModelLoadFailed`` for the same pod
  is a symptom of the kill, not a wrong model format: this rule runs before the model-file rule.
* **Evicted for ephemeral storage** — a pod in phase ``Failed`` with reason ``Evicted`` and one of
  the kubelet's ephemeral-storage messages (the node low on ``ephemeral-storage``, a container or
  the pod over its ``ephemeral-storage`` limit, an ``emptyDir`` over its ``sizeLimit``). KServe
  downloads the model into the ``kserve-provision-location`` emptyDir on the node's disk
  (kserve/kserve#4852), so a model larger than that disk is evicted on every start.
* **CrashLoopBackOff** with no cause named by any other rule: the container's own last log line
  (the predictor probe's log tail, :mod:`probes.log_tail`; else its termination message) and exit
  code, so the finding says what the server said when it died.

A pod problem while another predictor pod serves and the InferenceService is Ready is a warning
(the next restart or scale-up meets it); with nothing serving it is critical.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.fields import meta
from daemon.core.diagnosis.model import Model
from daemon.core.diagnosis.pods import (
    MODEL_CONTAINER,
    STORAGE_INITIALIZER,
    Container,
    containers_of,
    nested,
    pod_ready,
    predictor_resources_path,
)
from daemon.core.findings import Code, Severity
from daemon.core.quantity import doubled_memory, format_quantity, parse_quantity
from probes.pod_status import current_failure_info

OOM_EXIT_CODE = 137
_EPHEMERAL = re.compile(
    r"ephemeral-storage|ephemeral local storage|local ephemeral storage|EmptyDir volume", re.I
)
_CONTAINER_OVER = re.compile(
    r'Container (?P<container>\S+) exceeded its local ephemeral storage limit "(?P<limit>[^"]+)"'
)
_POD_OVER = re.compile(
    r"Pod ephemeral local storage usage exceeds the total limit of containers (?P<limit>[0-9.]+[A-Za-z]*)"
)
_EMPTYDIR_OVER = re.compile(
    r'Usage of EmptyDir volume "(?P<volume>[^"]+)" exceeds the limit "(?P<limit>[^"]+)"'
)


def _live(m: Model) -> list[Mapping[str, Any]]:
    """The model's pods that are not finished (an evicted or completed pod is history)."""
    return [
        p
        for p in m.pods
        if (p.get("status") or {}).get("phase") not in ("Failed", "Succeeded")
        and not meta(p).get("deletionTimestamp")
    ]


def serving_elsewhere(m: Model) -> bool:
    """The InferenceService is Ready and some predictor pod is ready: the model is being served."""
    ready = m.conditions().get("Ready", {}).get("status") == "True"
    return ready and any(pod_ready(p) for p in _live(m))


def _severity(m: Model) -> Severity:
    return Severity.WARNING if serving_elsewhere(m) else Severity.CRITICAL


def _ready_line(m: Model) -> list[str]:
    if m.conditions().get("Ready", {}).get("status") == "True":
        return [f"InferenceService {m.cfg.key} reports Ready=True all the same"]
    return []


def _merge_patch(m: Model, path: tuple[str, ...], leaf: Mapping[str, Any]) -> str:
    body = json.dumps(nested(path, dict(leaf)), separators=(",", ":"))
    return f"kubectl patch inferenceservice {m.cfg.name} -n {m.cfg.namespace} --type merge -p '{body}'"


# -- OOMKilled ------------------------------------------------------------------------------------


def _oom(c: Container) -> Mapping[str, Any] | None:
    end = c.ended
    return end if end.get("reason") == "OOMKilled" else None


def oom_killed(ctx: Pass, m: Model) -> bool:
    """Whether a container of the model was OOM-killed (then the model is explained)."""
    hits = [(c, end) for p in _live(m) for c in containers_of(p) if (end := _oom(c)) is not None]
    # Only while current: KServe never clears lastFailureInfo, and a model healed since must not
    # keep an OOM finding (probes.pod_status.current_failure_info holds the rule).
    info = current_failure_info((m.isvc or {}).get("status") or {})
    kserve_saw = info.get("exitCode") == OOM_EXIT_CODE
    if not hits and not kserve_saw:
        return False
    ev: list[str] = []
    for c, end in hits:
        kind = "init container" if c.init else "container"
        ev.append(
            f"pod {c.pod} {kind} {c.name}: terminated OOMKilled (exit code {end.get('exitCode', 137)})"
            + (f", restarted {c.restarts} times" if c.restarts else "")
            + (", now CrashLoopBackOff" if c.crash_looping else "")
        )
    if kserve_saw:
        reason = f" {info['reason']}" if info.get("reason") else ""
        ev.append(f"lastFailureInfo{reason} exitCode 137 (killed: out of memory)")
    ev += _ready_line(m)
    target = hits[0][0] if hits else None
    remedy = _oom_remedy(ctx, m, target, ev)
    ctx.explain(
        m, code=Code.OOM_KILLED, evidence=ev, remedy=remedy, severity=_severity(m), explains=("storage",)
    )
    return True


def _oom_remedy(ctx: Pass, m: Model, c: Container | None, ev: list[str]) -> str:
    ns, name = m.cfg.namespace, m.cfg.name
    raw = c.limits.get("memory") if c is not None else None
    limit = parse_quantity(raw) if raw is not None else None
    cname = c.name if c is not None else MODEL_CONTAINER
    if c is not None and raw is None:
        ev.append(f"{cname} has no memory limit: the kernel killed it when its node ran out of memory")
        return (
            f"give {cname} a memory request as large as the model needs, so the scheduler places it "
            f"on a node with room (spec.predictor resources.requests.memory of {m.cfg.key}: "
            f"kubectl edit inferenceservice {name} -n {ns})"
        )
    if limit is None:
        return (
            f"raise the memory limit of the model server (kubectl edit inferenceservice {name} -n {ns}: "
            "the predictor's resources.limits.memory), then watch the new pod"
        )
    shown = format_quantity(limit, resource="memory")
    ev.append(f"memory limit of {cname}: {shown} (the limit it hit)")
    new = doubled_memory(limit)
    if cname == STORAGE_INITIALIZER:
        kc = ctx.settings.kserve_config
        return (
            f"the storage-initializer downloads the model within {shown}: raise storageInitializer."
            f"memoryLimit in ConfigMap {kc.namespace}/{kc.name} (kubectl edit configmap {kc.name} "
            f'-n {kc.namespace}: "memoryLimit": "{new}"; it applies to every InferenceService: '
            "KServe has no per-InferenceService override), or in the ClusterStorageContainer that "
            f"serves this scheme; then kubectl delete pod {c.pod if c else '<pod>'} -n {ns}"
        )
    if cname == "istio-proxy":
        return (
            f"raise the sidecar's limit: kubectl annotate inferenceservice {name} -n {ns} "
            f"sidecar.istio.io/proxyMemoryLimit={new} --overwrite"
        )
    path = predictor_resources_path(m.spec)
    if cname == MODEL_CONTAINER and path is not None:
        return (
            f"raise the model server's memory limit from {shown} to {new} (or what the model needs): "
            + _merge_patch(m, path, {"limits": {"memory": new}})
        )
    return (
        f"raise resources.limits.memory of container {cname} from {shown} to {new} "
        f"(kubectl edit inferenceservice {name} -n {ns}: spec.predictor.containers)"
    )


# -- Evicted for ephemeral storage -----------------------------------------------------------------


def evicted_ephemeral_storage(ctx: Pass, m: Model) -> bool:
    """Whether a predictor pod was evicted for ephemeral storage (then the model is explained)."""
    evicted = [
        p
        for p in m.pods
        if (st := p.get("status") or {}).get("phase") == "Failed"
        and st.get("reason") == "Evicted"
        and _EPHEMERAL.search(str(st.get("message") or ""))
    ]
    if not evicted:
        return False
    ev = [f"pod {meta(p).get('name')} Evicted: {(p.get('status') or {}).get('message')}" for p in evicted]
    ev += _ready_line(m)
    message = str((evicted[-1].get("status") or {}).get("message") or "")
    ns, name = m.cfg.namespace, m.cfg.name
    cleanup = "; then remove the evicted pods: " + "; ".join(
        f"kubectl delete pod {meta(p).get('name')} -n {ns}" for p in evicted
    )
    path = predictor_resources_path(m.spec)
    over = _CONTAINER_OVER.search(message) or _POD_OVER.search(message)
    if over is not None and path is not None and (limit := parse_quantity(over["limit"])) is not None:
        new = format_quantity(limit * 2, resource="ephemeral-storage")
        remedy = (
            f"the model and what the server writes exceed the ephemeral-storage limit {over['limit']}: "
            "raise it (" + _merge_patch(m, path, {"limits": {"ephemeral-storage": new}}) + ")"
        )
    elif (empty := _EMPTYDIR_OVER.search(message)) is not None:
        remedy = (
            f"the model does not fit the emptyDir {empty['volume']} (sizeLimit {empty['limit']}): raise "
            f"its sizeLimit, or serve the model from a PersistentVolumeClaim (storageUri pvc://...)"
        )
    else:
        remedy = (
            "the node's disk ran low while the model was downloaded into the emptyDir "
            "kserve-provision-location: request the space the model needs "
            + (
                f"({_merge_patch(m, path, {'requests': {'ephemeral-storage': '<model size + 20%>'}})})"
                if path is not None
                else f"(kubectl edit inferenceservice {name} -n {ns})"
            )
            + " so the scheduler picks a node with room, or copy the model to a PersistentVolumeClaim "
            "once and use storageUri pvc://<claim>/<path>"
        )
    ctx.explain(
        m,
        code=Code.EVICTED_EPHEMERAL_STORAGE,
        evidence=ev,
        remedy=remedy + cleanup,
        severity=_severity(m),
        explains=("storage",),
    )
    return True


# -- CrashLoopBackOff --------------------------------------------------------------------------------


def crash_looping(m: Model) -> list[Container]:
    return [c for p in _live(m) for c in containers_of(p) if c.crash_looping]


def crash_evidence(m: Model, loops: list[Container]) -> list[str]:
    """Per crash-looping container: restarts and exit code, and its last words (the probe's log
    tail of that container, else the termination message the kubelet recorded)."""
    pr = m.predictor
    tail_of = (str(pr.details.get("pod") or ""), str(pr.details.get("container") or "")) if pr else ("", "")
    tail = [str(x) for x in (pr.details.get("log_tail") or [])] if pr else []
    ev = []
    for c in loops:
        end = c.ended
        kind = "init container" if c.init else "container"
        code = end.get("exitCode")
        ev.append(
            f"pod {c.pod} {kind} {c.name}: CrashLoopBackOff, restarted {c.restarts} times"
            + (f", last exit code {code}" if code is not None else "")
            + (f" ({end.get('reason')})" if end.get("reason") else "")
        )
        said = [ln for ln in tail if ln.strip()] if tail_of == (c.pod, c.name) else []
        said = said or str(end.get("message") or "").strip().splitlines()
        if said:
            last = said[-1].strip()
            ev.append(f"last log line of {c.name}: {last[:300]}")
    return ev


def crash_loop(ctx: Pass, m: Model) -> None:
    """A container crash-loops and no other rule named why: its own last words."""
    if m.explained:
        return
    loops = crash_looping(m)
    if not loops:
        return
    c = loops[0]
    ns = m.cfg.namespace
    ctx.explain(
        m,
        code=Code.CRASH_LOOP,
        evidence=crash_evidence(m, loops),
        severity=_severity(m),
        remedy=(
            f"the container exits by itself: read why (kubectl logs {c.pod} -n {ns} -c {c.name} --previous) "
            "and fix what its last log line names (arguments, model path, a missing dependency); "
            f"kubectl describe pod {c.pod} -n {ns} shows its exit code and restarts"
        ),
        explains=("storage", "runtime"),
    )
