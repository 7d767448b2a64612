"""Which ServingRuntime KServe picks for an InferenceService (pure, table-tested).

The one named by ``spec.predictor.model.runtime`` (namespaced first, then cluster-scoped) if
it supports the model's format, else the first runtime — namespaced before cluster, by name —
that is not disabled and lists the format (and version, when both give one) with
``autoSelect`` and serves the model's protocol. None found: KServe's ``NoSupportingRuntime``,
with the seed's message
``no runtime found to support predictor with model type: {sklearn <nil>}``.
"""

from __future__ import annotations

from sandbox.controllers.watch import Obj

# The older per-framework predictor keys KServe's defaulting webhook turns into a ``model`` with
# that modelFormat name (v1beta1 ``setPredictorModelDefaults``); KServe's own samples
# (docs/samples/v1beta1 of v0.20) are written this way. It gives the first three protocol v2.
LEGACY_KEYS = ("triton", "onnx", "huggingface", "sklearn", "xgboost", "lightgbm", "tensorflow", "pytorch",
               "paddle", "pmml")
_LEGACY_V2 = ("triton", "onnx", "huggingface")


def model_spec(isvc: Obj) -> Obj:
    """``spec.predictor.model``, or the model KServe's defaulting webhook makes of an older
    framework key (``predictor.sklearn: {storageUri}`` → ``model: {modelFormat: {name: sklearn}}``,
    protocol v2 for triton, onnx and huggingface when unset). Pure."""
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    if predictor.get("model"):
        return dict(predictor["model"])
    for key in LEGACY_KEYS:
        if isinstance(predictor.get(key), dict):
            model = {k: v for k, v in predictor[key].items() if k != "runtimeVersion"}
            model["modelFormat"] = {"name": key}
            if key in _LEGACY_V2 and not model.get("protocolVersion"):
                model["protocolVersion"] = "v2"
            return model
    return {}


def model_format(isvc: Obj) -> tuple[str, str | None]:
    fmt = model_spec(isvc).get("modelFormat") or {}
    return str(fmt.get("name") or ""), fmt.get("version")


def no_runtime_message(name: str, version: str | None) -> str:
    # KServe formats the Go struct {Name string; Version *string}: a nil version prints <nil>.
    return f"no runtime found to support predictor with model type: {{{name} {version or '<nil>'}}}"


def _supports(runtime: Obj, name: str, version: str | None, *, auto: bool) -> bool:
    spec = runtime.get("spec") or {}
    if spec.get("disabled"):
        return False
    for f in spec.get("supportedModelFormats") or []:
        if f.get("name") != name or (auto and not f.get("autoSelect")):
            continue
        if version is None or f.get("version") in (None, version):
            return True
    return False


def _protocol(isvc: Obj) -> tuple[str, bool]:
    """The model's protocol and whether it is set: written, or put there by KServe's defaulting
    webhook (v2 for the triton and vllm formats); unset, auto-selection takes v1."""
    model = model_spec(isvc)
    written = str(model.get("protocolVersion") or "").lower()
    if written:
        return written, True
    if model_format(isvc)[0] in ("triton", "vllm"):
        return "v2", True
    return "v1", False


def _serves(runtime: Obj, protocol: str) -> bool:
    listed = [str(v).lower() for v in (runtime.get("spec") or {}).get("protocolVersions") or []]
    return protocol in listed if listed else True  # KServe: a runtime that lists none takes any


def select_runtime(isvc: Obj, runtimes: list[Obj], cluster_runtimes: list[Obj]) -> Obj | None:
    """The runtime KServe would use for ``isvc`` (namespaced runtimes win), or None. Pure.

    Auto-selection also needs the runtime to serve the model's protocol (v1 when unset: the ONNX
    sample without protocolVersion finds none, Triton serving v2 only, as KServe v0.20 answers);
    a named runtime is checked only against a protocol the model sets."""
    name, version = model_format(isvc)
    protocol, protocol_set = _protocol(isvc)
    wanted = model_spec(isvc).get("runtime")
    ns = (isvc.get("metadata") or {}).get("namespace")
    local = [r for r in runtimes if (r.get("metadata") or {}).get("namespace") == ns]
    for group in (local, cluster_runtimes):
        for r in sorted(group, key=lambda r: str(r["metadata"]["name"])):
            if wanted:
                if (r["metadata"]["name"] == wanted and _supports(r, name, version, auto=False)
                        and (not protocol_set or _serves(r, protocol))):
                    return r
            elif _supports(r, name, version, auto=True) and _serves(r, protocol):
                return r
    return None
