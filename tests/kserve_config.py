"""KServe's ``inferenceservice-config`` ConfigMap as a kustomize install ships it (the part tests read).

Only the ``credentials`` entry matters to the credential resolvers: the annotation key that
names the storage secret (kustomize: ``serving.kserve.io/storageSecretName``; Helm installs
use ``serving.kserve.io/secretName``) and the key names in that secret.
"""

from __future__ import annotations

import json
from typing import Any


def inferenceservice_config(namespace: str = "kserve") -> dict[str, Any]:
    """A fresh (mutable) copy of the ConfigMap, in ``namespace``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "inferenceservice-config", "namespace": namespace},
        "data": {
            "credentials": json.dumps(
                {
                    "storageSecretNameAnnotation": "serving.kserve.io/storageSecretName",
                    "s3": {
                        "s3AccessKeyIDName": "AWS_ACCESS_KEY_ID",
                        "s3SecretAccessKeyName": "AWS_SECRET_ACCESS_KEY",
                    },
                }
            )
        },
    }
