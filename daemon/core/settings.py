"""The daemon's settings: a typed schema, loaded and validated once at start-up.

The schema *is* the frozen dataclasses below. :func:`parse_settings` takes a YAML text
(merged over the embedded defaults, ``daemon/defaults/warden.yaml``), applies environment
overrides, and converts the result field by field, walking the dataclasses' type hints
(:mod:`daemon.core.typed_yaml`). Reading the files is the process's job
(:func:`daemon.process.config_files.load_settings`).
Every problem found on the way is collected, not raised at the first one: the operator
gets *all* of them at once, one clear line each (``remediation.backoff_initial_seconds: must be
>= 0, got -5``; ``probes.dns.perod_seconds: unknown key (did you mean 'period_seconds'?)``),
as a :class:`SettingsError`. The CLI turns that into exit code 2, and nothing is applied.

Pure: no I/O at all (the texts arrive already read). Things that need the machine (the
nameserver from ``/etc/resolv.conf``) are left ``None`` for the caller.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from daemon.core.actions import ActionKind
from daemon.core.label_selector import selector_problem
from daemon.core.typed_yaml import convert, type_name


class SettingsError(Exception):
    """Invalid settings: one message per problem, all of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid settings:\n" + "\n".join(f"  - {p}" for p in self.problems))


# --- schema -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Canary:
    """A known input and the answer the real model gives (the dummy model's tell)."""

    instances: tuple[tuple[float, ...], ...] = ((5.1, 3.5, 1.4, 0.2),)
    expected: tuple[int | float | str, ...] = (0,)


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    """One InferenceService the daemon diagnoses, with its optional overrides.

    Every InferenceService in scope gets one (:func:`daemon.core.discovery.discover`); the
    ``models:`` list of the settings only *overrides* what is read from the object itself.
    """

    namespace: str
    name: str
    protocol: Literal["v1", "v2"] | None = None
    """``None``: from the InferenceService (``protocolVersion``), else ``v1``."""
    canary: Canary | None = None
    """``None``: readiness only (``GET /v1/models/NAME`` or ``/v2/models/NAME/ready``), no
    inference. A canary is opt-in: here, or the ``kserve-warden.io/canary`` annotation."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, kw_only=True)
class ScopeSettings:
    """Which InferenceServices are diagnosed. Empty: every one the daemon may read."""

    namespaces: tuple[str, ...] = ()
    """Only these namespaces (empty: all)."""
    selector: str | None = None
    """A label selector on InferenceServices (``team=a,tier!=dev``), applied by the API server."""


@dataclass(frozen=True, kw_only=True)
class SecretAccessSettings:
    """Where the daemon may read Secrets: an explicit opt-in (least privilege).

    Empty: nowhere — credentials are then judged "not checked (no access to secrets in NS)",
    except in namespaces the desired state writes to. ``["*"]``: every namespace.
    """

    namespaces: tuple[str, ...] = ()

    def readable(self, namespace: str) -> bool:
        return "*" in self.namespaces or namespace in self.namespaces


@dataclass(frozen=True, kw_only=True)
class DnsProbeSettings:
    period_seconds: float = 10.0
    timeout_seconds: float = 2.0
    names: tuple[str, ...] = ("istiod.istio-system.svc.cluster.local",)
    nameserver: str | None = None
    """``None``: the caller reads the first nameserver of ``/etc/resolv.conf``."""
    port: int = 53
    queries: int = 5
    latency_threshold_seconds: float = 0.5


@dataclass(frozen=True, kw_only=True)
class StorageProbeSettings:
    period_seconds: float = 60.0
    timeout_seconds: float = 10.0
    endpoint_overrides: Mapping[str, str] = field(default_factory=dict)
    """``host:port`` → ``host:port`` rewrites of the S3 endpoint (sandbox, tests)."""


@dataclass(frozen=True, kw_only=True)
class PredictorProbeSettings:
    period_seconds: float = 30.0
    timeout_seconds: float = 10.0
    slow_threshold_seconds: float = 2.0
    proxy: str | None = None
    """``http://host:port`` of an HTTP forward proxy into the cluster network, for the probe's
    readiness and canary requests (``status.address.url`` is in-cluster: a daemon or ``check``
    run outside the cluster reaches it only through one). ``None``: direct requests."""


@dataclass(frozen=True, kw_only=True)
class ProbeSettings:
    dns: DnsProbeSettings = field(default_factory=DnsProbeSettings)
    storage: StorageProbeSettings = field(default_factory=StorageProbeSettings)
    predictor: PredictorProbeSettings = field(default_factory=PredictorProbeSettings)
    max_concurrency: int = 16
    """At most this many probe runs at once (each schedule's first run is also spread over its
    period), so a thousand models do not probe at the same instant."""


@dataclass(frozen=True, kw_only=True)
class MeshSettings:
    root_namespace: str = "istio-system"
    storage_namespace: str = "kubeflow"
    storage_labels: Mapping[str, str] = field(default_factory=lambda: {"app": "seaweedfs"})


@dataclass(frozen=True, kw_only=True)
class Budget:
    max_actions: int
    window_seconds: float


def _default_budgets() -> dict[ActionKind, Budget]:
    return {ActionKind.RESTART_COREDNS: Budget(max_actions=3, window_seconds=3600.0)}


@dataclass(frozen=True, kw_only=True)
class RemediationPolicy:
    dry_run: bool = False
    allowed_actions: frozenset[ActionKind] = frozenset(ActionKind)
    backoff_initial_seconds: float = 2.0
    """Per-target exponential back-off (Argo CD self-heal style): the first action on a target
    after a quiet period goes out at once; each repeat waits this long, doubling per repeat."""
    backoff_max_seconds: float = 300.0
    """The back-off's cap; a target with no action for twice this long starts fresh."""
    budgets: Mapping[ActionKind, Budget] = field(default_factory=_default_budgets)
    dns_hysteresis: int = 3
    verify_after_seconds: float = 120.0
    take_back_fields: bool = True
    """When another manager has taken a field the desired state declares (a ``kubectl
    annotate`` or ``edit``), re-apply with ``force`` to take that field back, as Argo CD's
    self-heal does. Only fields the desired state sets are taken; other managers' other
    fields stay theirs. False: report the conflict (Warning Event) and leave it."""

    def allows(self, kind: ActionKind) -> bool:
        return kind in self.allowed_actions


