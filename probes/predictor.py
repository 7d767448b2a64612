"""The predictor probe: is the InferenceService serving, and serving the *right* model?

One run looks at what an operator would look at by hand, in the order they would:

Steps 1 and 2 read through a :class:`~probes.predictor_source.PredictorSource`: by default
over the API (a GET and a LIST per run); the daemon passes one backed by its watch caches, so
its steady-state runs make no API request at all (only a failing container's log tail is
fetched over the API: ``pods/log`` cannot be watched).

1. The InferenceService's status (``Ready``, ``PredictorReady``, ``IngressReady`` with their
   reasons, ``status.modelStatus.lastFailureInfo``, the URLs). A missing object is
   ``not-ready`` with reason ``NotFound``.
2. Its predictor pods (label ``serving.kserve.io/inferenceservice=<name>``): phase, init and
   main container states. The first failing container is named with a kubectl-style reason
   (``ImagePullBackOff`` with the registry's ``401 Unauthorized``, ``Init:Error`` for the
   storage-initializer's ``NoCredentialsError``, ``CrashLoopBackOff``, an istio-proxy that
   is not ready) and, when the container has run, the tail of its log (bounded in lines
   and bytes, secrets redacted) becomes evidence.
3. When the service is Ready, its address answers over HTTP: the model's own readiness
   endpoint (V1 ``GET /v1/models/NAME`` → ``{"name": ..., "ready": true}``, V2
   ``GET /v2/models/NAME/ready`` → 200), with no inference. The address is the in-cluster
   one (``status.address.url``, else ``status.url``, else ``status.components.predictor.url``).
   Outside the cluster that address is reachable only through an HTTP forward proxy into the
   cluster network (``proxy=``, the ``probes.predictor.proxy`` setting): every request of steps
   3 and 4 then goes through it. What the proxy itself fails at (it refuses the connection,
   cannot find the Service, has no endpoint for it: an RFC 9209 ``Proxy-Status`` error, or a
   502/504 it does not explain) is ``probe-error`` naming the proxy, never a predictor failure;
   what it reports of the predictor (``Proxy-Status: ...; error=connection_refused``) is the
   predictor's ``unreachable``, as a direct request would have shown (:mod:`probes.proxy_status`).
4. Only when a **canary** is configured (opt-in per InferenceService: the settings or the
   ``kserve-warden.io/canary`` annotation): a prediction with a known input and its known
   answer. Inputs and answers are any JSON values: V1 sends ``{"instances": [...]}``, V2 one
   ``inputs`` tensor built from the rows (FP32 for numbers, BYTES for strings, BOOL for
   booleans). An integer answer is compared as a class (a probability vector counts as its
   most likely class), a float within a relative 1e-3, anything else by equality. A server
   that is up but answers the canary wrongly is ``wrong-model``: the seed's silent dummy
   model, which every readiness check passed.

What it cannot judge it says so instead of failing: a ModelMesh predictor (served through
the ModelMesh router, not a per-model endpoint), a Ready InferenceService with no URL yet, and
— when the probe runs outside the cluster (``in_cluster=False``: ``check`` from a laptop) with no
proxy — an in-cluster address (``*.svc``, ``*.svc.cluster.local``: KServe's RawDeployment
``status.address.url``), which no resolver out there knows, are ``not-checked`` after the
status and pod reads, with the reason in ``details``. A failed lookup there says nothing about
the predictor; calling it ``unreachable`` would be a false critical for every Ready model.

Outcomes are the :class:`PredictorOutcome` values; ``ok`` is true for ``ready`` and
``not-checked`` (nothing wrong was seen: metrics and diagnosis must not count it as a failure).
``timeout`` is a hard limit on the whole run (API reads, log tail, HTTP), after which the
run reports what it was waiting for. The probe never raises: anything unexpected becomes
``probe-error``. It opens one aiohttp session per run, only if it gets to the HTTP step,
and closes it before returning; it keeps no connection between runs.

The pure readings live beside it: :mod:`probes.pod_status` (conditions and container states →
the failing container), :mod:`probes.log_tail` (bounded, scrubbed log tails) and
:mod:`probes.predictions` (V1/V2 answers → classes).
"""

from __future__ import annotations

import asyncio
import errno
import json
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import aiohttp
from kubernetes_asyncio.client import ApiClient, ApiException, CoreV1Api

from probes.log_tail import scrub, tail
from probes.observation import Observation, probe_error
from probes.pod_status import (
    ConditionInfo,
    ContainerFailure,
    PodInfo,
    conditions_text,
    current_failure_info,
    find_failure,
    parse_conditions,
    pod_info,
)
from probes.predictions import BODY_EXCERPT, prediction_matches, shown, v1_values, v2_values
from probes.predictor_source import ISVC_LABEL, ApiPredictorSource, PredictorSource
from probes.proxy_status import HEADER as PROXY_STATUS
from probes.proxy_status import Author, judge

