"""The storage-initializer's failure, classified (daemon.core.diagnosis.download): pure tables.

The log texts are the initializer's own words per scheme: KServe v0.20's ``kserve_storage``
(``Storage initialization failed: …`` / ``Unexpected error during storage initialization: …`` from
its ``initializer-entrypoint``, the friendlier ``storage_errors`` wording, the clients' exceptions
it lets through) and the older releases' tracebacks (botocore's ``NoCredentialsError``, the seed's
``EndpointConnectionError``), which clusters still run.
"""

from __future__ import annotations

import copy

import pytest

from daemon.core.diagnosis.download import (
    CODES,
    Fault,
    InitFailure,
    classify,
    remedy,
    verdict_of,
)
from daemon.core.findings import Code
from tests.unit import factories as fx

V20 = "1 storage.initializer ERROR [initializer-entrypoint:<module>()] "
GCS_OFFLINE = (
    V20 + "Unexpected error during storage initialization: Timeout of 120.0s exceeded, last exception: "
    "HTTPSConnectionPool(host='storage.googleapis.com', port=443): Max retries exceeded with url: "
    "/storage/v1/b/kfserving-examples/o?projection=noAcl&prefix=models%2Fonnx%2F (Caused by "
    "NameResolutionError(\"<urllib3.connection.HTTPSConnection object>: Failed to resolve "
    "'storage.googleapis.com' ([Errno -3] Temporary failure in name resolution)\"))"
)

