"""The sandbox's S3 (stand-in for MinIO/SeaweedFS): moto's server mode, with authentication ON.

moto serves the real S3 REST wire protocol, so aiobotocore and the storage-initializer code
talk to it exactly as they would to MinIO. By default moto accepts any key; we switch its
authentication on the documented way: first create an IAM user, its access key and a
policy (and the bucket and objects), then ``POST /moto-api/reset-auth`` with body ``0``
(``Content-Type: text/plain``) so that every later request must be signed by a known key.
From then on a wrong key gets ``403 InvalidAccessKeyId`` and a wrong secret
``403 SignatureDoesNotMatch`` — the two answers the storage probe must tell apart from a
mesh denial.

The server runs in a thread (``ThreadedMotoServer``, a werkzeug server) on a free loopback
port. moto keeps its backends and its auth switch in process-global state, so two
``S3Server`` instances in one process share buckets and users: run one at a time (each
``start()`` resets moto's state and switches auth off until the next ``seed``).

Seeding and the failure-injection helpers (``put_object``, ``delete_object``,
``list_keys``) are synchronous botocore calls over the wire: moto answers from its own
thread, and the calls are short. Once auth is on they are signed with a private admin key
created at the first seed; it never leaves this object (not in ``repr``, not in logs).

:class:`S3Credentials` mirrors :class:`probes.credentials.Credentials` (a key pair with a
masked repr) on purpose: the sandbox imports neither ``probes`` nor ``daemon``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from botocore.config import Config
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
_ADMIN_USER = "sandbox-admin"


@dataclass(frozen=True)
class S3Credentials:
    """An access key pair. The repr masks both values; read the fields explicitly."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)

    def __repr__(self) -> str:
        return "S3Credentials(access_key_id='***', secret_access_key='***')"


def _random_key(length: int, alphabet: str) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _allow_all_policy(resource: str) -> str:
    return (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
        f'"Action": "*", "Resource": "{resource}"}}]}}'
    )


