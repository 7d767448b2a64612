"""The InferenceService corpus: one scenario per YAML file, each with its expected findings.

Every ``cNN-*.yaml`` holds one InferenceService with what it needs (namespace, ServiceAccount,
secrets, runtimes, policies, stores, claims) and, as its first document, ``expect:``: the
findings that InferenceService must get, as ``{code, severity}`` (a healthy one expects none, or
only ``not-checked`` at info level where something cannot be judged, e.g. a public GCS bucket).
``runtimes.yaml`` holds KServe's own ClusterServingRuntimes and ``base.yaml`` what every case
shares (KServe's ConfigMap, istiod). The manifests follow KServe's documentation samples.

:func:`load` reads it all; the unit table test runs each case through ``diagnose()``, the
integration test loads everything into the sandbox API server and runs ``kserve-warden check``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CORPUS = Path(__file__).parent
SHARED = ("runtimes.yaml", "base.yaml")


@dataclass(frozen=True)
class Case:
    name: str
    namespace: str
    inferenceservice: str
    expect: tuple[tuple[str, str], ...]
    """Sorted ``(code, severity)`` pairs."""
    objects: tuple[dict[str, Any], ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.inferenceservice}"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def shared_objects() -> list[dict[str, Any]]:
    return [o for name in SHARED for o in _docs(CORPUS / name)]


def load() -> list[Case]:
    cases = []
    for path in sorted(CORPUS.glob("c[0-9][0-9]-*.yaml")):
        docs = _docs(path)
        head, objs = docs[0], docs[1:]
        isvcs = [o for o in objs if o.get("kind") == "InferenceService"]
        assert len(isvcs) == 1, f"{path.name}: one InferenceService per case"
        meta = isvcs[0]["metadata"]
        expect = tuple(sorted((str(e["code"]), str(e["severity"])) for e in head.get("expect") or []))
        cases.append(Case(name=path.stem, namespace=meta["namespace"], inferenceservice=meta["name"],
                          expect=expect, objects=tuple(objs)))
    return cases


PLURALS = {
    "Namespace": "namespaces", "Service": "services", "ServiceAccount": "serviceaccounts",
    "Secret": "secrets", "ConfigMap": "configmaps", "Deployment": "deployments",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "InferenceService": "inferenceservices", "ServingRuntime": "servingruntimes",
    "ClusterServingRuntime": "clusterservingruntimes", "AuthorizationPolicy": "authorizationpolicies",
    "PeerAuthentication": "peerauthentications",
}
"""The API resource of each kind the corpus holds."""


def collection_path(obj: Mapping[str, Any]) -> str:
    """The API path of the collection ``obj`` belongs to (its namespace's, for a namespaced one)."""
    api_version = str(obj["apiVersion"])
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    ns = obj["metadata"].get("namespace")
    return f"{base}{f'/namespaces/{ns}' if ns else ''}/{PLURALS[obj['kind']]}"
