"""The predictor probe: is the InferenceService serving, and serving the *right* model?

One run looks at what an operator would look at by hand, in the order they would:

1. The InferenceService's status (``Ready``, ``PredictorReady``, ``IngressReady`` with their
   reasons, ``status.modelStatus.lastFailureInfo``, the URLs). A missing object is
   ``not-ready`` with reason ``NotFound``.
2. Its predictor pods (label ``serving.kserve.io/inferenceservice=<name>``): phase, init and
   main container states. The first failing container is named with a kubectl-style reason
   (``ImagePullBackOff`` with the registry's ``401 Unauthorized``, ``Init:Error`` for the
   storage-initializer's ``NoCredentialsError``, ``CrashLoopBackOff``, an istio-proxy that
   is not ready) and, when the container has run, the tail of its log (bounded in lines
   and bytes, secrets redacted) becomes evidence.
3. When the service is Ready, its address answers over HTTP: the readiness endpoint
   (V1 ``GET /v1/models/NAME``, V2 ``GET /v2/models/NAME/ready``) and then a **canary
   prediction** with a known input and its known class. A server that is up but answers
   the canary wrongly is ``wrong-model``: the seed's silent dummy model, which every
   readiness check passed.

Outcomes are the :class:`PredictorOutcome` values; ``ok`` is true only for ``ready``.
``timeout`` is a hard limit on the whole run (API reads, log tail, HTTP), after which the
run reports what it was waiting for. The probe never raises: anything unexpected becomes
``probe-error``. It opens one aiohttp session per run, only if it gets to the HTTP step,
and closes it before returning; it keeps no connection between runs.
"""

from __future__ import annotations

import asyncio
import errno
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypedDict, cast

import aiohttp
from kubernetes_asyncio.client import ApiClient, ApiException, CoreV1Api, CustomObjectsApi

from probes.observation import Observation, probe_error

PROBE_NAME = "predictor"
ISVC_LABEL = "serving.kserve.io/inferenceservice"
KSERVE_GROUP = "serving.kserve.io"
KSERVE_VERSION = "v1beta1"
ISVC_PLURAL = "inferenceservices"
SIDECAR = "istio-proxy"

SETOSA = [5.1, 3.5, 1.4, 0.2]

# Waiting reasons that mean "this container will not start by itself" (kubelet's words).
_STUCK_WAITING = frozenset({
    "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "CrashLoopBackOff",
})
# Of those, the ones where the container never ran: asking for its log only gets a 400.
_NEVER_RAN = frozenset({
    "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
    "CreateContainerConfigError", "CreateContainerError",
})

# Defence in depth behind the caller's ``redact``: values of obvious credential assignments
# are masked even when the caller did not know the secret. Key names are kept: they are what
# the operator needs to see. Three shapes, deliberately narrow so prose such as "failed to
# fetch anonymous token: 401 Unauthorized" (the seed's image-pull evidence) stays intact:
# ``KEY=value`` (env dumps, CLI flags), ``"KEY": "value"`` (JSON), ``Authorization: ...``.
_KEYS = (r"(?:aws_secret_access_key|aws_access_key_id|aws_session_token|secret_?key|access_?key"
         r"|accesskey|secretkey|password|passwd|token|api_?key)")
# A quoted value is taken whole (it may hold spaces), an unquoted one up to a separator.
_VALUE = r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s\"',;}]+)"
_SECRET_PATTERNS = (
    re.compile(rf"(?i)(?P<key>\b\w*?{_KEYS}\s*=\s*){_VALUE}"),
    re.compile(rf"(?i)(?P<key>[\"']{_KEYS}[\"']\s*:\s*){_VALUE}"),
    re.compile(rf"(?i)(?P<key>\b(?:proxy-)?authorization\s*:\s*)(?:(?:bearer|basic)\s+)?{_VALUE}"),
)
REDACTED = "<redacted>"
_BODY_EXCERPT = 300
_LOG_FETCH_CAP = 64 * 1024


