"""The storage probe against moto (auth on) behind the mesh: every outcome, with its evidence."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from probes.credentials import Credentials, Resolution, resolve
from probes.observation import Observation
from probes.storage import StorageOutcome, StorageProbe, parse_storage_uri, storage_probe_for
from sandbox.mesh import Mesh
from sandbox.s3 import S3Credentials, S3Server
from tests.conftest import b64, free_port
from tests.integration.seed_mesh import BUCKET, IRIS, PIPELINE, PIPELINE_ONLY
from tests.integration.tcp_relay import tcp_relay
from tests.kserve_config import inferenceservice_config

FOLDER = "private-artifacts/user-example-com/v2/artifacts/iris"
KEY = f"{FOLDER}/model"
CONFIGMAP = inferenceservice_config("kubeflow")


@dataclass
class Cluster:
    s3: S3Server
    mesh: Mesh
    creds: S3Credentials
    iris: str
    pipeline: str
    plain: str


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    s3 = S3Server()
    await s3.start()
    creds = s3.seed(bucket=BUCKET, objects={KEY: b"m" * 229, f"{FOLDER}/executor-logs": b"l"})

    async def policies() -> list[dict[str, Any]]:
        return [PIPELINE_ONLY]

    mesh = Mesh(upstream=s3.url, policies=policies)
    await mesh.start()
    try:
        yield Cluster(
            s3,
            mesh,
            creds,
            await mesh.sidecar(principal=IRIS),
            await mesh.sidecar(principal=PIPELINE),
            await mesh.sidecar(principal=None),
        )
    finally:
        await mesh.stop()
        await s3.stop()



def resolution_for(
    endpoint: str,
    access: str,
    secret: str,
    *,
    usehttps: str = "0",
    keys: tuple[str, str] = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
) -> Resolution:
    """Resolve through the real KServe logic, from raw Secret JSON (base64 data)."""
    secret_obj = {
        "metadata": {
            "name": "minio-s3-secret",
            "annotations": {
                "serving.kserve.io/s3-endpoint": endpoint,
                "serving.kserve.io/s3-usehttps": usehttps,
                "serving.kserve.io/s3-region": "us-east-1",
            },
        },
        "data": {keys[0]: b64(access), keys[1]: b64(secret)},
    }
    isvc = {
        "metadata": {
            "name": "iris-model",
            "namespace": "user-example-com",
            "annotations": {"serving.kserve.io/storageSecretName": "minio-s3-secret"},
        }
    }
    return resolve(
        isvc=isvc,
        service_account={"metadata": {"name": "iris-sa"}},
        secrets={"minio-s3-secret": secret_obj},
        kserve_config=CONFIGMAP,
    )


def good(c: Cluster, endpoint: str) -> Resolution:
    return resolution_for(endpoint, c.creds.access_key_id, c.creds.secret_access_key)


async def run(
    resolution: Resolution,
    *,
    key: str = KEY,
    bucket: str = BUCKET,
    timeout: float = 5.0,
    endpoint_override: str | None = None,
) -> Observation:
    probe = StorageProbe(
        target="user-example-com/iris-model",
        bucket=bucket,
        key=key,
        resolution=resolution,
        timeout=timeout,
        endpoint_override=endpoint_override,
    )
    return await probe()


def assert_no_secrets(obs: Observation, c: Cluster) -> None:
    text = json.dumps(obs.to_dict()) + repr(obs)
    assert c.creds.secret_access_key not in text
    assert c.creds.access_key_id not in text


async def test_ok_object_through_allowed_sidecar(cluster: Cluster) -> None:
    obs = await run(good(cluster, cluster.pipeline))
    assert obs.ok and obs.outcome == StorageOutcome.OK
    assert obs.details["kind"] == "object" and obs.details["files"] == ["model"]
    assert obs.details["size"] == 229
    assert "object found (229 bytes)" in obs.evidence[0]
    assert obs.values["connect_seconds"] > 0 and obs.values["request_seconds"] > 0
    assert_no_secrets(obs, cluster)


async def test_ok_folder_lists_file_names(cluster: Cluster) -> None:
    obs = await run(good(cluster, cluster.pipeline), key=FOLDER)
    assert obs.outcome == StorageOutcome.OK
    assert obs.details["kind"] == "folder"
    assert obs.details["files"] == ["executor-logs", "model"]
    assert "folder with 2 file(s): executor-logs, model" in obs.evidence[0]


async def test_not_found_key_shows_model_vs_model_pkl(cluster: Cluster) -> None:
    # The serving code expected model.pkl; the storage holds `model`.
    obs = await run(good(cluster, cluster.pipeline), key=f"{FOLDER}/model.pkl")
    assert obs.outcome == StorageOutcome.NOT_FOUND and not obs.ok
    assert obs.details["similar"] == ["model"]
    assert f"s3://{BUCKET}/{FOLDER}/model.pkl: no such key or folder" in obs.evidence[0]
    assert "found: model" in obs.evidence[0]
    # And the other way round, after the model-path failure injection renames it.
    cluster.s3.rename_object(bucket=BUCKET, key=KEY, new_key=f"{KEY}.pkl")
    obs = await run(good(cluster, cluster.pipeline))
    assert obs.outcome == StorageOutcome.NOT_FOUND
    assert obs.details["similar"] == ["model.pkl"]
    assert "found: model.pkl" in obs.evidence[0]


async def test_not_found_bucket(cluster: Cluster) -> None:
    obs = await run(good(cluster, cluster.pipeline), bucket="no-such-bucket")
    assert obs.outcome == StorageOutcome.NOT_FOUND
    assert "bucket no-such-bucket" in obs.evidence[0] and "no such bucket" in obs.evidence[0]


async def test_no_credentials_says_why(cluster: Cluster) -> None:
    # The seed's pipeline secret: accesskey/secretkey, which KServe skips.
    res = resolution_for(
        cluster.pipeline,
        cluster.creds.access_key_id,
        cluster.creds.secret_access_key,
        keys=("accesskey", "secretkey"),
    )
    obs = await run(res)
    assert obs.outcome == StorageOutcome.NO_CREDENTIALS
    assert obs.details["problem"] == "wrong-key-names"
    assert "no usable S3 credentials for the storage-initializer: wrong-key-names" in obs.evidence[0]
    assert any("accesskey/secretkey are not read" in e for e in obs.evidence)
    assert_no_secrets(obs, cluster)


@pytest.mark.parametrize(
    ("which", "code"), [("key", "InvalidAccessKeyId"), ("secret", "SignatureDoesNotMatch")]
)
async def test_invalid_credentials(cluster: Cluster, which: str, code: str) -> None:
    access = "AKIANOTAREALKEY00000" if which == "key" else cluster.creds.access_key_id
    secret = "not-the-secret" if which == "secret" else cluster.creds.secret_access_key
    obs = await run(resolution_for(cluster.pipeline, access, secret))
    assert obs.outcome == StorageOutcome.INVALID_CREDENTIALS
    assert obs.details["error_code"] == code and obs.details["status"] == 403
    assert f"403 {code}" in obs.evidence[0]
    assert "not-the-secret" not in json.dumps(obs.to_dict())
    assert_no_secrets(obs, cluster)


async def test_mesh_denied(cluster: Cluster) -> None:
    obs = await run(good(cluster, cluster.iris))
    assert obs.outcome == StorageOutcome.MESH_DENIED
    assert obs.details["server"] == "envoy"
    assert "403 RBAC: access denied (server: envoy)" in obs.evidence[0]


async def test_unreachable_reset_without_sidecar(cluster: Cluster) -> None:
    obs = await run(good(cluster, cluster.plain))
    assert obs.outcome == StorageOutcome.UNREACHABLE
    assert obs.details["reason"] == "reset"
    assert "Could not connect to the endpoint URL" in obs.evidence[0]
    assert "connection reset" in obs.evidence[0]


async def test_unreachable_refused(cluster: Cluster) -> None:
    port = free_port()
    obs = await run(good(cluster, f"127.0.0.1:{port}"))
    assert obs.outcome == StorageOutcome.UNREACHABLE and obs.details["reason"] == "refused"
    assert obs.evidence[0] == f"dial tcp 127.0.0.1:{port}: connection refused"


async def test_unreachable_dns(cluster: Cluster) -> None:
    obs = await run(good(cluster, "minio-service.kubeflow.invalid:9000"))
    assert obs.outcome == StorageOutcome.UNREACHABLE and obs.details["reason"] == "dns"
    assert obs.evidence[0].startswith("lookup minio-service.kubeflow.invalid:")


async def test_unreachable_timeout(cluster: Cluster) -> None:
    # A server that accepts and never answers (a hung MinIO): the probe's hard timeout.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()
        finally:
            writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        obs = await run(good(cluster, f"127.0.0.1:{port}"), timeout=0.5)
    finally:
        server.close()
        await server.wait_closed()
    assert obs.outcome == StorageOutcome.UNREACHABLE and obs.details["reason"] == "timeout"
    # The outcome says the hard timeout fired (a hung read would never produce "timeout").
    assert "timeout" in obs.evidence[0]


async def test_tls_error(cluster: Cluster) -> None:
    # s3-usehttps "1" against a plain-HTTP endpoint: the handshake fails.
    res = resolution_for(
        cluster.pipeline, cluster.creds.access_key_id, cluster.creds.secret_access_key, usehttps="1"
    )
    assert res.use_https
    obs = await run(res)
    assert obs.outcome == StorageOutcome.TLS_ERROR
    assert obs.evidence[0].startswith(f"TLS handshake with {cluster.pipeline} failed")


async def test_probe_error_on_bad_endpoint(cluster: Cluster) -> None:
    obs = await run(good(cluster, cluster.pipeline), endpoint_override="http://[not-an-address")
    assert obs.outcome == StorageOutcome.PROBE_ERROR and not obs.ok
    assert obs.evidence[0].startswith("probe crashed:")


async def test_endpoint_override_and_repr(cluster: Cluster) -> None:
    # Resolution says the in-cluster name; the probe is pointed at the sidecar instead.
    res = good(cluster, "minio-service.kubeflow:9000")
    obs = await run(res, endpoint_override=cluster.pipeline)
    assert obs.outcome == StorageOutcome.OK
    probe = storage_probe_for(target="t", storage_uri=f"s3://{BUCKET}/{KEY}", resolution=res)
    assert cluster.creds.secret_access_key not in repr(probe) and cluster.creds.secret_access_key not in repr(
        res
    )
    assert repr(Credentials("a", "b")) == "Credentials(access_key_id='***', secret_access_key='***')"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [(f"s3://{BUCKET}/{KEY}", (BUCKET, KEY)), ("s3://b", ("b", "")), ("s3://b/dir/", ("b", "dir/"))],
)
def test_parse_storage_uri(uri: str, expected: tuple[str, str]) -> None:
    assert parse_storage_uri(uri) == expected


@pytest.mark.parametrize("uri", ["gs://b/k", "s3:///k", "/mnt/models", "pvc://x/y"])
def test_parse_storage_uri_rejects(uri: str) -> None:
    with pytest.raises(ValueError, match="not an s3:// storage URI"):
        parse_storage_uri(uri)


# -- TLS: a self-signed front (like MinIO with its own certificate) ----------------------


def _self_signed(tmp: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minio-service.kubeflow")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return ctx


@pytest.fixture
async def tls_front(cluster: Cluster, tmp_path: Path) -> AsyncIterator[str]:
    """TLS terminated in front of the allowed sidecar: bytes relayed both ways."""
    host, port = cluster.pipeline.rsplit(":", 1)
    async with tcp_relay(host, int(port), ssl=_self_signed(tmp_path)) as relay:
        yield f"127.0.0.1:{relay.port}"


async def test_tls_error_on_untrusted_certificate(cluster: Cluster, tls_front: str) -> None:
    res = resolution_for(
        tls_front, cluster.creds.access_key_id, cluster.creds.secret_access_key, usehttps="1"
    )
    assert res.verify_ssl
    obs = await run(res)
    assert obs.outcome == StorageOutcome.TLS_ERROR
    assert "CERTIFICATE_VERIFY_FAILED" in obs.evidence[0]


async def test_https_with_verifyssl_off_reads_the_model(cluster: Cluster, tls_front: str) -> None:
    secret = {
        "metadata": {
            "name": "s",
            "annotations": {
                "serving.kserve.io/s3-endpoint": tls_front,
                "serving.kserve.io/s3-usehttps": "1",
                "serving.kserve.io/s3-verifyssl": "0",
            },
        },
        "data": {
            "AWS_ACCESS_KEY_ID": b64(cluster.creds.access_key_id),
            "AWS_SECRET_ACCESS_KEY": b64(cluster.creds.secret_access_key),
        },
    }
    res = resolve(
        isvc={"metadata": {"annotations": {"serving.kserve.io/storageSecretName": "s"}}},
        service_account=None,
        secrets={"s": secret},
        kserve_config=CONFIGMAP,
    )
    assert res.endpoint_url == f"https://{tls_front}" and not res.verify_ssl
    obs = await run(res)
    assert obs.outcome == StorageOutcome.OK, obs.evidence
    assert obs.details["endpoint"] == f"https://{tls_front}"