class S3Server:
    """moto in server mode on loopback, authentication switched on by :meth:`seed`."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: ThreadedMotoServer | None = None
        self._admin: S3Credentials | None = None
        self._auth_on = False
        self.url = ""

    def __repr__(self) -> str:
        return f"S3Server(url={self.url!r}, auth_on={self._auth_on})"

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            return
        # werkzeug logs every request line at INFO to stderr unless told otherwise; the
        # sandbox's own logs say what matters.
        werkzeug_log = logging.getLogger("werkzeug")
        if werkzeug_log.level == logging.NOTSET:
            werkzeug_log.setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        # start() blocks until the werkzeug server is bound: keep the event loop free.
        await asyncio.to_thread(server.start)
        host, port = server.get_host_and_port()
        self._server = server
        self.url = f"http://{host}:{port}"
        # moto's backends and its auth switch are process-global: a server started after
        # another one (the next test) must not inherit its users, buckets or auth state.
        await asyncio.to_thread(self._moto_api, "reset", b"")
        await asyncio.to_thread(self._moto_api, "reset-auth", b"inf")

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            # shutdown() waits for serve_forever's poll loop (up to 0.5 s): off the loop.
            await asyncio.to_thread(server.stop)

    # -- clients ---------------------------------------------------------------------

    def _client(self, service: str, creds: S3Credentials | None) -> Any:
        if not self.url:
            raise RuntimeError("S3Server is not started")
        # Before auth is on any key is accepted; after, only the admin key signs our calls.
        creds = creds or self._admin or S3Credentials("seed", "seed")
        session = botocore.session.get_session()
        return session.create_client(
            service,
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}),
        )

    def _create_user(self, name: str, *, access_key_id: str | None, resource: str) -> S3Credentials:
        iam = self._client("iam", None)
        try:
            try:
                iam.create_user(UserName=name)
            except iam.exceptions.EntityAlreadyExistsException:
                pass
            iam.put_user_policy(
                UserName=name, PolicyName=f"{name}-s3", PolicyDocument=_allow_all_policy(resource)
            )
            key = iam.create_access_key(UserName=name)["AccessKey"]
        finally:
            iam.close()
        key_id = str(key["AccessKeyId"])
        secret = str(key["SecretAccessKey"])
        if access_key_id is not None and access_key_id != key_id:
            # moto lets us pick the key id only through its own generator; we want a
            # caller-chosen id (e.g. the seed's) to be valid, so register it by hand.
            key_id = self._register_key(name, access_key_id, secret)
        return S3Credentials(key_id, secret)

    def _register_key(self, user: str, access_key_id: str, secret: str) -> str:
        # moto generates key ids itself; a caller-chosen id (e.g. the seed's) is set by
        # renaming the key just created, in-process (the server runs in this process).
        # moto's authenticator looks keys up by id on the user's key list.
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.iam.models import iam_backends

        iam_user = iam_backends[DEFAULT_ACCOUNT_ID]["aws"].get_user(user)
        for key in iam_user.access_keys:
            if key.secret_access_key == secret:
                key.access_key_id = access_key_id
                return access_key_id
        raise RuntimeError(f"access key of IAM user {user} not found in moto")

    def _moto_api(self, path: str, body: bytes) -> None:
        request = urllib.request.Request(
            f"{self.url}/moto-api/{path}",
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def _switch_auth_on(self) -> None:
        # Every request from now on must be signed by a key moto knows (count 0 = at once).
        self._moto_api("reset-auth", b"0")
        self._auth_on = True

    # -- public seeding and failure-injection helpers ----------------------------------

    def seed(
        self,
        *,
        bucket: str,
        objects: Mapping[str, bytes],
        access_key_id: str | None = None,
    ) -> S3Credentials:
        """Create a model user and key, the bucket and its objects; then switch auth on.

        Returns the key pair of the model user (what the sandbox puts in its storage
        secrets). Calling it again (another bucket) works: auth stays on and the calls
        are signed with the admin key.
        """
        if self._admin is None:
            self._admin = self._create_user(_ADMIN_USER, access_key_id=None, resource="*")
        user = f"model-{bucket}"[:64]
        creds = self._create_user(user, access_key_id=access_key_id, resource="*")
        s3 = self._client("s3", None)
        try:
            try:
                s3.create_bucket(Bucket=bucket)
            except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
                pass
            for key, body in objects.items():
                s3.put_object(Bucket=bucket, Key=key, Body=body)
        finally:
            s3.close()
        if not self._auth_on:
            self._switch_auth_on()
        return creds

    def create_key(self, *, user: str = "extra") -> S3Credentials:
        """A fresh valid key pair (for tests that rotate credentials)."""
        return self._create_user(user, access_key_id=None, resource="*")

    def put_object(self, *, bucket: str, key: str, body: bytes) -> None:
        s3 = self._client("s3", None)
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        finally:
            s3.close()

    def delete_object(self, *, bucket: str, key: str) -> None:
        s3 = self._client("s3", None)
        try:
            s3.delete_object(Bucket=bucket, Key=key)
        finally:
            s3.close()

    def get_object(self, *, bucket: str, key: str) -> bytes:
        s3 = self._client("s3", None)
        try:
            return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        finally:
            s3.close()

    def rename_object(self, *, bucket: str, key: str, new_key: str) -> None:
        """Copy then delete: how the ``model-path`` failure turns ``model`` into ``model.pkl``."""
        self.put_object(bucket=bucket, key=new_key, body=self.get_object(bucket=bucket, key=key))
        self.delete_object(bucket=bucket, key=key)

    def list_keys(self, *, bucket: str, prefix: str = "") -> list[str]:
        s3 = self._client("s3", None)
        try:
            keys: list[str] = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys.extend(str(o["Key"]) for o in page.get("Contents", []))
            return keys
        finally:
            s3.close()


def random_access_key_id() -> str:
    """An id shaped like AWS's (20 upper-case letters and digits)."""
    return "AKIA" + _random_key(16, string.ascii_uppercase + string.digits)
