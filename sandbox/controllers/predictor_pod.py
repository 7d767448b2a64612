"""The predictor Pod KServe (its webhook, the Deployment under it) and Istio would create (pure).

The runtime's containers (``{{.Name}}`` in args replaced), the ServiceAccount's
``imagePullSecrets``, the storage-initializer with the credentials env the webhook resolved,
``istio-proxy`` when injection applies, the ISVC's annotations copied. The annotation
:data:`INPUTS_ANNOTATION` hashes all of it: a change of any input rolls out a new pod.
"""

from __future__ import annotations

import copy
import hashlib
import json

from sandbox.controllers.runtime_select import model_spec
from sandbox.controllers.watch import Obj

GROUP = "serving.kserve.io"
LABEL_ISVC = "serving.kserve.io/inferenceservice"
INPUTS_ANNOTATION = "sandbox.kserve-warden.io/inputs-hash"
URL_ANNOTATION = "sandbox.kserve-warden.io/predictor-url"
INJECT_ANNOTATION = "sidecar.istio.io/inject"
STORAGE_INITIALIZER_IMAGE = "kserve/storage-initializer:v0.15.2"
PROXY_IMAGE = "docker.io/istio/proxyv2:1.22.3"
_SKIP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def sidecar_injected(
    *, namespace_labels: dict[str, str], annotations: dict[str, str], labels: dict[str, str]
) -> bool:
    """Istio's injection decision for a pod (namespace label, pod label/annotation). Pure."""
    if namespace_labels.get("istio-injection") != "enabled":
        return False
    return all(str(src.get(INJECT_ANNOTATION, "")).lower() != "false" for src in (labels, annotations))


def build_pod(
    *, isvc: Obj, runtime: Obj, service_account: Obj | None, storage_env: list[Obj], inject: bool
) -> Obj:
    """The predictor pod (no name yet); annotation :data:`INPUTS_ANNOTATION` hashes it. Pure."""
    meta = isvc["metadata"]
    name = meta["name"]
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    model = model_spec(isvc)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _SKIP_ANNOTATIONS}
    annotations.update(predictor.get("annotations") or {})
    annotations["serving.kserve.io/storage-initializer-sourceuri"] = str(model.get("storageUri", ""))
    pull = [dict(s) for s in (service_account or {}).get("imagePullSecrets") or []]
    pull += [dict(s) for s in predictor.get("imagePullSecrets") or [] if s not in pull]
    containers = []
    for c in copy.deepcopy((runtime.get("spec") or {}).get("containers") or []):
        c["args"] = [str(a).replace("{{.Name}}", name) for a in c.get("args") or []]
        c.setdefault("volumeMounts", []).append(
            {"name": "kserve-provision-location", "mountPath": "/mnt/models", "readOnly": True}
        )
        containers.append(c)
    init = [
        {
            "name": "storage-initializer",
            "image": STORAGE_INITIALIZER_IMAGE,
            "args": [str(model.get("storageUri", "")), "/mnt/models"],
            "env": storage_env,
            "volumeMounts": [{"name": "kserve-provision-location", "mountPath": "/mnt/models"}],
        }
    ]
    if inject:
        containers.append(
            {
                "name": "istio-proxy",
                "image": PROXY_IMAGE,
                "args": ["proxy", "sidecar", "--discoveryAddress", "istiod.istio-system.svc:15012"],
            }
        )
        annotations["sidecar.istio.io/status"] = json.dumps({"containers": ["istio-proxy"]})
    revision = f"{name}-predictor-00001"
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "namespace": meta["namespace"],
            "annotations": annotations,
            "labels": {
                LABEL_ISVC: name,
                "component": "predictor",
                "app": revision,
                "serving.knative.dev/revision": revision,
                "serving.kserve.io/servingruntime": runtime["metadata"]["name"],
            },
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/v1beta1",
                    "kind": "InferenceService",
                    "name": name,
                    "uid": meta.get("uid"),
                    "controller": True,
                }
            ],
        },
        "spec": {
            "serviceAccountName": predictor.get("serviceAccountName") or "default",
            "imagePullSecrets": pull,
            "initContainers": init,
            "containers": containers,
            "volumes": [{"name": "kserve-provision-location", "emptyDir": {}}],
            "restartPolicy": "Always",
        },
    }
    digest = hashlib.sha256(json.dumps(pod, sort_keys=True).encode()).hexdigest()[:10]
    pod["metadata"]["annotations"][INPUTS_ANNOTATION] = digest
    pod["metadata"]["labels"]["pod-template-hash"] = digest
    return pod
