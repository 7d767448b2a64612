"""``Pass``: the state of one diagnosis pass, shared by every rule.

Inputs, indexed once: desired objects and drift by ``(kind, namespace, name)``, the fresh
probe observations (runs older than three periods of their probe are stale and dropped),
the live KServe storage configuration. Outputs, accumulated: the drafts found so far and
the drift they *claim*. A rule that explains a drifted object claims it (and usually turns
it into an ``apply``/``derive`` action of its own finding); :mod:`daemon.core.diagnosis.drift`
reports whatever drift nobody claimed, so no drift is reported twice or lost.

The rules are plain functions ``rule(ctx, model, ...)`` in the modules named for what they
diagnose; this class holds only what more than one of them needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from daemon.core.desired import KServeStorageConfig
from daemon.core.diagnosis.draft import Draft
from daemon.core.diagnosis.fields import (
    ISVC_API,
    ISVC_LABEL,
    ObjectKey,
    meta,
    object_key,
    predictor_spec,
    ref,
    ref_key,
)
from daemon.core.diagnosis.model import Model
from daemon.core.diagnosis.spec import components_of, deployment_mode, predictor_of
from daemon.core.diff import Drift
from daemon.core.findings import Code, Severity
from daemon.core.objects import ObjectRef
from daemon.core.settings import ModelSettings, Settings
from daemon.core.world import World
from probes.observation import Observation


class Pass:
    def __init__(
        self,
        *,
        world: World,
        desired: Sequence[Mapping[str, Any]],
        drifts: Sequence[Drift],
        observations: Sequence[Observation],
        settings: Settings,
        now: float,
    ) -> None:
        self.world, self.settings, self.now = world, settings, now
        self.desired = {object_key(d): d for d in desired}
        self.drifts = {ref_key(d.ref): d for d in drifts if d.drifted}
        self.claimed: set[ObjectKey] = set()
        self.drafts: list[Draft] = []
        self.obs = self._fresh(observations)
        # The latest fresh run per (probe, InferenceService key), and per probe: built once, so
        # a pass over many models does not scan every observation for each of them.
        self._latest: dict[tuple[str, str], Observation] = {}
        self._latest_of_probe: dict[str, Observation] = {}
        for o in self.obs:  # oldest first: later runs overwrite
            self._latest_of_probe[o.probe] = o
            for k in _model_keys(o):
                self._latest[(o.probe, k)] = o
        kc = settings.kserve_config
        self.configmap = world.get("ConfigMap", kc.namespace, kc.name)
        self.kserve = KServeStorageConfig.from_configmap(self.configmap)
        self.dns_symptoms: list[str] = []
        """Model symptoms slow DNS explains, folded into the DNS finding at the end of the pass."""
        self.memo: dict[str, Any] = {}
        """Indexes a rule derives from the World once per pass, not once per model (the requests
        bound to each Node: :mod:`daemon.core.diagnosis.scheduling`)."""

    # -- observations --------------------------------------------------------------------

    def _fresh(self, observations: Sequence[Observation]) -> list[Observation]:
        periods = {
            "dns": self.settings.probes.dns.period_seconds,
            "storage": self.settings.probes.storage.period_seconds,
            "predictor": self.settings.probes.predictor.period_seconds,
        }
        return sorted(
            (o for o in observations if self.now - o.finished <= 3 * periods.get(o.probe, 60.0) + 1e-9),
            key=lambda o: o.finished,
        )

    def latest(self, probe: str, model: ModelSettings) -> Observation | None:
        found = self._latest.get((probe, model.key))
        if found is None and probe == "storage" and len(self.settings.models) == 1:
            # With a single model, a storage probe named after its URI still belongs to it.
            found = self._latest_of_probe.get(probe)
        return found

    def secrets_visible(self, namespace: str) -> bool:
        """Whether the World can show this namespace's Secrets (settings opt-in, or some are here)."""
        return (
            self.settings.secrets.readable(namespace)
            or bool(self.world.list("Secret", namespace))
            or any(k[1] == namespace for k in self.desired)
        )

    def model(self, cfg: ModelSettings) -> Model:
        isvc = self.world.get("InferenceService", cfg.namespace, cfg.name)
        spec_src = (
            isvc if isvc is not None else self.desired.get(("InferenceService", cfg.namespace, cfg.name))
        )
        sa_name = str(predictor_spec(spec_src).get("serviceAccountName") or "default")
        pods = [
            p
            for p in self.world.list("Pod", cfg.namespace)
            if (meta(p).get("labels") or {}).get(ISVC_LABEL) == cfg.name
        ]
        return Model(
            cfg=cfg,
            ref=ref(ISVC_API, "InferenceService", cfg.namespace, cfg.name),
            isvc=isvc,
            sa_name=sa_name,
            pods=pods,
            predictor=self.latest("predictor", cfg),
            storage=self.latest("storage", cfg),
            spec=predictor_of(spec_src),
            mode=deployment_mode(spec_src, self.configmap),
            components=components_of(spec_src),
            declared=None if isvc is not None else spec_src,
        )

    # -- desired state and drift ---------------------------------------------------------

    def claim(self, kind: str, namespace: str | None, name: str) -> Drift | None:
        """The object's drift, if any, now explained by the caller (not reported as generic drift)."""
        d = self.drifts.get((kind, namespace, name))
        if d is not None:
            self.claimed.add((kind, namespace, name))
        return d

    def desired_ref(self, kind: str, namespace: str | None, name: str) -> ObjectRef | None:
        d = self.desired.get((kind, namespace, name))
        return ObjectRef.of(dict(d)) if d is not None else None

    def desired_of_kind(self, kind: str) -> list[tuple[ObjectKey, Mapping[str, Any]]]:
        return [(k, d) for k, d in self.desired.items() if k[0] == kind]

    # -- findings ------------------------------------------------------------------------

    def add(self, d: Draft) -> Draft:
        self.drafts.append(d)
        return d

    def explain(
        self,
        m: Model,
        *,
        code: Code,
        evidence: list[str],
        remedy: str,
        subject: ObjectRef | None = None,
        data: dict[str, Any] | None = None,
        explains: tuple[str, ...] = (),
        severity: Severity = Severity.CRITICAL,
        primary: bool = True,
    ) -> Draft:
        """Add a root cause of ``m``'s symptoms and mark the model explained.

        It takes the symptoms of the kinds it ``explains``; the model's first root cause also
        takes the generic ``unready`` ones, so each symptom is listed under one finding only.
        ``subject`` defaults to the InferenceService, ``data`` to ``{"human": True}`` (a person
        must act). A non-``primary`` cause (a transformer's) takes only its own kinds and does
        not mark the predictor explained."""
        if primary:
            m.explained = True
        first = primary and m.first_cause is None
        caused = m.take(explains + (("unready",) if first else ()))
        d = self.add(
            Draft(
                code=code,
                severity=severity,
                subject=subject or m.ref,
                evidence=evidence,
                remedy=remedy,
                data=data if data is not None else {"human": True},
                caused=caused,
                inferenceservice=m.cfg.key,
            )
        )
        if first:
            m.first_cause = d
        return d

    def note(
        self,
        m: Model,
        *,
        code: Code,
        severity: Severity,
        evidence: list[str],
        remedy: str,
        subject: ObjectRef | None = None,
    ) -> Draft:
        """A finding about ``m`` that explains none of its symptoms ("not checked", a warning)."""
        return self.add(
            Draft(
                code=code,
                severity=severity,
                subject=subject or m.ref,
                evidence=evidence,
                remedy=remedy,
                data={"human": True},
                inferenceservice=m.cfg.key,
            )
        )

    def not_checked(self, m: Model, *, what: str, why: str, remedy: str = "") -> Draft:
        """INFO ``not-checked``: what could not be judged and why (never a guess)."""
        return self.note(
            m,
            code=Code.NOT_CHECKED,
            severity=Severity.INFO,
            evidence=[f"not checked: {what} ({why})"],
            remedy=remedy or "nothing to do unless the model fails; then check this by hand",
        )


def _model_keys(o: Observation) -> set[str]:
    """The ``namespace/name`` keys an observation is about: its target (or the first two
    segments of a longer ``ns/name/...`` target) and ``details["inferenceservice"]``."""
    keys = {o.target}
    parts = o.target.split("/")
    if len(parts) > 2:
        keys.add("/".join(parts[:2]))
    isvc = o.details.get("inferenceservice")
    if isvc:
        keys.add(str(isvc))
    return keys
