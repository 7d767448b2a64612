"""Storage probe: can this InferenceService's credentials read its model from S3/MinIO?

Given the ``storageUri`` (``s3://bucket/key``) and the :class:`~probes.credentials.Resolution`
KServe would give the storage-initializer, the probe walks the path the init container
walks, one step at a time, so a failure is named by the step that failed:

1. credentials — nothing usable resolved → ``no-credentials`` (with the resolver's why);
2. DNS — resolve the endpoint host → ``unreachable`` (``dns``);
3. connect (and TLS when ``s3-usehttps`` is on) → ``unreachable`` (``refused``, ``timeout``)
   or ``tls-error``; the connect time is measured here;
4. ``HeadBucket`` then ``HeadObject`` on the key, with aiobotocore — or, when the key is a
   folder, a listing of the prefix. The files found are reported by name, because this is
   where ``model`` vs ``model.pkl`` shows: a missing key is reported with its siblings.

How the answers are told apart (HEAD responses have no body, so a bare 403 is followed by a
``ListObjectsV2`` to read S3's error code):

* ``mesh-denied`` — 403 with body ``RBAC: access denied`` or an ``envoy`` server header and
  no S3 XML: the Istio sidecar refused, S3 never saw the request;
* ``invalid-credentials`` — 403 with S3's ``InvalidAccessKeyId``/``SignatureDoesNotMatch``
  (or ``AccessDenied``: a valid key without permission);
* ``unreachable`` — DNS failure, refused, reset (e.g. plaintext into STRICT mTLS: a pod
  without a sidecar), timeout — ``details.reason`` says which;
* ``not-found`` — no such bucket or key; ``tls-error``; ``probe-error`` — the probe itself.

**Many models, one store.** The daemon probes per distinct store and credential, not per
model: :class:`StoreProbe` takes every model whose storage resolves to the same endpoint,
region, https/verify flags and credential secret, makes one client, one reachability and auth
check (DNS, connect, ``HeadBucket``), then one cheap ``ListObjectsV2`` of each model's prefix
(at most ``_MAX_FILES`` keys) for its file list. It still returns one observation per
InferenceService (``target`` = ``namespace/name``, ``details["store"]`` = the store's id, no
secret value), and a failure of the group's check is copied into each of them, so the
diagnosis reads per model as before. :class:`StorageProbe` (one model, HEAD then list) stays
for a single location.

Only ``s3://`` is probed. ``gs://``, ``https://``, ``pvc://``, ``hf://`` and unknown schemes
get no storage probe: the diagnosis judges them statically (secret keys, the claim, the URL).
Where the daemon may not read the model's secrets, no credentialed probe runs: the
observation is ``not-checked`` with the reason (:func:`not_checked`), ``ok`` true, and it must
produce at most an INFO finding.

Every run makes a fresh aiobotocore client and closes it before returning: no connection
pool outlives a run. The session (botocore's parsed service models: no sockets) is shared
per process, so a run does not re-read the model files. Credential values never reach the
observation: every text that leaves the probe is scrubbed of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NoReturn
from urllib.parse import urlsplit

import aiohttp
from aiobotocore.session import AioSession, get_session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import SSLError as BotoSSLError

from probes.credentials import Resolution
from probes.observation import Observation, probe_error
from probes.observation import not_checked as _not_checked

PROBE = "storage"
DENIED_MARKER = "RBAC: access denied"
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "AccessDenied",
        "InvalidSecurity",
        "AuthorizationHeaderMalformed",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchBucket", "NoSuchKey", "404", "NotFound"})
_MAX_FILES = 50


class StorageOutcome(StrEnum):
    OK = "ok"
    NO_CREDENTIALS = "no-credentials"
    INVALID_CREDENTIALS = "invalid-credentials"
    MESH_DENIED = "mesh-denied"
    UNREACHABLE = "unreachable"
    NOT_FOUND = "not-found"
    TLS_ERROR = "tls-error"
    NOT_CHECKED = "not-checked"
    """Nothing judged (e.g. no access to the namespace's secrets); ``ok`` is true: no failure."""
    PROBE_ERROR = "probe-error"


def parse_storage_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key/path`` → ``("bucket", "key/path")``; ValueError for anything else."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3:// storage URI: {uri!r}")
    return parts.netloc, parts.path.lstrip("/")


