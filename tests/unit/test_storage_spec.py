"""KServe's storage spec resolved as KServe v0.20 does it, table-driven (pure, no I/O).

Each row is an InferenceService's ``storage`` (and ``storageUri``), the namespace's Secrets and
KServe's credential configuration, and what KServe makes of it: which Secret and key the
storage-initializer's ``STORAGE_CONFIG`` comes from, the URI it downloads, or the error with which
KServe's pod webhook (or controller) refuses — its own words, from
``pkg/credentials/service_account_credentials.go`` ``CreateStorageSpecSecretEnvs``. Rows with
``hashed`` run on the daemon's view of the Secrets (values replaced by hashes): what only the
key's JSON holds is then unknown (None), never guessed. The corpus (tests/corpus/c41-c47) and the
real-tier test (tests/integration/test_corpus_real_kserve.py) check the same against KServe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from daemon.core.world import hash_secret
from probes.credentials import (
    CredentialProblem,
    StorageSpecProblem,
    resolve,
    resolve_storage_spec,
    storage_spec_of,
    storage_spec_secret,
)
from tests.conftest import b64

NS = "team-a"
KEY_ID, SECRET_KEY = "AKIAEXAMPLEKEYID", "s3cr3t/value+that-must-not-leak"
MINIO = {"type": "s3", "access_key_id": KEY_ID, "secret_access_key": SECRET_KEY,
         "endpoint_url": "http://minio.store:9000", "bucket": "models", "region": "us-east-1"}
UNTYPED = {k: v for k, v in MINIO.items() if k != "type"}


def storage_config(entries: dict[str, Any], *, name: str = "storage-config") -> dict[str, Any]:
    data = {k: b64(v if isinstance(v, str) else json.dumps(v)) for k, v in entries.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, "data": data}


def isvc(storage: dict[str, Any] | None, *, uri: str | None = None, framework: str | None = None,
         annotations: dict[str, str] | None = None) -> dict[str, Any]:
    impl: dict[str, Any] = {} if framework else {"modelFormat": {"name": "sklearn"}}
    if storage is not None:
        impl["storage"] = storage
    if uri is not None:
        impl["storageUri"] = uri
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "m", "namespace": NS, "annotations": dict(annotations or {})},
            "spec": {"predictor": {framework or "model": impl}}}


def configmap(credentials: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "inferenceservice-config", "namespace": "kserve"},
            "data": {"credentials": json.dumps(credentials)}}


@dataclass(frozen=True)
class Row:
    id: str
    storage: dict[str, Any] | None
    secrets: tuple[dict[str, Any], ...] = ()
    uri: str | None = None
    framework: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] | None = None
    hashed: bool = False
    # What KServe does:
    config_ref: str | None = None
    """``<secret>/<key>`` of STORAGE_CONFIG; None: not set."""
    download: str | None = None
    problem: StorageSpecProblem | None = None
    error: str | None = None
    type: str | None = None
    endpoint: str | None = None


PATH = {"path": "sklearn/iris"}
S3_PARAMS = {"type": "s3", "bucket": "models"}
NAMED = {"key": "localMinIO", **PATH, "parameters": S3_PARAMS}
"""KServe's docs: a key, a path in the bucket, the type and bucket as parameters."""
LOCAL = (storage_config({"localMinIO": MINIO}),)
LOCAL_REF, IRIS, EP = "storage-config/localMinIO", "s3://models/sklearn/iris", "http://minio.store:9000"
INVALID = "invalid json encountered in key k of storage secret storage-config"
ANN = "serving.kserve.io/storageSecretName"

