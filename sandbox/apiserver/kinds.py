"""Per-kind rules the real registry strategies apply on every write.

Defaulting and normalisation (``stringData`` folded into base64 ``data``, a new Pod starts
``Pending``, a Namespace gets its ``kubernetes.io/metadata.name`` label), and which kinds count
``metadata.generation`` (apps, CRDs and custom resources; the core kinds the sandbox serves do not).
Pure functions of the object; they run after every write, so a no-op write stays a no-op.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from sandbox.apiserver.registry import ResourceKind

Obj = dict[str, Any]

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def tracks_generation(kind: ResourceKind) -> bool:
    return kind.group not in ("", "coordination.k8s.io")


_LABEL_RULE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)


def validate_name(kind: ResourceKind, name: str) -> str | None:
    """An error message for an invalid object name, or None."""
    if kind.plural == "namespaces":
        if len(name) > 63 or not _DNS1123_LABEL.match(name):
            return f'Invalid value: "{name}": {_LABEL_RULE}'
        return None
    if kind.plural == "events":
        return None  # events are named <object>.<hex>, may contain anything path-safe
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        return f'Invalid value: "{name}": {_SUBDOMAIN_RULE}'
    return None


def validate_labels(labels: Any, field: str) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    if not isinstance(labels, dict):
        return errors
    for k, v in labels.items():
        prefix, _, name = k.rpartition("/")
        if not _LABEL_NAME.match(name) or len(name) > 63 or (prefix and not _DNS1123_SUBDOMAIN.match(prefix)):
            errors.append(
                (
                    f"{field}",
                    f'Invalid value: "{k}": name part must consist of alphanumeric characters, '
                    "'-', '_' or '.', and must start and end with an alphanumeric character",
                )
            )
        if field.endswith("labels") and isinstance(v, str) and (len(v) > 63 or not _LABEL_VALUE.match(v)):
            errors.append(
                (
                    f"{field}",
                    f'Invalid value: "{v}": a valid label must be an empty string or consist of '
                    "alphanumeric characters, '-', '_' or '.'",
                )
            )
    return errors


def type_errors(obj: Obj) -> str | None:
    """Decode-level errors (the real server answers 400 for these, before validation)."""
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        return "json: cannot unmarshal into Go struct field .metadata of type v1.ObjectMeta"
    if isinstance(meta, dict):
        for f in ("labels", "annotations"):
            m = meta.get(f)
            if m is None:
                continue
            if not isinstance(m, dict) or not all(isinstance(v, str) for v in m.values()):
                return f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{f} of type map"
        fin = meta.get("finalizers")
        if fin is not None and (not isinstance(fin, list) or not all(isinstance(v, str) for v in fin)):
            return (
                "json: cannot unmarshal into Go struct field ObjectMeta.metadata.finalizers of type []string"
            )
        for f in ("name", "namespace", "generateName", "resourceVersion"):
            if f in meta and meta[f] is not None and not isinstance(meta[f], str):
                return f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{f} of type string"
    return None


def normalize(kind: ResourceKind, obj: Obj, *, creating: bool) -> list[tuple[str, str]]:
    """Apply the kind's defaulting in place; return field errors (422) if the object is invalid."""
    errors: list[tuple[str, str]] = []
    if kind.group == "":
        if kind.plural == "secrets":
            errors += _fold_string_data(obj)
            obj.setdefault("type", "Opaque")
        elif kind.plural == "configmaps":
            data = obj.get("data")
            if data is not None and (
                not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values())
            ):
                errors.append(("data", "Invalid value: values must be strings"))
        elif kind.plural == "namespaces":
            meta = obj.setdefault("metadata", {})
            labels = dict(meta.get("labels") or {})
            labels["kubernetes.io/metadata.name"] = meta.get("name", "")
            meta["labels"] = labels
            status = obj.get("status")
            if not isinstance(status, dict) or "phase" not in status:
                obj["status"] = {**(status if isinstance(status, dict) else {}), "phase": "Active"}
        elif kind.plural == "pods":
            spec = obj.get("spec")
            if (
                not isinstance(spec, dict)
                or not isinstance(spec.get("containers"), list)
                or not spec["containers"]
            ):
                errors.append(("spec.containers", "Required value"))
            else:
                spec.setdefault("serviceAccountName", "default")
                spec.setdefault("restartPolicy", "Always")
                errors += _container_errors(spec, "spec")
            if creating:
                obj["status"] = {"phase": "Pending"}
        elif kind.plural == "serviceaccounts":
            for f in ("secrets", "imagePullSecrets"):
                v = obj.get(f)
                if v is not None and (not isinstance(v, list) or not all(isinstance(x, dict) for x in v)):
                    errors.append((f, "Invalid value: must be a list of object references"))
    elif kind.group == "apps" and kind.plural == "deployments":
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            errors.append(("spec", "Required value"))
        else:
            spec.setdefault("replicas", 1)
            selector, template = spec.get("selector"), spec.get("template")
            if not isinstance(selector, dict):
                errors.append(("spec.selector", "Required value"))
            if not isinstance(template, dict):
                errors.append(("spec.template", "Required value"))
            else:
                errors += _template_errors(selector, template)
        if creating:
            obj.pop("status", None)
        errors += _deployment_status_errors(obj.get("status"))
    elif kind.group == "coordination.k8s.io":
        spec = obj.get("spec")
        if spec is not None and not isinstance(spec, dict):
            errors.append(("spec", "Invalid value: must be an object"))
    return errors