CLASSIFIED = [
    # (case, log text, fault)
    ("gs offline (v0.20)", GCS_OFFLINE, Fault.UNREACHABLE),
    ("hf offline (v0.20)",
     "1 storage.initializer ERROR [storage_errors.py:raise_storage_error()] HuggingFace error for "
     "hf://google-bert/bert-base-uncased: An error happened while trying to locate the files on the Hub "
     "and we cannot find the appropriate snapshot folder for the specified revision on the local disk. "
     "Please check your internet connection and try again.\n"
     + V20 + "Storage initialization failed: Failed to connect to HuggingFace endpoint "
     "'google-bert/bert-base-uncased'.", Fault.UNREACHABLE),
    ("https offline (v0.20)",
     V20 + "Storage initialization failed: Failed to connect to HTTP endpoint 'raw.githubusercontent.com'.",
     Fault.UNREACHABLE),
    ("azure blob offline",
     V20 + "Unexpected error during storage initialization: Cannot connect to host "
     "kfserving.blob.core.windows.net:443 ssl:default [Name or service not known]", Fault.UNREACHABLE),
    ("s3 endpoint down (seed)",
     "INFO:root:Initializing\nbotocore.exceptions.EndpointConnectionError: Could not connect to the "
     "endpoint URL: \"http://minio-service.kubeflow:9000/mlpipeline?prefix=x\"", Fault.UNREACHABLE),
    ("unknown scheme (v0.20, two lines)",
     V20 + "Unexpected error during storage initialization: Cannot recognize storage type for "
     "foo://bucket/model\n'gs://', 's3://', 'file://', 'http(s)://' and 'hf://' are the current available "
     "storage type.", Fault.UNSUPPORTED_URI),
    ("unknown scheme (older)", "ValueError: Cannot recognize storage type for gs://x", Fault.UNSUPPORTED_URI),
    ("pvc path missing (before kserve#1940)", "Exception: Cannot recognize storage type for "
     "/mnt/pvc/repo/sklearn\n'gs://', 's3://', and 'file://' are the current available storage type.",
     Fault.NOT_FOUND),
    ("hf gated, token only on the server (kserve#4400)",
     "Access to model meta-llama/Meta-Llama-3-8B-Instruct is restricted. You must have access to it "
     "and be authenticated to access it. Please log in.",
     Fault.NO_CREDENTIALS),
    ("hf:// cache not writable (kserve#4310)", "PermissionError: [Errno 13] Permission denied: "
     "'/.cache'", Fault.UNKNOWN),
    ("hf URI without model", V20 + "Unexpected error during storage initialization: URI must contain exactly "
     "one '/' separating the repo and model name", Fault.UNSUPPORTED_URI),
    ("s3 no credentials (older)",
     "Traceback (most recent call last):\n"
     "botocore.exceptions.NoCredentialsError: Unable to locate credentials",
     Fault.NO_CREDENTIALS),
    ("s3 no credentials (v0.20)",
     V20 + "Storage initialization failed: S3 authentication failed. Set AWS_ACCESS_KEY_ID/"
     "AWS_SECRET_ACCESS_KEY or use awsAnonymousCredential=true.", Fault.NO_CREDENTIALS),
    ("hf gated (v0.20)", V20 + "Storage initialization failed: HuggingFace authentication failed. "
     "Set HF_TOKEN or request access to the gated repository.", Fault.NO_CREDENTIALS),
    ("https 401 (v0.20)", V20 + "Storage initialization failed: HTTP authentication failed for "
     "'https://models.example.com/m.pkl'. Verify credentials.", Fault.NO_CREDENTIALS),
    ("s3 wrong key", "botocore.exceptions.ClientError: An error occurred (InvalidAccessKeyId) when calling "
     "the ListObjects operation: The AWS Access Key Id you provided does not exist in our records.",
     Fault.INVALID_CREDENTIALS),
    ("s3 wrong key (v0.20)", V20 + "Storage initialization failed: Invalid AWS credentials. Verify "
     "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.", Fault.INVALID_CREDENTIALS),
    ("mesh refusal (stand-in)", "botocore.exceptions.ClientError: An error occurred (403) when calling the "
     "ListObjects operation: Forbidden\nRBAC: access denied", Fault.MESH_DENIED),
    ("s3 403 (v0.20)", V20 + "Storage initialization failed: S3 error [403]: Forbidden", Fault.DENIED),
    ("gcs 403 (v0.20)", V20 + "Storage initialization failed: Access denied to GCS resource "
     "'private-bucket'. Verify permissions.", Fault.DENIED),
    ("gcs 403 (older)", "google.api_core.exceptions.Forbidden: 403 GET https://storage.googleapis.com/storage/"
     "v1/b/b/o: sa@p.iam.gserviceaccount.com does not have storage.objects.list access", Fault.DENIED),
    ("https 403 (v0.20)", V20 + "Storage initialization failed: HTTP access denied for "
     "'http://127.0.0.1:1/m.pkl'. Verify permissions.", Fault.DENIED),
    ("s3 empty prefix", V20 + "Storage initialization failed: Failed to fetch model. No model found in "
     "models/iris.", Fault.NOT_FOUND),
    ("s3 no bucket (v0.20)", V20 + "Storage initialization failed: S3 resource 'nosuch' not found.",
     Fault.NOT_FOUND),
    ("https 404 (v0.20)", V20 + "Storage initialization failed: HTTP resource not found at "
     "'http://127.0.0.1:1/m.pkl'.", Fault.NOT_FOUND),
    ("https 404 (older)", "RuntimeError: URI: https://x/m.pkl returned a 404 response code.",
     Fault.NOT_FOUND),
    ("hf no repo (v0.20)", V20 + "Storage initialization failed: HuggingFace resource 'org/nosuch' "
     "not found.", Fault.NOT_FOUND),
    ("pvc not mounted", V20 + "Unexpected error during storage initialization: Cannot locate source uri "
     "/mnt/pvc/models for PVC", Fault.NOT_FOUND),
    ("tls", "botocore.exceptions.SSLError: SSL validation failed for https://minio:9000 "
     "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed", Fault.TLS),
    ("words not known", V20 + "Unexpected error during storage initialization: [Errno 2] No such file or "
     "directory: '/var/secrets/kserve-hdfscreds'", Fault.UNKNOWN),
    ("the last exception decides", "botocore.exceptions.NoCredentialsError: Unable to locate credentials\n"
     "During handling of the above exception, another exception occurred:\n"
     "RuntimeError: Failed to fetch model. No model found in x.", Fault.NOT_FOUND),
]


