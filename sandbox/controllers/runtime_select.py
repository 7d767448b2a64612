"""Which ServingRuntime KServe picks for an InferenceService (pure, table-tested).

The one named by ``spec.predictor.model.runtime`` (namespaced first, then cluster-scoped) if
it supports the model's format, else the first runtime — namespaced before cluster, by name —
that is not disabled and lists the format (and version, when both give one) with
``autoSelect``. None found: KServe's ``NoSupportingRuntime``, with the seed's message
``no runtime found to support predictor with model type: {sklearn <nil>}``.
"""

from __future__ import annotations

from sandbox.controllers.watch import Obj


def model_format(isvc: Obj) -> tuple[str, str | None]:
    fmt = (((isvc.get("spec") or {}).get("predictor") or {}).get("model") or {}).get("modelFormat") or {}
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


def select_runtime(isvc: Obj, runtimes: list[Obj], cluster_runtimes: list[Obj]) -> Obj | None:
    """The runtime KServe would use for ``isvc`` (namespaced runtimes win), or None. Pure."""
    name, version = model_format(isvc)
    wanted = (((isvc.get("spec") or {}).get("predictor") or {}).get("model") or {}).get("runtime")
    ns = (isvc.get("metadata") or {}).get("namespace")
    local = [r for r in runtimes if (r.get("metadata") or {}).get("namespace") == ns]
    for group in (local, cluster_runtimes):
        for r in sorted(group, key=lambda r: str(r["metadata"]["name"])):
            if wanted:
                if r["metadata"]["name"] == wanted and _supports(r, name, version, auto=False):
                    return r
            elif _supports(r, name, version, auto=True):
                return r
    return None
