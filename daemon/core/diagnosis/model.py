"""``Model``: what one pass knows about one configured model, and the readings every rule shares.

Built once per pass by :meth:`daemon.core.diagnosis.context.Pass.model` (live InferenceService,
its predictor pods, the ServiceAccount it runs as, the latest predictor and storage probe
runs), then handed to each rule in turn. ``symptoms`` are what is visibly wrong (an unready
condition, an unready istio-proxy, a failing probe); ``explained`` is set by the first rule
that names a root cause for them, so the catch-all rules (DNS correlation, not-ready) know
whether anything is left to explain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daemon.core.diagnosis.fields import container_states, meta
from daemon.core.objects import KubeObject, ObjectRef
from daemon.core.settings import ModelSettings
from probes.observation import Observation


@dataclass
class Model:
    """What the pass knows about one configured model."""

    cfg: ModelSettings
    ref: ObjectRef
    isvc: KubeObject | None
    sa_name: str
    pods: list[KubeObject]
    predictor: Observation | None
    storage: Observation | None
    symptoms: list[str] = field(default_factory=list)
    explained: bool = False

    @property
    def principal(self) -> str:
        """The mesh identity of the model's pods (its ServiceAccount's SPIFFE principal)."""
        return f"cluster.local/ns/{self.cfg.namespace}/sa/{self.sa_name}"

    def conditions(self) -> dict[str, dict[str, Any]]:
        st = (self.isvc or {}).get("status") or {}
        return {str(c.get("type")): c for c in st.get("conditions") or [] if isinstance(c, dict)}

    def failure_reason(self) -> tuple[str | None, str]:
        """``status.modelStatus.lastFailureInfo``: its reason and message."""
        info = (((self.isvc or {}).get("status") or {}).get("modelStatus") or {}).get("lastFailureInfo") or {}
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
                    self.symptoms.append(f"pod {pname}: istio-proxy not ready")
        cond = self.conditions()
        for t in ("Ready", "PredictorReady"):
            if t in cond and cond[t]["status"] != "True":
                msg = cond[t].get("message") or cond[t].get("reason") or ""
                self.symptoms.append(f"InferenceService {self.cfg.key}: {t}=False {msg}".rstrip())
        if self.predictor is not None and not self.predictor.ok:
            self.symptoms.append(f"predictor probe: {self.predictor.outcome}")