@pytest.mark.parametrize(("case", "text", "fault"), CLASSIFIED, ids=[c[0] for c in CLASSIFIED])
def test_classify(case: str, text: str, fault: Fault) -> None:
    v = classify(text)
    assert v.fault is fault, (case, v)
    assert v.line in text and v.line.strip()


def test_a_failure_whose_words_name_a_fault_wins_over_one_that_does_not() -> None:
    failures = [InitFailure(where="pod a", text="exit 1"), InitFailure(where="pod b", text=GCS_OFFLINE)]
    found = verdict_of(failures)
    assert found is not None and found[0].fault is Fault.UNREACHABLE and found[1].where == "pod b"
    only = verdict_of([InitFailure(where="pod a", text="exit 1")])
    assert only is not None and only[0].fault is Fault.UNKNOWN
    assert verdict_of([]) is None


def test_every_fault_is_a_storage_cause_never_a_model_format() -> None:
    assert set(CODES) == set(Fault)
    assert Code.MODEL_WRONG_FORMAT not in CODES.values()
    assert Code.WRONG_MODEL not in CODES.values()


REMEDIES = [
    # (fault, scheme, uri, format, words the remedy must hold)
    (Fault.UNREACHABLE, "gs", "gs://kfserving-examples/models/onnx", "onnx", ["storage.googleapis.com"]),
    (Fault.UNREACHABLE, "hf", "hf://org/m", "huggingface", ["huggingface.co"]),
    (Fault.UNREACHABLE, "https", "https://raw.githubusercontent.com/a/b.pmml", "pmml",
     ["raw.githubusercontent.com:443"]),
    (Fault.UNREACHABLE, "s3", "s3://b/k", "sklearn", ["s3-endpoint"]),
    (Fault.NOT_FOUND, "gs", "gs://b/torch", "pytorch",
     ["config/config.properties", "model-store", "gsutil ls"]),
    (Fault.NOT_FOUND, "s3", "s3://b/tf", "tensorflow", ["saved_model.pb", "aws s3 ls"]),
    (Fault.NOT_FOUND, "s3", "s3://b/sk", "sklearn", ["model.joblib"]),
    (Fault.NOT_FOUND, "s3", "s3://b/x", "xgboost", ["model.bst"]),
    (Fault.NOT_FOUND, "https", "https://h/m.onnx", "onnx", ["model.onnx"]),
    (Fault.NOT_FOUND, "s3", "s3://b/t", "triton", ["config.pbtxt"]),
    (Fault.UNSUPPORTED_URI, "foo", "foo://x", "sklearn", ["gs://", "s3://", "hf://", "foo://x"]),
    (Fault.NO_CREDENTIALS, "hf", "hf://org/gated", "huggingface", ["HF_TOKEN", "serviceaccount"]),
    (Fault.NO_CREDENTIALS, "s3", "s3://b/k", "xgboost", ["AWS_ACCESS_KEY_ID"]),
    (Fault.NO_CREDENTIALS, "gs", "gs://b/k", "xgboost", ["gcloud-application-credentials.json"]),
    (Fault.DENIED, "gs", "gs://b/k", "sklearn", ["roles/storage.objectViewer"]),
    (Fault.DENIED, "s3", "s3://b/k", "sklearn", ["s3:GetObject"]),
    (Fault.TLS, "s3", "s3://b/k", "sklearn", ["s3-verifyssl"]),
    (Fault.MESH_DENIED, "s3", "s3://b/k", "sklearn", ["cluster.local/ns/ns/sa/sa"]),
    (Fault.UNKNOWN, "hdfs", "hdfs://n/m", "sklearn", ["kubectl logs -n ns pod-1 -c storage-initializer"]),
]


@pytest.mark.parametrize(("fault", "scheme", "uri", "fmt", "words"), REMEDIES,
                         ids=[f"{r[0].value}-{r[1]}-{r[3]}" for r in REMEDIES])
def test_remedy_fits_the_scheme_and_the_runtime(fault: Fault, scheme: str, uri: str, fmt: str,
                                                 words: list[str]) -> None:
    text = remedy(fault=fault, scheme=scheme, uri=uri, fmt=fmt, sa="sa", namespace="ns", isvc="m",
                  pod="pod-1")
    for w in words:
        assert w in text, (w, text)
    if fmt != "xgboost":
        assert "XGBoost" not in text and ".ubj" not in text, text