class _Failure(Exception):
    """A classified failure of one step; carries what the observation needs."""

    def __init__(self, outcome: StorageOutcome, evidence: str, **details: Any) -> None:
        super().__init__(evidence)
        self.outcome = outcome
        self.evidence = evidence
        self.details = details


@dataclass
class _Run:
    """Mutable state of one run (the probe object itself stays immutable between runs)."""

    started: float
    step: str = "credentials"
    values: dict[str, float] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error_bodies: list[bytes] = field(default_factory=list)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _connection_reason(exc: BaseException) -> str:
    """Why a connection failed, from the exception chain: dns / refused / reset / timeout."""
    for e in _chain(exc):
        if isinstance(e, socket.gaierror):
            return "dns"
        if isinstance(e, ConnectionRefusedError):
            return "refused"
        if isinstance(e, ConnectionResetError | aiohttp.ServerDisconnectedError | BrokenPipeError):
            return "reset"
        if isinstance(e, TimeoutError | ConnectTimeoutError | ReadTimeoutError):
            return "timeout"
        if isinstance(e, ssl.SSLError | BotoSSLError | aiohttp.ClientSSLError):
            return "tls"
    return "connection-error"


class StorageProbe:
    """Probe one model location with the credentials KServe would use (see module doc)."""

    name = PROBE

    def __init__(
        self,
        *,
        target: str,
        bucket: str,
        key: str,
        resolution: Resolution,
        endpoint_override: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.target = target
        self.bucket = bucket
        self.key = key
        self.resolution = resolution
        self.endpoint_override = endpoint_override
        self.timeout = timeout

    def __repr__(self) -> str:
        return (
            f"StorageProbe(target={self.target!r}, uri='s3://{self.bucket}/{self.key}', "
            f"endpoint={self._endpoint_url()!r}, timeout={self.timeout})"
        )

    # -- helpers ---------------------------------------------------------------------

    def _endpoint_url(self) -> str:
        if self.endpoint_override:
            url = self.endpoint_override
            if "://" not in url:
                url = ("https://" if self.resolution.use_https else "http://") + url
            return url
        if self.resolution.endpoint_url:
            return self.resolution.endpoint_url
        region = self.resolution.region or "us-east-1"
        return f"https://s3.{region}.amazonaws.com"

    def _scrub(self, text: str) -> str:
        creds = self.resolution.credentials
        if creds is not None:
            for value in (creds.secret_access_key, creds.access_key_id):
                if value:
                    text = text.replace(value, "***")
        return text

    def _observation(self, run: _Run, outcome: StorageOutcome) -> Observation:
        return Observation(
            probe=PROBE,
            target=self.target,
            started=run.started,
            finished=time.time(),
            ok=outcome is StorageOutcome.OK,
            outcome=str(outcome),
            values=run.values,
            evidence=tuple(self._scrub(e) for e in run.evidence),
            details={k: self._scrub(v) if isinstance(v, str) else v for k, v in run.details.items()},
        )

    # -- the run ---------------------------------------------------------------------

    async def __call__(self) -> Observation:
        run = _Run(started=time.time())
        run.details.update(bucket=self.bucket, key=self.key)
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    outcome = await self._run(run)
            except TimeoutError:
                outcome = StorageOutcome.UNREACHABLE
                run.details["reason"] = "timeout"
                run.evidence.append(f"{run.step}: no answer within {self.timeout:g}s (timeout)")
            except _Failure as failure:
                outcome = failure.outcome
                run.evidence.append(failure.evidence)
                run.details.update(failure.details)
            return self._observation(run, outcome)
        except Exception as exc:  # never raise out of a probe
            safe = RuntimeError(self._scrub(f"{type(exc).__name__}: {exc}"))
            return probe_error(probe=PROBE, target=self.target, started=run.started, exc=safe)

    async def _run(self, run: _Run) -> StorageOutcome:
        url = await self._preflight(run)
        if isinstance(url, StorageOutcome):
            return url
        # S3 requests with a fresh client.
        run.step = f"S3 requests to {url}"
        return await self._s3(run, url)

    async def _preflight(self, run: _Run) -> str | StorageOutcome:
        """Credentials, DNS and connect: the endpoint URL, or ``no-credentials``; raises _Failure."""
        res = self.resolution
        creds = res.credentials
        if creds is None:
            why = str(res.problem) if res.problem else "credential values not available"
            run.details.update(problem=why, secret_name=res.secret_name)
            run.evidence.append(f"no usable S3 credentials for the storage-initializer: {why}")
            run.evidence.extend(res.evidence)
            return StorageOutcome.NO_CREDENTIALS

        url = self._endpoint_url()
        parts = urlsplit(url)
        host = parts.hostname or ""
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        run.details.update(endpoint=url, secret_name=res.secret_name)

        # DNS.
        run.step = f"lookup {host}"
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise _Failure(
                StorageOutcome.UNREACHABLE, f"lookup {host}: {exc.strerror or exc} (dns)", reason="dns"
            ) from exc
        run.values["dns_seconds"] = time.perf_counter() - t0
        address = infos[0][4][0]

        # Connect (+ TLS handshake when https).
        run.step = f"connect {host}:{port}"
        await self._connect(run, host=host, address=str(address), port=port, tls=tls)
        return url

    async def _connect(self, run: _Run, *, host: str, address: str, port: int, tls: bool) -> None:
        context: ssl.SSLContext | None = None
        if tls:
            context = ssl.create_default_context()
            if not self.resolution.verify_ssl:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        t0 = time.perf_counter()
        try:
            _, writer = await asyncio.open_connection(
                address, port, ssl=context, server_hostname=host if tls else None
            )
        except ssl.SSLError as exc:
            raise _Failure(
                StorageOutcome.TLS_ERROR,
                f"TLS handshake with {host}:{port} failed: {exc.reason or exc}",
                reason="tls",
                tls_error=str(exc.reason or exc),
            ) from exc
        except ConnectionRefusedError as exc:
            raise _Failure(
                StorageOutcome.UNREACHABLE, f"dial tcp {address}:{port}: connection refused", reason="refused"
            ) from exc
        except OSError as exc:
            reason = _connection_reason(exc)
            raise _Failure(
                StorageOutcome.UNREACHABLE, f"dial tcp {address}:{port}: {exc} ({reason})", reason=reason
            ) from exc
        run.values["connect_seconds"] = time.perf_counter() - t0
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    def _client_config(self) -> Config:
        return Config(
            connect_timeout=self.timeout,
            read_timeout=self.timeout,
            retries={"total_max_attempts": 1},
            s3={"addressing_style": "path"},
        )

    @contextlib.asynccontextmanager
    async def _client(self, run: _Run, url: str) -> AsyncIterator[Any]:
        """A fresh aiobotocore S3 client for ``url`` with the resolved credentials; closed on exit."""
        creds = self.resolution.credentials
        assert creds is not None
        session = _shared_session()

        def keep_error_body(**kwargs: Any) -> None:
            # botocore parses error bodies as S3 XML and drops anything else (an Envoy
            # local reply); keep the raw bytes of error answers for classification.
            response = kwargs.get("response_dict") or {}
            if int(response.get("status_code", 200)) >= 400:
                body = response.get("body")
                if isinstance(body, bytes | bytearray):
                    run.error_bodies.append(bytes(body[:512]))

        async with session.create_client(
            "s3",
            endpoint_url=url,
            region_name=self.resolution.region or "us-east-1",
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            verify=self.resolution.verify_ssl,
            config=self._client_config(),
        ) as client:
            client.meta.events.register("before-parse.s3", keep_error_body)
            yield client

    async def _s3(self, run: _Run, url: str) -> StorageOutcome:
        t0 = time.perf_counter()
        try:
            async with self._client(run, url) as client:
                return await self._requests(run, client)
        finally:
            run.values["request_seconds"] = time.perf_counter() - t0

    async def _requests(self, run: _Run, client: Any) -> StorageOutcome:
        bucket, key = self.bucket, self.key
        try:
            await client.head_bucket(Bucket=bucket)
        except Exception as exc:
            await self._raise_classified(run, client, exc, what=f"bucket {bucket}")
        if key and not key.endswith("/"):
            try:
                head = await client.head_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if _status(exc) != 404:
                    await self._raise_classified(run, client, exc, what=f"s3://{bucket}/{key}")
            except Exception as exc:
                await self._raise_classified(run, client, exc, what=f"s3://{bucket}/{key}")
            else:
                name = key.rsplit("/", 1)[-1]
                run.details.update(kind="object", files=[name], size=int(head.get("ContentLength", 0)))
                run.evidence.append(
                    f"s3://{bucket}/{key}: object found ({head.get('ContentLength', 0)} bytes)"
                )
                return StorageOutcome.OK
        # A folder (or a missing key): list under it.
        prefix = key.rstrip("/") + "/" if key else ""
        files = await self._list(run, client, prefix)
        if files:
            run.details.update(kind="folder", files=files)
            run.evidence.append(
                f"s3://{bucket}/{prefix}: folder with {len(files)} file(s): {', '.join(files[:10])}"
            )
            return StorageOutcome.OK
        # Nothing there: show the neighbours (this is where model vs model.pkl shows up).
        await self._missing(run, client, key)

    async def _list_model(self, run: _Run, client: Any) -> StorageOutcome:
        """One ``ListObjectsV2`` of the key as a prefix: an object, a folder, or not there.

        The grouped probe's per-model step (the store's reachability and auth were checked
        once for the group). A second listing is made only when the first cannot tell (a
        truncated page of look-alike names) or to name the neighbours of a missing key.
        """
        bucket, key = self.bucket, self.key
        stem = key.rstrip("/")
        page = await self._page(run, client, stem)
        contents = page.get("Contents", [])
        exact = [o for o in contents if str(o["Key"]) == stem] if stem and not key.endswith("/") else []
        if exact:
            name = stem.rsplit("/", 1)[-1]
            size = int(exact[0].get("Size", 0))
            run.details.update(kind="object", files=[name], size=size)
            run.evidence.append(f"s3://{bucket}/{stem}: object found ({size} bytes)")
            return StorageOutcome.OK
        prefix = stem + "/" if stem else ""
        files = [str(o["Key"])[len(prefix):] for o in contents if str(o["Key"]).startswith(prefix)]
        if not files and page.get("IsTruncated") and stem:
            files = await self._list(run, client, prefix)
        if files:
            run.details.update(kind="folder", files=files[:_MAX_FILES])
            run.evidence.append(
                f"s3://{bucket}/{prefix}: folder with {len(files)} file(s): {', '.join(files[:10])}"
            )
            return StorageOutcome.OK
        await self._missing(run, client, key)

    async def _missing(self, run: _Run, client: Any, key: str) -> NoReturn:
        """Nothing at ``key``: name its neighbours (where ``model`` vs ``model.pkl`` shows up)."""
        bucket, stem = self.bucket, key.rstrip("/")
        parent = stem.rsplit("/", 1)[0] + "/" if "/" in stem else ""
        siblings = await self._list(run, client, parent)
        stem_name = stem.rsplit("/", 1)[-1].split(".", 1)[0]
        similar = [f for f in siblings if f.split("/", 1)[0].split(".", 1)[0] == stem_name]
        run.details.update(kind="missing", files=siblings[:_MAX_FILES], similar=similar)
        text = f"s3://{bucket}/{key}: no such key or folder"
        if similar:
            text += f"; in s3://{bucket}/{parent} found: {', '.join(similar[:10])}"
        elif siblings:
            text += f"; s3://{bucket}/{parent} holds: {', '.join(siblings[:10])}"
        raise _Failure(StorageOutcome.NOT_FOUND, text, error_code="NoSuchKey")

    async def _page(self, run: _Run, client: Any, prefix: str) -> dict[str, Any]:
        try:
            page: dict[str, Any] = await client.list_objects_v2(Bucket=self.bucket, Prefix=prefix,
                                                                 MaxKeys=_MAX_FILES)
        except Exception as exc:
            await self._raise_classified(run, client, exc, what=f"s3://{self.bucket}/{prefix}")
        return page

    async def _list(self, run: _Run, client: Any, prefix: str) -> list[str]:
        try:
            page = await client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=_MAX_FILES)
        except Exception as exc:
            await self._raise_classified(run, client, exc, what=f"s3://{self.bucket}/{prefix}")
        return [str(o["Key"])[len(prefix) :] for o in page.get("Contents", [])]

    async def _raise_classified(self, run: _Run, client: Any, exc: BaseException, *, what: str) -> None:
        """Turn an exception from an S3 call into a :class:`_Failure` (always raises)."""
        if isinstance(exc, ClientError):
            failure = self._classify_client_error(run, exc, what=what)
            if failure is None:
                # A body-less 403 (HEAD): ask again with a GET to read S3's error code.
                try:
                    await client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
                except ClientError as again:
                    failure = self._classify_client_error(run, again, what=what)
                except Exception as again_exc:
                    await self._raise_classified(run, client, again_exc, what=what)
                if failure is None:
                    failure = _Failure(
                        StorageOutcome.INVALID_CREDENTIALS,
                        f"{what}: 403 Forbidden from S3 (credentials refused)",
                        status=403,
                        error_code="403",
                    )
            raise failure from exc
        if isinstance(exc, BotoCoreError):
            reason = _connection_reason(exc)
            if isinstance(exc, BotoSSLError) or reason == "tls":
                raise _Failure(StorageOutcome.TLS_ERROR, f"{what}: TLS error: {exc}", reason="tls") from exc
            if not isinstance(exc, BotoConnectionError | HTTPClientError) and reason == "connection-error":
                raise exc  # not a transport failure: let it surface as probe-error
            hint = (
                " (connection reset: plaintext into a STRICT-mTLS mesh? no sidecar?)"
                if reason == "reset"
                else ""
            )
            raise _Failure(
                StorageOutcome.UNREACHABLE,
                f"{what}: {exc} ({reason}){hint}",
                reason=reason,
                error=type(exc).__name__,
            ) from exc
        raise exc

    def _classify_client_error(self, run: _Run, exc: ClientError, *, what: str) -> _Failure | None:
        status = _status(exc)
        headers: Mapping[str, str] = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
        code = str(exc.response.get("Error", {}).get("Code", status))
        body = run.error_bodies[-1] if run.error_bodies else b""
        server = headers.get("server", "")
        content_type = headers.get("content-type", "")
        if status == 403 and (
            DENIED_MARKER.encode() in body
            or ("envoy" in server.lower() and "xml" not in content_type.lower())
        ):
            return _Failure(
                StorageOutcome.MESH_DENIED,
                f"{what}: 403 {DENIED_MARKER} (server: {server or '?'}): the Istio sidecar of the "
                "storage service refused this workload's identity",
                status=403,
                server=server,
                error_code="RBAC",
            )
        if code in _CREDENTIAL_CODES:
            message = str(exc.response.get("Error", {}).get("Message", ""))
            return _Failure(
                StorageOutcome.INVALID_CREDENTIALS,
                f"{what}: {status} {code}: {message}",
                status=status,
                error_code=code,
            )
        if status == 404 or code in _NOT_FOUND_CODES:
            missing = "bucket" if code in ("NoSuchBucket", "404", "NotFound") and "bucket" in what else "key"
            return _Failure(
                StorageOutcome.NOT_FOUND,
                f"{what}: {status} {code} (no such {missing})",
                status=status,
                error_code=code,
            )
        if status in (502, 503, 504):
            return _Failure(
                StorageOutcome.UNREACHABLE,
                f"{what}: {status} from {server or 'the endpoint'}: {body[:120].decode(errors='replace')}",
                status=status,
                reason="upstream",
            )
        if status == 403:
            return None
        return _Failure(
            StorageOutcome.PROBE_ERROR,
            f"{what}: unexpected answer {status} {code}",
            status=status,
            error_code=code,
        )


