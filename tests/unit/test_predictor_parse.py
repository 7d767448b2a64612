"""The predictor probe's pure helpers: pod states → failure, log tails, prediction parsing, redaction."""

from __future__ import annotations

from typing import Any

import pytest

from probes.log_tail import REDACTED, scrub, tail
from probes.pod_status import current_failure_info, find_failure, parse_conditions, pod_info
from probes.predictions import parse_v1_predictions, parse_v2_predictions
from probes.predictor import is_cluster_address


def _pod(*, init: list[dict[str, Any]] | None = None, main: list[dict[str, Any]] | None = None,
         phase: str = "Pending", ready: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": "iris-model-predictor-0"},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "initContainerStatuses": init or [],
            "containerStatuses": main or [],
        },
    }


def _waiting(name: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": 0,
            "state": {"waiting": {"reason": reason, "message": message}}}


def _terminated(name: str, code: int, reason: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"exitCode": code}
    if reason:
        body["reason"] = reason
    return {"name": name, "ready": False, "restartCount": 1, "state": {"terminated": body}}


def _running(name: str, ready: bool) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": 0, "state": {"running": {"startedAt": "x"}}}


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        # seed 6: the SA has no imagePullSecrets
        (_pod(main=[_waiting("kserve-container", "ImagePullBackOff",
                             'Back-off pulling image "harbor/iris": 401 Unauthorized')]),
         ("kserve-container", "ImagePullBackOff", False, False)),
        (_pod(main=[_waiting("kserve-container", "ErrImagePull")]),
         ("kserve-container", "ErrImagePull", False, False)),
        # seed 2: storage-initializer exits 1 with NoCredentialsError
        (_pod(init=[_terminated("storage-initializer", 1, "Error")],
              main=[_waiting("kserve-container", "PodInitializing")]),
         ("storage-initializer", "Init:Error", True, True)),
        (_pod(init=[_terminated("storage-initializer", 1)]),
         ("storage-initializer", "Init:Error", True, True)),
        (_pod(init=[_waiting("storage-initializer", "CrashLoopBackOff")]),
         ("storage-initializer", "Init:CrashLoopBackOff", True, True)),
        (_pod(main=[_waiting("kserve-container", "CrashLoopBackOff"), _running("istio-proxy", True)],
              phase="Running"),
         ("kserve-container", "CrashLoopBackOff", False, True)),
        (_pod(main=[_terminated("kserve-container", 137, "OOMKilled")], phase="Running"),
         ("kserve-container", "OOMKilled", False, True)),
        # seed 3: istio-proxy cannot reach istiod; the main container is fine
        (_pod(main=[_running("kserve-container", True), _running("istio-proxy", False)], phase="Running"),
         ("istio-proxy", "SidecarNotReady", False, True)),
        # An unready sidecar is not blamed when the storage-initializer failed first.
        (_pod(init=[_terminated("storage-initializer", 1, "Error")],
              main=[_running("istio-proxy", False)]),
         ("storage-initializer", "Init:Error", True, True)),
        # Starting up is not failing.
        (_pod(init=[_terminated("storage-initializer", 0, "Completed")],
              main=[_waiting("kserve-container", "ContainerCreating")]), None),
        (_pod(main=[_running("kserve-container", False)], phase="Running"), None),
        (_pod(main=[_running("kserve-container", True), _running("istio-proxy", True)], phase="Running",
              ready=True), None),
    ],
)
def test_find_failure(pod: dict[str, Any], expected: tuple[str, str, bool, bool] | None) -> None:
    failure = find_failure([pod_info(pod)])
    if expected is None:
        assert failure is None
        return
    assert failure is not None
    assert (failure.container, failure.reason, failure.init, failure.has_log) == expected
    assert failure.pod == "iris-model-predictor-0"


def test_pod_info_shape() -> None:
    info = pod_info(_pod(init=[_terminated("storage-initializer", 1, "Error")],
                         main=[_waiting("kserve-container", "PodInitializing")]))
    assert info["name"] == "iris-model-predictor-0"
    assert info["phase"] == "Pending" and info["ready"] is False
    assert info["containers"][0] == {
        "name": "storage-initializer", "init": True, "state": "terminated",
        "reason": "Error", "message": "exit code 1", "ready": False, "restarts": 1,
    }
    assert info["containers"][1]["state"] == "waiting"


def test_parse_conditions() -> None:
    out = parse_conditions({"conditions": [
        {"type": "Ready", "status": "False", "reason": "NoSupportingRuntime", "message": "no runtime"},
        {"type": "IngressReady", "status": "True"},
        {"status": "True"},  # no type: skipped
    ]})
    assert out == {
        "Ready": {"status": "False", "reason": "NoSupportingRuntime", "message": "no runtime"},
        "IngressReady": {"status": "True", "reason": "", "message": ""},
    }