# -- through diagnose(): the seed's model, its storage-initializer failing as KServe reports it ----------

def _init_failed(c: fx.Cluster, message: str, *, crash_loop: bool = False) -> None:
    """The predictor pod's storage-initializer failed with ``message``, and KServe copied it into
    lastFailureInfo as ModelLoadFailed (PropagateModelStatus, KServe v0.20)."""
    status = c.pod["status"]
    if crash_loop:
        init = fx.container_status("storage-initializer", ready=False,
                                   waiting=("CrashLoopBackOff", "back-off 40s restarting failed container"))
        init["lastState"] = {"terminated": {"reason": "Error", "exitCode": 1, "message": message}}
    else:
        init = fx.container_status("storage-initializer", ready=False, terminated=("Error", 1, message))
    status["initContainerStatuses"] = [init]
    status["containerStatuses"][0] = fx.container_status("kserve-container", ready=False,
                                                         waiting=("PodInitializing", ""))
    fx.set_isvc_unready(c, reason="ModelLoadFailed", failure=("ModelLoadFailed", message))
    c.replace_observations("predictor", [])


DOWNLOADS = [
    # (case, the initializer's log tail, crash-looping, the one finding)
    ("not found", V20 + "Storage initialization failed: Failed to fetch model. No model found in "
     "private-artifacts/user-example-com/iris/model.", False, Code.MODEL_NOT_FOUND),
    ("store down", "botocore.exceptions.EndpointConnectionError: Could not connect to the endpoint URL: "
     "\"http://minio-service.kubeflow:9000/mlpipeline\"", True, Code.STORAGE_UNREACHABLE),
    ("403 from the store", V20 + "Storage initialization failed: S3 error [403]: Forbidden", False,
     Code.STORAGE_ACCESS_DENIED),
    ("words not known", V20 + "Unexpected error during storage initialization: disk quota exceeded", True,
     Code.STORAGE_DOWNLOAD_FAILED),
    ("unknown scheme", V20 + "Unexpected error during storage initialization: Cannot recognize storage type "
     "for minio://mlpipeline/iris\n'gs://', 's3://', 'file://', 'http(s)://' and 'hf://' are the current "
     "available storage type.", False, Code.STORAGE_URI_UNSUPPORTED),
]


@pytest.mark.parametrize(("case", "message", "crash_loop", "code"), DOWNLOADS, ids=[d[0] for d in DOWNLOADS])
def test_a_failed_download_is_one_storage_cause_never_a_wrong_format(case: str, message: str,
                                                                      crash_loop: bool, code: Code) -> None:
    c = fx.healthy()
    _init_failed(c, message, crash_loop=crash_loop)
    out = fx.run(c)
    critical = [f for f in out.findings if f.severity.value == "critical"]
    assert [f.code for f in critical] == [code], [(f.code, f.evidence) for f in out.findings]
    f = critical[0]
    assert any("storage-initializer failed" in e for e in f.evidence), f.evidence
    assert "XGBoost" not in f.remedy or code is Code.MODEL_NOT_FOUND


def test_a_server_that_refused_a_downloaded_model_still_is_a_wrong_format() -> None:
    """The storage-initializer completed; the server's own ModelLoadFailed keeps its meaning."""
    c = fx.healthy()
    msg = "failed to load model: unknown model format (expected .bst/.json/.ubj)"
    fx.set_isvc_unready(c, reason="ModelLoadFailed", message=msg, failure=("ModelLoadFailed", msg))
    assert Code.MODEL_WRONG_FORMAT.value in fx.run(c).codes



def test_a_servers_own_load_failure_is_not_read_as_a_download() -> None:
    """The initializer completed; the server's ModelLoadFailed mentions a timeout: not the store."""
    c = fx.healthy()
    msg = "failed to load model: onnxruntime session timed out reading /mnt/models/model.onnx"
    fx.set_isvc_unready(c, reason="ModelLoadFailed", message=msg, failure=("ModelLoadFailed", msg))
    codes = fx.run(c).codes
    assert not [x for x in codes if x.startswith("storage-")], codes
    assert Code.MODEL_WRONG_FORMAT.value in codes