ROWS = [
    Row("no storage spec", None, uri="s3://models/iris"),
    Row("named key: its JSON, the URI from the parameters", NAMED,
        LOCAL, config_ref=LOCAL_REF,
        download=IRIS, type="s3", endpoint=EP),
    Row("named key, hashed: the endpoint is inside the value", NAMED,
        LOCAL, hashed=True, config_ref=LOCAL_REF,
        download=IRIS, type="s3"),
    Row("type and bucket from the JSON", {"key": "localMinIO", **PATH}, LOCAL,
        config_ref=LOCAL_REF, download=IRIS, type="s3",
        endpoint=EP),
    Row("type and bucket from the JSON, hashed: unknown", {"key": "localMinIO", **PATH},
        LOCAL, hashed=True, config_ref=LOCAL_REF),
    Row("storageUri and a key: the URI as written", {"key": "localMinIO"}, LOCAL,
        uri="s3://other/iris", config_ref=LOCAL_REF, download="s3://other/iris", type="s3",
        endpoint=EP),
    Row("parameters override the JSON", {"key": "localMinIO", "parameters": {"endpoint_url": "http://b:9000"}},
        LOCAL, uri="s3://models/iris", config_ref=LOCAL_REF,
        download="s3://models/iris", type="s3", endpoint="http://b:9000"),
    Row("secret missing while a key is named", NAMED,
        problem=StorageSpecProblem.SECRET_MISSING,
        error='can\'t read storage secret storage-config: secrets "storage-config" not found'),
    Row("named key not in the secret", NAMED,
        (storage_config({"minio": MINIO}),), hashed=True, problem=StorageSpecProblem.KEY_MISSING,
        error="specified storage key localMinIO not found in storage secret storage-config"),
    Row("no key: the default key", PATH, (storage_config({"default": MINIO}),),
        config_ref="storage-config/default", download=IRIS, type="s3",
        endpoint=EP),
    Row("no key, hashed: the default key, its type unknown", PATH, (storage_config({"default": MINIO}),),
        hashed=True, config_ref="storage-config/default"),
    Row("an empty key is no key", {"key": "", **PATH}, (storage_config({"default": MINIO}),), hashed=True,
        config_ref="storage-config/default"),
    Row("no key, a type parameter: default_<type>, absent is no error", {**PATH, "parameters": S3_PARAMS},
        (storage_config({"default": MINIO}),), hashed=True, download=IRIS, type="s3",
        problem=StorageSpecProblem.NO_CONFIG),
    Row("no key, a type parameter: default_<type> present", {**PATH, "parameters": S3_PARAMS},
        (storage_config({"default_s3": MINIO}),), config_ref="storage-config/default_s3",
        download=IRIS, type="s3", endpoint=EP),
    Row("no key, no secret, typed parameters: no error, no credentials", {**PATH, "parameters": S3_PARAMS},
        download=IRIS, type="s3", problem=StorageSpecProblem.NO_CONFIG),
    Row("no key, no default, no type", PATH, LOCAL, hashed=True,
        problem=StorageSpecProblem.TYPE_UNKNOWN, error="unable to determine storage type"),
    Row("no key, no secret, no type", PATH, problem=StorageSpecProblem.TYPE_UNKNOWN,
        error="unable to determine storage type"),
    Row("a JSON without a type", {"key": "k", **PATH}, (storage_config({"k": UNTYPED}),),
        problem=StorageSpecProblem.TYPE_UNKNOWN, error="unable to determine storage type"),
    Row("a type parameter: KServe reads no bucket from the secret",
        {"key": "k", **PATH, "parameters": {"type": "s3"}},
        (storage_config({"k": MINIO}),), type="s3", problem=StorageSpecProblem.BUCKET_MISSING,
        error="format [s3] requires a bucket but one wasn't found in storage data or parameters"),
    Row("an unsupported type in the JSON", {"key": "k", **PATH},
        (storage_config({"k": {**MINIO, "type": "gcs"}}),),
        problem=StorageSpecProblem.TYPE_UNSUPPORTED,
        error="storage type must be one of [s3, hdfs, webhdfs]. storage type [gcs] is not supported"),
    Row("not JSON", {"key": "k", **PATH}, (storage_config({"k": "type=s3"}),),
        problem=StorageSpecProblem.INVALID_JSON, error=INVALID),
    Row("a JSON value that is not a string", {"key": "k", **PATH},
        (storage_config({"k": {**MINIO, "anonymous": False}}),),
        problem=StorageSpecProblem.INVALID_JSON, error=INVALID),
    Row("storageUri beside path: the controller refuses", {"key": "k", **PATH},
        (storage_config({"k": MINIO}),),
        uri="s3://models/iris", problem=StorageSpecProblem.URI_AND_PATH,
        error="must provide only one of storageUri and storage.path"),
    Row("hdfs: no bucket in the URI", {"key": "h", "path": "/models/iris", "parameters": {"type": "hdfs"}},
        (storage_config({"h": {"type": "hdfs", "HDFS_NAMENODE": "nn:8020"}}),), config_ref="storage-config/h",
        download="hdfs://models/iris", type="hdfs"),
    Row("the annotation names the secret", NAMED,
        (storage_config({"localMinIO": MINIO}, name="team-stores"),),
        annotations={ANN: "team-stores"}, hashed=True,
        config_ref="team-stores/localMinIO", download=IRIS, type="s3"),
    Row("storageSpecSecretName of inferenceservice-config", NAMED,
        (storage_config({"localMinIO": MINIO}, name="stores"),), hashed=True,
        config={"storageSpecSecretName": "stores"}, config_ref="stores/localMinIO",
        download=IRIS, type="s3"),
    Row("a framework key's storage", NAMED,
        LOCAL, framework="sklearn", hashed=True,
        config_ref=LOCAL_REF, download=IRIS, type="s3"),
    Row("a pvc:// source is mounted: nothing read", {"key": "localMinIO"}, uri="pvc://claim/iris",
        download="pvc://claim/iris"),
    Row("neither path nor storageUri: nothing downloaded", {"key": "localMinIO"}),
]


