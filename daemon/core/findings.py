"""Findings: one named root cause, with its evidence and its fix.

A :class:`Finding` is what ``diagnose()`` produces and what operators read (logs,
``check``, Events, the ``warden_findings`` metric). ``code`` is stable: alerts, runbooks and
the demo key on it, so codes are only ever added, never renamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from daemon.core.objects import ObjectRef


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Code(StrEnum):
    NO_SERVING_RUNTIME = "no-serving-runtime"
    STORAGE_CREDENTIALS_MISSING = "storage-credentials-missing"
    STORAGE_SECRET_FORMAT = "storage-secret-format"
    STORAGE_SECRET_ANNOTATION = "storage-secret-annotation"
    STORAGE_UNREACHABLE = "storage-unreachable"
    MESH_POLICY_DENIES = "mesh-policy-denies"
    SIDECAR_DISABLED_POLICY_UNENFORCED = "sidecar-disabled-policy-unenforced"
    DNS_LATENCY_HIGH = "dns-latency-high"
    MODEL_NOT_FOUND = "model-not-found"
    MODEL_WRONG_FORMAT = "model-wrong-format"
    WRONG_MODEL = "wrong-model"
    IMAGE_PULL_UNAUTHORIZED = "image-pull-unauthorized"
    PREDICTOR_NOT_READY = "predictor-not-ready"
    DRIFT = "drift"
    NOT_CHECKED = "not-checked"
    RUNTIME_DISABLED = "runtime-disabled"
    RUNTIME_VERSION_UNSUPPORTED = "runtime-version-unsupported"
    PVC_NOT_BOUND = "pvc-not-bound"
    PEER_AUTHENTICATION_STRICT_NO_SIDECAR = "peer-authentication-strict-no-sidecar"
    MESH_POLICY_NOT_EVALUATED = "mesh-policy-not-evaluated"
    ISTIO_REVISION_MISSING = "istio-revision-missing"
    COMPONENT_NOT_READY = "component-not-ready"
    STORAGE_ACCESS_DENIED = "storage-access-denied"
    """The store itself refused the storage-initializer's download (403): IAM, bucket policy, gated repo."""
    STORAGE_URI_UNSUPPORTED = "storage-uri-unsupported"
    """KServe's storage-initializer does not recognise the storageUri (scheme or shape)."""
    STORAGE_DOWNLOAD_FAILED = "storage-download-failed"
    """The storage-initializer failed, for a reason its log does not name in words known here."""
    PROBE_ERROR = "probe-error"
    """A probe could not run (daemon.core.diagnosis.probe_errors): not checked, never healthy."""
    # Resources, scheduling and staleness (daemon.core.diagnosis.resources, .scheduling, .staleness).
    OOM_KILLED = "oom-killed"
    EVICTED_EPHEMERAL_STORAGE = "evicted-ephemeral-storage"
    CRASH_LOOP = "crash-loop"
    UNSCHEDULABLE_INSUFFICIENT_RESOURCES = "unschedulable-insufficient-resources"
    UNSCHEDULABLE_UNTOLERATED_TAINT = "unschedulable-untolerated-taint"
    UNSCHEDULABLE_NO_MATCHING_NODE = "unschedulable-no-matching-node"
    UNSCHEDULABLE = "pod-unschedulable"
    READY_BUT_CRASH_LOOPING = "ready-but-crash-looping"


SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


@dataclass(frozen=True, kw_only=True)
class Finding:
    code: Code
    severity: Severity
    subject: ObjectRef
    evidence: tuple[str, ...]
    explanation: str
    remedy: str
    """The exact change the daemon would make, or the exact command a human must run."""
    caused: tuple[str, ...] = ()
    """Symptoms folded into this root cause (e.g. an unready sidecar explained by DNS)."""
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Machine-readable extras for ``plan()`` (e.g. which desired object to re-apply)."""
    inferenceservice: str | None = None
    """``namespace/name`` of the InferenceService this finding concerns (None: cluster-wide,
    e.g. slow DNS or drift of an object no model owns)."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.code.value, str(self.subject))

    def escalated(self) -> Finding:
        """The same finding one severity step up (used when a heal did not help)."""
        order = [Severity.INFO, Severity.WARNING, Severity.CRITICAL]
        nxt = order[min(order.index(self.severity) + 1, len(order) - 1)]
        return Finding(
            code=self.code, severity=nxt, subject=self.subject, evidence=self.evidence,
            explanation=self.explanation, remedy=self.remedy, caused=self.caused, data=self.data,
            inferenceservice=self.inferenceservice,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "severity": self.severity.value,
            "subject": {
                "apiVersion": self.subject.api_version,
                "kind": self.subject.kind,
                "namespace": self.subject.namespace,
                "name": self.subject.name,
            },
            "evidence": list(self.evidence),
            "explanation": self.explanation,
            "remedy": self.remedy,
            "caused": list(self.caused),
            "inferenceservice": self.inferenceservice,
        }
