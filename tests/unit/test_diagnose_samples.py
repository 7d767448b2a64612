"""KServe's own samples (tests/samples) through ``diagnose()``: one cause each, fitting its runtime.

Each sample is diagnosed as ``check`` sees it with no settings (no Secret readable), beside KServe's
ClusterServingRuntimes and ConfigMap (tests/corpus), with the status KServe v0.20 writes and the
predictor pod it makes, in three worlds:

* the pod cannot reach the store (a cluster without egress, the loopback sandbox): its
  storage-initializer terminated with the words KServe v0.20's initializer prints for that scheme
  there (written out here, per scheme, apart from the sandbox's stand-in) and KServe copied them
  into ``lastFailureInfo`` as ``ModelLoadFailed`` — the one finding is the store's
  (issue 20: it was a critical ``model-wrong-format`` with XGBoost advice);
* the store holds nothing at the URI (``Failed to fetch model. No model found in``): ``model-not-found``
  whose remedy names the files *that* runtime loads;
* the download worked and the server refused the files: ``model-wrong-format``, again with the
  runtime's files, never another runtime's.
"""

from __future__ import annotations

from typing import Any

import pytest

from daemon.core.diagnosis import diagnose
from daemon.core.diagnosis.model_layouts import LAYOUTS
from daemon.core.findings import Code, Finding, Severity
from daemon.core.settings import Settings
from daemon.core.world import World
from tests.corpus import load, shared_objects
from tests.samples import NAMESPACE, SAMPLES, Sample

NOW = 1_764_441_000.0
ENTRY = "1 storage.initializer ERROR [initializer-entrypoint:<module>()] "


def _offline(s: Sample) -> str:
    """What KServe v0.20's storage-initializer ends with for ``s`` when nothing outside resolves."""
    uri = s.uri
    host = uri.split("://", 1)[1].split("/", 1)[0]
    if s.scheme == "gs":
        return (ENTRY + "Unexpected error during storage initialization: Timeout of 120.0s exceeded, last "
                f"exception: HTTPSConnectionPool(host='storage.googleapis.com', port=443): Max retries "
                f"exceeded with url: /storage/v1/b/{host}/o?projection=noAcl (Caused by NameResolutionError("
                "\"<urllib3.connection.HTTPSConnection object>: Failed to resolve 'storage.googleapis.com' "
                "([Errno -3] Temporary failure in name resolution)\"))")
    if s.scheme == "https":
        return ENTRY + f"Storage initialization failed: Failed to connect to HTTP endpoint '{host}'."
    if s.scheme == "hf":
        repo = uri.split("://", 1)[1]
        return ENTRY + f"Storage initialization failed: Failed to connect to HuggingFace endpoint '{repo}'."
    assert s.scheme == "s3"  # no ServiceAccount, no endpoint: boto3's NoCredentialsError, reworded
    return (ENTRY + "Storage initialization failed: S3 authentication failed. Set AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY or use awsAnonymousCredential=true.")


def _status(name: str, *, init: dict[str, Any], main: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": 3, "image": f"img/{name}", **init, **main}


def _world(s: Sample, *, init_message: str | None, server_message: str | None) -> list[dict[str, Any]]:
    """The sample as KServe leaves it: ModelLoadFailed from the failing container, and its pod."""
    isvc = s.isvc()
    name = isvc["metadata"]["name"]
    message = init_message if init_message is not None else server_message
    reason = "ModelLoadFailed"
    isvc["status"] = {
        "conditions": [
            {"type": "IngressReady", "status": "False", "reason": reason},
            {"type": "PredictorReady", "status": "False", "reason": reason},
            {"type": "Ready", "status": "False", "reason": reason},
        ],
        "modelStatus": {
            "transitionStatus": "BlockedByFailedLoad",
            "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
            "lastFailureInfo": {"reason": reason, "message": message, "exitCode": 1},
        },
    }
    if init_message is not None:
        init = {"state": {"terminated": {"exitCode": 1, "reason": "Error", "message": init_message}}}
        main = {"state": {"waiting": {"reason": "PodInitializing"}}}
    else:
        init = {"state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        main = {"state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": server_message}}}
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{name}-predictor-7d9f-abcde", "namespace": NAMESPACE,
                     "labels": {"serving.kserve.io/inferenceservice": name, "component": "predictor"}},
        "spec": {"serviceAccountName": isvc["spec"]["predictor"].get("serviceAccountName") or "default"},
        "status": {"phase": "Pending",
                   "initContainerStatuses": [_status("storage-initializer", init=init, main={})],
                   "containerStatuses": [_status("kserve-container", init={}, main=main)]},
    }
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    return [*shared_objects(), ns, isvc, pod]


