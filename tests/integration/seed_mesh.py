"""The seed's mesh in front of the object store, as the S3 and storage-probe tests build it.

The model's and ml-pipeline's principals, the object store's workload selector, the seed's
policy that admits only ml-pipeline (so the model is refused) and the fix that admits the
model's ServiceAccount.
"""

from __future__ import annotations

from typing import Any

BUCKET = "mlpipeline"
IRIS = "cluster.local/ns/user-example-com/sa/iris-sa"
PIPELINE = "cluster.local/ns/kubeflow/sa/ml-pipeline"
SEL = {"matchLabels": {"app": "seaweedfs"}}
PIPELINE_ONLY: dict[str, Any] = {
    "metadata": {"name": "seaweedfs-service", "namespace": "kubeflow"},
    "spec": {
        "action": "ALLOW",
        "selector": SEL,
        "rules": [{"from": [{"source": {"principals": [PIPELINE]}}]}],
    },
}
FIX: dict[str, Any] = {
    "metadata": {"name": "minio-user-namespace-access", "namespace": "kubeflow"},
    "spec": {"action": "ALLOW", "selector": SEL, "rules": [{"from": [{"source": {"principals": [IRIS]}}]}]},
}