@dataclass(frozen=True, kw_only=True)
class KubeSettings:
    field_manager: str = "kserve-warden"
    resync_period_seconds: float = 300.0
    request_timeout_seconds: float = 10.0
    """Every API call (connect included) ends within this; watches use it to connect."""
    cache_stale_seconds: float = 60.0
    """``/readyz`` fails when a kind's watch has been down, with no list, event or bookmark,
    for longer than this: the caches are no longer current (API unreachable)."""
    discovery_seconds: float = 300.0
    """How often the kinds not observed are looked at again: discovery for those the cluster
    does not serve (a CRD installed later), a list for those RBAC forbade. Neither counts
    against ``/readyz``."""


LEASE_JITTER_FACTOR = 1.2
"""client-go's ``leaderelection.JitterFactor``: the renew deadline must exceed this many retry periods."""


@dataclass(frozen=True, kw_only=True)
class LeaderElectionSettings:
    """The Lease, with controller-runtime's defaults (``manager.Options``: LeaseDuration 15 s,
    RenewDeadline 10 s, RetryPeriod 2 s, the values of k8s.io/component-base's
    ``LeaderElectionConfiguration``) and client-go's rules between them (``NewLeaderElector``:
    duration > renew deadline > 1.2 x retry period, all > 0)."""

    enabled: bool = True
    lease_name: str = "kserve-warden"
    lease_namespace: str = "kserve-warden"
    lease_duration_seconds: float = 15.0
    """How long a standby waits, on its own clock, after it last saw the Lease's record change
    before it takes the Lease: the worst-case failover after the leader dies without releasing.
    Written to ``spec.leaseDurationSeconds``, an integer: whole seconds."""
    renew_deadline_seconds: float = 10.0
    """How long the leader keeps failing to renew before it stops acting; shorter than the
    duration, so it has stepped down before anyone may consider the Lease expired."""
    retry_period_seconds: float = 2.0
    """How often the leader renews and a standby tries to take the Lease (a standby's tries are
    jittered by up to 20 %)."""


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    # All interfaces: Prometheus scrapes the pod IP.
    host: str = "0.0.0.0"
    port: int = 9090


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


