"""Turn KServe's in-cluster manifests (from its Go module) into ones for a manager on loopback.

Used by :mod:`sandbox.realcp.kserve`; ``python -m sandbox.realcp.kserve_manifests`` prints the
same documents, to read or to ``kubectl apply`` by hand. The manifests are read from the module
cache at run time and never copied into the repo.

    kserve_manifests.py crds       MODULE
        config/crd/full as kustomize lists it (its resources, recursively).
    kserve_manifests.py rbac       MODULE NAMESPACE
        config/rbac without the kube-rbac-proxy parts, with NAMESPACE filled in (the kustomize
        overlay config/default does that in a real install).
    kserve_manifests.py webhooks   MODULE URL CA_FILE
        config/webhook/manifests.yaml with every clientConfig.service replaced by
        url: URL + path and caBundle: CA_FILE (the manager is not behind a Service).
    kserve_manifests.py configmap  MODULE NAMESPACE MODE
        config/configmap/inferenceservice.yaml with deploy.defaultDeploymentMode = MODE and
        ingress creation off (no ingress controller, no Istio).
Writes a YAML stream to stdout, for `kubectl apply -f -`.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration",
                  "ValidatingWebhookConfiguration", "CustomResourceDefinition"}  # fmt: skip


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def rbac(module: Path, namespace: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in ("service_account", "role", "role_binding", "leader_election_role",
                 "leader_election_role_binding"):  # fmt: skip
        docs += _load(module / "config" / "rbac" / f"{name}.yaml")
    for d in docs:
        if d["kind"] not in CLUSTER_SCOPED:
            d["metadata"]["namespace"] = namespace
        for s in d.get("subjects") or []:
            if s.get("kind") == "ServiceAccount":
                s.setdefault("namespace", namespace)
    return docs


def crds(module: Path) -> list[dict[str, Any]]:
    return _kustomized(module / "config" / "crd" / "full")


def _kustomized(folder: Path) -> list[dict[str, Any]]:
    """The documents a kustomization's ``resources`` name (files and folders; no patches)."""
    docs: list[dict[str, Any]] = []
    (k,) = _load(folder / "kustomization.yaml")
    for res in k.get("resources") or []:
        path = folder / res
        docs += _kustomized(path) if path.is_dir() else _load(path)
    return docs


def webhooks_unbound(module: Path) -> list[dict[str, Any]]:
    """KServe's webhook configurations as shipped (for their kinds and names)."""
    return _load(module / "config" / "webhook" / "manifests.yaml")


def webhooks(module: Path, url: str, ca_file: str) -> list[dict[str, Any]]:
    ca = base64.b64encode(Path(ca_file).read_bytes()).decode()
    docs = _load(module / "config" / "webhook" / "manifests.yaml")
    for d in docs:
        d["metadata"].pop("creationTimestamp", None)
        for w in d.get("webhooks") or []:
            svc = w["clientConfig"].pop("service")
            w["clientConfig"] = {"url": url.rstrip("/") + svc.get("path", "/"), "caBundle": ca}
    return docs


def configmap(module: Path, namespace: str, mode: str) -> list[dict[str, Any]]:
    (cm,) = _load(module / "config" / "configmap" / "inferenceservice.yaml")
    cm["metadata"]["namespace"] = namespace
    data = cm["data"]
    data.pop("_example", None)
    deploy = json.loads(data["deploy"])
    deploy["defaultDeploymentMode"] = mode
    data["deploy"] = json.dumps(deploy, indent=2)
    ingress = json.loads(data["ingress"])
    ingress["disableIngressCreation"] = True
    ingress["disableIstioVirtualHost"] = True
    data["ingress"] = json.dumps(ingress, indent=2)
    return [cm]


def main(argv: list[str]) -> int:
    commands: dict[str, Callable[..., list[dict[str, Any]]]] = {
        "crds": crds, "rbac": rbac, "webhooks": webhooks, "configmap": configmap}
    if len(argv) < 2 or argv[0] not in commands:
        sys.stderr.write(__doc__ or "")
        return 2
    what, module, rest = argv[0], Path(argv[1]), argv[2:]
    docs = commands[what](module, *rest)
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