class PredictorOutcome(StrEnum):
    READY = "ready"
    NOT_READY = "not-ready"
    POD_FAILING = "pod-failing"
    UNREACHABLE = "unreachable"
    WRONG_MODEL = "wrong-model"
    SLOW = "slow"
    PROBE_ERROR = "probe-error"


# -- raw API JSON (partial shapes: the API sends more) ---------------------------------------


class ConditionJSON(TypedDict, total=False):
    type: str
    status: str
    reason: str
    message: str


class ContainerStateJSON(TypedDict, total=False):
    waiting: dict[str, Any]
    running: dict[str, Any]
    terminated: dict[str, Any]


class ContainerStatusJSON(TypedDict, total=False):
    name: str
    ready: bool
    restartCount: int
    state: ContainerStateJSON
    lastState: ContainerStateJSON


# -- what the probe reports in ``details`` ----------------------------------------------------


class ConditionInfo(TypedDict):
    status: str
    reason: str
    message: str


class ContainerInfo(TypedDict):
    name: str
    init: bool
    state: str
    reason: str
    message: str
    ready: bool
    restarts: int


class PodInfo(TypedDict):
    name: str
    phase: str
    ready: bool
    containers: list[ContainerInfo]


@dataclass(frozen=True, kw_only=True)
class ContainerFailure:
    """The first container that explains why the predictor is not serving."""

    pod: str
    container: str
    init: bool
    reason: str
    """kubectl-style: ``ImagePullBackOff``, ``Init:Error``, ``CrashLoopBackOff``, ``SidecarNotReady``."""
    message: str
    has_log: bool
    """Whether the container ever ran, so that a log tail can exist."""


# -- pure helpers (no I/O; the unit tests call them directly) --------------------------------


def scrub(text: str, redact: Callable[[str], str] | None) -> str:
    """Redact known secrets (caller's function) and obvious credential assignments."""
    if redact is not None:
        text = redact(text)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(_mask, text)
    return text


def _mask(m: re.Match[str]) -> str:
    value = m.group("value")
    quote = value[0] if value[0] in "\"'" else ""
    return f"{m.group('key')}{quote}{REDACTED}{quote}"


def parse_conditions(status: Mapping[str, Any]) -> dict[str, ConditionInfo]:
    out: dict[str, ConditionInfo] = {}
    for raw in status.get("conditions") or []:
        cond: ConditionJSON = raw
        kind = cond.get("type")
        if kind:
            out[kind] = ConditionInfo(
                status=str(cond.get("status", "Unknown")),
                reason=str(cond.get("reason") or ""),
                message=str(cond.get("message") or ""),
            )
    return out


def _state(status: ContainerStatusJSON) -> tuple[str, dict[str, Any]]:
    state: Mapping[str, Any] = status.get("state") or {}
    for name in ("waiting", "terminated", "running"):
        body = state.get(name)
        if isinstance(body, dict):
            return name, body
    return "unknown", {}


def container_info(status: ContainerStatusJSON, *, init: bool) -> ContainerInfo:
    state, body = _state(status)
    reason = str(body.get("reason") or "")
    if state == "terminated" and not reason:
        reason = "Completed" if body.get("exitCode", 0) == 0 else "Error"
    message = str(body.get("message") or "")
    if state == "terminated" and body.get("exitCode") not in (None, 0) and not message:
        message = f"exit code {body.get('exitCode')}"
    return ContainerInfo(
        name=str(status.get("name", "")),
        init=init,
        state=state,
        reason=reason,
        message=message,
        ready=bool(status.get("ready", False)),
        restarts=int(status.get("restartCount", 0) or 0),
    )


def pod_info(pod: Mapping[str, Any]) -> PodInfo:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    containers = [container_info(c, init=True) for c in status.get("initContainerStatuses") or []]
    containers += [container_info(c, init=False) for c in status.get("containerStatuses") or []]
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    return PodInfo(
        name=str(meta.get("name", "")),
        phase=str(status.get("phase") or "Unknown"),
        ready=ready,
        containers=containers,
    )