PROBE_NAME = "predictor"

DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"

_LOG_FETCH_CAP = 64 * 1024


class PredictorOutcome(StrEnum):
    READY = "ready"
    NOT_READY = "not-ready"
    POD_FAILING = "pod-failing"
    UNREACHABLE = "unreachable"
    WRONG_MODEL = "wrong-model"
    SLOW = "slow"
    NOT_CHECKED = "not-checked"
    PROBE_ERROR = "probe-error"


_OK_OUTCOMES = frozenset({PredictorOutcome.READY, PredictorOutcome.NOT_CHECKED})


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


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


def _v2_datatype(flat: Sequence[Any]) -> str:
    if flat and all(isinstance(v, bool) for v in flat):
        return "BOOL"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in flat):
        return "FP32"
    return "BYTES"


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


class _ProxyFailed(Exception):
    """The proxy in front of the model server failed on its own (message says how)."""


def is_cluster_address(url: str) -> bool:
    """``url``'s host is a cluster-DNS Service name (``NAME.NS.svc[.cluster.local]``). Pure."""
    labels = (urllib.parse.urlsplit(url).hostname or "").rstrip(".").lower().split(".")
    return len(labels) >= 3 and labels[2] == "svc"  # any cluster domain after it


class PredictorProbe:
    """Probe one InferenceService: status, pods, logs, readiness and (opt-in) a canary."""

    def __init__(
        self,
        *,
        api: ApiClient,
        namespace: str,
        name: str,
        canary_instances: Sequence[Any] | None = None,
        expected: Sequence[Any] | None = None,
        protocol: str = "v1",
        timeout: float = 5.0,
        slow_threshold: float = 1.0,
        log_tail_lines: int = 20,
        log_tail_bytes: int = 4096,
        redact: Callable[[str], str] | None = None,
        url_override: str | None = None,
        source: PredictorSource | None = None,
        proxy: str | None = None,
        in_cluster: bool = True,
    ) -> None:
        # No canary: readiness only. A canary is opt-in, never a built-in guess (a default
        # iris sample would call every non-iris model "wrong").
        instances = [list(i) if isinstance(i, list | tuple) else i for i in canary_instances or []]
        wanted = list(expected or [])
        if canary_instances is not None or expected is not None:
            if not instances or len(instances) != len(wanted):
                raise ValueError(
                    f"canary needs one expected answer per instance: {len(instances)} instance(s), "
                    f"{len(wanted)} expected"
                )
            if protocol == "v2" and len({len(i) if isinstance(i, list) else -1 for i in instances}) != 1:
                raise ValueError("canary instances must all have the same number of features")
        if protocol not in ("v1", "v2"):
            raise ValueError(f"protocol must be 'v1' or 'v2', got {protocol!r}")
        if timeout <= 0 or slow_threshold <= 0:
            raise ValueError("timeout and slow_threshold must be positive")
        self._api = api
        self._source: PredictorSource = source if source is not None else ApiPredictorSource(api)
        self._namespace = namespace
        self._name = name
        self._instances: list[Any] = instances
        self._expected: list[Any] = wanted
        self._protocol = protocol
        self._timeout = timeout
        self._slow = slow_threshold
        self._tail_lines = log_tail_lines
        self._tail_bytes = log_tail_bytes
        self._redact = redact
        self._url_override = url_override.rstrip("/") if url_override else None
        # An http://host:port forward proxy for the HTTP steps (settings validate its shape).
        self._proxy = proxy or None
        self._in_cluster = in_cluster

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
            ok=outcome in _OK_OUTCOMES,
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

    def _api_error(self, run: _Run, exc: ApiException | aiohttp.ClientError, what: str) -> Observation:
        """A read from the Kubernetes API failed: an error status, or no answer at all."""
        if isinstance(exc, aiohttp.ClientError):
            run.evidence.append(f"Kubernetes API unreachable: {_connect_error_text(exc)}")
            return self._obs(run, PredictorOutcome.PROBE_ERROR)
        status = int(exc.status or 0)
        run.details["api_status"] = status
        run.evidence.append(f"Kubernetes API answered {status} {exc.reason or ''} to {what}".rstrip())
        return self._obs(run, PredictorOutcome.PROBE_ERROR)

    # -- the run ----------------------------------------------------------------------------

    async def _run(self, run: _Run) -> Observation:
        t0 = time.perf_counter()
        try:
            isvc = await self._source.inferenceservice(self._namespace, self._name)
        except (ApiException, aiohttp.ClientError) as exc:
            return self._api_error(run, exc, f"GET inferenceservice {self.target}")
        if isvc is None:
            run.details |= {"conditions": {}, "reason": "NotFound", "failure_reason": None, "pods": []}
            run.evidence.append(f"InferenceService {self.target} not found ({self._source.not_found_note})")
            return self._obs(run, PredictorOutcome.NOT_READY)

        status: Mapping[str, Any] = isvc.get("status") or {}
        conditions = parse_conditions(status)
        failure_info = current_failure_info(status)
        failure_reason = failure_info.get("reason") or None
        address = (status.get("address") or {}).get("url") or None
        component = ((status.get("components") or {}).get("predictor") or {}).get("url") or None
        url = self._url_override or address or status.get("url") or component or None
        meta = isvc.get("metadata") or {}
        mode = str((meta.get("annotations") or {}).get(DEPLOYMENT_MODE_ANNOTATION) or "")
        for cond in conditions.values():
            cond["message"] = scrub(cond["message"], self._redact)
        run.details |= {
            "conditions": conditions,
            "failure_reason": failure_reason,
            "url": url,
            "protocol": self._protocol,
            "canary_configured": bool(self._instances),
        }
        if mode:
            run.details["deployment_mode"] = mode

        run.phase = "listing predictor pods"
        try:
            raw_pods = await self._source.pods(self._namespace, self._name)
        except (ApiException, aiohttp.ClientError) as exc:
            return self._api_error(run, exc, f"LIST pods in {self._namespace}")
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

        if mode.lower() == "modelmesh" and not self._url_override:
            # ModelMesh serves every model through its router (gRPC, its own REST proxy):
            # there is no per-model /v1/models endpoint to call. Ready is what we saw.
            run.details["reason"] = "ModelMesh"
            run.evidence.append(
                f"InferenceService {self.target} is Ready; ModelMesh predictor: no per-model "
                "endpoint to probe (not checked over HTTP)"
            )
            return self._obs(run, PredictorOutcome.NOT_CHECKED)
        if not url:
            run.details["reason"] = "NoURL"
            run.evidence.append(
                f"InferenceService {self.target} is Ready but has no URL in its status yet "
                "(not checked over HTTP)"
            )
            return self._obs(run, PredictorOutcome.NOT_CHECKED)
        if not self._in_cluster and self._proxy is None and is_cluster_address(url):
            run.details["reason"] = "OutsideCluster"
            run.evidence.append(
                f"InferenceService {self.target} is Ready; its address {url} is in-cluster and this "
                "process runs outside the cluster (not checked over HTTP; set probes.predictor.proxy "
                "to reach it through a proxy into the cluster network)"
            )
            return self._obs(run, PredictorOutcome.NOT_CHECKED)
        return await self._call_server(run, url)

    async def _not_ready(
        self,
        run: _Run,
        conditions: Mapping[str, ConditionInfo],
        failure_info: Mapping[str, Any],
        pods: Sequence[PodInfo],
    ) -> Observation:
        run.evidence.append(f"InferenceService {self.target} not Ready: {conditions_text(conditions)}")
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
            rows = self._instances
            matrix = all(isinstance(r, list) for r in rows)
            flat = [v for r in rows for v in r] if matrix else list(rows)
            shape = [len(rows), len(rows[0])] if matrix else [len(rows)]
            return {
                "inputs": [{"name": "input-0", "shape": shape, "datatype": _v2_datatype(flat), "data": flat}],
                "outputs": [{"name": "predict"}],
            }
        return {"instances": self._instances}

    async def _request(
        self, session: aiohttp.ClientSession, method: str, url: str, body: dict[str, Any] | None
    ) -> tuple[int, str, float]:
        t0 = time.perf_counter()
        proxy = self._proxy
        try:
            async with session.request(method, url, json=body, proxy=proxy) as resp:
                text = await resp.text(errors="replace")
                seconds = time.perf_counter() - t0
                if proxy is not None:
                    self._judge_proxied(method, url, resp.status, resp.headers.get(PROXY_STATUS), text)
                return resp.status, text, seconds
        except aiohttp.ClientHttpProxyError as exc:
            # A CONNECT tunnel (an https:// address) the proxy refused.
            raise _ProxyFailed(f"proxy {proxy} refused to tunnel {method} {url}: {exc.status} "
                               f"{exc.message}") from exc
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            if proxy is not None and isinstance(exc, aiohttp.ClientConnectorError):
                # Through a proxy the only connection made here is to the proxy (the server's
                # name is resolved and connected to by the proxy): its failure is the proxy's.
                raise _ProxyFailed(f"proxy {proxy} unreachable for {method} {url}: "
                                   f"{_connect_error_text(exc)}") from exc
            via = f" via proxy {proxy}" if proxy is not None else ""
            raise _Unreachable(f"{method} {url}{via}: {_connect_error_text(exc)}") from exc

    def _judge_proxied(self, method: str, url: str, status: int, proxy_status: str | None,
                       text: str) -> None:
        """Raise when a proxied answer is the proxy's own failure or its report of the server's."""
        verdict = judge(status, proxy_status)
        if verdict.author is Author.SERVER:
            return
        said = verdict.reason or f"no {PROXY_STATUS} header, {self._excerpt(text)}"
        if verdict.author is Author.SERVER_UNREACHABLE:
            raise _Unreachable(f"{method} {url} via proxy {self._proxy}: {status} ({said})")
        raise _ProxyFailed(f"proxy {self._proxy} answered {status} to {method} {url} ({said})")

    async def _call_server(self, run: _Run, base: str) -> Observation:
        ready_path, infer_path = self._paths()
        # The run's hard timeout (around everything) is what bounds these calls; aiohttp's own
        # is only a backstop set past it, so the two never race to report one slow server.
        timeout = aiohttp.ClientTimeout(total=self._timeout + 1.0)
        if self._proxy:
            run.details["proxy"] = self._proxy
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                run.phase = f"calling {base}{ready_path}{self._via()}"
                status, text, seconds = await self._request(session, "GET", base + ready_path, None)
                run.values["request_seconds"] = seconds
                if status != 200 or self._says_not_ready(text):
                    run.details["reason"] = "ModelNotReady" if status in (200, 503) else f"HTTP{status}"
                    run.evidence.append(f"GET {ready_path} → {status}: {self._excerpt(text)}")
                    return self._obs(run, PredictorOutcome.NOT_READY)
                if not self._instances:
                    return self._judge_ready(run, ready_path, seconds)
                run.phase = f"calling {base}{infer_path}{self._via()}"
                status, text, seconds = await self._request(session, "POST", base + infer_path,
                                                            self._canary_body())
                run.values["canary_seconds"] = seconds
            except _Unreachable as exc:
                run.details["reason"] = "Unreachable"
                run.evidence.append(f"model server unreachable: {exc}")
                return self._obs(run, PredictorOutcome.UNREACHABLE)
            except _ProxyFailed as exc:
                # The path to the server failed, not the server: not checked, and said so
                # (a probe-error finding names the proxy; no predictor finding is drawn from it).
                run.details |= {"reason": "ProxyError", "proxy": self._proxy}
                run.evidence.append(str(exc))
                return self._obs(run, PredictorOutcome.PROBE_ERROR)
        return self._judge_canary(run, infer_path, status, text)

    def _via(self) -> str:
        return f" via proxy {self._proxy}" if self._proxy else ""

    @staticmethod
    def _says_not_ready(text: str) -> bool:
        try:
            body = json.loads(text)
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("ready") is False

    def _excerpt(self, text: str) -> str:
        text = " ".join(text.split())
        return scrub(text[:BODY_EXCERPT], self._redact) or "(empty body)"

    def _judge_ready(self, run: _Run, path: str, seconds: float) -> Observation:
        run.evidence.append(f"GET {path} → 200 ready ({seconds * 1000:.1f} ms; no canary configured)")
        if seconds > self._slow:
            run.details["reason"] = "Slow"
            run.evidence.append(f"readiness call took {seconds:.3f} s, threshold {self._slow:g} s")
            return self._obs(run, PredictorOutcome.SLOW)
        return self._obs(run, PredictorOutcome.READY)

    def _judge_canary(self, run: _Run, path: str, status: int, text: str) -> Observation:
        if status != 200:
            run.details["reason"] = "CanaryFailed"
            run.evidence.append(f"POST {path} → {status}: {self._excerpt(text)}")
            return self._obs(run, PredictorOutcome.NOT_READY)
        try:
            body = json.loads(text)
            raw = v2_values(body) if self._protocol == "v2" else v1_values(body)
            predicted = [shown(got, want) for got, want in zip(raw, self._expected, strict=False)]
            predicted += raw[len(self._expected):]
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
        for instance, want, got in zip(self._instances, self._expected, raw, strict=True):
            if not prediction_matches(got, want):
                wrong = True
                run.evidence.append(
                    f"canary {_compact(instance)} → predicted {_compact(shown(got, want))}, "
                    f"expected {_compact(want)}"
                )
        if wrong:
            run.details["reason"] = "CanaryMismatch"
            return self._obs(run, PredictorOutcome.WRONG_MODEL)

        canary_ms = run.values["canary_seconds"] * 1000
        run.evidence.append(
            f"canary {_compact(self._instances[0])} → predicted {_compact(predicted[0])}, as expected"
            f" ({canary_ms:.1f} ms)"
        )
        slowest = max(run.values.get("request_seconds", 0.0), run.values["canary_seconds"])
        if slowest > self._slow:
            run.details["reason"] = "Slow"
            run.evidence.append(f"slowest call took {slowest:.3f} s, threshold {self._slow:g} s")
            return self._obs(run, PredictorOutcome.SLOW)
        return self._obs(run, PredictorOutcome.READY)
