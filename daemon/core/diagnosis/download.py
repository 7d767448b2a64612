"""The storage-initializer's own failure: a storage cause, never a model-format one.

KServe runs the storage-initializer as the predictor pod's init container; when the download
fails it exits non-zero (``Init:Error``, then ``Init:CrashLoopBackOff``), and KServe's
controller copies the container's termination message into ``status.modelStatus.lastFailureInfo``
with reason ``ModelLoadFailed`` — the same reason it gives a model the server refused. Read as
such, every sample InferenceService on a cluster that cannot reach ``gs://`` became a critical
``model-wrong-format`` with XGBoost advice (issue 20). The model never reached the server; the
cause is the store.

:func:`init_failures` reads the failing storage-initializer from the predictor pods (its
``terminated`` message — KServe sets ``terminationMessagePolicy: FallbackToLogsOnError``, so it is
the log's tail — or, crash-looping, the last termination's), the predictor probe's log tail of
that container, and, when no pod is visible, a ``lastFailureInfo`` whose message is one of the
initializer's own errors. :func:`classify` names the fault from the initializer's words, per
scheme: KServe's ``kserve_storage`` raises them itself (``Cannot recognize storage type for``,
``Failed to fetch model. No model found in``, ``URI: … returned a 404 response code``, and the
newer ``storage_errors`` wording: ``S3 authentication failed``, ``Access denied to``, ``Failed to
connect to``) or lets its clients' exceptions through (botocore's ``NoCredentialsError`` and
``EndpointConnectionError``, google-cloud-storage's ``Forbidden``/``NotFound``, requests'
``ConnectionError``, huggingface_hub's ``GatedRepoError``/``RepositoryNotFoundError``/
``LocalEntryNotFoundError``, Azure's ``ServiceRequestError``). The log is read from the last line
up: the last exception raised is the one that ended the download.

:func:`download_failed` turns the fault into one finding (:data:`CODES`) with the line it read as
evidence and a remedy for the scheme and the model's runtime — unless a cause named before it
already explains the model (credentials, mesh policy, a disabled sidecar, a missing runtime or
claim; their symptom), or DNS is failing and the error is a lookup (DNS's symptom).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from daemon.core.diagnosis.context import Pass
from daemon.core.diagnosis.draft import Draft
from daemon.core.diagnosis.fields import ISVC_LABEL, meta
from daemon.core.diagnosis.model import Model
from daemon.core.diagnosis.model_files import listing_command
from daemon.core.diagnosis.model_layouts import what_to_store
from daemon.core.diagnosis.resources import serving_elsewhere
from daemon.core.findings import Code, Severity

INIT_CONTAINER = "storage-initializer"


class Fault(StrEnum):
    UNREACHABLE = "unreachable"
    TLS = "tls"
    MESH_DENIED = "mesh-denied"
    NO_CREDENTIALS = "no-credentials"
    INVALID_CREDENTIALS = "invalid-credentials"
    DENIED = "denied"
    NOT_FOUND = "not-found"
    UNSUPPORTED_URI = "unsupported-uri"
    UNKNOWN = "unknown"


# First match wins, per line; the order puts the specific before the general (an Envoy 403 is
# the mesh, not the store; a TLS failure is also a connection failure; huggingface_hub's
# LocalEntryNotFoundError is an offline hub, not a missing model).
_RULES: tuple[tuple[Fault, re.Pattern[str]], ...] = (
    (Fault.MESH_DENIED, re.compile(r"RBAC: access denied")),
    (Fault.TLS, re.compile(r"SSLError|CERTIFICATE_VERIFY_FAILED|certificate verify failed|"
                           r"Failed to find ca bundle file", re.I)),
    # Before KServe checked the mount (kserve/kserve#1940), a pvc:// path that was not there
    # fell through to the unknown-scheme error (#620, #1038, #1298, #1939): the claim's path.
    (Fault.NOT_FOUND, re.compile(r"Cannot recognize storage type for /mnt/pvc")),
    (Fault.UNSUPPORTED_URI, re.compile(r"Cannot recognize storage type for|"
                                       r"URI must contain exactly one '/'|No filename contained in URI")),
    (Fault.INVALID_CREDENTIALS, re.compile(r"InvalidAccessKeyId|SignatureDoesNotMatch|"
                                           r"Invalid AWS credentials|invalid_grant|Invalid JWT")),
    (Fault.NO_CREDENTIALS, re.compile(r"NoCredentialsError|Unable to locate credentials|"
                                      r"\w+ authentication failed|GatedRepoError|"
                                      r"be authenticated to access it|"
                                      r"returned a 401 response code|401 Client Error")),
    (Fault.UNREACHABLE, re.compile(r"EndpointConnectionError|Could not connect to the endpoint|"
                                   r"ConnectTimeoutError|ConnectionError|NameResolutionError|"
                                   r"Failed to resolve|Temporary failure in name resolution|"
                                   r"Name or service not known|Max retries exceeded|Connection refused|"
                                   r"LocalEntryNotFoundError|check your internet connection|"
                                   r"ServiceRequestError|TransportError|Failed to connect to|"
                                   r"Cannot connect to host|timed out", re.I)),
    (Fault.DENIED, re.compile(r"AccessDenied|access denied|Forbidden|returned a 403 response code|"
                              r"\b403\b|does not have storage\.objects\.\w+ access|"
                              r"AuthorizationPermissionMismatch|AuthorizationFailure", re.I)),
    (Fault.NOT_FOUND, re.compile(r"No model found in|NoSuchBucket|NoSuchKey|"
                                 r"returned a 404 response code|\b404\b|RepositoryNotFoundError|"
                                 r"RevisionNotFoundError|EntryNotFoundError|resource .*not found|"
                                 r"Cannot locate source uri|does not exist|ContainerNotFound|"
                                 r"BlobNotFound|NotFound:")),
)

# Words only the storage-initializer writes: its entrypoint's (v0.20), the stand-in's container
# prefix, and kserve_storage's own errors in every release.
_INITIALIZER = re.compile(r"^storage-initializer:|storage initialization|initializer-entrypoint|"
                          r"Failed to fetch model\. No model found in|Cannot recognize storage type for|"
                          r"Cannot locate source uri", re.I)

_LOOKUP = re.compile(r"NameResolutionError|Failed to resolve|name resolution|Name or service not known|"
                     r"getaddrinfo|Could not resolve", re.I)


@dataclass(frozen=True, kw_only=True)
class InitFailure:
    """One failed run of the storage-initializer, as the cluster reports it."""

    where: str
    """Where it was read: ``pod <name>``, ``predictor probe`` or ``lastFailureInfo``."""
    text: str
    """Its message (the log's tail)."""


@dataclass(frozen=True, kw_only=True)
class Verdict:
    fault: Fault
    line: str
    """The line of the log that says so (the last one, when nothing matched)."""


def classify(text: str) -> Verdict:
    """The fault the storage-initializer's ``text`` (a log tail) names. Pure."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        for fault, pattern in _RULES:
            if pattern.search(line):
                return Verdict(fault=fault, line=line)
    return Verdict(fault=Fault.UNKNOWN, line=lines[-1] if lines else "")


def _failed_init_message(status: Mapping[str, Any]) -> str | None:
    """The message of a storage-initializer status that failed (None: it did not)."""
    if status.get("name") != INIT_CONTAINER:
        return None
    state = status.get("state") or {}
    term = state.get("terminated") or {}
    if term and term.get("exitCode", 0) != 0:
        return str(term.get("message") or term.get("reason") or "")
    waiting = state.get("waiting") or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    if waiting.get("reason") == "CrashLoopBackOff" and last:
        # The waiting message is the kubelet's back-off notice; the error is the last run's.
        return str(last.get("message") or last.get("reason") or "")
    return None


def init_failures(m: Model, *, failure_reason: str | None, failure_message: str) -> list[InitFailure]:
    """The storage-initializer failures the pass can see for ``m`` (newest source first)."""
    out: list[InitFailure] = []
    for pod in m.pods:
        if (meta(pod).get("labels") or {}).get("component", "predictor") != "predictor":
            continue  # a transformer's own download (STORAGE_URI) is not the model's storageUri
        for status in ((pod.get("status") or {}).get("initContainerStatuses") or []):
            msg = _failed_init_message(status)
            if msg is not None:
                out.append(InitFailure(where=f"pod {meta(pod).get('name')}", text=msg))
    pr = m.predictor
    if pr is not None and pr.details.get("container") == INIT_CONTAINER:
        tail = [str(x) for x in pr.details.get("log_tail") or []]
        if tail:
            out.append(InitFailure(where="predictor probe", text="\n".join(tail)))
    if not m.pods and failure_reason == "ModelLoadFailed" and _INITIALIZER.search(failure_message):
        # No pod visible: KServe's copy of the termination message, only when its words are the
        # initializer's own (the server's ModelLoadFailed may mention a timeout or a missing file too).
        text = failure_message.removeprefix(f"{INIT_CONTAINER}: ")
        out.append(InitFailure(where="lastFailureInfo ModelLoadFailed", text=text))
    return out


def verdict_of(failures: Sequence[InitFailure]) -> tuple[Verdict, InitFailure] | None:
    """The first failure whose words name a fault, else the first failure as UNKNOWN."""
    judged = [(classify(f.text), f) for f in failures]
    for v, f in judged:
        if v.fault is not Fault.UNKNOWN:
            return v, f
    return judged[0] if judged else None


CODES: dict[Fault, Code] = {
    Fault.UNREACHABLE: Code.STORAGE_UNREACHABLE,
    Fault.TLS: Code.STORAGE_UNREACHABLE,
    Fault.MESH_DENIED: Code.MESH_POLICY_DENIES,
    Fault.NO_CREDENTIALS: Code.STORAGE_CREDENTIALS_MISSING,
    Fault.INVALID_CREDENTIALS: Code.STORAGE_CREDENTIALS_MISSING,
    Fault.DENIED: Code.STORAGE_ACCESS_DENIED,
    Fault.NOT_FOUND: Code.MODEL_NOT_FOUND,
    Fault.UNSUPPORTED_URI: Code.STORAGE_URI_UNSUPPORTED,
    Fault.UNKNOWN: Code.STORAGE_DOWNLOAD_FAILED,
}
"""The finding each fault becomes."""

SUPPORTED_SCHEMES = (
    "s3://", "gs://", "hf://", "http(s)://", "https://<account>.blob.core.windows.net/ (Azure Blob)",
    "https://<account>.file.core.windows.net/ (Azure Files)", "hdfs://", "webhdfs://",
    "pvc://<claim>/<path> (mounted)", "oci:// (modelcar)",
)


def _host(uri: str) -> str:
    rest = uri.split("://", 1)[1] if "://" in uri else uri
    return rest.split("/", 1)[0]


def _store(scheme: str, uri: str) -> str:
    """The endpoint the initializer talks to for ``uri``, as a person would name it."""
    return {
        "gs": "storage.googleapis.com:443",
        "hf": "huggingface.co:443 (or the HF_ENDPOINT mirror)",
        "s3": "the S3 endpoint (AWS_ENDPOINT_URL from serving.kserve.io/s3-endpoint; none set: AWS)",
    }.get(scheme, f"{_host(uri)}:{'80' if scheme == 'http' else '443'}")


def _probe_url(scheme: str, uri: str) -> str | None:
    """A URL that shows whether the store answers from the model's namespace (None: not known here)."""
    if scheme in ("http", "https"):
        return f"{scheme}://{_host(uri)}/"
    return {"gs": "https://storage.googleapis.com/", "hf": "https://huggingface.co/"}.get(scheme)


def remedy(*, fault: Fault, scheme: str, uri: str, fmt: str | None, sa: str, namespace: str,
           isvc: str, pod: str | None) -> str:
    """The exact fix for ``fault`` on a ``scheme`` store, for a model of ``fmt``. Pure."""
    logs = (f"kubectl logs -n {namespace} {pod} -c {INIT_CONTAINER}" if pod
            else f"kubectl logs -n {namespace} -l {ISVC_LABEL}={isvc} -c {INIT_CONTAINER}")
    if fault is Fault.UNSUPPORTED_URI:
        return (f"KServe's storage-initializer cannot download {uri}: set spec.predictor.model.storageUri of "
                f"{namespace}/{isvc} to a URI it supports ({', '.join(SUPPORTED_SCHEMES)})")
    if fault is Fault.NOT_FOUND:
        listing = listing_command(uri)
        return (f"nothing to download at {uri}: {what_to_store(fmt, uri)}, or point storageUri at where "
                f"the model is" + (f" (check with: {listing})" if listing else ""))
    if fault is Fault.TLS:
        return (f"the TLS handshake with {_store(scheme, uri)} failed: trust its CA "
                "(cabundle ConfigMap, serving.kserve.io/s3-cabundle) or set serving.kserve.io/s3-verifyssl "
                "for a private endpoint; then delete the predictor pod")
    if fault is Fault.UNREACHABLE:
        url = _probe_url(scheme, uri)
        check = (f"; check from the namespace: kubectl run nettest --rm -i --restart=Never -n {namespace} "
                 f"--image=curlimages/curl -- curl -sSI {url}") if url else ""
        return (f"the pod cannot reach {_store(scheme, uri)}: allow its egress (NetworkPolicy, proxy, "
                "an Istio ServiceEntry when outbound traffic is REGISTRY_ONLY) and check that the name "
                "resolves in the cluster, or copy the model to a store the cluster reaches and point "
                f"storageUri there{check}")
    if fault is Fault.MESH_DENIED:
        return (f"an Istio AuthorizationPolicy on the store refuses {namespace}/{sa}: admit its principal "
                f"cluster.local/ns/{namespace}/sa/{sa}")
    creds = {
        "s3": ("a Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and the serving.kserve.io/s3-* "
               "annotations)"),
        "gs": ("a Secret holding the GCS key file gcloud-application-credentials.json "
               "(or GKE workload identity)"),
        "hf": "a Secret with HF_TOKEN (after accepting the model's terms on huggingface.co)",
    }.get(scheme, f"a Secret with the credentials {_host(uri)} wants")
    if fault in (Fault.NO_CREDENTIALS, Fault.INVALID_CREDENTIALS):
        what = ("no credentials reached" if fault is Fault.NO_CREDENTIALS
                else "the store refused the credentials of")
        patch = "'{\"secrets\":[{\"name\":\"<secret>\"}]}'"
        return (f"{what} the storage-initializer: add {creds} to ServiceAccount {namespace}/{sa} "
                f"(kubectl patch serviceaccount {sa} -n {namespace} -p {patch}), "
                "then delete the predictor pod")
    if fault is Fault.DENIED:
        grant = {
            "s3": "s3:ListBucket and s3:GetObject on the bucket and prefix",
            "gs": "roles/storage.objectViewer on the bucket",
            "hf": "access to the repository (accept its terms, or a token of an account that may read it)",
        }.get(scheme, "read access to the URL")
        return (f"the store refuses the download (403): grant the identity the storage-initializer uses "
                f"(ServiceAccount {namespace}/{sa}: {creds}) {grant}")
    return f"the storage-initializer failed for a reason not recognised here: read {logs}"


def _shorten(line: str, limit: int = 320) -> str:
    """A long error line's head and tail (where urllib3 and botocore put the cause)."""
    return line if len(line) <= limit else f"{line[: limit // 2]} … {line[-(limit // 2):]}"


def download_failed(ctx: Pass, m: Model, *, dns: Draft | None) -> bool:
    """Whether the storage-initializer failed (then the model never reached the server); adds
    the finding that names why, unless an earlier cause of ``m`` already explains it."""
    reason, message = m.failure_reason()
    found = verdict_of(init_failures(m, failure_reason=reason, failure_message=message))
    if found is None:
        return False
    verdict, where = found
    if m.explained:
        return True  # credentials, mesh, sidecar, runtime or claim: its symptom (taken already)
    # Slow DNS explains a lookup that failed, and a connection that failed while the pod's
    # istio-proxy (its way out of the pod) was not ready because it could not reach istiod:
    # left as the model's symptom, which the DNS correlation takes with the rest.
    proxy_down = any(kind == "proxy" for kind, _ in m.symptoms)
    lookup = _LOOKUP.search(verdict.line) is not None
    if dns is not None and verdict.fault is Fault.UNREACHABLE and (lookup or proxy_down):
        if not any(INIT_CONTAINER in text for _, text in m.symptoms):
            m.symptoms.append(("storage", f"{where.where}: {INIT_CONTAINER}: {_shorten(verdict.line, 200)}"))
        return True
    uri = m.spec.storage_uri or ""
    pod = where.where.removeprefix("pod ") if where.where.startswith("pod ") else None
    evidence = [f"{where.where}: {INIT_CONTAINER} failed: {_shorten(verdict.line)}"]
    # Ready while a pod cannot download: while an older pod still serves, the revision serving
    # is up and a new one cannot come up (a rollout stuck, a pod about to be replaced): not an
    # outage yet. With no predictor pod ready the Ready status is stale (kserve/kserve#1859):
    # requests fail, whatever it says.
    serving = serving_elsewhere(m)
    if serving:
        evidence.append("the InferenceService is Ready: an older predictor pod still serves")
    elif (m.conditions().get("Ready") or {}).get("status") == "True":
        evidence.append(f"InferenceService {m.cfg.key} reports Ready=True, but no predictor pod is ready: "
                        "requests fail although the status says Ready")
    if uri:
        evidence.append(f"storageUri {uri} (scheme {m.spec.scheme or 'none'}): "
                        "the model never reached the server")
    ctx.explain(
        m,
        code=CODES[verdict.fault],
        evidence=evidence,
        remedy=remedy(fault=verdict.fault, scheme=m.spec.scheme, uri=uri, fmt=m.spec.format, sa=m.sa_name,
                      namespace=m.cfg.namespace, isvc=m.cfg.name, pod=pod),
        explains=("storage", "credentials", "mesh"),
        severity=Severity.WARNING if serving else Severity.CRITICAL,
    )
    return True