def _resolve(row: Row) -> Any:
    secrets = [hash_secret(s) if row.hashed else s for s in row.secrets]
    return resolve_storage_spec(
        isvc=isvc(row.storage, uri=row.uri, framework=row.framework, annotations=row.annotations),
        secrets={s["metadata"]["name"]: s for s in secrets},
        kserve_config=configmap(row.config or {"storageSecretNameAnnotation": ANN}),
    )


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_kserve_resolves_the_storage_spec(row: Row) -> None:
    res = _resolve(row)
    if row.storage is None:
        assert res is None
        return
    assert res is not None
    # A refused pod gets nothing; else STORAGE_CONFIG is the key's, if the Secret holds it.
    assert (f"{res.secret_name}/{res.key}" if res.entry and not res.refused else None) == row.config_ref
    assert res.uri == row.download
    assert res.problem == row.problem
    assert res.kserve_error == row.error
    assert res.refused == (row.error is not None)
    assert res.type == row.type
    assert res.endpoint_url == row.endpoint
    assert res.values_read == (res.entry and not row.hashed)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_no_credential_value_in_evidence_or_repr(row: Row) -> None:
    res = _resolve(row)
    text = repr(res) + "\n".join(res.evidence if res is not None else ())
    assert SECRET_KEY not in text and KEY_ID not in text


def test_the_credentials_come_from_the_key_json_merged_with_the_parameters() -> None:
    secret = storage_config({"k": MINIO})
    res = resolve_storage_spec(isvc=isvc({"key": "k", "parameters": {"region": "eu-west-1"}}, uri="s3://models/x"),
                               secrets={"storage-config": secret}, kserve_config=None)
    assert res is not None and res.credentials is not None
    assert (res.credentials.access_key_id, res.credentials.secret_access_key) == (KEY_ID, SECRET_KEY)
    assert res.region == "eu-west-1"  # the parameter wins, as in the storage-initializer
    s3 = res.s3()
    assert (s3.secret_name, s3.storage_key, s3.endpoint_url, s3.use_https) == (
        "storage-config", "k", "http://minio.store:9000", False)
    assert s3.problem is None and s3.values_available


def test_resolve_takes_the_storage_spec_not_the_serviceaccount() -> None:
    """With a storage spec KServe does not read the ServiceAccount's secrets at all."""
    sa_secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sa-creds", "namespace": NS},
                 "data": {"AWS_ACCESS_KEY_ID": b64("other"), "AWS_SECRET_ACCESS_KEY": b64("other-secret")}}
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": NS},
          "secrets": [{"name": "sa-creds"}]}
    secrets = {"sa-creds": hash_secret(sa_secret),
               "storage-config": hash_secret(storage_config({"k": MINIO}))}
    spec = isvc({"key": "k", "parameters": {"type": "s3"}}, uri="s3://models/iris")
    res = resolve(isvc=spec, service_account=sa, secrets=secrets, kserve_config=None)
    assert (res.secret_name, res.storage_key, res.problem) == ("storage-config", "k", None)
    # No key's JSON and nothing else: no credentials (not the ServiceAccount's).
    bare = isvc({"parameters": {"type": "s3"}}, uri="s3://models/iris")
    res = resolve(isvc=bare, service_account=sa, secrets=secrets, kserve_config=None)
    assert (res.secret_name, res.problem) == (None, CredentialProblem.NO_SECRET_REFERENCED)
    # Without a storage spec, the ServiceAccount's secret as before.
    plain = isvc(None, uri="s3://models/iris")
    res = resolve(isvc=plain, service_account=sa, secrets=secrets, kserve_config=None)
    assert res.secret_name == "sa-creds"


@pytest.mark.parametrize(("obj", "config", "expected"), [
    (isvc({"key": "k"}), None, "storage-config"),
    (isvc(None, uri="s3://a/b"), None, None),
    (isvc({"key": "k"}), configmap({"storageSpecSecretName": "stores"}), "stores"),
    (isvc({"key": "k"}, annotations={"serving.kserve.io/storageSecretName": "mine"}), None, "mine"),
    # The annotation is the configured one only: Helm's key on a kustomize install is ignored.
    (isvc({"key": "k"}, annotations={"serving.kserve.io/secretName": "mine"}), None, "storage-config"),
])
def test_storage_spec_secret(obj: dict[str, Any], config: dict[str, Any] | None,
                             expected: str | None) -> None:
    assert storage_spec_secret(obj, config) == expected


def test_parameters_stay_out_of_the_repr() -> None:
    spec = storage_spec_of(isvc({"key": "k", "parameters": {"type": "s3", "secret_access_key": SECRET_KEY}}))
    assert spec is not None and spec.parameters["secret_access_key"] == SECRET_KEY
    assert SECRET_KEY not in repr(spec)
    assert spec.plain_parameters() == {"type": "s3"}
