"""KServe's storage-credential resolution, table-driven from the seed's cases (pure, no I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from daemon.core.world import hash_secret
from probes.credentials import (
    HELM_ANNOTATION,
    KUSTOMIZE_ANNOTATION,
    CredentialProblem,
    Credentials,
    credential_config,
    resolve,
)
from tests.conftest import b64

NS = "user-example-com"
ACCESS = "BY3N3TZ2XFGBI763IGEPD"
SECRET = "KQgORRVCRvRZa6pTsd6CtFmyTn7SONi1f66A0Ch/kg"
S3_ANN = {
    "serving.kserve.io/s3-endpoint": "minio-service.kubeflow:9000",
    "serving.kserve.io/s3-usehttps": "0",
    "serving.kserve.io/s3-region": "us-east-1",
}



def secret(name: str, data: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS, "annotations": dict(annotations or {})},
        "type": "Opaque",
        "data": {k: b64(v) for k, v in data.items()},
    }


# The seed's two secrets.
PIPELINE_SECRET = secret("mlpipeline-minio-artifact", {"accesskey": "minio", "secretkey": "minio123"})
S3_SECRET = secret("minio-s3-secret", {"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET}, S3_ANN)


def configmap(credentials: dict[str, Any] | None) -> dict[str, Any]:
    data = {} if credentials is None else {"credentials": json.dumps(credentials)}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "inferenceservice-config", "namespace": "kubeflow"},
        "data": data,
    }


KUSTOMIZE_CM = configmap(
    {
        "storageSpecSecretName": "storage-config",
        "storageSecretNameAnnotation": KUSTOMIZE_ANNOTATION,
        "s3": {"s3AccessKeyIDName": "AWS_ACCESS_KEY_ID", "s3SecretAccessKeyName": "AWS_SECRET_ACCESS_KEY"},
    }
)
HELM_CM = configmap(
    {
        "storageSpecSecretName": "storage-config",
        "storageSecretNameAnnotation": HELM_ANNOTATION,
        "s3": {
            "s3AccessKeyIDName": "AWS_ACCESS_KEY_ID",
            "s3SecretAccessKeyName": "AWS_SECRET_ACCESS_KEY",
            "s3Endpoint": "minio-service.kubeflow:9000",
            "s3UseHttps": "0",
            "s3Region": "eu-west-1",
        },
    }
)
OLD_CM = configmap(
    {"s3": {"s3AccessKeyIDName": "AWS_ACCESS_KEY_ID", "s3SecretAccessKeyName": "AWS_SECRET_ACCESS_KEY"}}
)
CUSTOM_KEYS_CM = configmap(
    {
        "storageSecretNameAnnotation": KUSTOMIZE_ANNOTATION,
        "s3": {"s3AccessKeyIDName": "awsAccessKeyID", "s3SecretAccessKeyName": "awsSecretAccessKey"},
    }
)


def isvc(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris-model", "namespace": NS, "annotations": dict(annotations or {})},
        "spec": {"predictor": {"serviceAccountName": "iris-sa"}},
    }


def sa(secrets: list[str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "iris-sa", "namespace": NS, "annotations": dict(annotations or {})},
        "secrets": [{"name": n} for n in secrets],
    }


ALL = {s["metadata"]["name"]: s for s in (PIPELINE_SECRET, S3_SECRET)}


@dataclass
class Case:
    id: str
    isvc: dict[str, Any]
    sa: dict[str, Any] | None
    cm: dict[str, Any] | None
    problem: CredentialProblem | None
    secret_name: str | None
    evidence: tuple[str, ...] = ()
    secrets: dict[str, dict[str, Any]] = field(default_factory=lambda: ALL)


CASES = [
    Case(
        "seed-attempt-2: annotation points at the accesskey/secretkey secret",
        isvc({KUSTOMIZE_ANNOTATION: "mlpipeline-minio-artifact"}),
        sa([]),
        KUSTOMIZE_CM,
        CredentialProblem.WRONG_KEY_NAMES,
        "mlpipeline-minio-artifact",
        ("accesskey/secretkey are not read", "does not fall back to the ServiceAccount"),
    ),
    Case(
        "seed-final: annotation points at the AWS-format secret",
        isvc({KUSTOMIZE_ANNOTATION: "minio-s3-secret"}),
        sa([]),
        KUSTOMIZE_CM,
        None,
        "minio-s3-secret",
        (f"annotation {KUSTOMIZE_ANNOTATION}=minio-s3-secret",),
    ),
    Case(
        "helm configmap reads secretName, ISVC uses storageSecretName",
        isvc({KUSTOMIZE_ANNOTATION: "minio-s3-secret"}),
        sa([]),
        HELM_CM,
        CredentialProblem.ANNOTATION_KEY_MISMATCH,
        None,
        (f"{KUSTOMIZE_ANNOTATION}=minio-s3-secret is ignored", f"annotation is {HELM_ANNOTATION}"),
    ),
    Case(
        "kustomize configmap reads storageSecretName, ISVC uses secretName",
        isvc({HELM_ANNOTATION: "minio-s3-secret"}),
        sa([]),
        KUSTOMIZE_CM,
        CredentialProblem.ANNOTATION_KEY_MISMATCH,
        None,
        (f"{HELM_ANNOTATION}=minio-s3-secret is ignored",),
    ),
    Case(
        "helm configmap, ISVC uses secretName",
        isvc({HELM_ANNOTATION: "minio-s3-secret"}),
        sa([]),
        HELM_CM,
        None,
        "minio-s3-secret",
    ),
    Case(
        "old configmap without storageSecretNameAnnotation reads no annotation",
        isvc({KUSTOMIZE_ANNOTATION: "minio-s3-secret"}),
        sa([]),
        OLD_CM,
        CredentialProblem.ANNOTATION_KEY_MISMATCH,
        None,
        ("sets no storageSecretNameAnnotation",),
    ),
    Case(
        "annotation names a secret that does not exist",
        isvc({KUSTOMIZE_ANNOTATION: "minio-s3-secrt"}),
        sa(["minio-s3-secret"]),
        KUSTOMIZE_CM,
        CredentialProblem.ANNOTATION_NAMES_MISSING_SECRET,
        "minio-s3-secrt",
        ("minio-s3-secrt named by",),
    ),
    Case(
        "service account lists a missing secret",
        isvc(),
        sa(["gone"]),
        KUSTOMIZE_CM,
        CredentialProblem.SECRET_MISSING,
        "gone",
        ("lists secret gone, which does not exist",),
    ),
    Case(
        "service account lists only the pipeline secret (skipped silently)",
        isvc(),
        sa(["mlpipeline-minio-artifact"]),
        KUSTOMIZE_CM,
        CredentialProblem.WRONG_KEY_NAMES,
        "mlpipeline-minio-artifact",
        ("KServe skips it silently",),
    ),
    Case(
        "service account secrets: the AWS one wins over the skipped one",
        isvc(),
        sa(["mlpipeline-minio-artifact", "minio-s3-secret"]),
        KUSTOMIZE_CM,
        None,
        "minio-s3-secret",
        ("secret minio-s3-secret holds AWS_SECRET_ACCESS_KEY",),
    ),
    Case(
        "nothing referenced at all",
        isvc(),
        sa([]),
        KUSTOMIZE_CM,
        CredentialProblem.NO_SECRET_REFERENCED,
        None,
        ("lists no secrets",),
    ),
    Case(
        "service account itself missing",
        isvc(),
        None,
        KUSTOMIZE_CM,
        CredentialProblem.NO_SECRET_REFERENCED,
        None,
        ("ServiceAccount not found",),
    ),
    Case(
        "seed attempt 3: SA annotations are not read",
        isvc(),
        sa([], {**S3_ANN, KUSTOMIZE_ANNOTATION: "minio-s3-secret", HELM_ANNOTATION: "minio-s3-secret"}),
        KUSTOMIZE_CM,
        CredentialProblem.NO_SECRET_REFERENCED,
        None,
        ("are not read by KServe",),
    ),
    Case(
        "configured key names differ from the secret's AWS names",
        isvc({KUSTOMIZE_ANNOTATION: "minio-s3-secret"}),
        sa([]),
        CUSTOM_KEYS_CM,
        CredentialProblem.WRONG_KEY_NAMES,
        "minio-s3-secret",
        ("KServe reads awsAccessKeyID/awsSecretAccessKey",),
    ),
    Case(
        "no configmap given: kustomize default annotation",
        isvc({KUSTOMIZE_ANNOTATION: "minio-s3-secret"}),
        sa([]),
        None,
        None,
        "minio-s3-secret",
    ),
    Case(
        "mismatched annotation but SA secret usable: KServe uses the SA's",
        isvc({HELM_ANNOTATION: "mlpipeline-minio-artifact"}),
        sa(["minio-s3-secret"]),
        KUSTOMIZE_CM,
        None,
        "minio-s3-secret",
        (f"{HELM_ANNOTATION}=mlpipeline-minio-artifact is ignored",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_resolution_table(case: Case) -> None:
    r = resolve(isvc=case.isvc, service_account=case.sa, secrets=case.secrets, kserve_config=case.cm)
    assert r.problem == case.problem, r.evidence
    assert r.secret_name == case.secret_name
    text = "\n".join(r.evidence)
    for needle in case.evidence:
        assert needle in text
    if case.problem is None:
        assert r.credentials == Credentials(ACCESS, SECRET)
        assert r.values_available
    else:
        assert r.credentials is None
    # Never a value in evidence or repr.
    for value in (ACCESS, SECRET, "minio123"):
        assert value not in text
        assert value not in repr(r)


def test_settings_from_secret_annotations() -> None:
    r = resolve(
        isvc=isvc({KUSTOMIZE_ANNOTATION: "minio-s3-secret"}),
        service_account=sa([]),
        secrets=ALL,
        kserve_config=KUSTOMIZE_CM,
    )
    assert (r.endpoint, r.use_https, r.verify_ssl, r.region) == (
        "minio-service.kubeflow:9000",
        False,
        True,
        "us-east-1",
    )
    assert r.endpoint_url == "http://minio-service.kubeflow:9000"
    assert r.annotation_key == KUSTOMIZE_ANNOTATION
    assert r.key_names == ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def test_settings_fall_back_to_config_defaults() -> None:
    bare = secret(
        "bare",
        {"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET},
        {"serving.kserve.io/s3-verifyssl": "0"},
    )
    r = resolve(
        isvc=isvc({HELM_ANNOTATION: "bare"}),
        service_account=sa([]),
        secrets={"bare": bare},
        kserve_config=HELM_CM,
    )
    assert r.problem is None
    assert (r.endpoint, r.use_https, r.verify_ssl, r.region) == (
        "minio-service.kubeflow:9000",
        False,
        False,
        "eu-west-1",
    )


def test_https_is_the_default() -> None:
    s = secret(
        "s",
        {"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET},
        {"serving.kserve.io/s3-endpoint": "minio.example:9000"},
    )
    r = resolve(
        isvc=isvc({KUSTOMIZE_ANNOTATION: "s"}),
        service_account=sa([]),
        secrets={"s": s},
        kserve_config=KUSTOMIZE_CM,
    )
    assert r.endpoint_url == "https://minio.example:9000"
    assert r.use_https and r.verify_ssl and r.region is None


def test_hashed_secrets_diagnose_but_give_no_values() -> None:
    hashed = {name: hash_secret(s) for name, s in ALL.items()}
    good = resolve(
        isvc=isvc({KUSTOMIZE_ANNOTATION: "minio-s3-secret"}),
        service_account=sa([]),
        secrets=hashed,
        kserve_config=KUSTOMIZE_CM,
    )
    assert good.problem is None and good.credentials is None and not good.values_available
    assert good.endpoint == "minio-service.kubeflow:9000"
    assert "values not available" in "\n".join(good.evidence)
    bad = resolve(
        isvc=isvc({KUSTOMIZE_ANNOTATION: "mlpipeline-minio-artifact"}),
        service_account=sa([]),
        secrets=hashed,
        kserve_config=KUSTOMIZE_CM,
    )
    assert bad.problem is CredentialProblem.WRONG_KEY_NAMES
    assert bad.key_names == ("accesskey", "secretkey")


def test_key_names_only_secrets() -> None:
    names_only = {
        "minio-s3-secret": {
            "metadata": {"name": "minio-s3-secret", "annotations": S3_ANN},
            "data": {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None},
        }
    }
    r = resolve(
        isvc=isvc({KUSTOMIZE_ANNOTATION: "minio-s3-secret"}),
        service_account=sa([]),
        secrets=names_only,
        kserve_config=KUSTOMIZE_CM,
    )
    assert r.problem is None and r.credentials is None and r.region == "us-east-1"


def test_string_data_is_read() -> None:
    s = {
        "metadata": {"name": "sd", "annotations": S3_ANN},
        "stringData": {"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET},
    }
    r = resolve(isvc=isvc(), service_account=sa(["sd"]), secrets={"sd": s}, kserve_config=None)
    assert r.credentials == Credentials(ACCESS, SECRET)


def test_credentials_repr_masks_values() -> None:
    c = Credentials(ACCESS, SECRET)
    for text in (repr(c), str(c), f"{c}", repr((c,))):
        assert ACCESS not in text and SECRET not in text and "***" in text


@pytest.mark.parametrize(
    ("cm", "annotation", "key_id_name"),
    [
        (KUSTOMIZE_CM, KUSTOMIZE_ANNOTATION, "AWS_ACCESS_KEY_ID"),
        (HELM_CM, HELM_ANNOTATION, "AWS_ACCESS_KEY_ID"),
        (OLD_CM, None, "AWS_ACCESS_KEY_ID"),
        (CUSTOM_KEYS_CM, KUSTOMIZE_ANNOTATION, "awsAccessKeyID"),
        (configmap(None), None, "AWS_ACCESS_KEY_ID"),
        (None, KUSTOMIZE_ANNOTATION, "AWS_ACCESS_KEY_ID"),
        ({"storageSecretNameAnnotation": HELM_ANNOTATION}, HELM_ANNOTATION, "AWS_ACCESS_KEY_ID"),
    ],
)
def test_credential_config(cm: dict[str, Any] | None, annotation: str | None, key_id_name: str) -> None:
    cfg = credential_config(cm)
    assert cfg.storage_secret_name_annotation == annotation
    assert cfg.access_key_id_name == key_id_name


def test_bad_config_json_is_a_clear_error() -> None:
    bad = {"metadata": {"name": "inferenceservice-config"}, "data": {"credentials": "{not json"}}
    with pytest.raises(ValueError, match="credentials is not JSON"):
        credential_config(bad)


# -- what KServe's pod webhook does beyond one secret (found by tests/integration/
# -- test_corpus_real_kserve.py against KServe v0.20's own manager) -------------------------------

IRSA = "eks.amazonaws.com/role-arn"
EP, HTTPS, REGION = (f"serving.kserve.io/s3-{k}" for k in ("endpoint", "usehttps", "region"))


def _s3(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return secret(name, {"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET}, annotations)


@pytest.mark.parametrize(
    ("sa_annotations", "sa_secrets", "secrets", "expect"),
    [
        pytest.param(  # corpus c17: the IRSA account's own s3-region reaches the pod
            {IRSA: "arn:aws:iam::1:role/r", REGION: "us-east-2"}, [], {},
            (None, None, "us-east-2", True), id="irsa-account-s3-annotations-are-read"),
        pytest.param(  # not an IRSA account: the same annotation is ignored
            {REGION: "us-east-2"}, [], {},
            (None, None, None, True), id="plain-account-s3-annotations-are-not-read"),
        pytest.param(  # IRSA first, then the secret's settings replace what they set
            {IRSA: "arn", REGION: "us-east-2", EP: "a:1"},
            ["s"], {"s": _s3("s", {EP: "b:2", HTTPS: "0"})},
            ("s", "http://b:2", "us-east-2", False), id="irsa-then-secret"),
        pytest.param(  # corpus c36: the first secret's key pair, the second's settings
            {}, ["one", "two"],
            {"one": _s3("one", {EP: "a:1", HTTPS: "0"}),
             "two": _s3("two", {EP: "b:2", REGION: "r2"})},
            ("one", "https://b:2", "r2", True), id="two-s3-secrets-first-keys-last-settings"),
        pytest.param(  # corpus c37: only "0" means plain HTTP
            {}, ["s"], {"s": _s3("s", {EP: "m:9000",
                                       HTTPS: "false"})},
            ("s", "https://m:9000", None, True), id="usehttps-false-is-still-https"),
        pytest.param(  # a scheme on the endpoint decides
            {}, ["s"], {"s": _s3("s", {EP: "http://m:9000"})},
            ("s", "http://m:9000", None, False), id="endpoint-scheme-decides"),
    ],
)
def test_settings_as_kserves_pod_webhook_merges_them(
    sa_annotations: dict[str, str], sa_secrets: list[str], secrets: dict[str, dict[str, Any]],
    expect: tuple[str | None, str | None, str | None, bool],
) -> None:
    r = resolve(isvc=isvc(), service_account=sa(sa_secrets, sa_annotations), secrets=secrets,
                kserve_config=KUSTOMIZE_CM)
    secret_name = r.secret_name if r.problem is None else None
    assert (secret_name, r.endpoint_url, r.region, r.use_https) == expect, r.evidence
    text = "\n".join(r.evidence)
    if IRSA in sa_annotations:
        assert "KServe reads its s3-* annotations" in text and "are not read" not in text
    elif sa_annotations:
        assert "are not read by KServe" in text


def test_without_a_secret_the_config_defaults_reach_no_pod() -> None:
    """KServe builds S3 settings only for a secret (or an IRSA account): none, no endpoint."""
    r = resolve(isvc=isvc(), service_account=sa([]), secrets={}, kserve_config=HELM_CM)
    assert r.problem is CredentialProblem.NO_SECRET_REFERENCED
    assert (r.endpoint, r.region) == (None, None)
