"""The CustomResourceDefinitions the sandbox cluster starts with (KServe and Istio kinds).

They are stored as ordinary ``CustomResourceDefinition`` objects, so ``kubectl get crd`` lists
them and deleting one stops its resource being served, as on a real cluster. Schemas are left
open (``x-kubernetes-preserve-unknown-fields``): the stand-in does not validate CR bodies.
"""

from __future__ import annotations

from sandbox.apiserver.status import JSON

_OPEN_SCHEMA: JSON = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}


def _crd(
    *,
    group: str,
    plural: str,
    kind: str,
    versions: list[str],
    scope: str = "Namespaced",
    short_names: list[str] | None = None,
    columns: list[JSON] | None = None,
) -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
                **({"shortNames": short_names} if short_names else {}),
            },
            "versions": [
                {
                    "name": v,
                    "served": True,
                    "storage": i == 0,
                    "schema": _OPEN_SCHEMA,
                    "subresources": {"status": {}},
                    **({"additionalPrinterColumns": columns} if columns else {}),
                }
                for i, v in enumerate(versions)
            ],
        },
    }


_AGE: JSON = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
# ServingRuntime and ClusterServingRuntime print alike (KServe's CRDs).
_RUNTIME_COLUMNS: list[JSON] = [
    {"name": "Disabled", "type": "boolean", "jsonPath": ".spec.disabled"},
    {"name": "ModelType", "type": "string", "jsonPath": ".spec.supportedModelFormats[*].name"},
    _AGE,
]

BUILTIN_CRDS: tuple[JSON, ...] = (
    _crd(
        group="serving.kserve.io",
        plural="inferenceservices",
        kind="InferenceService",
        versions=["v1beta1"],
        short_names=["isvc"],
        columns=[
            {"name": "URL", "type": "string", "jsonPath": ".status.url"},
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type=='Ready')].status"},
            _AGE,
        ],
    ),
    _crd(
        group="serving.kserve.io",
        plural="servingruntimes",
        kind="ServingRuntime",
        versions=["v1alpha1"],
        columns=_RUNTIME_COLUMNS,
    ),
    _crd(
        group="serving.kserve.io",
        plural="clusterservingruntimes",
        kind="ClusterServingRuntime",
        versions=["v1alpha1"],
        scope="Cluster",
        columns=_RUNTIME_COLUMNS,
    ),
    _crd(
        group="security.istio.io",
        plural="authorizationpolicies",
        kind="AuthorizationPolicy",
        versions=["v1", "v1beta1"],
        short_names=["ap"],
        columns=[{"name": "Action", "type": "string", "jsonPath": ".spec.action"}, _AGE],
    ),
)
