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
                for i, c in enumerate(spec["containers"]):
                    if not isinstance(c, dict) or not c.get("name"):
                        errors.append((f"spec.containers[{i}].name", "Required value"))
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
            if not isinstance(spec.get("selector"), dict):
                errors.append(("spec.selector", "Required value"))
            if not isinstance(spec.get("template"), dict):
                errors.append(("spec.template", "Required value"))
        if creating:
            obj.pop("status", None)
    elif kind.group == "coordination.k8s.io":
        spec = obj.get("spec")
        if spec is not None and not isinstance(spec, dict):
            errors.append(("spec", "Invalid value: must be an object"))
    return errors


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
        try:
            base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            # Real server: a 400 from JSON decoding ("illegal base64 data"); reported as invalid here.
            errors.append((f"data[{k}]", "Invalid value: illegal base64 data"))
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