@pytest.mark.parametrize(("message", "download"), [
    (V20 + "Storage initialization failed: Failed to connect to HTTP endpoint 'models.example.com'.", True),
    ("storage-initializer: botocore.exceptions.EndpointConnectionError: Could not connect", True),
    ("failed to load model: [Errno 2] /mnt/models/model.bst does not exist", False),
])
def test_with_no_pod_visible_only_the_initializers_own_words_count(message: str, download: bool) -> None:
    c = fx.healthy()
    c.drop("Pod", fx.NS, fx.POD)
    fx.set_isvc_unready(c, reason="ModelLoadFailed", message=message, failure=("ModelLoadFailed", message))
    c.replace_observations("predictor", [])
    codes = fx.run(c).codes
    assert (Code.STORAGE_UNREACHABLE.value in codes) is download, codes
    assert (Code.MODEL_WRONG_FORMAT.value in codes) is (not download), codes


def test_a_ready_model_with_a_pod_that_cannot_download_is_a_warning() -> None:
    """A rollout whose new pod cannot download while the old revision serves: not an outage.
    With no older pod ready, the same Ready status is stale (kserve/kserve#1859): critical."""
    for old_pod_serves, severity in ((True, "warning"), (False, "critical")):
        c = fx.healthy()
        old = copy.deepcopy(c.pod)
        old["metadata"]["name"] = "iris-model-predictor-old"
        _init_failed(c, GCS_OFFLINE)
        if old_pod_serves:
            c.put(old)
        ready = ("IngressReady", "PredictorReady", "Ready")
        c.isvc["status"]["conditions"] = [{"type": t, "status": "True"} for t in ready]
        c.isvc["status"]["modelStatus"] = {"transitionStatus": "UpToDate"}
        out = fx.run(c)
        f = out.one(Code.STORAGE_UNREACHABLE.value)
        assert f.severity.value == severity, f
        assert [x.code for x in out.findings if x.severity.value == "critical"] == (
            [] if old_pod_serves else [Code.STORAGE_UNREACHABLE]), out.codes
        if not old_pod_serves:
            stale = "reports Ready=True, but no predictor pod is ready"
            assert any(stale in e for e in f.evidence), f.evidence


def test_a_transformers_download_is_not_the_predictors() -> None:
    """A transformer with STORAGE_URI gets its own storage-initializer; its failure is not the
    predictor's storageUri (the remedy would name the wrong URI)."""
    c = fx.healthy()
    _init_failed(c, GCS_OFFLINE)
    c.pod["metadata"]["labels"]["component"] = "transformer"
    assert Code.STORAGE_UNREACHABLE.value not in fx.run(c).codes


def test_a_download_that_failed_while_dns_kept_the_sidecar_down_is_dns() -> None:
    """The seed's row 3: istio-proxy cannot reach istiod (slow DNS), so the storage-initializer's
    connection to MinIO fails too (EndpointConnectionError, no lookup words): one dns-latency-high
    with the download among its symptoms, not a second critical storage-unreachable."""
    c = fx.healthy()
    fx.dns_slow(c)
    predictor = list(c.observations)
    _init_failed(c, "botocore.exceptions.EndpointConnectionError: Could not connect to the endpoint URL: "
                    "\"http://minio-service.kubeflow:9000/mlpipeline?prefix=x\"")
    c.pod["status"]["containerStatuses"] = [
        fx.container_status("kserve-container", ready=False, waiting=("PodInitializing", "")),
        fx.container_status("istio-proxy", ready=False)]
    c.observations = predictor
    out = fx.run(c)
    assert [f.code.value for f in out.findings if f.severity.value == "critical"] == ["dns-latency-high"], [
        (f.code.value, f.evidence) for f in out.findings]
    assert any("storage-initializer" in s for s in out.one("dns-latency-high").caused)