# -- many models, one store ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StoreMember:
    """One InferenceService whose model lives in a store: its ``namespace/name`` and location."""

    target: str
    bucket: str
    key: str


def not_checked(*, target: str, reason: str, store: str | None = None) -> Observation:
    """A storage observation that judges nothing (``ok``: no failure is claimed), with why."""
    details: dict[str, Any] = {"inferenceservice": target}
    if store is not None:
        details["store"] = store
    return _not_checked(probe=PROBE, target=target, reason=reason, details=details)


class StoreProbe:
    """Probe one store with one credential for many models (see the module docstring).

    One run: credentials, DNS, connect and one ``HeadBucket`` (reachability and auth) for the
    whole group — a failure there is copied into every member's observation — then one
    ``ListObjectsV2`` of each member's prefix, with the same client, for its file list.
    Returns one :class:`Observation` per member (``target`` = the member's ``namespace/name``,
    ``details["store"]`` = ``store``), never raises.
    """

    name = PROBE

    def __init__(self, *, store: str, members: Sequence[StoreMember], resolution: Resolution,
                 endpoint_override: str | None = None, timeout: float = 5.0) -> None:
        if not members:
            raise ValueError("a store probe needs at least one member")
        self.store = store
        self.members = tuple(members)
        self.resolution = resolution
        self.endpoint_override = endpoint_override
        self.timeout = timeout
        first = self.members[0]
        self._group = StorageProbe(target=store, bucket=first.bucket, key="", resolution=resolution,
                                   endpoint_override=endpoint_override, timeout=timeout)

    def __repr__(self) -> str:
        return f"StoreProbe(store={self.store!r}, members={len(self.members)}, timeout={self.timeout})"

    def _member_probe(self, m: StoreMember) -> StorageProbe:
        return StorageProbe(target=m.target, bucket=m.bucket, key=m.key, resolution=self.resolution,
                            endpoint_override=self.endpoint_override, timeout=self.timeout)

    def _observation(self, m: StoreMember, group: _Run, own: _Run | None,
                     outcome: StorageOutcome) -> Observation:
        probe = self._member_probe(m)
        run = _Run(started=group.started)
        run.values.update(group.values)
        run.evidence.extend(group.evidence)
        run.details.update(group.details)
        if own is not None:
            run.values.update(own.values)
            run.evidence.extend(own.evidence)
            run.details.update(own.details)
        run.details.update(bucket=m.bucket, key=m.key, store=self.store, inferenceservice=m.target)
        return probe._observation(run, outcome)

    async def __call__(self) -> list[Observation]:
        group = _Run(started=time.time())
        try:
            return await self._run(group)
        except Exception as exc:  # never raise out of a probe
            safe = RuntimeError(self._group._scrub(f"{type(exc).__name__}: {exc}"))
            return [probe_error(probe=PROBE, target=m.target, started=group.started, exc=safe)
                    for m in self.members]

    async def _run(self, group: _Run) -> list[Observation]:
        base = self._group
        try:
            async with asyncio.timeout(self.timeout):
                url = await base._preflight(group)
        except TimeoutError:
            group.details["reason"] = "timeout"
            group.evidence.append(f"{group.step}: no answer within {self.timeout:g}s (timeout)")
            return [self._observation(m, group, None, StorageOutcome.UNREACHABLE) for m in self.members]
        except _Failure as failure:
            return self._failed(group, failure)
        if isinstance(url, StorageOutcome):
            return [self._observation(m, group, None, url) for m in self.members]
        group.step = f"S3 requests to {url}"
        t0 = time.perf_counter()
        async with base._client(group, url) as client:
            # One reachability + auth check for the whole store and credential.
            try:
                async with asyncio.timeout(self.timeout):
                    try:
                        await client.head_bucket(Bucket=base.bucket)
                    except ClientError as exc:
                        # A missing bucket is that member's problem, not the store's.
                        if _status(exc) != 404:
                            await base._raise_classified(group, client, exc, what=f"bucket {base.bucket}")
                    except Exception as exc:
                        await base._raise_classified(group, client, exc, what=f"bucket {base.bucket}")
            except TimeoutError:
                group.details["reason"] = "timeout"
                group.evidence.append(f"{group.step}: no answer within {self.timeout:g}s (timeout)")
                return [self._observation(m, group, None, StorageOutcome.UNREACHABLE) for m in self.members]
            except _Failure as failure:
                return self._failed(group, failure)
            group.values["auth_seconds"] = time.perf_counter() - t0
            out: list[Observation] = []
            for m in self.members:
                out.append(await self._member(group, client, m))
            return out

    def _failed(self, group: _Run, failure: _Failure) -> list[Observation]:
        group.evidence.append(failure.evidence)
        group.details.update(failure.details)
        return [self._observation(m, group, None, failure.outcome) for m in self.members]

    async def _member(self, group: _Run, client: Any, m: StoreMember) -> Observation:
        probe = self._member_probe(m)
        own = _Run(started=time.time(), error_bodies=group.error_bodies)
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                outcome = await probe._list_model(own, client)
        except TimeoutError:
            outcome = StorageOutcome.UNREACHABLE
            own.details["reason"] = "timeout"
            own.evidence.append(
                f"listing s3://{m.bucket}/{m.key}: no answer within {self.timeout:g}s (timeout)"
            )
        except _Failure as failure:
            outcome = failure.outcome
            own.evidence.append(failure.evidence)
            own.details.update(failure.details)
        except Exception as exc:
            safe = RuntimeError(probe._scrub(f"{type(exc).__name__}: {exc}"))
            return probe_error(probe=PROBE, target=m.target, started=own.started, exc=safe)
        own.values["list_seconds"] = time.perf_counter() - t0
        return self._observation(m, group, own, outcome)


_SESSION: AioSession | None = None


def _shared_session() -> AioSession:
    """One aiobotocore session per process: parsed service models and settings, no sockets.

    Creating a session re-reads botocore's JSON models (tens of ms of CPU); the daemon
    builds a new probe per run, so the session is shared. Clients (and their connection
    pools) are still created and closed per run.
    """
    global _SESSION
    if _SESSION is None:
        _SESSION = get_session()
    return _SESSION


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def storage_probe_for(
    *,
    target: str,
    storage_uri: str,
    resolution: Resolution,
    endpoint_override: str | None = None,
    timeout: float = 5.0,
) -> StorageProbe:
    """Build a :class:`StorageProbe` from an InferenceService's ``storageUri``."""
    bucket, key = parse_storage_uri(storage_uri)
    return StorageProbe(
        target=target,
        bucket=bucket,
        key=key,
        resolution=resolution,
        endpoint_override=endpoint_override,
        timeout=timeout,
    )


__all__: Sequence[str] = [
    "StorageOutcome", "StorageProbe", "StoreMember", "StoreProbe", "not_checked", "parse_storage_uri",
    "storage_probe_for",
]
