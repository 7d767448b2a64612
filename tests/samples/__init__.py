"""KServe's own sample InferenceServices (issue 20), and what each must be diagnosed as.

``sNN-*.yaml`` are KServe v0.20.0's ``docs/samples`` files, unchanged (each names its source in
its first line): the older per-framework predictor keys most of them use, ``gs://``, ``https://``,
``hf://`` and ``s3://`` stores, every format the issue lists. Applied as a new user would, to a
cluster whose pods reach nothing outside it (the loopback sandbox; a cluster without egress),
each fails in its storage-initializer, and the diagnosis must name that one cause — the store
unreachable, or its credentials missing — with a remedy for its scheme and runtime, never
``model-wrong-format`` with XGBoost advice.

:data:`SAMPLES` says per file: the namespace it is applied to (the samples name none), the
format and scheme it has, the one finding it must get above INFO, and words its remedy must hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
NAMESPACE = "kserve-samples"


@dataclass(frozen=True, kw_only=True)
class Sample:
    file: str
    format: str
    scheme: str
    code: str
    """The one finding above INFO on a cluster that reaches nothing outside it."""
    remedy: tuple[str, ...]

    def isvc(self, namespace: str = NAMESPACE) -> dict[str, Any]:
        (doc,) = [d for d in yaml.safe_load_all((HERE / self.file).read_text(encoding="utf-8")) if d]
        doc["metadata"]["namespace"] = namespace
        doc["apiVersion"] = "serving.kserve.io/v1beta1"  # pmml's older samples said serving.kubeflow.org
        return dict(doc)

    @property
    def name(self) -> str:
        return str(self.isvc()["metadata"]["name"])

    @property
    def wants_gpu(self) -> bool:
        """The predictor requests ``nvidia.com/gpu``: on the real tier, whose kube-scheduler sees a
        GPU node tainted as GPU nodes are, a sample without the toleration is never scheduled,
        which is then its one true cause (``unschedulable-untolerated-taint``), not the download."""
        pred = self.isvc()["spec"]["predictor"]
        impl = pred.get("model") or next(
            (v for v in pred.values() if isinstance(v, dict) and "storageUri" in v), {})
        res = impl.get("resources") or {}
        return any("nvidia.com/gpu" in (res.get(k) or {}) for k in ("limits", "requests"))

    @property
    def uri(self) -> str:
        pred = self.isvc()["spec"]["predictor"]
        impl = pred.get("model") or next(
            v for v in pred.values() if isinstance(v, dict) and "storageUri" in v)
        return str(impl["storageUri"])


UNREACHABLE = "storage-unreachable"


def _gs(file: str, fmt: str) -> Sample:
    """A sample on KServe's public GCS bucket: unreachable where nothing outside resolves."""
    return Sample(file=file, format=fmt, scheme="gs", code=UNREACHABLE, remedy=("storage.googleapis.com",))


SAMPLES = (
    _gs("s01-sklearn-v1.yaml", "sklearn"),
    _gs("s02-sklearn-v2.yaml", "sklearn"),
    _gs("s03-xgboost.yaml", "xgboost"),
    _gs("s04-lightgbm.yaml", "lightgbm"),
    _gs("s05-pmml.yaml", "pmml"),
    _gs("s06-paddle.yaml", "paddle"),
    _gs("s07-onnx.yaml", "onnx"),
    _gs("s08-tensorflow.yaml", "tensorflow"),
    _gs("s09-torchserve-v1.yaml", "pytorch"),
    _gs("s10-torchserve-v2.yaml", "pytorch"),
    _gs("s11-triton-torchscript.yaml", "triton"),
    Sample(file="s12-tensorflow-https.yaml", format="tensorflow", scheme="https", code=UNREACHABLE,
           remedy=("raw.githubusercontent.com",)),
    Sample(file="s13-sklearn-https.yaml", format="sklearn", scheme="https", code=UNREACHABLE,
           remedy=("github.com",)),
    Sample(file="s14-huggingface-hf.yaml", format="huggingface", scheme="hf", code=UNREACHABLE,
           remedy=("huggingface.co",)),
    # Its ServiceAccount ``sa`` is not created by the sample: no credentials reach the initializer.
    Sample(file="s15-tensorflow-s3.yaml", format="tensorflow", scheme="s3",
           code="storage-credentials-missing",
           remedy=("AWS_ACCESS_KEY_ID", "ServiceAccount kserve-samples/sa")),
    _gs("s16-mlflow.yaml", "mlflow"),
)
