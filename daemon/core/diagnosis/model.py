"""``Model``: what one pass knows about one configured model, and the readings every rule shares.

Built once per pass by :meth:`daemon.core.diagnosis.context.Pass.model` (live InferenceService,
its predictor pods, the ServiceAccount it runs as, the latest predictor and storage probe
runs), then handed to each rule in turn. ``symptoms`` are what is visibly wrong (an unready
condition, an unready istio-proxy, a failing probe); ``explained`` is set by the first rule
that names a root cause for them, so the catch-all rules (DNS correlation, not-ready) know
whether anything is left to explain.

Each symptom has a *kind* (``runtime``, ``credentials``, ``storage``, ``mesh``, ``proxy``,
``unready``) so that it is given to exactly one root cause: a rule takes the kinds it
explains (:meth:`Model.take`), the model's first root cause also takes the generic
``unready`` ones, and what is left at the end goes to DNS (an unready istio-proxy) or to the
first cause. No symptom is listed under two findings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.core.diagnosis.fields import container_states, meta
from daemon.core.diagnosis.spec import Predictor
from daemon.core.objects import KubeObject, ObjectRef
from daemon.core.settings import ModelSettings
from probes.observation import Observation
from probes.pod_status import current_failure_info


@dataclass
class Model:
    """What the pass knows about one configured model."""

    cfg: ModelSettings
    ref: ObjectRef
    isvc: KubeObject | None
    """The live InferenceService (None: not created yet)."""
    sa_name: str
    pods: list[KubeObject]
    predictor: Observation | None
    storage: Observation | None
    spec: Predictor
    mode: str
    components: tuple[str, ...]
    symptoms: list[tuple[str, str]] = field(default_factory=list)
    """``(kind, text)`` not yet given to a root cause."""
    explained: bool = False
    first_cause: Any = None
    """The model's first root-cause draft (it takes the generic symptoms)."""

    def take(self, kinds: tuple[str, ...] | None = None) -> list[str]:
        """The symptoms of these kinds (all when None), removed so no other cause gets them."""
        mine = [t for k, t in self.symptoms if kinds is None or k in kinds]
        self.symptoms = [(k, t) for k, t in self.symptoms if not (kinds is None or k in kinds)]
        return mine

    declared: Mapping[str, Any] | None = None
    """The desired state's InferenceService, judged statically while the live one is absent."""

    @property
    def source(self) -> Mapping[str, Any] | None:
        """What KServe will see: the live object, else the declared one."""
        return self.isvc if self.isvc is not None else self.declared

    @property
    def principal(self) -> str:
        """The mesh identity of the model's pods (its ServiceAccount's SPIFFE principal)."""
        return f"cluster.local/ns/{self.cfg.namespace}/sa/{self.sa_name}"

    def conditions(self) -> dict[str, dict[str, Any]]:
        st = (self.isvc or {}).get("status") or {}
        return {str(c.get("type")): c for c in st.get("conditions") or [] if isinstance(c, dict)}

    def failure_reason(self) -> tuple[str | None, str]:
        """``status.modelStatus.lastFailureInfo``: its reason and message, while it is current
        (:func:`probes.pod_status.current_failure_info`: KServe never clears it, and a stale one
        kept a critical finding on a healed model)."""
        info = current_failure_info((self.isvc or {}).get("status") or {})
        return info.get("reason"), str(info.get("message") or "")

    def log_lines(self) -> list[str]:
        """The predictor probe's log tail and evidence: where the server says what went wrong."""
        if self.predictor is None:
            return []
        lines = [str(x) for x in self.predictor.details.get("log_tail") or []]
        return lines + list(self.predictor.evidence)

    def collect_symptoms(self) -> None:
        for p in self.pods:
            pname = meta(p).get("name")
            for c in container_states(p):
                if c["name"] == "istio-proxy" and not c["ready"]:
                    self.symptoms.append(("proxy", f"pod {pname}: istio-proxy not ready"))
                elif c["init"] and c["name"] == "storage-initializer" and c["message"]:
                    msg = c["message"]
                    kind = (
                        "credentials" if _CREDENTIALS.search(msg)
                        else "mesh" if "RBAC: access denied" in msg
                        else "storage"
                    )
                    # The message is the log's tail (FallbackToLogsOnError): its end says why.
                    tail = " | ".join(ln.strip() for ln in msg.strip().splitlines()[-2:])
                    self.symptoms.append((kind, f"pod {pname}: storage-initializer: {tail[-200:]}"))
        cond = self.conditions()
        for t in READY_CONDITIONS:
            if t in cond and cond[t].get("status") != "True":
                msg = str(cond[t].get("message") or cond[t].get("reason") or "")
                kind = "runtime" if "runtime" in msg.lower() else _COMPONENT_KIND.get(t, "unready")
                self.symptoms.append((kind, f"InferenceService {self.cfg.key}: {t}=False {msg}".rstrip()))
        if self.predictor is not None and not self.predictor.ok:
            self.symptoms.append(("unready", f"predictor probe: {self.predictor.outcome}"))


_COMPONENT_KIND = {
    "TransformerReady": "transformer", "ExplainerReady": "explainer", "IngressReady": "ingress",
}
READY_CONDITIONS = ("Ready", "PredictorReady", "TransformerReady", "ExplainerReady", "IngressReady")
_CREDENTIALS = re.compile(r"NoCredentialsError|InvalidAccessKeyId|SignatureDoesNotMatch|credentials", re.I)
