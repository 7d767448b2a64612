"""The seed's cluster, as objects: its starting world, and the state it ended in.

:func:`seed_world` loads what the seed's cluster already held before the model was deployed
(server-side apply through the API, over the wire, field manager ``sandbox-seed``):

* namespaces ``kubeflow``, ``user-example-com`` (``istio-injection=enabled``), ``istio-system``,
  ``kube-system``, ``kserve``, ``kserve-warden``;
* ``kubeflow/mlpipeline-minio-artifact`` — the pipelines' MinIO key in ``accesskey``/``secretkey``
  form (the shape KServe does *not* read), holding the S3 stand-in's real key pair;
* ``kubeflow/seaweedfs-service`` — the pipeline-only AuthorizationPolicy (ml-pipeline, ml-pipeline-ui);
* ``kube-system/coredns`` Deployment; ``kserve/inferenceservice-config`` with KServe's
  ``credentials`` JSON (kustomize default annotation ``serving.kserve.io/storageSecretName``);
* ``user-example-com/harbor-credentials`` (``kubernetes.io/dockerconfigjson``, auths for the
  private registries ``192.168.58.12:30002`` and ``ghcr.io``);
* and, as if the daemon's own install manifests (``config/deploy``) had been applied: the
  ``kserve-warden/kserve-warden`` ServiceAccount and the ALLOW policy
  ``kubeflow/kserve-warden-probe-minio`` (GET/HEAD for that principal) its storage probe needs.

Not seeded — the daemon applies them: ``iris-sa``, ``minio-s3-secret``, the ServingRuntime, the
InferenceService, ``minio-user-namespace-access``. :func:`healthy_objects` is that final working
state (the seed's last attempt, with the runtime image of this project), for tests of the
controllers without the daemon.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from kubernetes_asyncio.client import ApiClient

from sandbox.controllers.watch import Obj, response_json

APPLY = "application/apply-patch+yaml"
MANAGER = "sandbox-seed"
USER_NS = "user-example-com"
BUCKET = "mlpipeline"
MODEL_KEY = "private-artifacts/user-example-com/iris/model"
STORAGE_URI = f"s3://{BUCKET}/{MODEL_KEY}"
S3_ENDPOINT = "minio-service.kubeflow:9000"
DAEMON_PRINCIPAL = "cluster.local/ns/kserve-warden/sa/kserve-warden"
REGISTRIES = ("192.168.58.12:30002", "ghcr.io")
RUNTIME_IMAGE = "ghcr.io/kserve-warden/serving:0.1.0"
S3_ANNOTATIONS = {
    "serving.kserve.io/s3-endpoint": S3_ENDPOINT,
    "serving.kserve.io/s3-usehttps": "0",
    "serving.kserve.io/s3-region": "us-east-1",
    "serving.kserve.io/s3-verifyssl": "0",
}

_PLURALS = {
    "Namespace": "namespaces",
    "Secret": "secrets",
    "ServiceAccount": "serviceaccounts",
    "ConfigMap": "configmaps",
    "Deployment": "deployments",
    "Pod": "pods",
    "AuthorizationPolicy": "authorizationpolicies",
    "ServingRuntime": "servingruntimes",
    "ClusterServingRuntime": "clusterservingruntimes",
    "InferenceService": "inferenceservices",
}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def object_path(obj: Obj) -> str:
    """The REST path of ``obj`` (by apiVersion, kind, namespace, name)."""
    api_version, kind = str(obj["apiVersion"]), str(obj["kind"])
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    meta = obj["metadata"]
    ns = f"/namespaces/{meta['namespace']}" if meta.get("namespace") else ""
    return f"{base}{ns}/{_PLURALS[kind]}/{meta['name']}"


async def apply(api: ApiClient, obj: Obj, *, manager: str = MANAGER) -> Obj:
    """Server-side apply ``obj`` (creates it when missing; force: the seed owns what it sets)."""
    resp = await api.call_api(
        object_path(obj),
        "PATCH",
        query_params=[("fieldManager", manager), ("force", "true")],
        header_params={"Content-Type": APPLY, "Accept": "application/json"},
        body=obj,
        auth_settings=["BearerToken"],
        _preload_content=False,
        _return_http_data_only=True,
    )
    return await response_json(resp)


def _policy(name: str, rules: list[Obj]) -> Obj:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name, "namespace": "kubeflow"},
        "spec": {"action": "ALLOW", "selector": {"matchLabels": {"app": "seaweedfs"}}, "rules": rules},
    }


def _kserve_config() -> dict[str, str]:
    credentials = {
        "storageSpecSecretName": "storage-config",
        "storageSecretNameAnnotation": "serving.kserve.io/storageSecretName",
        "gcs": {"gcsCredentialFileName": "gcloud-application-credentials.json"},
        "s3": {
            "s3AccessKeyIDName": "AWS_ACCESS_KEY_ID",
            "s3SecretAccessKeyName": "AWS_SECRET_ACCESS_KEY",
            "s3Endpoint": "",
            "s3UseHttps": "",
            "s3Region": "",
            "s3VerifySSL": "",
            "s3UseVirtualBucket": "",
            "s3UseAnonymousCredential": "",
            "s3CABundle": "",
        },
    }
    storage_initializer = {
        "image": "kserve/storage-initializer:v0.15.2",
        "memoryRequest": "100Mi",
        "memoryLimit": "1Gi",
        "cpuRequest": "100m",
        "cpuLimit": "1",
        "enableDirectPvcVolumeMount": True,
    }
    ingress = {
        "ingressGateway": "knative-serving/knative-ingress-gateway",
        "ingressDomain": "example.com",
        "urlScheme": "http",
        "domainTemplate": "{{ .Name }}.{{ .Namespace }}.{{ .IngressDomain }}",
    }
    return {
        "credentials": json.dumps(credentials, indent=2),
        "storageInitializer": json.dumps(storage_initializer),
        "ingress": json.dumps(ingress),
        "deploy": json.dumps({"defaultDeploymentMode": "Serverless"}),
    }


def seed_objects(*, access_key_id: str, secret_access_key: str) -> list[Obj]:
    """The seed's starting world (see module docstring), in apply order."""
    namespaces: list[Obj] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, **extra}}
        for n, extra in (
            ("kubeflow", {}),
            (USER_NS, {"labels": {"istio-injection": "enabled"}}),
            ("istio-system", {}),
            ("kube-system", {}),
            ("kserve", {}),
            ("kserve-warden", {}),
        )
    ]
    robot = f"robot$kubeflow-iris:{secrets.token_urlsafe(18)}"
    auths = {r: {"auth": _b64(robot)} for r in REGISTRIES}
    return [
        *namespaces,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": "mlpipeline-minio-artifact", "namespace": "kubeflow"},
            "data": {"accesskey": _b64(access_key_id), "secretkey": _b64(secret_access_key)},
        },
        _policy(
            "seaweedfs-service",
            [
                {
                    "from": [
                        {
                            "source": {
                                "principals": [
                                    "cluster.local/ns/kubeflow/sa/ml-pipeline",
                                    "cluster.local/ns/kubeflow/sa/ml-pipeline-ui",
                                ]
                            }
                        }
                    ]
                }
            ],
        ),
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "kube-dns"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "coredns",
                                "image": "registry.k8s.io/coredns/coredns:v1.11.1",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "inferenceservice-config", "namespace": "kserve"},
            "data": _kserve_config(),
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "harbor-credentials", "namespace": USER_NS},
            "data": {".dockerconfigjson": _b64(json.dumps({"auths": auths}))},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "kserve-warden", "namespace": "kserve-warden"},
        },
        _policy(
            "kserve-warden-probe-minio",
            [
                {
                    "from": [{"source": {"principals": [DAEMON_PRINCIPAL]}}],
                    "to": [{"operation": {"methods": ["GET", "HEAD"]}}],
                }
            ],
        ),
    ]


