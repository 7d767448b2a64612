"""The sandbox's S3 (moto, auth on) and the mesh in front of it, driven by aiobotocore and aiohttp."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from sandbox.mesh import Mesh
from sandbox.s3 import S3Credentials, S3Server
from tests.integration.seed_mesh import BUCKET, FIX, IRIS, PIPELINE, PIPELINE_ONLY, SEL

KEY = "private-artifacts/user-example-com/v2/artifacts/iris/model"
MODEL = b"xgboost-model-bytes" * 100


class Policies:
    """A mutable policy list standing in for the sandbox API (a PolicySource)."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.fail = False
        self.calls = 0

    async def __call__(self) -> list[dict[str, Any]]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("API down")
        return list(self.items)


@dataclass
class Parts:
    s3: S3Server
    mesh: Mesh
    creds: S3Credentials
    policies: Policies


@pytest.fixture
async def parts() -> AsyncIterator[Parts]:
    s3 = S3Server()
    await s3.start()
    creds = s3.seed(bucket=BUCKET, objects={KEY: MODEL}, access_key_id="BY3N3TZ2XFGBI763IGEPD")
    policies = Policies([PIPELINE_ONLY])
    mesh = Mesh(upstream=s3.url, policies=policies)
    await mesh.start()
    try:
        yield Parts(s3, mesh, creds, policies)
    finally:
        await mesh.stop()
        await s3.stop()


def client(address: str, access_key_id: str, secret: str) -> Any:
    return get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=f"http://{address}",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        config=Config(
            retries={"total_max_attempts": 1},
            connect_timeout=3,
            read_timeout=3,
            s3={"addressing_style": "path"},
        ),
    )


async def test_seed_switches_auth_on_and_uses_the_chosen_key_id(parts: Parts) -> None:
    assert parts.creds.access_key_id == "BY3N3TZ2XFGBI763IGEPD"
    assert "BY3N3" not in repr(parts.creds) and parts.creds.secret_access_key not in repr(parts.creds)
    # Directly at moto: right key works, wrong key and wrong secret are refused by S3.
    address = parts.s3.url.removeprefix("http://")
    async with client(address, parts.creds.access_key_id, parts.creds.secret_access_key) as s3:
        body = await (await s3.get_object(Bucket=BUCKET, Key=KEY))["Body"].read()
        assert body == MODEL
    async with client(address, "AKIANOTAREALKEY00000", parts.creds.secret_access_key) as s3:
        with pytest.raises(ClientError) as err:
            await s3.list_objects_v2(Bucket=BUCKET)
        assert err.value.response["Error"]["Code"] == "InvalidAccessKeyId"


async def test_allowed_principal_reads_and_writes_through_the_sidecar(parts: Parts) -> None:
    sidecar = await parts.mesh.sidecar(principal=PIPELINE)
    assert sidecar.startswith("127.0.0.1:")
    assert await parts.mesh.sidecar(principal=PIPELINE) == sidecar  # one listener per identity
    big = bytes(range(256)) * 4096  # 1 MiB: streamed both ways, signature over the sidecar's Host
    async with client(sidecar, parts.creds.access_key_id, parts.creds.secret_access_key) as s3:
        head = await s3.head_object(Bucket=BUCKET, Key=KEY)
        assert head["ContentLength"] == len(MODEL)
        await s3.put_object(Bucket=BUCKET, Key="big/blob", Body=big)
        got = await (await s3.get_object(Bucket=BUCKET, Key="big/blob"))["Body"].read()
        assert got == big
        listed = await s3.list_objects_v2(Bucket=BUCKET, Prefix="private-artifacts/")
        assert [o["Key"] for o in listed["Contents"]] == [KEY]


@pytest.mark.parametrize(
    ("which", "code"),
    [("key", "InvalidAccessKeyId"), ("secret", "SignatureDoesNotMatch")],
)
async def test_wrong_credentials_get_s3s_own_403_through_the_mesh(
    parts: Parts, which: str, code: str
) -> None:
    sidecar = await parts.mesh.sidecar(principal=PIPELINE)
    key_id = "AKIANOTAREALKEY00000" if which == "key" else parts.creds.access_key_id
    secret = "wrong-secret" if which == "secret" else parts.creds.secret_access_key
    async with client(sidecar, key_id, secret) as s3:
        with pytest.raises(ClientError) as err:
            await s3.list_objects_v2(Bucket=BUCKET)
    response = err.value.response
    assert response["Error"]["Code"] == code
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert response["ResponseMetadata"]["HTTPHeaders"].get("server") != "envoy"


