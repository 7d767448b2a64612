"""``image-pull-unauthorized``: the registry answers 401 for the predictor image.

Seen three ways: a pod stuck in ``ImagePullBackOff``/``ErrImagePull`` with an unauthorized
message, an InferenceService condition saying so, or the predictor probe's evidence. Judged
statically too, like the mesh policy: a live ServiceAccount lacking a pull secret the
desired state gives it means the *next* predictor pod cannot pull, before any pod has tried.

Pods copy ``imagePullSecrets`` from their ServiceAccount at creation, so fixing the
ServiceAccount is not enough: the remedy also deletes the stuck pods that lack the secret,
so they are recreated with it. A pull secret that does not exist, or one that exists and is
still refused, needs a person.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.fields import container_states, meta, ref
from daemon.core.diagnosis.model import Model
from daemon.core.findings import Code
from daemon.core.objects import ObjectRef

_PULL_REASONS = ("ImagePullBackOff", "ErrImagePull")
_UNAUTHORIZED = re.compile(r"\b401\b|unauthori[sz]ed", re.I)


def _pull_secret_names(o: Mapping[str, Any] | None) -> list[str]:
    return [str(s.get("name")) for s in (o or {}).get("imagePullSecrets") or []]


def _evidence(m: Model) -> tuple[list[tuple[Mapping[str, Any], str]], list[str]]:
    """The pods stuck on a 401 (each with its line), and the condition and probe lines saying so."""
    stuck: list[tuple[Mapping[str, Any], str]] = []
    for p in m.pods:
        for c in container_states(p):
            if c["reason"] in _PULL_REASONS and _UNAUTHORIZED.search(c["message"]):
                stuck.append(
                    (p, f"pod {meta(p).get('name')} container {c['name']}: {c['reason']}: {c['message']}")
                )
                break
    cond_msgs = {
        str(c.get("message")): t
        for t, c in m.conditions().items()
        if _UNAUTHORIZED.search(str(c.get("message") or ""))
    }
    lines = [f"condition {t}: {msg}" for msg, t in cond_msgs.items()]
    pr = m.predictor
    if (
        pr is not None
        and pr.details.get("reason") in _PULL_REASONS
        and any(_UNAUTHORIZED.search(e) for e in pr.evidence)
    ):
        lines += [e for e in pr.evidence if _UNAUTHORIZED.search(e)]
    return stuck, lines


def image_pull_unauthorized(ctx: Pass, m: Model) -> None:
    ns = m.cfg.namespace
    stuck, seen_lines = _evidence(m)
    sa: Mapping[str, Any] = ctx.world.get("ServiceAccount", ns, m.sa_name) or {}
    sa_pull = _pull_secret_names(sa)
    want_pull = _pull_secret_names(ctx.desired.get(("ServiceAccount", ns, m.sa_name)))
    static_lines: list[str] = []
    if sa and any(n not in sa_pull for n in want_pull):
        static_lines = [
            f"ServiceAccount {ns}/{m.sa_name} lacks imagePullSecrets "
            f"{[n for n in want_pull if n not in sa_pull]}: new predictor pods will get "
            "401 Unauthorized from the registry"
        ]
    if not (stuck or seen_lines or static_lines):
        return
    ev = [line for _, line in stuck] + seen_lines + static_lines
    sa_ref = ctx.desired_ref("ServiceAccount", ns, m.sa_name) or ref("v1", "ServiceAccount", ns, m.sa_name)
    drift = ctx.claim("ServiceAccount", ns, m.sa_name)
    apply: list[ObjectRef] = []
    if drift is not None and any(n not in sa_pull for n in want_pull):
        apply.append(sa_ref)
        ev.extend(drift.describe())
    elif drift is not None:
        ctx.claimed.discard(("ServiceAccount", ns, m.sa_name))  # drift elsewhere: generic
    ev.append(f"ServiceAccount {ns}/{m.sa_name} imagePullSecrets: {sa_pull or 'none'}")
    effective = want_pull if apply else sa_pull
    missing_secrets = [n for n in effective if ctx.world.get("Secret", ns, n) is None]
    # Pods copy imagePullSecrets from the SA at creation: a pod without them stays stuck.
    to_delete = [
        ref("v1", "Pod", ns, str(meta(p).get("name")))
        for p, _ in stuck
        if not set(effective) <= set(_pull_secret_names(p.get("spec")))
    ]
    data: dict[str, Any]
    if missing_secrets:
        data = {"human": True}
        remedy = (
            f"the registry secret {', '.join(missing_secrets)} does not exist in {ns}: kubectl create "
            f"secret docker-registry {missing_secrets[0]} -n {ns} --docker-server=<registry> "
            "--docker-username=<user> --docker-password=<password>"
            + (f"; then apply {sa_ref}" if apply else "")
        )
    elif apply or to_delete:
        data = {"apply": apply, "delete_pods": to_delete}
        parts = []
        if apply:
            patch = json.dumps({"imagePullSecrets": [{"name": n} for n in want_pull]})
            parts.append(
                f"add imagePullSecrets {want_pull} to ServiceAccount {ns}/{m.sa_name} "
                f"(kubectl patch serviceaccount {m.sa_name} -n {ns} -p '{patch}')"
            )
        if to_delete:
            parts.append(
                ("then " if apply else "")
                + "delete the pods created before the fix, so they are recreated with the pull secret: "
                + "; ".join(f"kubectl delete pod {r.name} -n {ns}" for r in to_delete)
            )
        remedy = "; ".join(parts) + " (done automatically)"
    else:
        data = {"human": True}
        remedy = (
            f"the pod has pull secrets {effective} and the registry still answers 401: the credentials "
            f"are wrong or expired; recreate them (kubectl create secret docker-registry ... -n {ns})"
        )
    ctx.explain(m, code=Code.IMAGE_PULL_UNAUTHORIZED, subject=sa_ref, evidence=ev, remedy=remedy, data=data)