def runtime_object() -> Obj:
    return {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": "iris-fastapi-runtime", "namespace": USER_NS},
        "spec": {
            "supportedModelFormats": [
                {"name": "sklearn", "autoSelect": True},
                {"name": "xgboost", "autoSelect": True},
            ],
            "protocolVersions": ["v1", "v2"],
            "containers": [
                {
                    "name": "kserve-container",
                    "image": RUNTIME_IMAGE,
                    "args": [
                        "--model_dir",
                        "/mnt/models",
                        "--model_name",
                        "{{.Name}}",
                        "--http_port",
                        "8080",
                    ],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                }
            ],
        },
    }


def user_policy_object() -> Obj:
    return _policy(
        "minio-user-namespace-access",
        [{"from": [{"source": {"principals": [f"cluster.local/ns/{USER_NS}/sa/iris-sa"]}}]}],
    )


def healthy_objects(*, access_key_id: str, secret_access_key: str) -> list[Obj]:
    """The seed's final working state: what the daemon's desired manifests amount to."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": "minio-s3-secret",
                "namespace": USER_NS,
                "annotations": dict(S3_ANNOTATIONS),
            },
            "data": {
                "AWS_ACCESS_KEY_ID": _b64(access_key_id),
                "AWS_SECRET_ACCESS_KEY": _b64(secret_access_key),
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "iris-sa", "namespace": USER_NS, "annotations": dict(S3_ANNOTATIONS)},
            "imagePullSecrets": [{"name": "harbor-credentials"}],
            "secrets": [{"name": "minio-s3-secret"}],
        },
        runtime_object(),
        user_policy_object(),
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {
                "name": "iris-model",
                "namespace": USER_NS,
                "annotations": {"serving.kserve.io/storageSecretName": "minio-s3-secret"},
            },
            "spec": {
                "predictor": {
                    "serviceAccountName": "iris-sa",
                    "model": {
                        "modelFormat": {"name": "xgboost"},
                        "runtime": "iris-fastapi-runtime",
                        "protocolVersion": "v1",
                        "storageUri": STORAGE_URI,
                    },
                }
            },
        },
    ]


async def apply_all(api: ApiClient, objects: list[Obj]) -> list[Any]:
    return [await apply(api, o) for o in objects]