def _failure_of(pod: str, c: ContainerInfo) -> ContainerFailure | None:
    """The container's failure in kubectl's words, or None if it is fine (or just starting)."""
    if c["state"] == "waiting" and c["reason"] in _STUCK_WAITING:
        reason = c["reason"]
        # kubectl shows a crash-looping init container as Init:CrashLoopBackOff; image pull
        # reasons keep their own name (the fix is the same for init and main containers).
        if c["init"] and reason == "CrashLoopBackOff":
            reason = "Init:CrashLoopBackOff"
        return ContainerFailure(pod=pod, container=c["name"], init=c["init"], reason=reason,
                                message=c["message"], has_log=reason not in _NEVER_RAN)
    if c["state"] == "terminated" and c["reason"] != "Completed":
        reason = f"Init:{c['reason']}" if c["init"] else c["reason"]
        return ContainerFailure(pod=pod, container=c["name"], init=c["init"], reason=reason,
                                message=c["message"], has_log=True)
    if c["name"] == SIDECAR and c["state"] == "running" and not c["ready"]:
        # The seed's failure 3: istio-proxy up but never ready because it cannot reach
        # istiod; its log says why (``lookup istiod.istio-system.svc: i/o timeout``).
        return ContainerFailure(pod=pod, container=c["name"], init=c["init"], reason="SidecarNotReady",
                                message=c["message"], has_log=True)
    return None


def find_failure(pods: Sequence[PodInfo]) -> ContainerFailure | None:
    """The first failing container across pods: init containers first (they block the rest)."""
    for pod in pods:
        ordered = sorted(pod["containers"], key=lambda c: not c["init"])
        # A stuck init container explains everything after it; a sidecar that is not ready
        # matters only if nothing harder failed, so look for it last.
        for c in ordered:
            if c["name"] != SIDECAR or c["state"] != "running":
                failure = _failure_of(pod["name"], c)
                if failure:
                    return failure
    for pod in pods:
        for c in pod["containers"]:
            failure = _failure_of(pod["name"], c)
            if failure:
                return failure
    return None


def tail(text: str, *, lines: int, max_bytes: int) -> list[str]:
    """The last ``lines`` lines of ``text``, at most ``max_bytes`` bytes of it (UTF-8)."""
    data = text.encode("utf-8", "replace")
    if len(data) > max_bytes:
        # Cut at the byte budget, then drop the partial first line it leaves (unless the cut
        # fell right after a newline); a single over-long line keeps its end.
        partial = data[-max_bytes - 1] != ord("\n")
        text = data[-max_bytes:].decode("utf-8", "ignore")
        if partial and "\n" in text:
            text = text.split("\n", 1)[1]
    else:
        text = data.decode("utf-8", "replace")
    out = text.splitlines()
    return out[-lines:] if lines > 0 else []