@dataclass(frozen=True, kw_only=True)
class DesiredSettings:
    dir: Path | None = None
    """``None``: no desired state — nothing is applied, the daemon only diagnoses."""


@dataclass(frozen=True, kw_only=True)
class DeploymentRef:
    namespace: str = "kube-system"
    deployment: str = "coredns"


@dataclass(frozen=True, kw_only=True)
class ConfigMapRef:
    namespace: str = "kserve"
    name: str = "inferenceservice-config"


@dataclass(frozen=True, kw_only=True)
class Settings:
    scope: ScopeSettings = field(default_factory=ScopeSettings)
    secrets: SecretAccessSettings = field(default_factory=SecretAccessSettings)
    models: tuple[ModelSettings, ...] = ()
    """Per-InferenceService overrides (protocol, canary); not a list of what is diagnosed."""
    probes: ProbeSettings = field(default_factory=ProbeSettings)
    mesh: MeshSettings = field(default_factory=MeshSettings)
    remediation: RemediationPolicy = field(default_factory=RemediationPolicy)
    kube: KubeSettings = field(default_factory=KubeSettings)
    leader_election: LeaderElectionSettings = field(default_factory=LeaderElectionSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    log: LogSettings = field(default_factory=LogSettings)
    desired: DesiredSettings = field(default_factory=DesiredSettings)
    coredns: DeploymentRef = field(default_factory=DeploymentRef)
    kserve_config: ConfigMapRef = field(default_factory=ConfigMapRef)


# --- loading ------------------------------------------------------------------------------

# Environment variable → (dotted settings path, kind of value).
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "WARDEN_DRY_RUN": ("remediation.dry_run", "bool"),
    "WARDEN_NAMESPACES": ("scope.namespaces", "list"),
    "WARDEN_SELECTOR": ("scope.selector", "str"),
    "WARDEN_SECRET_NAMESPACES": ("secrets.namespaces", "list"),
    "WARDEN_LOG_LEVEL": ("log.level", "str"),
    "WARDEN_LOG_FORMAT": ("log.format", "str"),
    "WARDEN_METRICS_PORT": ("server.port", "int"),
    "WARDEN_DNS_NAMESERVER": ("probes.dns.nameserver", "str"),
    "WARDEN_DESIRED_DIR": ("desired.dir", "str"),
    "WARDEN_LEADER_ELECTION": ("leader_election.enabled", "bool"),
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_settings(default_text: str, user: tuple[Path, str] | None, *,
                   environ: Mapping[str, str]) -> Settings:
    """Parse the embedded defaults, merge ``user`` (its path and text) over them, override from
    ``environ``, validate. The texts are already read (:mod:`daemon.process.config_files` reads them).

    Raises :class:`SettingsError` with every problem found.
    """
    problems: list[str] = []
    base = _parse_yaml(default_text, "<embedded warden.yaml>", problems)
    path: Path | None = None
    if user is not None:
        path, text = user
        raw = _merge(base, _parse_yaml(text, str(path), problems))
    else:
        raw = base
    if problems:
        raise SettingsError(problems)
    raw = _apply_env(raw, environ, problems)
    settings = convert(Settings, raw, "", problems)
    if isinstance(settings, Settings):
        problems.extend(_check_values(settings))
    if problems:
        raise SettingsError(problems)
    assert isinstance(settings, Settings)
    d = settings.desired.dir
    if d is not None and not d.is_absolute() and path is not None and "WARDEN_DESIRED_DIR" not in environ:
        # A relative desired dir in a settings file means "next to this file".
        settings = replace(settings, desired=DesiredSettings(dir=path.parent / d))
    return settings


def _parse_yaml(text: str, where: str, problems: list[str]) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problems.append(f"{where}: not valid YAML{at}: {getattr(exc, 'problem', None) or exc}")
        return {}
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        problems.append(f"{where}: the top level must be a mapping, got {type_name(doc)}")
        return {}
    return doc


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, everything else (lists too) is replaced."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _apply_env(raw: dict[str, Any], environ: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    out = _merge(raw, {})
    for var, (dotted, kind) in ENV_OVERRIDES.items():
        if var not in environ:
            continue
        text = environ[var].strip()
        value: Any
        if kind == "bool":
            if text.lower() in _TRUE:
                value = True
            elif text.lower() in _FALSE:
                value = False
            else:
                problems.append(f"${var}: expected a boolean (1/0, true/false, yes/no), got {text!r}")
                continue
        elif kind == "int":
            try:
                value = int(text)
            except ValueError:
                problems.append(f"${var}: expected an integer, got {text!r}")
                continue
        elif kind == "list":
            value = [p.strip() for p in text.split(",") if p.strip()]
        else:
            value = text or None
        node = out
        *parents, leaf = dotted.split(".")
        for p in parents:
            child = node.get(p)
            if not isinstance(child, dict):
                child = {}
            node[p] = child = dict(child)
            node = child
        node[leaf] = value
    return out


def _lease_problems(le: LeaderElectionSettings) -> list[str]:
    """client-go's ``NewLeaderElector`` rules, one message each, plus whole seconds for the
    duration (the Lease stores an integer; 1.5 would be published as 2 and honoured as 2)."""
    p: list[str] = []
    where = "leader_election"
    for name in ("lease_duration_seconds", "renew_deadline_seconds", "retry_period_seconds"):
        if (v := getattr(le, name)) <= 0:
            p.append(f"{where}.{name}: must be > 0, got {v:g}")
    if p:
        return p  # the comparisons below mean nothing with a non-positive value
    duration, renew, retry = le.lease_duration_seconds, le.renew_deadline_seconds, le.retry_period_seconds
    if duration != int(duration):
        p.append(f"{where}.lease_duration_seconds: must be whole seconds (the Lease's "
                 f"leaseDurationSeconds is an integer), got {duration:g}")
    if renew >= duration:
        p.append(f"{where}.renew_deadline_seconds: must be less than lease_duration_seconds "
                 f"({renew:g} >= {duration:g}): the leader must step down before a standby may take over")
    if renew <= LEASE_JITTER_FACTOR * retry:
        p.append(f"{where}.renew_deadline_seconds: must be greater than {LEASE_JITTER_FACTOR:g} x "
                 f"retry_period_seconds ({renew:g} <= {LEASE_JITTER_FACTOR * retry:g}): the leader "
                 "needs more than one try to renew before its deadline")
    return p


def _check_values(s: Settings) -> list[str]:
    """Checks across fields: impossible values the types alone cannot express."""
    p: list[str] = []

    def positive(path: str, v: float) -> None:
        if v <= 0:
            p.append(f"{path}: must be > 0, got {v:g}")

    def non_negative(path: str, v: float) -> None:
        if v < 0:
            p.append(f"{path}: must be >= 0, got {v:g}")

    for name in ("dns", "storage", "predictor"):
        probe = getattr(s.probes, name)
        positive(f"probes.{name}.period_seconds", probe.period_seconds)
        positive(f"probes.{name}.timeout_seconds", probe.timeout_seconds)
        if probe.timeout_seconds > probe.period_seconds:
            p.append(f"probes.{name}.timeout_seconds: must not exceed period_seconds "
                     f"({probe.timeout_seconds:g} > {probe.period_seconds:g})")
    if s.probes.max_concurrency < 1:
        p.append(f"probes.max_concurrency: must be >= 1, got {s.probes.max_concurrency}")
    dns = s.probes.dns
    if not 1 <= dns.port <= 65535:
        p.append(f"probes.dns.port: must be 1..65535, got {dns.port}")
    if dns.queries < 1:
        p.append(f"probes.dns.queries: must be >= 1, got {dns.queries}")
    if not dns.names:
        p.append("probes.dns.names: must list at least one name")
    positive("probes.dns.latency_threshold_seconds", dns.latency_threshold_seconds)
    positive("probes.predictor.slow_threshold_seconds", s.probes.predictor.slow_threshold_seconds)
    if s.probes.predictor.proxy is not None and (why := proxy_url_problem(s.probes.predictor.proxy)):
        p.append(f"probes.predictor.proxy: {why}")
    for src, dst in s.probes.storage.endpoint_overrides.items():
        for label, hp in (("key", src), ("value", dst)):
            host, sep, port = hp.rpartition(":")
            if not sep or not host or not port.isdigit():
                p.append(f"probes.storage.endpoint_overrides: {label} {hp!r} must be host:port")

    if dns.nameserver is not None:
        try:
            ipaddress.ip_address(dns.nameserver)
        except ValueError:
            # A name or a malformed address would make every DNS probe fail to run.
            p.append(f"probes.dns.nameserver: must be an IP address, got {dns.nameserver!r}")

    r = s.remediation
    non_negative("remediation.backoff_initial_seconds", r.backoff_initial_seconds)
    positive("remediation.backoff_max_seconds", r.backoff_max_seconds)
    if r.backoff_max_seconds < r.backoff_initial_seconds:
        p.append("remediation.backoff_max_seconds: must be >= backoff_initial_seconds "
                 f"({r.backoff_max_seconds:g} < {r.backoff_initial_seconds:g})")
    positive("remediation.verify_after_seconds", r.verify_after_seconds)
    if r.dns_hysteresis < 1:
        p.append(f"remediation.dns_hysteresis: must be >= 1, got {r.dns_hysteresis}")
    for kind, b in r.budgets.items():
        where = f"remediation.budgets.{kind.value}"
        positive(f"{where}.window_seconds", b.window_seconds)
        if b.max_actions < 0:
            p.append(f"{where}.max_actions: must be >= 0, got {b.max_actions}")
        elif b.max_actions == 0 and kind in r.allowed_actions:
            p.append(f"{where}.max_actions: 0 while {kind.value!r} is in remediation.allowed_actions "
                     "(it could never run: remove it from allowed_actions instead)")

    p.extend(_lease_problems(s.leader_election))
    positive("kube.resync_period_seconds", s.kube.resync_period_seconds)
    positive("kube.request_timeout_seconds", s.kube.request_timeout_seconds)
    positive("kube.cache_stale_seconds", s.kube.cache_stale_seconds)
    positive("kube.discovery_seconds", s.kube.discovery_seconds)
    if not 0 <= s.server.port <= 65535:
        p.append(f"server.port: must be 0..65535, got {s.server.port}")

    p.extend(_check_names(s))
    if s.scope.selector is not None and (why := selector_problem(s.scope.selector)) is not None:
        p.append(f"scope.selector: not a label selector ({why}), got {s.scope.selector!r}")

    seen: set[str] = set()
    for i, m in enumerate(s.models):
        if m.key in seen:
            p.append(f"models[{i}]: {m.key} is listed twice")
        seen.add(m.key)
        if s.scope.namespaces and m.namespace not in s.scope.namespaces:
            p.append(f"models[{i}]: namespace {m.namespace!r} is not in scope.namespaces "
                     "(it would not be watched)")
        if m.canary is None:
            continue
        if not m.canary.instances:
            p.append(f"models[{i}].canary.instances: must hold at least one instance")
        if len(m.canary.expected) != len(m.canary.instances):
            p.append(f"models[{i}].canary.expected: {len(m.canary.expected)} answers for "
                     f"{len(m.canary.instances)} instances")
    return p


def proxy_url_problem(value: str) -> str | None:
    """Why ``value`` is not an ``http://host:port`` proxy URL, or None.

    Only plain HTTP: the probe sends absolute-form requests to it (aiohttp's ``proxy=``).
    Credentials in the URL are refused without echoing the value: settings are logged and
    shown, a password must not be."""
    if "@" in value:
        # Checked first, on the raw text: no later message may echo a password.
        return "must not carry credentials (user:password@): the settings are no place for a secret"
    shape = f"must be an http://host:port URL, got {value!r}"
    try:
        url = urlsplit(value)
        port = url.port
    except ValueError:
        return shape
    if url.scheme != "http":
        return shape if url.scheme != "https" else f"only an http:// proxy is supported, got {value!r}"
    if not url.hostname or port is None or port == 0:
        return shape
    if url.path not in ("", "/") or url.query or url.fragment:
        return f"must be an http://host:port URL with no path or query, got {value!r}"
    return None


# RFC 1123, as the API server validates them: a namespace is a DNS label, most object names
# (Deployment, ConfigMap, Lease, InferenceService) are DNS subdomains.
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def dns_label_problem(value: str) -> str | None:
    """Why ``value`` is not an RFC 1123 label (a namespace name), or None."""
    if len(value) > 63:
        return f"{value!r} is longer than 63 characters"
    if not _LABEL.fullmatch(value):
        return (f"{value!r} is not a valid namespace name (RFC 1123 label: lower-case letters, digits "
                "and '-', starting and ending with a letter or digit)")
    return None


def dns_subdomain_problem(value: str) -> str | None:
    """Why ``value`` is not an RFC 1123 subdomain (an object name), or None."""
    if len(value) > 253:
        return f"{value!r} is longer than 253 characters"
    if not _SUBDOMAIN.fullmatch(value):
        return (f"{value!r} is not a valid object name (RFC 1123 subdomain: lower-case letters, digits, "
                "'-' and '.', starting and ending with a letter or digit)")
    return None


def _check_names(s: Settings) -> list[str]:
    """Kubernetes names in the settings: a bad one is a settings error, never a finding."""
    p: list[str] = []
    namespaces = [(f"scope.namespaces[{i}]", n) for i, n in enumerate(s.scope.namespaces)]
    namespaces += [(f"secrets.namespaces[{i}]", n) for i, n in enumerate(s.secrets.namespaces) if n != "*"]
    namespaces += [(f"models[{i}].namespace", m.namespace) for i, m in enumerate(s.models)]
    namespaces += [("coredns.namespace", s.coredns.namespace),
                   ("kserve_config.namespace", s.kserve_config.namespace),
                   ("leader_election.lease_namespace", s.leader_election.lease_namespace),
                   ("mesh.root_namespace", s.mesh.root_namespace),
                   ("mesh.storage_namespace", s.mesh.storage_namespace)]
    names: list[tuple[str, str]] = [(f"models[{i}].name", m.name) for i, m in enumerate(s.models)]
    names += [("coredns.deployment", s.coredns.deployment), ("kserve_config.name", s.kserve_config.name),
              ("leader_election.lease_name", s.leader_election.lease_name)]
    for path, value in namespaces:
        why = dns_label_problem(value)
        if why:
            p.append(f"{path}: {why}")
    for path, value in names:
        why = dns_subdomain_problem(value)
        if why:
            p.append(f"{path}: {why}")
    return p
