"""Objects the wire-level API tests create, written once.

An InferenceService both CRDs accept as it is (the project's minimal one on the stand-in,
KServe's own on the real tier: a model format and a storage URI, nothing its webhooks could
refuse on the tiers where they run), and the coordinates ``CustomObjectsApi`` takes for it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ISVC", "PEER_AUTHENTICATION_CRD", "isvc"]

ISVC = ("serving.kserve.io", "v1beta1", "inferenceservices")
"""group, version, plural: ``co.create_namespaced_custom_object(*ISVC[:2], ns, ISVC[2], body)``."""


def isvc(name: str, fmt: str = "sklearn", labels: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, **({"labels": labels} if labels else {})},
        "spec": {"predictor": {"model": {"modelFormat": {"name": fmt}, "storageUri": "s3://b/m"}}},
    }


PEER_AUTHENTICATION_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "peerauthentications.security.istio.io"},
    "spec": {
        "group": "security.istio.io",
        "scope": "Namespaced",
        "names": {"plural": "peerauthentications", "singular": "peerauthentication",
                  "kind": "PeerAuthentication", "listKind": "PeerAuthenticationList"},
        "versions": [{"name": v, "served": True, "storage": v == "v1",
                      "schema": {"openAPIV3Schema": {"type": "object",
                                                     "x-kubernetes-preserve-unknown-fields": True}}}
                     for v in ("v1", "v1beta1")],
    },
}
"""Istio's PeerAuthentication CRD as `istioctl install` creates it (the stand-in serves none)."""
