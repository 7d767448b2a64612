"""``diagnose()``: from live objects, drift and probe observations to named root causes.

Pure: the World (live objects, secrets hashed), the concrete desired objects, their drift,
recent probe observations, the settings and ``now`` in; :class:`Finding` s out. One finding
per *root cause*: symptoms a cause explains are folded into its ``caused`` instead of being
reported again (a slow CoreDNS explains an unready istio-proxy and an unready predictor:
one ``dns-latency-high``, not three alerts), and drift that a specific finding explains is
claimed by it instead of showing up as generic ``drift``.

Every finding carries evidence (condition messages, container states, log lines, probe
outcomes; never a secret value), a plain-English explanation, the remedy (what the daemon
will change, or the exact command a person must run) and, in ``data``, what ``plan()`` may
do about it (see :mod:`daemon.plan` for the keys).

Some causes are judged statically, before any pod tries: which secret KServe would hand
the storage-initializer (the way KServe resolves it, with the annotation key from the live
``inferenceservice-config``); whether the mesh would admit the model's ServiceAccount to the
object store (:func:`daemon.authz.evaluate`); whether a ServingRuntime supports the model's
format; whether sidecar injection is off while a policy is meant to admit the model.

``observations`` should hold the recent history of each probe (a few runs per target), oldest
first or in any order: the latest run per target is the current state, and the run of
consecutive bad DNS probes feeds the restart hysteresis. Runs older than three periods of
their probe are stale and ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from daemon.authz import evaluate, match_value
from daemon.desired import DERIVED_FROM_ANNOTATION, STORAGE_SECRET_ANNOTATIONS, KServeStorageConfig
from daemon.diff import Drift
from daemon.findings import Code, Finding, Severity
from daemon.objects import KubeObject, ObjectRef
from daemon.settings import ModelSettings, Settings
from daemon.world import World
from probes.credentials import resolve
from probes.observation import Observation

ISVC_LABEL = "serving.kserve.io/inferenceservice"
INJECT_ANNOTATION = "sidecar.istio.io/inject"
ISVC_API = "serving.kserve.io/v1beta1"
SR_API = "serving.kserve.io/v1alpha1"
AP_API = "security.istio.io/v1"
MODEL_SUFFIXES = (
    ".bst",
    ".json",
    ".ubj",
    ".pkl",
    ".pickle",
    ".joblib",
    ".onnx",
    ".pt",
    ".pth",
    ".model",
    ".txt",
    ".cbm",
    ".h5",
    ".keras",
    ".safetensors",
)
_PULL_REASONS = ("ImagePullBackOff", "ErrImagePull")
_UNAUTHORIZED = re.compile(r"\b401\b|unauthori[sz]ed", re.I)
_DNS_LINE = re.compile(r"lookup \S+.*(i/o timeout|no such host|server misbehaving)|dial tcp: lookup", re.I)

EXPLAIN: dict[Code, str] = {
    Code.NO_SERVING_RUNTIME: (
        "KServe found no ServingRuntime that supports the model's format, so it never creates "
        "the predictor ('no runtime found to support predictor with model type')."
    ),
    Code.STORAGE_CREDENTIALS_MISSING: (
        "The storage-initializer gets no usable S3 credentials, so downloading the model fails "
        "with NoCredentialsError (or the credentials it gets are rejected)."
    ),
    Code.STORAGE_SECRET_FORMAT: (
        "The secret KServe would use for storage does not hold AWS_ACCESS_KEY_ID/"
        "AWS_SECRET_ACCESS_KEY (e.g. MinIO's accesskey/secretkey). KServe skips such a secret "
        "silently and the download fails with NoCredentialsError."
    ),
    Code.STORAGE_SECRET_ANNOTATION: (
        "The annotation that names the storage secret is not the one this KServe reads, or "
        "names the wrong secret. kustomize installs read serving.kserve.io/storageSecretName, "
        "Helm installs serving.kserve.io/secretName (inferenceservice-config, "
        "credentials.storageSecretNameAnnotation); the other key is ignored without a word."
    ),
    Code.STORAGE_UNREACHABLE: (
        "The object store cannot be reached from the model's side, for a reason not explained "
        "by DNS, the mesh policy or sidecar injection."
    ),
    Code.MESH_POLICY_DENIES: (
        "An Istio AuthorizationPolicy on the object store does not admit the model's "
        "ServiceAccount principal, so the storage-initializer is refused (RBAC: access denied, "
        "or a connection error on the client)."
    ),
    Code.SIDECAR_DISABLED_POLICY_UNENFORCED: (
        "Sidecar injection is disabled for the model, so its traffic carries no mesh identity: "
        "the AuthorizationPolicy written to admit it cannot match it, and mTLS is off. "
        "Disabling injection is not a fix for DNS trouble; fix DNS instead."
    ),
    Code.DNS_LATENCY_HIGH: (
        "Cluster DNS is slow or failing for istiod; the istio-proxy sidecar cannot get its "
        "certificate ('lookup istiod.istio-system.svc: i/o timeout'), so the pod never becomes "
        "ready."
    ),
    Code.MODEL_NOT_FOUND: "The model file the server needs is not where the storageUri points.",
    Code.MODEL_WRONG_FORMAT: (
        "The files at the storageUri are not a model the runtime can load (or it failed to load them)."
    ),
    Code.WRONG_MODEL: (
        "The predictor is up but answers the canary input wrongly: it is not serving the "
        "trained model (the seed's silent dummy-model fallback)."
    ),
    Code.IMAGE_PULL_UNAUTHORIZED: (
        "The registry refuses to serve the predictor image (401 Unauthorized): the pod has no "
        "pull secret for it. Pods take imagePullSecrets from their ServiceAccount at creation, "
        "so pods created before the fix stay stuck until recreated."
    ),
    Code.PREDICTOR_NOT_READY: "The predictor is not ready, for a reason not diagnosed more precisely.",
    Code.DRIFT: "A desired object is missing or differs from its desired state.",
}


def _meta(o: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (o or {}).get("metadata") or {}


def _ann(o: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return _meta(o).get("annotations") or {}


def _rkey(ref: ObjectRef) -> tuple[str, str | None, str]:
    return (ref.kind, ref.namespace, ref.name)


def _okey(o: Mapping[str, Any]) -> tuple[str, str | None, str]:
    m = _meta(o)
    return (str(o.get("kind", "")), m.get("namespace"), str(m.get("name", "")))


def _ref(api_version: str, kind: str, namespace: str | None, name: str) -> ObjectRef:
    return ObjectRef(api_version=api_version, kind=kind, namespace=namespace, name=name)


# --- the diagnosis ------------------------------------------------------------------------


@dataclass
class _Draft:
    """A finding being assembled (mutable until the end of the pass)."""

    code: Code
    severity: Severity
    subject: ObjectRef
    evidence: list[str]
    remedy: str
    data: dict[str, Any] = field(default_factory=dict)
    caused: list[str] = field(default_factory=list)

    def build(self) -> Finding:
        return Finding(
            code=self.code,
            severity=self.severity,
            subject=self.subject,
            evidence=tuple(dict.fromkeys(self.evidence)),
            explanation=EXPLAIN[self.code],
            remedy=self.remedy,
            caused=tuple(dict.fromkeys(self.caused)),
            data=self.data,
        )


@dataclass
class _Model:
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


def _container_states(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    st = pod.get("status") or {}
    out = []
    for init, key in ((True, "initContainerStatuses"), (False, "containerStatuses")):
        for c in st.get(key) or []:
            state = c.get("state") or {}
            waiting, term = state.get("waiting") or {}, state.get("terminated") or {}
            last_term = (c.get("lastState") or {}).get("terminated") or {}
            out.append(
                {
                    "name": c.get("name", ""),
                    "init": init,
                    "ready": bool(c.get("ready")),
                    "reason": waiting.get("reason") or term.get("reason") or "",
                    "message": waiting.get("message")
                    or term.get("message")
                    or last_term.get("message")
                    or "",
                    "exit_code": term.get("exitCode", last_term.get("exitCode")),
                    "running": "running" in state,
                }
            )
    return out


class _Diagnosis:
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
        self.desired = {_okey(d): d for d in desired}
        self.drifts = {_rkey(d.ref): d for d in drifts if d.drifted}
        self.claimed: set[tuple[str, str | None, str]] = set()
        self.drafts: list[_Draft] = []
        self.obs = self._fresh(observations)
        kc = settings.kserve_config
        self.kserve = KServeStorageConfig.from_configmap(world.get("ConfigMap", kc.namespace, kc.name))
        self.dns_symptoms: list[str] = []

    # -- helpers -------------------------------------------------------------------------

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

    def _latest(self, probe: str, model: ModelSettings) -> Observation | None:
        mine = [o for o in self.obs if o.probe == probe and self._is_for(o, model)]
        return mine[-1] if mine else None

    def _is_for(self, o: Observation, model: ModelSettings) -> bool:
        if (
            o.target == model.key
            or o.target.startswith(model.key + "/")
            or o.details.get("inferenceservice") == model.key
        ):
            return True
        # With a single model, a storage probe named after its URI still belongs to it.
        return len(self.settings.models) == 1 and o.probe == "storage"

    def _drift(self, kind: str, namespace: str | None, name: str) -> Drift | None:
        return self.drifts.get((kind, namespace, name))

    def _claim(self, kind: str, namespace: str | None, name: str) -> Drift | None:
        d = self._drift(kind, namespace, name)
        if d is not None:
            self.claimed.add((kind, namespace, name))
        return d

    def _desired_ref(self, kind: str, namespace: str | None, name: str) -> ObjectRef | None:
        d = self.desired.get((kind, namespace, name))
        return ObjectRef.of(dict(d)) if d is not None else None

    def _add(self, d: _Draft) -> _Draft:
        self.drafts.append(d)
        return d

    # -- the pass ------------------------------------------------------------------------

    def run(self) -> list[Finding]:
        models = [self._model(m) for m in self.settings.models]
        dns = self._dns()
        for m in models:
            self._diagnose_model(m, dns)
        if dns is not None:
            dns.caused.extend(self.dns_symptoms)
            self.drafts.insert(0, dns)
        self._generic_drift()
        return [d.build() for d in self.drafts]

    def _model(self, cfg: ModelSettings) -> _Model:
        isvc = self.world.get("InferenceService", cfg.namespace, cfg.name)
        desired_isvc = self.desired.get(("InferenceService", cfg.namespace, cfg.name))
        spec_src = isvc if isvc is not None else desired_isvc
        sa_name = str(
            ((spec_src or {}).get("spec") or {}).get("predictor", {}).get("serviceAccountName") or "default"
        )
        pods = [
            p
            for p in self.world.list("Pod", cfg.namespace)
            if (_meta(p).get("labels") or {}).get(ISVC_LABEL) == cfg.name
        ]
        return _Model(
            cfg=cfg,
            ref=_ref(ISVC_API, "InferenceService", cfg.namespace, cfg.name),
            isvc=isvc,
            sa_name=sa_name,
            pods=pods,
            predictor=self._latest("predictor", cfg),
            storage=self._latest("storage", cfg),
        )

    # -- DNS -----------------------------------------------------------------------------

    def _dns(self) -> _Draft | None:
        by_target: dict[str, list[Observation]] = {}
        for o in self.obs:
            if o.probe == "dns":
                by_target.setdefault(o.target, []).append(o)
        worst: tuple[int, Observation] | None = None
        for runs in by_target.values():
            latest = runs[-1]
            if latest.ok or latest.outcome == "probe-error":
                continue
            bad = 0
            for o in reversed(runs):
                if o.ok or o.outcome == "probe-error":
                    break
                bad += 1
            if worst is None or bad > worst[0]:
                worst = (bad, latest)
        if worst is None:
            return None
        bad, latest = worst
        cd = self.settings.coredns
        target = _ref("apps/v1", "Deployment", cd.namespace, cd.deployment)
        v = latest.values
        ev = [
            f"dns probe {latest.target}: {latest.outcome} ({bad} consecutive bad run(s)); "
            f"p50 {v.get('p50_seconds', float('nan')):.3f} s, "
            f"p95 {v.get('p95_seconds', float('nan')):.3f} s, "
            f"max {v.get('max_seconds', float('nan')):.3f} s, timeouts {v.get('timeouts', 0):g} "
            f"(threshold {self.settings.probes.dns.latency_threshold_seconds:g} s)"
        ]
        ev.extend(latest.evidence)
        if latest.outcome == "nxdomain":
            return _Draft(
                code=Code.DNS_LATENCY_HIGH,
                severity=Severity.CRITICAL,
                subject=target,
                evidence=ev,
                data={"human": True, "consecutive_bad": bad},
                remedy=(
                    f"{latest.target} does not exist (NXDOMAIN): a restart will not help. Check istiod: "
                    "kubectl -n istio-system get svc istiod; and the probe's names in warden.yaml"
                ),
            )
        return _Draft(
            code=Code.DNS_LATENCY_HIGH,
            severity=Severity.CRITICAL,
            subject=target,
            evidence=ev,
            data={"restart": target, "consecutive_bad": bad},
            remedy=(
                f"kubectl rollout restart deployment {cd.deployment} -n {cd.namespace} "
                f"(after {self.settings.remediation.dns_hysteresis} consecutive bad probes; "
                "keep sidecar injection on)"
            ),
        )

    # -- one model -----------------------------------------------------------------------

    def _diagnose_model(self, m: _Model, dns: _Draft | None) -> None:
        self._collect_symptoms(m)
        if m.isvc is None:
            if ("InferenceService", m.cfg.namespace, m.cfg.name) not in self.desired:
                # Configured to be watched, absent, and not ours to create.
                self._add(
                    _Draft(
                        code=Code.PREDICTOR_NOT_READY,
                        severity=Severity.CRITICAL,
                        subject=m.ref,
                        evidence=[
                            f"InferenceService {m.cfg.key} does not exist and is not in the desired state"
                        ],
                        data={"human": True},
                        remedy=(
                            f"create it (kubectl apply -f <manifest> -n {m.cfg.namespace}) or add it to "
                            "config/desired/, or remove it from models in warden.yaml"
                        ),
                    )
                )
            return  # otherwise its absence is drift (a generic ``drift`` finding)
        self._runtime(m)
        sidecar = self._sidecar(m)
        denied = self._mesh(m, sidecar)
        self._credentials(m)
        self._image_pull(m)
        self._model_files(m)
        self._storage_unreachable(m, dns, sidecar, denied)
        if dns is not None:
            self._fold_into_dns(m, dns)
        self._not_ready(m)

    def _collect_symptoms(self, m: _Model) -> None:
        for p in m.pods:
            pname = _meta(p).get("name")
            for c in _container_states(p):
                if c["name"] == "istio-proxy" and not c["ready"]:
                    m.symptoms.append(f"pod {pname}: istio-proxy not ready")
        cond = self._conditions(m)
        for t in ("Ready", "PredictorReady"):
            if t in cond and cond[t]["status"] != "True":
                msg = cond[t].get("message") or cond[t].get("reason") or ""
                m.symptoms.append(f"InferenceService {m.cfg.key}: {t}=False {msg}".rstrip())
        if m.predictor is not None and not m.predictor.ok:
            m.symptoms.append(f"predictor probe: {m.predictor.outcome}")

    def _conditions(self, m: _Model) -> dict[str, dict[str, Any]]:
        st = (m.isvc or {}).get("status") or {}
        return {str(c.get("type")): c for c in st.get("conditions") or [] if isinstance(c, dict)}

    def _failure_reason(self, m: _Model) -> tuple[str | None, str]:
        info = (((m.isvc or {}).get("status") or {}).get("modelStatus") or {}).get("lastFailureInfo") or {}
        return info.get("reason"), str(info.get("message") or "")

    def _log_lines(self, m: _Model) -> list[str]:
        if m.predictor is None:
            return []
        lines = [str(x) for x in m.predictor.details.get("log_tail") or []]
        return lines + list(m.predictor.evidence)

    def _fold_into_dns(self, m: _Model, dns: _Draft) -> None:
        """Correlate: what slow DNS explains is one root cause, not one alert per symptom.

        An unready istio-proxy is always DNS's (it cannot reach istiod); the model's other
        symptoms are DNS's when no more specific cause explains them.
        """
        dns.evidence.extend([ln for ln in self._log_lines(m) if _DNS_LINE.search(ln)][:3])
        if m.explained:
            self.dns_symptoms.extend(x for x in m.symptoms if "istio-proxy" in x)
        else:
            self.dns_symptoms.extend(m.symptoms)
            m.explained = True

    def _runtime(self, m: _Model) -> None:
        spec = ((m.isvc or {}).get("spec") or {}).get("predictor") or {}
        model = spec.get("model") or {}
        fmt = str((model.get("modelFormat") or {}).get("name") or "")
        wanted = model.get("runtime")
        ns = m.cfg.namespace
        reason, message = self._failure_reason(m)
        cond_msgs = [str(c.get("message") or "") for c in self._conditions(m).values()]
        said = reason == "NoSupportingRuntime" or any("no runtime found" in s.lower() for s in cond_msgs)
        if not fmt and not said:
            return
        runtimes = self.world.list("ServingRuntime", ns) + self.world.list("ClusterServingRuntime")

        def supports(rt: Mapping[str, Any], *, need_auto: bool) -> bool:
            spec_rt = rt.get("spec") or {}
            if spec_rt.get("disabled"):
                return False
            return any(
                str(f.get("name")) == fmt and (f.get("autoSelect") or not need_auto)
                for f in spec_rt.get("supportedModelFormats") or []
            )

        if wanted:
            chosen = [r for r in runtimes if _meta(r).get("name") == wanted]
            ok = any(supports(r, need_auto=False) for r in chosen)
        else:
            ok = any(supports(r, need_auto=True) for r in runtimes)
        if ok and not said:
            return
        ev = [f"InferenceService {m.cfg.key}: modelFormat {fmt or '?'}, runtime {wanted or '(auto-select)'}"]
        if message:
            ev.append(f"lastFailureInfo {reason}: {message}")
        ev.extend(f"condition: {s}" for s in cond_msgs if "runtime" in s.lower())
        names = [f"{_meta(r).get('namespace') or '(cluster)'}/{_meta(r).get('name')}" for r in runtimes]
        ev.append(f"runtimes present: {names or 'none'}")
        sr_name = str(wanted) if wanted else None
        target = None
        for (kind, dns_, name), d in self.desired.items():
            if (kind == "ServingRuntime" and dns_ == ns and (sr_name is None or name == sr_name)) and any(
                str(f.get("name")) == fmt for f in (d.get("spec") or {}).get("supportedModelFormats") or []
            ):
                target = ObjectRef.of(dict(d))
                break
        data: dict[str, Any] = {}
        if target is not None:
            drift = self._claim("ServingRuntime", ns, target.name)
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
        subject = target or m.ref
        m.explained = True
        self._add(
            _Draft(
                code=Code.NO_SERVING_RUNTIME,
                severity=Severity.CRITICAL,
                subject=subject,
                evidence=ev,
                remedy=remedy,
                data=data or {"human": True},
                caused=list(m.symptoms),
            )
        )

    def _principal(self, m: _Model) -> str:
        return f"cluster.local/ns/{m.cfg.namespace}/sa/{m.sa_name}"

    def _policies(self) -> list[KubeObject]:
        return self.world.list("AuthorizationPolicy")

    def _meant_to_admit(self, m: _Model) -> list[str]:
        """Policies (desired or live) whose rules name this model's principal or namespace."""
        principal = self._principal(m)
        out = []
        pols: list[Mapping[str, Any]] = [d for k, d in self.desired.items() if k[0] == "AuthorizationPolicy"]
        pols += self._policies()
        for p in pols:
            for rule in (p.get("spec") or {}).get("rules") or []:
                for f in rule.get("from") or []:
                    src = (f or {}).get("source") or {}
                    if any(match_value(str(x), principal) for x in src.get("principals") or []) or any(
                        match_value(str(x), m.cfg.namespace) for x in src.get("namespaces") or []
                    ):
                        out.append(f"{_meta(p).get('namespace')}/{_meta(p).get('name')}")
        return sorted(set(out))

    def _sidecar(self, m: _Model) -> _Draft | None:
        where: list[str] = []
        remove: dict[str, Any] | None = None
        ann = _ann(m.isvc)
        pred_ann = (((m.isvc or {}).get("spec") or {}).get("predictor") or {}).get("annotations") or {}
        if str(ann.get(INJECT_ANNOTATION, "")).lower() == "false":
            where.append(f'InferenceService {m.cfg.key} has annotation {INJECT_ANNOTATION}: "false"')
            remove = {"target": m.ref, "key": INJECT_ANNOTATION}
        if str(pred_ann.get(INJECT_ANNOTATION, "")).lower() == "false":
            where.append(
                f'InferenceService {m.cfg.key} spec.predictor.annotations has {INJECT_ANNOTATION}: "false"'
            )
        for p in m.pods:
            if str(_ann(p).get(INJECT_ANNOTATION, "")).lower() == "false":
                names = [c["name"] for c in _container_states(p)]
                where.append(
                    f'pod {_meta(p).get("name")} has {INJECT_ANNOTATION}: "false" '
                    f"(containers: {', '.join(names) or 'unknown'}; no istio-proxy)"
                )
        ns_obj = self.world.get("Namespace", None, m.cfg.namespace)
        ns_human = ""
        if ns_obj is not None:
            labels = _meta(ns_obj).get("labels") or {}
            if labels.get("istio-injection") != "enabled" and "istio.io/rev" not in labels:
                where.append(
                    f"namespace {m.cfg.namespace} is not labelled istio-injection=enabled "
                    f"(labels: {dict(labels)})"
                )
                ns_human = f"kubectl label namespace {m.cfg.namespace} istio-injection=enabled --overwrite; "
        if not where:
            return None
        meant = self._meant_to_admit(m)
        if not meant:
            return None
        ev = [*where, f"AuthorizationPolicy {', '.join(meant)} is meant to admit {self._principal(m)}"]
        if m.storage is not None and not m.storage.ok:
            ev.append(f"storage probe: {m.storage.outcome}")
        if remove is not None:
            remedy = (
                f"{ns_human}kubectl annotate inferenceservice {m.cfg.name} -n {m.cfg.namespace} "
                f"{INJECT_ANNOTATION}- (done automatically; the desired state does not have it). "
                "If DNS was the reason for disabling it, fix DNS instead"
            )
            data: dict[str, Any] = {"remove_annotation": remove}
        else:
            data = {"human": True}
            remedy = (
                f'{ns_human}remove {INJECT_ANNOTATION}: "false" from the predictor\'s pod template '
                f"(spec.predictor.annotations of {m.cfg.key}), then delete the predictor pods so "
                "they are recreated with the sidecar"
            )
        m.explained = True
        return self._add(
            _Draft(
                code=Code.SIDECAR_DISABLED_POLICY_UNENFORCED,
                severity=Severity.CRITICAL,
                subject=m.ref,
                evidence=ev,
                remedy=remedy,
                data=data,
                caused=list(m.symptoms),
            )
        )

    def _mesh(self, m: _Model, sidecar: _Draft | None) -> bool:
        mesh = self.settings.mesh
        result = evaluate(
            self._policies(),
            workload_namespace=mesh.storage_namespace,
            workload_labels=mesh.storage_labels,
            principal=self._principal(m),
            source_namespace=m.cfg.namespace,
            root_namespace=mesh.root_namespace,
        )
        probe_denied = m.storage is not None and m.storage.outcome == "mesh-denied"
        if result.allowed and not probe_denied:
            return False
        if result.allowed and probe_denied and sidecar is not None:
            sidecar.caused.append("storage probe: mesh-denied")
            return True
        ev: list[str] = []
        if not result.allowed:
            ev.append(
                f"static check: {self._principal(m)} → {mesh.storage_namespace} "
                f"{dict(mesh.storage_labels)}: denied; {result.reason}"
            )
        if probe_denied and m.storage is not None:
            ev.append("storage probe: mesh-denied")
            ev.extend(m.storage.evidence)
        apply: list[ObjectRef] = []
        for (kind, ns, name), d in self.desired.items():
            if kind != "AuthorizationPolicy":
                continue
            drift = self._claim(kind, ns, name)
            if drift is not None:
                apply.append(ObjectRef.of(dict(d)))
                ev.extend(drift.describe())
        deny_policy = None
        if result.deciding_policy and "DENY" in result.reason:
            deny_policy = result.deciding_policy
        if apply and deny_policy is None:
            subject = apply[0]
            remedy = (
                f"apply the desired AuthorizationPolicy {', '.join(str(r) for r in apply)} (principal "
                f"{self._principal(m)} only): kubectl apply --server-side --field-manager=kserve-warden "
                "-f config/desired/40-authorization-policy.yaml (done automatically)"
            )
            data: dict[str, Any] = {"apply": apply}
        else:
            data = {"human": True}
            decided = deny_policy or result.deciding_policy
            if decided is not None and not result.allowed:
                ns, _, name = decided.partition("/")
                subject = _ref(AP_API, "AuthorizationPolicy", ns, name)
            else:
                ns, name = mesh.storage_namespace, "<policy>"
                subject = m.ref
            if deny_policy is not None:
                remedy = (
                    f"DENY policy {deny_policy} refuses {self._principal(m)}: review it with "
                    f"kubectl get authorizationpolicy {name} -n {ns} -o yaml and exclude the principal"
                )
            elif result.allowed:
                # The sidecar refused but no policy we can see does: one outside the watched
                # namespaces, or a CUSTOM authorizer.
                remedy = (
                    f"the object store's sidecar refuses {self._principal(m)} but no watched policy "
                    "explains it: kubectl get authorizationpolicy -A; check CUSTOM (ext-authz) providers"
                )
            else:
                policies = ", ".join(result.applicable) or decided or "?"
                remedy = (
                    f"add an ALLOW rule for principal {self._principal(m)} on the object store "
                    f"(policies applying: {policies}): kubectl edit authorizationpolicy {name} -n {ns}, "
                    "or declare one in config/desired/"
                )
        if sidecar is not None:
            sidecar.caused.append(f"{subject} would deny {self._principal(m)} too (fixed separately)")
        m.explained = True
        self._add(
            _Draft(
                code=Code.MESH_POLICY_DENIES,
                severity=Severity.CRITICAL,
                subject=subject,
                evidence=ev,
                remedy=remedy,
                data=data,
                caused=list(m.symptoms),
            )
        )
        return True

    def _credentials(self, m: _Model) -> None:
        ns = m.cfg.namespace
        assert m.isvc is not None
        sa = self.world.get("ServiceAccount", ns, m.sa_name)
        secrets = {str(_meta(s).get("name")): s for s in self.world.list("Secret", ns)}
        kc = self.settings.kserve_config
        cm = self.world.get("ConfigMap", kc.namespace, kc.name)
        try:
            res = resolve(isvc=m.isvc, service_account=sa, secrets=secrets, kserve_config=cm)
        except ValueError as exc:  # the ConfigMap's credentials JSON is unreadable
            res = resolve(isvc=m.isvc, service_account=sa, secrets=secrets, kserve_config=None)
            res = replace(res, evidence=(*res.evidence, str(exc)))
        probe = m.storage
        problem = res.problem.value if res.problem is not None else None
        check_secret = res.secret_name
        ev = list(res.evidence) if problem is not None else []
        if problem is None and probe is not None and probe.outcome == "no-credentials":
            problem = str(probe.details.get("problem") or "no-secret-referenced")
        if probe is not None and probe.outcome in ("no-credentials", "invalid-credentials"):
            ev.append(f"storage probe: {probe.outcome}")
            ev.extend(probe.evidence)
        invalid = probe is not None and probe.outcome == "invalid-credentials"
        if problem is None and not invalid:
            # The static check (configuration) is authoritative; a NoCredentialsError in a log
            # with usable credentials configured comes from a pod of an older revision.
            return
        ev.extend(
            [
                ln
                for ln in self._log_lines(m)
                if "NoCredentialsError" in ln or "InvalidAccessKeyId" in ln or "SignatureDoesNotMatch" in ln
            ][:3]
        )

        # What the desired state says the storage secret is.
        d_isvc = self.desired.get(("InferenceService", ns, m.cfg.name))
        d_name = next((str(v) for k, v in _ann(d_isvc).items() if k in STORAGE_SECRET_ANNOTATIONS), None)
        derived_refs = [
            ObjectRef.of(dict(d))
            for (k, dns_, _n), d in self.desired.items()
            if k == "Secret" and dns_ == ns and DERIVED_FROM_ANNOTATION in _ann(d)
        ]
        apply: list[ObjectRef] = []
        derive: list[ObjectRef] = []
        for r in derived_refs:
            drift = self._claim("Secret", ns, r.name)
            if drift is not None or problem == "secret-missing" or invalid:
                derive.append(r)
                if drift is not None:
                    ev.extend(drift.describe())
        for kind, name in (("InferenceService", m.cfg.name), ("ServiceAccount", m.sa_name)):
            drift = self._claim(kind, ns, name)
            ref = self._desired_ref(kind, ns, name)
            if drift is not None and ref is not None:
                apply.append(ref)
                ev.extend(drift.describe())
        sources_missing = [
            f"{d_src}"
            for r in derive
            for d_src in [_ann(self.desired.get(("Secret", ns, r.name)))[DERIVED_FROM_ANNOTATION]]
            if self.world.get("Secret", *d_src.split("/", 1)) is None
        ]
        if problem == "annotation-key-mismatch":
            code = Code.STORAGE_SECRET_ANNOTATION
        elif problem == "annotation-names-missing-secret":
            code = (
                Code.STORAGE_SECRET_ANNOTATION
                if d_name is not None and d_name != check_secret
                else Code.STORAGE_CREDENTIALS_MISSING
            )
        elif problem == "wrong-key-names":
            code = Code.STORAGE_SECRET_FORMAT
        else:
            code = Code.STORAGE_CREDENTIALS_MISSING
        subject = m.ref
        if code is Code.STORAGE_SECRET_FORMAT and check_secret:
            subject = _ref("v1", "Secret", ns, check_secret)
        elif code is Code.STORAGE_CREDENTIALS_MISSING and derive:
            subject = derive[0]
        key = self.kserve.secret_annotation
        steps = []
        if derive:
            steps.append(
                f"derive Secret {', '.join(r.name for r in derive)} from its declared source "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, s3 annotations)"
            )
        if code is Code.STORAGE_SECRET_FORMAT and d_name and d_name != check_secret:
            steps.append(
                f"point {key} on InferenceService {m.cfg.key} at {d_name}, which holds "
                f"{self.kserve.access_key_name}/{self.kserve.secret_key_name}"
            )
        if apply:
            steps.append(f"apply {', '.join(str(r) for r in apply)} from the desired state")
        if code is Code.STORAGE_SECRET_ANNOTATION:
            steps.append(
                f"kubectl annotate inferenceservice {m.cfg.name} -n {ns} "
                + " ".join(f"{k}-" for k in STORAGE_SECRET_ANNOTATIONS if k != key and k in _ann(m.isvc))
                + f" {key}={d_name or check_secret or '<secret>'} --overwrite"
            )
        data: dict[str, Any]
        if sources_missing:
            data = {"human": True}
            remedy = (
                f"the source secret {', '.join(sources_missing)} does not exist: restore it (kubectl get "
                f"secret {sources_missing[0].split('/')[1]} -n {sources_missing[0].split('/')[0]}) or fix "
                "the DerivedSecret declaration in config/desired/; then the daemon can " + "; ".join(steps)
            )
        elif derive or apply:
            data = {"derive": derive, "apply": apply}
            remedy = "; ".join(steps) + " (done automatically)"
        else:
            data = {"human": True}
            remedy = "; ".join(steps) or (
                f"point {key} on InferenceService {m.cfg.key} at a secret holding AWS_ACCESS_KEY_ID/"
                f"AWS_SECRET_ACCESS_KEY, or list one in ServiceAccount {m.sa_name}'s .secrets"
            )
            if invalid:
                remedy = (
                    f"the object store rejects the credentials in the storage secret: check them "
                    f"(kubectl describe secret -n {ns}); re-derive from the source if it was rotated"
                )
        m.explained = True
        self._add(
            _Draft(
                code=code,
                severity=Severity.CRITICAL,
                subject=subject,
                evidence=ev or [f"storage credentials problem: {problem}"],
                remedy=remedy,
                data=data,
                caused=list(m.symptoms),
            )
        )

    def _image_pull(self, m: _Model) -> None:
        ns = m.cfg.namespace
        stuck: list[tuple[Mapping[str, Any], str]] = []
        for p in m.pods:
            for c in _container_states(p):
                if c["reason"] in _PULL_REASONS and _UNAUTHORIZED.search(c["message"]):
                    stuck.append(
                        (
                            p,
                            f"pod {_meta(p).get('name')} container {c['name']}: {c['reason']}: "
                            f"{c['message']}",
                        )
                    )
                    break
        cond_msgs = {
            str(c.get("message")): t
            for t, c in self._conditions(m).items()
            if _UNAUTHORIZED.search(str(c.get("message") or ""))
        }
        cond_lines = [f"condition {t}: {msg}" for msg, t in cond_msgs.items()]
        probe_lines: list[str] = []
        pr = m.predictor
        if (
            pr is not None
            and pr.details.get("reason") in _PULL_REASONS
            and any(_UNAUTHORIZED.search(e) for e in pr.evidence)
        ):
            probe_lines = [e for e in pr.evidence if _UNAUTHORIZED.search(e)]
        sa: Mapping[str, Any] = self.world.get("ServiceAccount", ns, m.sa_name) or {}
        sa_pull = [str(s.get("name")) for s in sa.get("imagePullSecrets") or []]
        d_sa = self.desired.get(("ServiceAccount", ns, m.sa_name))
        want_pull = [str(s.get("name")) for s in (d_sa or {}).get("imagePullSecrets") or []]
        # Judged statically too, like the mesh policy: a live ServiceAccount that lacks a pull
        # secret the desired state gives it means the next predictor pod cannot pull its image
        # (pods copy imagePullSecrets at creation), before any pod has tried.
        static_lines: list[str] = []
        if sa and any(n not in sa_pull for n in want_pull):
            static_lines = [
                f"ServiceAccount {ns}/{m.sa_name} lacks imagePullSecrets "
                f"{[n for n in want_pull if n not in sa_pull]}: new predictor pods will get "
                "401 Unauthorized from the registry"
            ]
        if not (stuck or cond_lines or probe_lines or static_lines):
            return
        ev = [line for _, line in stuck] + cond_lines + probe_lines + static_lines
        sa_ref = self._desired_ref("ServiceAccount", ns, m.sa_name) or _ref(
            "v1", "ServiceAccount", ns, m.sa_name
        )
        drift = self._claim("ServiceAccount", ns, m.sa_name)
        apply: list[ObjectRef] = []
        if drift is not None and any(n not in sa_pull for n in want_pull):
            apply.append(sa_ref)
            ev.extend(drift.describe())
        elif drift is not None:
            self.claimed.discard(("ServiceAccount", ns, m.sa_name))  # drift elsewhere: generic
        ev.append(f"ServiceAccount {ns}/{m.sa_name} imagePullSecrets: {sa_pull or 'none'}")
        effective = want_pull if apply else sa_pull
        missing_secrets = [n for n in effective if self.world.get("Secret", ns, n) is None]
        # Pods copy imagePullSecrets from the SA at creation: a pod without them stays stuck.
        to_delete = [
            _ref("v1", "Pod", ns, str(_meta(p).get("name")))
            for p, _ in stuck
            if not set(effective)
            <= {str(s.get("name")) for s in (p.get("spec") or {}).get("imagePullSecrets") or []}
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
        m.explained = True
        self._add(
            _Draft(
                code=Code.IMAGE_PULL_UNAUTHORIZED,
                severity=Severity.CRITICAL,
                subject=sa_ref,
                evidence=ev,
                remedy=remedy,
                data=data,
                caused=list(m.symptoms),
            )
        )

    def _model_files(self, m: _Model) -> None:
        s = m.storage
        uri = str(
            (((m.isvc or {}).get("spec") or {}).get("predictor") or {}).get("model", {}).get("storageUri", "")
        )
        logs = self._log_lines(m)
        not_found_log = [
            ln
            for ln in logs
            if re.search(
                r"model file not found|no model (file )?found|"
                r"FileNotFoundError|NoSuchKey",
                ln,
                re.I,
            )
        ]
        wrong_fmt_log = [
            ln
            for ln in logs
            if re.search(
                r"unsupported model|not a valid model|cannot load model|"
                r"could not load model|failed to load model|"
                r"unknown model format",
                ln,
                re.I,
            )
        ]
        reason, message = self._failure_reason(m)
        files = [str(f) for f in (s.details.get("files") or [])] if s is not None else []
        files_line = f"storage {uri} holds: {', '.join(files)}" if files else None
        if (s is not None and s.outcome == "not-found") or not_found_log:
            ev = (list(s.evidence) if s is not None and s.outcome == "not-found" else []) + not_found_log[:3]
            if files_line:
                ev.append(files_line)
            self._add(
                _Draft(
                    code=Code.MODEL_NOT_FOUND,
                    severity=Severity.CRITICAL,
                    subject=m.ref,
                    evidence=ev,
                    data={"human": True},
                    caused=list(m.symptoms),
                    remedy=(
                        (
                            f"the model is there ({', '.join(files)}) but the server looks for another "
                            "file name: serve it with a runtime that loads the model by content (the "
                            "desired ServingRuntime's image does), or store it under the name the server "
                            "expects"
                        )
                        if files and not_found_log
                        else (
                            f"upload the model to {uri} or point spec.predictor.model.storageUri "
                            f"of {m.cfg.key} at it "
                            f"(kubectl edit inferenceservice {m.cfg.name} -n {m.cfg.namespace}); "
                            "check with: aws s3 ls " + uri.rstrip("/") + "/"
                        )
                    ),
                )
            )
            m.explained = True
            return
        looks_like_model = any(f.rsplit("/", 1)[-1] == "model" or f.endswith(MODEL_SUFFIXES) for f in files)
        bad_files = s is not None and s.outcome == "ok" and "files" in s.details and not looks_like_model
        if bad_files or wrong_fmt_log or reason == "ModelLoadFailed":
            ev = wrong_fmt_log[:3]
            if reason == "ModelLoadFailed":
                ev.append(f"lastFailureInfo ModelLoadFailed: {message}".rstrip(": "))
            if files_line:
                ev.append(files_line if files else f"storage {uri} holds no files")
            elif bad_files:
                ev.append(f"storage {uri} holds no files")
            self._add(
                _Draft(
                    code=Code.MODEL_WRONG_FORMAT,
                    severity=Severity.CRITICAL,
                    subject=m.ref,
                    evidence=ev,
                    data={"human": True},
                    caused=list(m.symptoms),
                    remedy=(
                        "store a model the runtime loads (XGBoost .bst/.json/.ubj or a pickled "
                        f"sklearn/xgboost "
                        f"estimator) at {uri}; e.g. python -m serving.train --out DIR and upload DIR/*"
                    ),
                )
            )
            m.explained = True
            return
        pr = m.predictor
        if pr is not None and pr.outcome == "wrong-model":
            canary = pr.details.get("canary") or {}
            ev = list(pr.evidence)
            if canary:
                ev.append(
                    f"canary {canary.get('instances')} expected {canary.get('expected')}, "
                    f"got {canary.get('predicted')}"
                )
            if files_line:
                ev.append(files_line)
            self._add(
                _Draft(
                    code=Code.WRONG_MODEL,
                    severity=Severity.CRITICAL,
                    subject=m.ref,
                    evidence=ev,
                    data={"human": True},
                    caused=list(m.symptoms),
                    remedy=(
                        f"the server at {m.cfg.key} is not serving the trained model: check the "
                        f"runtime's log (kubectl logs -l {ISVC_LABEL}={m.cfg.name} "
                        f"-n {m.cfg.namespace} -c kserve-container) "
                        f"for a fallback; use a runtime that loads the model by content and fails when it "
                        "cannot (never a dummy), then roll the predictor"
                    ),
                )
            )
            m.explained = True

    def _storage_unreachable(
        self, m: _Model, dns: _Draft | None, sidecar: _Draft | None, denied: bool
    ) -> None:
        s = m.storage
        log_unreach = [
            ln
            for ln in self._log_lines(m)
            if "EndpointConnectionError" in ln or "Could not connect to the endpoint" in ln
        ]
        if not ((s is not None and s.outcome in ("unreachable", "tls-error")) or log_unreach):
            return
        what = (
            f"storage probe: {s.outcome}"
            if s is not None and s.outcome in ("unreachable", "tls-error")
            else "storage-initializer: endpoint connection error"
        )
        if sidecar is not None:
            sidecar.caused.append(what)
            return
        if denied:
            return  # the mesh policy explains it (Envoy's refusal looks like a connection error)
        if (
            dns is not None
            and s is not None
            and any(re.search(r"dns|resolve|lookup|name or service", e, re.I) for e in s.evidence)
        ):
            self.dns_symptoms.append(what)
            return
        ev = ([what, *list(s.evidence)] if s is not None else []) + log_unreach[:3]
        tls = s is not None and s.outcome == "tls-error"
        remedy = (
            "TLS handshake with the object store failed: check serving.kserve.io/s3-usehttps and "
            "s3-verifyssl on the storage secret/ServiceAccount against the endpoint"
            if tls
            else "check the object store: kubectl get pods,svc -n kubeflow; kubectl run test "
            f"--image=curlimages/curl --rm -i --restart=Never -n {m.cfg.namespace} -- curl -v "
            "http://minio-service.kubeflow:9000"
        )
        m.explained = True
        self._add(
            _Draft(
                code=Code.STORAGE_UNREACHABLE,
                severity=Severity.CRITICAL,
                subject=m.ref,
                evidence=ev,
                data={"human": True},
                caused=list(m.symptoms),
                remedy=remedy,
            )
        )

    def _not_ready(self, m: _Model) -> None:
        if m.explained:
            return
        pr = m.predictor
        cond = self._conditions(m)
        unready = [t for t in ("Ready", "PredictorReady") if t in cond and cond[t].get("status") != "True"]
        probe_bad = pr is not None and not pr.ok and pr.outcome != "probe-error"
        if not unready and not probe_bad:
            return
        ev: list[str] = []
        for t in unready:
            c = cond[t]
            ev.append(
                f"condition {t}={c.get('status')} {c.get('reason') or ''} {c.get('message') or ''}".strip()
            )
        if pr is not None and not pr.ok:
            ev.append(f"predictor probe: {pr.outcome}")
            ev.extend(pr.evidence)
        slow_only = pr is not None and pr.outcome == "slow" and not unready
        self._add(
            _Draft(
                code=Code.PREDICTOR_NOT_READY,
                severity=Severity.WARNING if slow_only else Severity.CRITICAL,
                subject=m.ref,
                evidence=ev,
                data={"human": True},
                caused=[],
                remedy=(
                    f"kubectl describe inferenceservice {m.cfg.name} -n {m.cfg.namespace}; "
                    "kubectl get pods -n "
                    f"{m.cfg.namespace} -l {ISVC_LABEL}={m.cfg.name}; kubectl logs -n {m.cfg.namespace} "
                    f"-l {ISVC_LABEL}={m.cfg.name} --all-containers --tail=50"
                ),
            )
        )

    # -- whatever drift nobody explained -------------------------------------------------

    def _generic_drift(self) -> None:
        for key, drift in sorted(self.drifts.items(), key=lambda kv: str(kv[0])):
            if key in self.claimed:
                continue
            kind, ns, name = key
            d = self.desired.get(key)
            ref = ObjectRef.of(dict(d)) if d is not None else drift.ref
            ev = drift.describe()
            if kind == "Secret" and d is not None and DERIVED_FROM_ANNOTATION in _ann(d):
                src = str(_ann(d)[DERIVED_FROM_ANNOTATION])
                src_ns, _, src_name = src.partition("/")
                if self.world.get("Secret", src_ns, src_name) is None:
                    self._add(
                        _Draft(
                            code=Code.STORAGE_CREDENTIALS_MISSING,
                            severity=Severity.CRITICAL,
                            subject=ref,
                            evidence=[*ev, f"source Secret {src} does not exist"],
                            data={"human": True},
                            remedy=(
                                f"create the source secret {src} (kubectl get secret {src_name} -n {src_ns}) "
                                "or fix the DerivedSecret declaration in config/desired/"
                            ),
                        )
                    )
                    continue
                self._add(
                    _Draft(
                        code=Code.DRIFT,
                        severity=Severity.WARNING,
                        subject=ref,
                        evidence=ev,
                        data={"derive": [ref]},
                        remedy=f"re-derive Secret {ns}/{name} from {src} (done automatically)",
                    )
                )
                continue
            self._add(
                _Draft(
                    code=Code.DRIFT,
                    severity=Severity.WARNING,
                    subject=ref,
                    evidence=ev,
                    data={"apply": [ref]},
                    remedy=(
                        f"server-side apply {ref} from the desired state: kubectl apply --server-side "
                        "--field-manager=kserve-warden -f config/desired/ (done automatically)"
                    ),
                )
            )


def diagnose(
    *,
    world: World,
    desired: Sequence[Mapping[str, Any]],
    drifts: Sequence[Drift],
    observations: Sequence[Observation],
    settings: Settings,
    now: float,
) -> list[Finding]:
    """One finding per root cause (see the module docstring)."""
    return _Diagnosis(
        world=world, desired=desired, drifts=drifts, observations=observations, settings=settings, now=now
    ).run()