@pytest.mark.parametrize(
    ("text", "lines", "max_bytes", "expected"),
    [
        ("a\nb\nc\n", 2, 100, ["b", "c"]),
        ("a\nb\nc", 10, 100, ["a", "b", "c"]),
        ("first line\nsecond\nthird\n", 10, 12, ["third"]),  # byte cut drops the partial line
        ("first line\nsecond\nthird\n", 10, 13, ["second", "third"]),  # cut right after a newline
        ("x" * 50, 5, 10, ["x" * 10]),  # one long line: keep its end
        ("é\né\n", 5, 3, ["é"]),  # never splits a UTF-8 sequence
        ("a\nb\n", 0, 100, []),
    ],
)
def test_tail(text: str, lines: int, max_bytes: int, expected: list[str]) -> None:
    out = tail(text, lines=lines, max_bytes=max_bytes)
    assert out == expected
    assert sum(len(x.encode()) for x in out) <= max_bytes


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"predictions": [0]}, [0]),
        ({"predictions": [2, 1]}, [2, 1]),
        ({"predictions": [0.0]}, [0]),
        ({"predictions": ["1"]}, [1]),
        ({"predictions": [[0.1, 0.7, 0.2]]}, [1]),  # probabilities: most likely class
    ],
)
def test_parse_v1(body: Any, expected: list[int]) -> None:
    assert parse_v1_predictions(body) == expected


@pytest.mark.parametrize(
    "body", [{"preds": [0]}, [0], {"predictions": [None]}, {"predictions": [0.5]}, {"predictions": [True]}],
)
def test_parse_v1_rejects(body: Any) -> None:
    with pytest.raises(ValueError):
        parse_v1_predictions(body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"outputs": [{"name": "predict", "shape": [2], "datatype": "INT64", "data": [0, 2]}]}, [0, 2]),
        ({"outputs": [{"name": "proba", "shape": [1, 3], "data": [0.9, 0.05, 0.05]},
                      {"name": "predict", "shape": [1], "data": [0]}]}, [0]),
        ({"outputs": [{"name": "output-0", "shape": [2, 3], "data": [0.1, 0.8, 0.1, 0.7, 0.2, 0.1]}]},
         [1, 0]),
    ],
)
def test_parse_v2(body: Any, expected: list[int]) -> None:
    assert parse_v2_predictions(body) == expected


@pytest.mark.parametrize(
    "body", [{}, {"outputs": []}, {"outputs": [{"name": "predict"}]}, {"outputs": ["x"]}],
)
def test_parse_v2_rejects(body: Any) -> None:
    with pytest.raises(ValueError):
        parse_v2_predictions(body)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AWS_SECRET_ACCESS_KEY=abc123xyz", f"AWS_SECRET_ACCESS_KEY={REDACTED}"),
        ('{"password": "hunter22"}', f'{{"password": "{REDACTED}"}}'),
        ("Authorization: Bearer eyJhbGciOi", f"Authorization: {REDACTED}"),
        ("botocore NoCredentialsError: Unable to locate credentials",
         "botocore NoCredentialsError: Unable to locate credentials"),
        ("key minio123secret leaked", f"key {REDACTED} leaked"),  # via the caller's redact
        ("HF_TOKEN=hf_abc --password='p w' x", f"HF_TOKEN={REDACTED} --password='{REDACTED}' x"),
        ("{'accesskey': 'minio'}", f"{{'accesskey': '{REDACTED}'}}"),
        # prose that names a credential without giving one stays readable
        ("failed to fetch anonymous token: unexpected status: 401 Unauthorized",
         "failed to fetch anonymous token: unexpected status: 401 Unauthorized"),
        ("secret key names: accesskey, secretkey", "secret key names: accesskey, secretkey"),
    ],
)
def test_scrub(text: str, expected: str) -> None:
    assert scrub(text, lambda s: s.replace("minio123secret", REDACTED)) == expected


@pytest.mark.parametrize(("url", "cluster"), [
    ("http://iris-predictor.models.svc.cluster.local", True),
    ("http://iris-predictor.models.svc.cluster.local:8080/v1", True),
    ("http://iris-predictor.models.svc", True),
    ("http://iris-predictor.models.svc.corp.internal", True),  # another cluster domain
    ("http://IRIS-PREDICTOR.MODELS.SVC.CLUSTER.LOCAL.", True),
    ("http://127.0.0.1:8080", False),
    ("http://iris-models.example.com", False),
    ("http://svc.example.com", False),
    ("http://a.svc.example.com", False),  # "svc" must be the third label
    ("http://localhost", False),
    ("not a url", False),
])
def test_is_cluster_address(url: str, cluster: bool) -> None:
    assert is_cluster_address(url) is cluster


_FAILURE = {"reason": "ModelLoadFailed", "message": "no model in /mnt/models"}


@pytest.mark.parametrize(("model_status", "current"), [
    ({"lastFailureInfo": _FAILURE}, True),  # older KServe: no transitionStatus
    ({"transitionStatus": "BlockedByFailedLoad", "lastFailureInfo": _FAILURE}, True),
    ({"transitionStatus": "InvalidSpec", "lastFailureInfo": _FAILURE}, True),
    # KServe never clears lastFailureInfo: after a successful rollout it is stale.
    ({"transitionStatus": "UpToDate", "lastFailureInfo": _FAILURE}, False),
    ({"transitionStatus": "InProgress", "lastFailureInfo": _FAILURE}, False),
    ({"transitionStatus": "InvalidSpec"}, False),
    (None, False),
])
def test_last_failure_info_counts_only_while_current(model_status: dict[str, Any] | None,
                                                     current: bool) -> None:
    status = {} if model_status is None else {"modelStatus": model_status}
    assert current_failure_info(status) == (_FAILURE if current else {})