def _container_errors(spec: Obj, path: str) -> list[tuple[str, str]]:
    """Every container and init container needs a name and an image (ValidatePodSpec)."""
    errors: list[tuple[str, str]] = []
    for field in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(field) or []):
            if not isinstance(c, dict) or not c.get("name"):
                errors.append((f"{path}.{field}[{i}].name", "Required value"))
            if not isinstance(c, dict) or not c.get("image"):
                errors.append((f"{path}.{field}[{i}].image", "Required value"))
    return errors


def _go_map(labels: Any) -> str:
    if not labels:
        return "null"
    return "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items())) + "}"


def _template_errors(selector: Any, template: Obj) -> list[tuple[str, str]]:
    """A Deployment's pod template: containers as a Pod's, labels matched by the selector."""
    errors: list[tuple[str, str]] = []
    meta: Obj = template["metadata"] if isinstance(template.get("metadata"), dict) else {}
    labels = meta.get("labels") or {}
    match = (selector.get("matchLabels") or {}) if isinstance(selector, dict) else {}
    if isinstance(selector, dict) and (not isinstance(labels, dict)
                                       or any(labels.get(k) != v for k, v in match.items())):
        errors.append(("spec.template.metadata.labels",
                       f"Invalid value: {_go_map(labels)}: `selector` does not match template `labels`"))
    spec = template.get("spec")
    if not isinstance(spec, dict) or not spec.get("containers"):
        errors.append(("spec.template.spec.containers", "Required value"))
    else:
        errors += _container_errors(spec, "spec.template.spec")
    return errors


def _deployment_status_errors(status: Any) -> list[tuple[str, str]]:
    """ValidateDeploymentStatus: counts are non-negative and bounded by the ones they are part of."""
    if not isinstance(status, dict):
        return []
    errors: list[tuple[str, str]] = []
    counts = {k: status.get(k) or 0 for k in ("replicas", "updatedReplicas", "readyReplicas",
                                              "availableReplicas", "unavailableReplicas")}
    for k, v in counts.items():
        if not isinstance(v, int) or v < 0:
            errors.append((f"status.{k}", f"Invalid value: {v}: must be greater than or equal to 0"))
    if errors:
        return errors
    for k in ("updatedReplicas", "readyReplicas", "availableReplicas"):
        if counts[k] > counts["replicas"]:
            errors.append((f"status.{k}",
                           f"Invalid value: {counts[k]}: cannot be greater than status.replicas"))
    if counts["availableReplicas"] > counts["readyReplicas"]:
        errors.append(("status.availableReplicas",
                       f"Invalid value: {counts['availableReplicas']}: cannot be greater than readyReplicas"))
    return errors


_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def bad_base64(data: Any) -> int | None:
    """The input byte at which Go's base64 decoder gives up on a Secret's ``data``, or None."""
    if not isinstance(data, dict):
        return None
    for v in data.values():
        if not isinstance(v, str):
            continue
        try:
            base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            return next((i for i, ch in enumerate(v) if ch not in _B64), len(v) - len(v) % 4)
    return None


def _fold_string_data(obj: Obj) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    data = obj.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return [("data", "Invalid value: must be a map of base64 strings")]
    data = dict(data)
    for k, v in data.items():
        if not _SECRET_KEY.match(k):
            errors.append(
                (
                    f"data[{k}]",
                    "Invalid value: a valid config key must consist of alphanumeric "
                    "characters, '-', '_' or '.'",
                )
            )
        if not isinstance(v, str):
            errors.append((f"data[{k}]", "Invalid value: must be a base64 string"))
            continue
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
    elif string_data is not None:
        errors.append(("stringData", "Invalid value: must be a map of strings"))
    if data:
        obj["data"] = data
    else:
        obj.pop("data", None)
    return errors