def _diagnose(objects: list[dict[str, Any]]) -> list[Finding]:
    return diagnose(world=World.build(objects), desired=[], drifts=[], observations=[], settings=Settings(),
                    now=NOW)


def _above_info(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is not Severity.INFO]


def _not_another_runtimes_advice(s: Sample, remedy: str) -> None:
    if s.format != "xgboost":
        assert "XGBoost" not in remedy and ".ubj" not in remedy, remedy
    if s.format != "pytorch":
        assert "TorchServe" not in remedy, remedy


def test_the_samples_cover_every_format_and_scheme_of_the_issue() -> None:
    assert len(SAMPLES) >= 15
    formats = {s.format for s in SAMPLES}
    assert formats >= {"sklearn", "xgboost", "lightgbm", "pmml", "mlflow", "tensorflow", "pytorch", "onnx",
                       "paddle", "huggingface", "triton"}
    assert {s.scheme for s in SAMPLES} >= {"gs", "https", "hf", "s3"}
    assert len({s.name for s in SAMPLES}) == len(SAMPLES)


@pytest.mark.parametrize("s", SAMPLES, ids=[s.file for s in SAMPLES])
def test_a_sample_that_cannot_download_gets_the_stores_cause(s: Sample) -> None:
    findings = _diagnose(_world(s, init_message=_offline(s), server_message=None))
    loud = _above_info(findings)
    assert [(f.code.value, f.severity.value) for f in loud] == [(s.code, "critical")], [
        (f.code.value, f.severity.value, f.evidence) for f in findings]
    f = loud[0]
    assert f.inferenceservice == f"{NAMESPACE}/{s.name}"
    assert any("storage-initializer failed" in e for e in f.evidence), f.evidence
    for words in s.remedy:
        assert words in f.remedy, (words, f.remedy)
    _not_another_runtimes_advice(s, f.remedy)


@pytest.mark.parametrize("s", SAMPLES, ids=[s.file for s in SAMPLES])
def test_a_sample_with_nothing_at_its_uri_is_told_what_its_runtime_loads(s: Sample) -> None:
    gone = ENTRY + f"Storage initialization failed: Failed to fetch model. No model found in {s.uri}."
    loud = _above_info(_diagnose(_world(s, init_message=gone, server_message=None)))
    assert [f.code.value for f in loud] == ["model-not-found"], [(f.code.value, f.evidence) for f in loud]
    layout = LAYOUTS[s.format]
    assert layout.expects in loud[0].remedy and s.uri in loud[0].remedy, loud[0].remedy
    _not_another_runtimes_advice(s, loud[0].remedy)


@pytest.mark.parametrize("s", SAMPLES, ids=[s.file for s in SAMPLES])
def test_a_sample_the_server_refused_is_the_wrong_format_for_its_runtime(s: Sample) -> None:
    refused = "ERROR: failed to load model: unsupported model file in /mnt/models"
    loud = _above_info(_diagnose(_world(s, init_message=None, server_message=refused)))
    assert [f.code.value for f in loud] == ["model-wrong-format"], [(f.code.value, f.evidence) for f in loud]
    assert LAYOUTS[s.format].expects in loud[0].remedy, loud[0].remedy
    _not_another_runtimes_advice(s, loud[0].remedy)


def test_the_onnx_sample_without_a_protocol_is_told_to_set_one() -> None:
    """The ONNX sample model-shaped, without protocolVersion (corpus c08): v1 asked, Triton serves v2
    only (kserve/kserve#3176 for Triton): one no-serving-runtime, no model-file finding beside it,
    and its remedy is the protocol, not a new runtime."""
    (case,) = [c for c in load() if c.name == "c08-onnx-v1"]
    (f,) = _above_info(_diagnose([*shared_objects(), *case.objects]))
    assert f.code is Code.NO_SERVING_RUNTIME
    assert "protocolVersion" in f.remedy and "v2" in f.remedy, f.remedy
    assert any("another protocol" in e and "kserve-tritonserver" in e for e in f.evidence), f.evidence
