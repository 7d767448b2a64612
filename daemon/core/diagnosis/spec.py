"""What an InferenceService asks for, in every shape KServe accepts.

KServe takes the predictor in three shapes: the current ``spec.predictor.model`` (a
``modelFormat`` name and version, an optional ``runtime``), the older per-framework keys
(``spec.predictor.sklearn: {storageUri}``, ``xgboost``, ``tensorflow``, ``pytorch``, ``onnx``,
``triton``, ``huggingface``, ``lightgbm``, ``paddle``, ``pmml``), which KServe's defaulting
webhook turns into a ``modelFormat`` of that name, and custom containers
(``spec.predictor.containers``), which need no ServingRuntime at all. :func:`predictor_of`
reads any of them into one :class:`Predictor`, so the rules never look at the raw shape.

The deployment mode comes from the ``serving.kserve.io/deploymentMode`` annotation, else the
``deploy.defaultDeploymentMode`` of ``inferenceservice-config``, else Serverless (KServe's
default). The components are the keys present under ``spec`` (predictor, transformer,
explainer); each has its own ``<Component>Ready`` condition.

A model may name its storage with KServe's storage spec (``storage: {key, path, parameters}``,
resolved against the ``storage-config`` Secret: :func:`probes.credentials.resolve_storage_spec`)
instead of, or besides, a ``storageUri``; :attr:`Predictor.storage` carries it, and its ``type``
parameter is the scheme when there is no ``storageUri``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probes.credentials import LEGACY_FRAMEWORKS, StorageSpec, storage_spec_of

DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
SERVERLESS, RAW, MODELMESH = "Serverless", "RawDeployment", "ModelMesh"
_MODES = {"serverless": SERVERLESS, "rawdeployment": RAW, "raw": RAW, "standard": RAW, "modelmesh": MODELMESH}

COMPONENTS = ("predictor", "transformer", "explainer")
# What KServe's defaulting webhook gives a predictor without protocolVersion (its
# setPredictorModelDefaults / assign*Runtime): v2 for these modelFormat names, and for these
# older keys, before any runtime is selected.
V2_FORMATS = frozenset({"triton", "vllm"})
V2_LEGACY = frozenset({"triton", "onnx", "huggingface"})


@dataclass(frozen=True, kw_only=True)
class Predictor:
    format: str | None
    """The model format name (``sklearn``…); None for a custom container."""
    version: str | None
    runtime: str | None
    """The runtime named explicitly (``spec.predictor.model.runtime``); None: auto-select."""
    storage_uri: str | None
    protocol: str
    """``v1``, ``v2`` or ``grpc-v2`` (KServe's default: v1)."""
    protocol_set: bool = True
    """Whether ``protocolVersion`` is in the spec KServe selects with: written, or put there by
    its defaulting webhook (v2 for Triton/vLLM formats and the older triton, onnx, huggingface
    keys). With a runtime named and none set, KServe checks no protocol (it takes the runtime's)."""
    shape: str
    """``model``, ``legacy:<framework>``, ``containers`` or ``none``."""
    storage: StorageSpec | None = None
    """KServe's storage spec (``storage:``), if the predictor has one."""

    @property
    def custom(self) -> bool:
        return self.shape == "containers"

    @property
    def scheme(self) -> str:
        """``s3``, ``gs``, ``https``, ``http``, ``pvc``, ``hf``…, or ``""`` without a storageUri
        (with a storage spec and no storageUri: its ``type`` parameter, if it names one — else
        the type is inside the storage-config Secret's value)."""
        uri = self.storage_uri or ""
        if "://" in uri:
            return uri.split("://", 1)[0].lower()
        if self.storage is not None and not uri:
            return self.storage.parameters.get("type", "").lower()
        return ""


def _mapping(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def predictor_of(isvc: Mapping[str, Any] | None) -> Predictor:
    pred = _mapping(_mapping(_mapping(isvc).get("spec")).get("predictor"))
    model = _mapping(pred.get("model"))
    if model:
        fmt = _mapping(model.get("modelFormat"))
        name = str(fmt["name"]) if fmt.get("name") else None
        written = str(model.get("protocolVersion") or "")
        defaulted = "v2" if name in V2_FORMATS else ""
        return Predictor(
            format=name,
            version=str(fmt["version"]) if fmt.get("version") is not None else None,
            runtime=str(model["runtime"]) if model.get("runtime") else None,
            storage_uri=str(model["storageUri"]) if model.get("storageUri") else None,
            protocol=(written or defaulted or "v1").lower(),
            protocol_set=bool(written or defaulted),
            shape="model",
            storage=storage_spec_of(isvc),
        )
    for fw in LEGACY_FRAMEWORKS:
        spec = _mapping(pred.get(fw))
        if fw in pred:
            written = str(spec.get("protocolVersion") or "")
            defaulted = "v2" if fw in V2_LEGACY else ""
            return Predictor(
                format=fw,
                version=None,
                runtime=None,
                storage_uri=str(spec["storageUri"]) if spec.get("storageUri") else None,
                protocol=(written or defaulted or "v1").lower(),
                protocol_set=bool(written or defaulted),
                shape=f"legacy:{fw}",
                storage=storage_spec_of(isvc),
            )
    containers = pred.get("containers") or []
    if containers:
        uri = None
        for c in containers:
            for env in _mapping(c).get("env") or []:
                if _mapping(env).get("name") == "STORAGE_URI" and _mapping(env).get("value"):
                    uri = str(env["value"])
        return Predictor(format=None, version=None, runtime=None, storage_uri=uri, protocol="v1",
                         shape="containers")
    return Predictor(format=None, version=None, runtime=None, storage_uri=None, protocol="v1", shape="none")


def components_of(isvc: Mapping[str, Any] | None) -> tuple[str, ...]:
    spec = _mapping(_mapping(isvc).get("spec"))
    return tuple(c for c in COMPONENTS if c == "predictor" or c in spec)


def deployment_mode(isvc: Mapping[str, Any] | None, configmap: Mapping[str, Any] | None) -> str:
    ann = _mapping(_mapping(_mapping(isvc).get("metadata")).get("annotations"))
    mode = str(ann.get(DEPLOYMENT_MODE_ANNOTATION) or "")
    if not mode:
        raw = _mapping(_mapping(configmap).get("data")).get("deploy")
        try:
            mode = str(_mapping(json.loads(raw)).get("defaultDeploymentMode") or "") if raw else ""
        except (json.JSONDecodeError, TypeError):
            mode = ""
    return _MODES.get(mode.lower(), SERVERLESS)
