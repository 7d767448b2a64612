"""An InferenceService's status, from its runtime and its newest predictor pod (pure).

``PredictorReady``/``IngressReady``/``Ready``, ``modelStatus`` (``transitionStatus``,
``states``, ``lastFailureInfo`` — ``NoSupportingRuntime`` without a runtime, ``ModelLoadFailed``
when a container of the pod failed, never cleared once set, as KServe leaves it), ``status.url``
(the seed's external URL) and ``status.address.url``. :func:`stamp` keeps a condition's
``lastTransitionTime`` while its status holds, so an unchanged status is an unchanged object (no
write, no watch event).
"""

from __future__ import annotations

from sandbox.controllers.runtime_select import model_format, no_runtime_message
from sandbox.controllers.watch import Obj

INGRESS_DOMAIN = "example.com"


def ready(pod: Obj | None) -> bool:
    conds = ((pod or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _pod_problem(pod: Obj) -> tuple[str, str]:
    """(reason, message) of the first container that is not fine, or ("", "")."""
    st = pod.get("status") or {}
    for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
        state = cs.get("state") or {}
        waiting, term = state.get("waiting") or {}, state.get("terminated") or {}
        if waiting.get("reason") not in (None, "PodInitializing", "ContainerCreating"):
            return str(waiting["reason"]), f"{cs.get('name')}: {waiting.get('message', '')}"
        if term and term.get("exitCode", 0) != 0:
            return str(term.get("reason") or "Error"), f"{cs.get('name')}: {term.get('message', '')}"
        if cs.get("name") == "istio-proxy" and not cs.get("ready"):
            return "ProxyNotReady", "istio-proxy: not ready"
    return "", ""


def desired_status(*, isvc: Obj, runtime_found: bool, pod: Obj | None, address: str | None) -> Obj:
    """The ISVC's status (conditions without timestamps; see :func:`stamp`). Pure."""
    name, version = model_format(isvc)
    meta = isvc["metadata"]
    status: Obj = {
        "observedGeneration": meta.get("generation", 1),
        "url": f"http://{meta['name']}.{meta['namespace']}.{INGRESS_DOMAIN}",
    }
    if address:
        status["address"] = {"url": address}
    if not runtime_found:
        msg = no_runtime_message(name, version)
        failure = {"reason": "NoSupportingRuntime", "message": msg}
        conds = {
            "PredictorReady": ("False", "NoSupportingRuntime", msg),
            "IngressReady": ("False", "", ""),
            "Ready": ("False", "NoSupportingRuntime", msg),
        }
        status["modelStatus"] = {
            "transitionStatus": "InvalidSpec",
            "lastFailureInfo": failure,
            "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
        }
    elif ready(pod):
        conds = {k: ("True", "", "") for k in ("PredictorReady", "IngressReady", "Ready")}
        status["modelStatus"] = {
            "transitionStatus": "UpToDate",
            "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
        }
    else:
        reason, msg = _pod_problem(pod) if pod else ("", "")
        reason = reason or "PodNotReady"
        conds = {
            "PredictorReady": ("False", reason, msg),
            "IngressReady": ("False", reason, msg),
            "Ready": ("False", reason, msg),
        }
        failed = reason not in ("PodNotReady", "ProxyNotReady")
        status["modelStatus"] = {
            "transitionStatus": "BlockedByFailedLoad" if failed else "InProgress",
            "states": {"activeModelState": "", "targetModelState": "FailedToLoad" if failed else "Loading"},
        }
        if failed:
            status["modelStatus"]["lastFailureInfo"] = {
                "reason": "ModelLoadFailed",
                "message": msg,
                "location": (pod or {}).get("metadata", {}).get("name"),
            }
    # KServe never clears lastFailureInfo: a later success moves transitionStatus on and leaves
    # the last failure behind (v0.20's controller does; the stand-in dropped it).
    previous = ((isvc.get("status") or {}).get("modelStatus") or {}).get("lastFailureInfo")
    if previous and "lastFailureInfo" not in status["modelStatus"]:
        status["modelStatus"]["lastFailureInfo"] = previous
    status["conditions"] = [
        {"type": t, "status": s, **({"reason": r} if r else {}), **({"message": m} if m else {})}
        for t, (s, r, m) in conds.items()
    ]
    return status


def stamp(new: Obj, old: Obj | None, now: str) -> Obj:
    """Give conditions a lastTransitionTime, kept from ``old`` when the status did not change."""
    prev = {c.get("type"): c for c in (old or {}).get("conditions") or []}
    for c in new.get("conditions") or []:
        p = prev.get(c["type"])
        c["lastTransitionTime"] = (
            p["lastTransitionTime"]
            if p and p.get("status") == c["status"] and p.get("lastTransitionTime")
            else now
        )
    return new