def _as_class(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
        # Class probabilities (predict_proba): the predicted class is the most likely one.
        return max(range(len(value)), key=lambda i: value[i])
    return None


def parse_v1_predictions(body: Any) -> list[int]:
    """Classes from a V1 answer ``{"predictions": [...]}``; ValueError if it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("predictions"), list):
        raise ValueError("answer has no 'predictions' list")
    classes = [_as_class(p) for p in body["predictions"]]
    if any(c is None for c in classes):
        raise ValueError(f"predictions are not classes: {json.dumps(body['predictions'])[:_BODY_EXCERPT]}")
    return [c for c in classes if c is not None]


def parse_v2_predictions(body: Any, *, output: str = "predict") -> list[int]:
    """Classes from an Open Inference Protocol answer (output ``predict``, else the first)."""
    outputs = body.get("outputs") if isinstance(body, dict) else None
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, dict) for o in outputs):
        raise ValueError("answer has no 'outputs' list")
    chosen = next((o for o in outputs if o.get("name") == output), outputs[0])
    data = chosen.get("data")
    if not isinstance(data, list):
        raise ValueError(f"output {chosen.get('name')!r} has no 'data' list")
    shape = chosen.get("shape")
    if isinstance(shape, list) and len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 1:
        width = shape[1]
        data = [data[i:i + width] for i in range(0, len(data), width)]
    classes = [_as_class(v) for v in data]
    if any(c is None for c in classes):
        excerpt = json.dumps(data)[:_BODY_EXCERPT]
        raise ValueError(f"output {chosen.get('name')!r} holds no classes: {excerpt}")
    return [c for c in classes if c is not None]


def _compact(values: Sequence[float]) -> str:
    return json.dumps(list(values), separators=(",", ":"))


def _conditions_text(conditions: Mapping[str, ConditionInfo]) -> str:
    parts = []
    for kind, c in conditions.items():
        part = f"{kind}={c['status']}"
        if c["reason"]:
            part += f" ({c['reason']})"
        parts.append(part)
    return ", ".join(parts) or "no conditions"


def _connect_error_text(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"DNS lookup failed: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if exc.os_error.errno == errno.ECONNREFUSED:
            return f"connection refused: {exc}"
        return f"cannot connect: {exc}"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return f"connection dropped: {exc}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


# -- one run ----------------------------------------------------------------------------------


@dataclass(kw_only=True)
class _Run:
    """What one run has learned so far; the outcome is built from it at any exit point."""

    started: float
    phase: str = "reading the InferenceService"
    evidence: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)


class _Unreachable(Exception):
    """The model server did not answer (message says how)."""


class PredictorProbe:
    """Probe one InferenceService: status, pods, logs, readiness and a canary prediction."""

    def __init__(
        self,
        *,
        api: ApiClient,
        namespace: str,
        name: str,
        canary_instances: list[list[float]] | None = None,
        expected: list[int] | None = None,
        protocol: str = "v1",
        timeout: float = 5.0,
        slow_threshold: float = 1.0,
        log_tail_lines: int = 20,
        log_tail_bytes: int = 4096,
        redact: Callable[[str], str] | None = None,
        url_override: str | None = None,
    ) -> None:
        instances = [list(i) for i in (canary_instances if canary_instances is not None else [SETOSA])]
        wanted = list(expected if expected is not None else [0])
        if not instances or len(instances) != len(wanted):
            raise ValueError(
                f"canary needs one expected class per instance: {len(instances)} instance(s), "
                f"{len(wanted)} expected"
            )
        if len({len(i) for i in instances}) != 1:
            raise ValueError("canary instances must all have the same number of features")
        if protocol not in ("v1", "v2"):
            raise ValueError(f"protocol must be 'v1' or 'v2', got {protocol!r}")
        if timeout <= 0 or slow_threshold <= 0:
            raise ValueError("timeout and slow_threshold must be positive")
        self._api = api
        self._namespace = namespace
        self._name = name
        self._instances = instances
        self._expected = wanted
        self._protocol = protocol
        self._timeout = timeout
        self._slow = slow_threshold
        self._tail_lines = log_tail_lines
        self._tail_bytes = log_tail_bytes
        self._redact = redact
        self._url_override = url_override.rstrip("/") if url_override else None

    @property
    def name(self) -> str:
        return PROBE_NAME

    @property
    def target(self) -> str:
        return f"{self._namespace}/{self._name}"

    async def __call__(self) -> Observation:
        run = _Run(started=time.time())
        try:
            async with asyncio.timeout(self._timeout):
                return await self._run(run)
        except TimeoutError:
            return self._timed_out(run)
        except Exception as exc:  # the probe contract: never raise
            return probe_error(probe=PROBE_NAME, target=self.target, started=run.started, exc=exc)

    # -- building observations --------------------------------------------------------------

    def _obs(self, run: _Run, outcome: PredictorOutcome) -> Observation:
        return Observation(
            probe=PROBE_NAME,
            target=self.target,
            started=run.started,
            finished=time.time(),
            ok=outcome is PredictorOutcome.READY,
            outcome=outcome.value,
            values=run.values,
            evidence=tuple(run.evidence),
            details=run.details,
        )

    def _timed_out(self, run: _Run) -> Observation:
        run.evidence.append(f"no answer within {self._timeout:g} s while {run.phase}")
        run.details["timeout_phase"] = run.phase
        if run.phase.startswith("reading the log"):
            # The failing container is already named: a log endpoint that hangs costs the
            # evidence lines, not the diagnosis.
            run.details["log_tail"] = []
            return self._obs(run, PredictorOutcome.POD_FAILING)
        run.details["reason"] = "Timeout"
        # Waiting on the model server is the server's problem; waiting on the Kubernetes
        # API is ours to report as a probe failure.
        if run.phase.startswith("calling"):
            return self._obs(run, PredictorOutcome.UNREACHABLE)
        return self._obs(run, PredictorOutcome.PROBE_ERROR)

    def _api_error(self, run: _Run, exc: ApiException, what: str) -> Observation:
        status = int(exc.status or 0)
        run.details["api_status"] = status
        run.evidence.append(f"Kubernetes API answered {status} {exc.reason or ''} to {what}".rstrip())
        return self._obs(run, PredictorOutcome.PROBE_ERROR)

    # -- the run ----------------------------------------------------------------------------

    async def _run(self, run: _Run) -> Observation:
        t0 = time.perf_counter()
        try:
            isvc = await CustomObjectsApi(self._api).get_namespaced_custom_object(
                KSERVE_GROUP, KSERVE_VERSION, self._namespace, ISVC_PLURAL, self._name
            )
        except ApiException as exc:
            if exc.status == 404:
                run.details |= {"conditions": {}, "reason": "NotFound", "failure_reason": None, "pods": []}
                run.evidence.append(f"InferenceService {self.target} not found (404)")
                return self._obs(run, PredictorOutcome.NOT_READY)
            return self._api_error(run, exc, f"GET inferenceservice {self.target}")
        except aiohttp.ClientError as exc:
            run.evidence.append(f"Kubernetes API unreachable: {_connect_error_text(exc)}")
            return self._obs(run, PredictorOutcome.PROBE_ERROR)

        status: Mapping[str, Any] = (isvc.get("status") or {}) if isinstance(isvc, dict) else {}
        conditions = parse_conditions(status)
        failure_info = (status.get("modelStatus") or {}).get("lastFailureInfo") or {}
        failure_reason = failure_info.get("reason") or None
        address = (status.get("address") or {}).get("url") or None
        url = self._url_override or address or status.get("url") or None
        for cond in conditions.values():
            cond["message"] = scrub(cond["message"], self._redact)
        run.details |= {
            "conditions": conditions,
            "failure_reason": failure_reason,
            "url": url,
            "protocol": self._protocol,
        }

        run.phase = "listing predictor pods"
        try:
            raw_pods = await self._list_pods()
        except ApiException as exc:
            return self._api_error(run, exc, f"LIST pods in {self._namespace}")
        except aiohttp.ClientError as exc:
            run.evidence.append(f"Kubernetes API unreachable: {_connect_error_text(exc)}")
            return self._obs(run, PredictorOutcome.PROBE_ERROR)
        pods = [pod_info(p) for p in raw_pods]
        for pod in pods:
            for container in pod["containers"]:
                container["message"] = scrub(container["message"], self._redact)
        run.details["pods"] = pods
        run.values["api_seconds"] = time.perf_counter() - t0

        ready_condition = conditions.get("Ready")
        ready = ready_condition is not None and ready_condition["status"] == "True"
        if not ready:
            return await self._not_ready(run, conditions, failure_info, pods)

        if not url:
            run.details["reason"] = "NoURL"
            run.evidence.append(f"InferenceService {self.target} is Ready but has no URL in its status")
            return self._obs(run, PredictorOutcome.UNREACHABLE)
        return await self._call_server(run, url)

    async def _list_pods(self) -> list[dict[str, Any]]:
        """The ISVC's pods as raw JSON.

        Not through the client's models: they refuse a container status without ``image`` or
        ``imageID`` (client-side validation), and a probe must describe a half-written status
        rather than crash on it. Reading the JSON ourselves is also the cheaper path.
        """
        # With _preload_content=False the client hands back aiohttp's response (its stubs
        # only know the parsed model) and leaves the status check to us.
        resp = cast(aiohttp.ClientResponse, await CoreV1Api(self._api).list_namespaced_pod(
            self._namespace, label_selector=f"{ISVC_LABEL}={self._name}", _preload_content=False
        ))
        try:
            data = await resp.read()
            if not 200 <= resp.status < 300:
                raise ApiException(status=resp.status, reason=resp.reason)
        finally:
            resp.release()
        body = json.loads(data)
        items = body.get("items") if isinstance(body, dict) else None
        return [p for p in items or [] if isinstance(p, dict)]

    async def _not_ready(
        self,
        run: _Run,
        conditions: Mapping[str, ConditionInfo],
        failure_info: Mapping[str, Any],
        pods: Sequence[PodInfo],
    ) -> Observation:
        run.evidence.append(f"InferenceService {self.target} not Ready: {_conditions_text(conditions)}")
        for kind, c in conditions.items():
            if c["status"] != "True" and c["message"]:
                run.evidence.append(f"{kind}: {c['message']}")
        if failure_info:
            message = scrub(str(failure_info.get("message") or ""), self._redact)
            run.details["failure_message"] = message
            run.evidence.append(f"lastFailureInfo: {failure_info.get('reason', '')}: {message}".rstrip(": "))

        failure = find_failure(pods)
        if failure is None:
            falsy = [c["reason"] for c in conditions.values() if c["status"] != "True" and c["reason"]]
            run.details["reason"] = run.details.get("failure_reason") or (falsy[0] if falsy else "NotReady")
            if not pods:
                run.evidence.append(f"no pods with label {ISVC_LABEL}={self._name}")
            return self._obs(run, PredictorOutcome.NOT_READY)

        kind = "init container" if failure.init else "container"
        line = f"pod {failure.pod}: {kind} {failure.container} {failure.reason}"
        run.evidence.append(f"{line}: {failure.message}" if failure.message else line)
        run.details |= {"container": failure.container, "reason": failure.reason, "pod": failure.pod}
        run.details["log_tail"] = await self._log_tail(run, failure) if failure.has_log else []
        return self._obs(run, PredictorOutcome.POD_FAILING)

    async def _log_tail(self, run: _Run, failure: ContainerFailure) -> list[str]:
        run.phase = f"reading the log of {failure.pod}/{failure.container}"
        try:
            # limitBytes counts from the *start* of the tailLines window, so passing our
            # byte budget would keep the head and lose the last line, which is the one that
            # says why (``NoCredentialsError``). Ask for a generous cap instead (a guard
            # against megabyte lines) and keep the end below.
            text = await CoreV1Api(self._api).read_namespaced_pod_log(
                failure.pod,
                self._namespace,
                container=failure.container,
                tail_lines=self._tail_lines,
                limit_bytes=max(self._tail_bytes * 16, _LOG_FETCH_CAP),
            )
        except ApiException as exc:
            # No log is not a reason to lose the rest of the diagnosis.
            why = f"{exc.status} {exc.reason or ''}".rstrip()
            run.evidence.append(f"log of {failure.container} unavailable: {why}")
            return []
        # Servers may ignore limitBytes/tailLines: bound it here too.
        lines = [scrub(line, self._redact) for line in tail(str(text or ""), lines=self._tail_lines,
                                                                max_bytes=self._tail_bytes)]
        run.evidence.extend(f"{failure.container}| {line}" for line in lines)
        return lines

    # -- HTTP -------------------------------------------------------------------------------

    def _paths(self) -> tuple[str, str]:
        if self._protocol == "v2":
            return f"/v2/models/{self._name}/ready", f"/v2/models/{self._name}/infer"
        return f"/v1/models/{self._name}", f"/v1/models/{self._name}:predict"

    def _canary_body(self) -> dict[str, Any]:
        if self._protocol == "v2":
            flat = [v for row in self._instances for v in row]
            return {
                "inputs": [{
                    "name": "input-0",
                    "shape": [len(self._instances), len(self._instances[0])],
                    "datatype": "FP32",
                    "data": flat,
                }],
                "outputs": [{"name": "predict"}],
            }
        return {"instances": self._instances}

    async def _request(
        self, session: aiohttp.ClientSession, method: str, url: str, body: dict[str, Any] | None
    ) -> tuple[int, str, float]:
        t0 = time.perf_counter()
        try:
            async with session.request(method, url, json=body) as resp:
                text = await resp.text(errors="replace")
                return resp.status, text, time.perf_counter() - t0
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise _Unreachable(f"{method} {url}: {_connect_error_text(exc)}") from exc

    async def _call_server(self, run: _Run, base: str) -> Observation:
        ready_path, infer_path = self._paths()
        # The run's hard timeout (around everything) is what bounds these calls; aiohttp's own
        # is only a backstop set past it, so the two never race to report one slow server.
        timeout = aiohttp.ClientTimeout(total=self._timeout + 1.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                run.phase = f"calling {base}{ready_path}"
                status, text, seconds = await self._request(session, "GET", base + ready_path, None)
                run.values["request_seconds"] = seconds
                if status != 200 or self._says_not_ready(text):
                    run.details["reason"] = "ModelNotReady" if status in (200, 503) else f"HTTP{status}"
                    run.evidence.append(f"GET {ready_path} → {status}: {self._excerpt(text)}")
                    return self._obs(run, PredictorOutcome.NOT_READY)
                run.phase = f"calling {base}{infer_path}"
                status, text, seconds = await self._request(session, "POST", base + infer_path,
                                                            self._canary_body())
                run.values["canary_seconds"] = seconds
            except _Unreachable as exc:
                run.details["reason"] = "Unreachable"
                run.evidence.append(f"model server unreachable: {exc}")
                return self._obs(run, PredictorOutcome.UNREACHABLE)
        return self._judge_canary(run, infer_path, status, text)

    @staticmethod
    def _says_not_ready(text: str) -> bool:
        try:
            body = json.loads(text)
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("ready") is False

    def _excerpt(self, text: str) -> str:
        text = " ".join(text.split())
        return scrub(text[:_BODY_EXCERPT], self._redact) or "(empty body)"

    def _judge_canary(self, run: _Run, path: str, status: int, text: str) -> Observation:
        if status != 200:
            run.details["reason"] = "CanaryFailed"
            run.evidence.append(f"POST {path} → {status}: {self._excerpt(text)}")
            return self._obs(run, PredictorOutcome.NOT_READY)
        try:
            body = json.loads(text)
            predicted = parse_v2_predictions(body) if self._protocol == "v2" else parse_v1_predictions(body)
        except ValueError as exc:
            run.details |= {"reason": "CanaryUnreadable", "canary": {"error": str(exc)}}
            run.evidence.append(f"canary answer unreadable: {self._excerpt(str(exc))}")
            return self._obs(run, PredictorOutcome.WRONG_MODEL)

        run.details["canary"] = {
            "instances": self._instances, "expected": self._expected, "predicted": predicted,
        }
        if len(predicted) != len(self._expected):
            run.details["reason"] = "CanaryMismatch"
            run.evidence.append(
                f"canary sent {len(self._expected)} instance(s), got {len(predicted)} prediction(s)"
            )
            return self._obs(run, PredictorOutcome.WRONG_MODEL)
        wrong = False
        for instance, want, got in zip(self._instances, self._expected, predicted, strict=True):
            if got != want:
                wrong = True
                run.evidence.append(f"canary {_compact(instance)} → predicted {got}, expected {want}")
        if wrong:
            run.details["reason"] = "CanaryMismatch"
            return self._obs(run, PredictorOutcome.WRONG_MODEL)

        canary_ms = run.values["canary_seconds"] * 1000
        run.evidence.append(
            f"canary {_compact(self._instances[0])} → predicted {predicted[0]}, as expected"
            f" ({canary_ms:.1f} ms)"
        )
        slowest = max(run.values.get("request_seconds", 0.0), run.values["canary_seconds"])
        if slowest > self._slow:
            run.details["reason"] = "Slow"
            run.evidence.append(f"slowest call took {slowest:.3f} s, threshold {self._slow:g} s")
            return self._obs(run, PredictorOutcome.SLOW)
        return self._obs(run, PredictorOutcome.READY)