async def test_denied_principal_gets_envoys_rbac_answer(parts: Parts) -> None:
    sidecar = await parts.mesh.sidecar(principal=IRIS)
    async with aiohttp.ClientSession() as http, http.get(f"http://{sidecar}/{BUCKET}/{KEY}") as resp:
        assert resp.status == 403
        assert await resp.text() == "RBAC: access denied"
        assert resp.headers["server"] == "envoy"
        assert resp.headers["content-type"].startswith("text/plain")
    async with client(sidecar, parts.creds.access_key_id, parts.creds.secret_access_key) as s3:
        with pytest.raises(ClientError) as err:
            await s3.head_object(Bucket=BUCKET, Key=KEY)
    headers = err.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert headers["server"] == "envoy"


async def test_policy_change_takes_effect_on_the_next_request(parts: Parts) -> None:
    sidecar = await parts.mesh.sidecar(principal=IRIS)
    async with client(sidecar, parts.creds.access_key_id, parts.creds.secret_access_key) as s3:
        with pytest.raises(ClientError):
            await s3.head_object(Bucket=BUCKET, Key=KEY)
        parts.policies.items.append(FIX)
        head = await s3.head_object(Bucket=BUCKET, Key=KEY)
        assert head["ContentLength"] == len(MODEL)
        # A DENY policy overrides the ALLOW.
        parts.policies.items.append(
            {
                "metadata": {"name": "deny-iris", "namespace": "kubeflow"},
                "spec": {
                    "action": "DENY",
                    "selector": SEL,
                    "rules": [{"from": [{"source": {"namespaces": ["user-*"]}}]}],
                },
            }
        )
        with pytest.raises(ClientError) as err:
            await s3.head_object(Bucket=BUCKET, Key=KEY)
        assert err.value.response["ResponseMetadata"]["HTTPHeaders"]["server"] == "envoy"


async def test_policy_source_down_keeps_the_last_policies(parts: Parts) -> None:
    allowed = await parts.mesh.sidecar(principal=PIPELINE)
    denied = await parts.mesh.sidecar(principal=IRIS)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{denied}/") as resp:
            assert resp.status == 403
        parts.policies.fail = True
        async with http.get(f"http://{denied}/") as resp:
            assert resp.status == 403 and resp.headers["server"] == "envoy"
    async with client(allowed, parts.creds.access_key_id, parts.creds.secret_access_key) as s3:
        assert (await s3.head_bucket(Bucket=BUCKET))["ResponseMetadata"]["HTTPStatusCode"] == 200


async def test_workload_without_sidecar_is_reset(parts: Parts) -> None:
    plain = await parts.mesh.sidecar(principal=None)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.get(f"http://{plain}/{BUCKET}"):
                pass
    async with client(plain, parts.creds.access_key_id, parts.creds.secret_access_key) as s3:
        # What the seed's storage-initializer printed.
        with pytest.raises(EndpointConnectionError, match="Could not connect to the endpoint URL"):
            await s3.head_object(Bucket=BUCKET, Key=KEY)


async def test_failure_injection_helpers(parts: Parts) -> None:
    parts.s3.rename_object(bucket=BUCKET, key=KEY, new_key=KEY + ".pkl")
    assert parts.s3.list_keys(bucket=BUCKET) == [KEY + ".pkl"]
    parts.s3.put_object(bucket=BUCKET, key=KEY, body=b"back")
    assert parts.s3.get_object(bucket=BUCKET, key=KEY) == b"back"
    parts.s3.delete_object(bucket=BUCKET, key=KEY + ".pkl")
    assert parts.s3.list_keys(bucket=BUCKET, prefix="private-artifacts/") == [KEY]
    extra = parts.s3.create_key(user="rotated")
    async with client(
        parts.s3.url.removeprefix("http://"), extra.access_key_id, extra.secret_access_key
    ) as s3:
        assert (await s3.head_bucket(Bucket=BUCKET))["ResponseMetadata"]["HTTPStatusCode"] == 200


async def test_restart_gives_a_fresh_moto() -> None:
    first = S3Server()
    await first.start()
    try:
        first.seed(bucket="one", objects={"k": b"v"})
    finally:
        await first.stop()
    second = S3Server()
    await second.start()
    try:
        creds = second.seed(bucket="two", objects={})
        async with client(
            second.url.removeprefix("http://"), creds.access_key_id, creds.secret_access_key
        ) as s3:
            names = [b["Name"] for b in (await s3.list_buckets())["Buckets"]]
        assert names == ["two"]
    finally:
        await second.stop()
