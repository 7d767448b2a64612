"""KServe's storage-initializer: which credentials a predictor pod gets, and the download.

Two halves, as in KServe itself:

* :func:`resolve_credentials` is what KServe's pod webhook does when the predictor pod is
  created (pure, table-tested): read the live ``inferenceservice-config`` ConfigMap's
  ``credentials`` JSON for the annotation key that names the storage secret (kustomize:
  ``serving.kserve.io/storageSecretName``, Helm: ``serving.kserve.io/secretName``) and for the
  key names (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` by default). When the
  InferenceService carries that annotation, the named secret is the only candidate (the seed's
  attempt 3: a good secret on the ServiceAccount did not help while the annotation pointed at
  ``mlpipeline-minio-artifact``); otherwise the ServiceAccount's ``.secrets`` are walked and
  those without the secret-key name are skipped silently. The result is the init container's
  env: ``secretKeyRef`` for the keys, ``S3_ENDPOINT``/``AWS_ENDPOINT_URL``/``S3_USE_HTTPS``/
  ``AWS_REGION``/``S3_VERIFY_SSL`` from the ``serving.kserve.io/s3-*`` annotations (secret's,
  then the ServiceAccount's, then the ConfigMap's defaults). No secret → no credential env.
* :func:`download` is the container at run time: reads that env (the ``secretKeyRef`` values
  through the API), lists and fetches the objects under the ``storageUri`` with aiobotocore —
  sent to the pod's mesh sidecar, which stands for ``minio-service.kubeflow:9000`` — and names
  files the way KServe's ``Storage._download_s3`` does (an exact-key match keeps the last path
  segment, so ``.../iris/model`` lands as ``model``; other keys keep what follows the prefix).
  Failures come back as the log lines the seed read (``NoCredentialsError``,
  ``EndpointConnectionError``, the mesh's ``403 RBAC: access denied``), never as exceptions.
  Any other scheme (:func:`offline_failure`) fails as KServe v0.20's initializer does where
  nothing outside the cluster resolves — ``gs://``, ``hf://``, ``https://`` and Azure unreachable,
  ``pvc://`` not mounted, an unknown scheme not recognised — in its own words; an ``http(s)://``
  URL on a loopback host is fetched for real (its 401/403/404 in KServe's words).

:func:`resolve_credentials` parallels :func:`probes.credentials.resolve` by design: the
sandbox may not import ``probes`` or ``daemon`` (``tests/unit/test_import_direction.py``),
and the stand-in must decide as KServe does independently of the code it tests, or a shared
mistake would pass every test.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

Obj = dict[str, Any]
DEFAULT_ANNOTATION = "serving.kserve.io/storageSecretName"
S3_ANNOTATIONS = {
    "serving.kserve.io/s3-endpoint": "S3_ENDPOINT",
    "serving.kserve.io/s3-usehttps": "S3_USE_HTTPS",
    "serving.kserve.io/s3-region": "AWS_REGION",
    "serving.kserve.io/s3-verifyssl": "S3_VERIFY_SSL",
}
_CONFIG_S3 = {
    "s3Endpoint": "S3_ENDPOINT",
    "s3UseHttps": "S3_USE_HTTPS",
    "s3Region": "AWS_REGION",
    "s3VerifySSL": "S3_VERIFY_SSL",
}


@dataclass(frozen=True, kw_only=True)
class CredentialsConfig:
    """The ``credentials`` JSON of ``inferenceservice-config`` (the keys this module reads)."""

    annotation: str = DEFAULT_ANNOTATION
    access_key_name: str = "AWS_ACCESS_KEY_ID"
    secret_key_name: str = "AWS_SECRET_ACCESS_KEY"
    s3_defaults: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_configmap(cls, cm: Obj | None) -> CredentialsConfig:
        try:
            raw = json.loads(((cm or {}).get("data") or {}).get("credentials") or "{}")
        except ValueError:
            raw = {}
        s3 = raw.get("s3") or {}
        defaults = tuple((env, str(s3[k])) for k, env in _CONFIG_S3.items() if s3.get(k))
        return cls(
            annotation=str(raw.get("storageSecretNameAnnotation") or DEFAULT_ANNOTATION),
            access_key_name=str(s3.get("s3AccessKeyIDName") or "AWS_ACCESS_KEY_ID"),
            secret_key_name=str(s3.get("s3SecretAccessKeyName") or "AWS_SECRET_ACCESS_KEY"),
            s3_defaults=defaults,
        )


def resolve_credentials(
    *,
    annotations: Mapping[str, str],
    service_account: Obj | None,
    secrets: Mapping[str, Obj],
    config: CredentialsConfig,
) -> list[Obj]:
    """The storage-initializer's env for one pod (see module docstring). Pure."""
    named = annotations.get(config.annotation)
    if named is not None:
        candidates = [named]
    else:
        candidates = [
            str(r.get("name")) for r in (service_account or {}).get("secrets") or [] if r.get("name")
        ]
    chosen: Obj | None = None
    for name in candidates:
        secret = secrets.get(name)
        if secret is not None and config.secret_key_name in (secret.get("data") or {}):
            chosen = secret
            break
    settings: dict[str, str] = dict(config.s3_defaults)
    sa_ann = ((service_account or {}).get("metadata") or {}).get("annotations") or {}
    sources = [sa_ann, ((chosen or {}).get("metadata") or {}).get("annotations") or {}]
    for ann in sources:
        for key, env in S3_ANNOTATIONS.items():
            if ann.get(key):
                settings[env] = str(ann[key])
    env_list: list[Obj] = []
    if chosen is not None:
        name = chosen["metadata"]["name"]
        for env_name, key in (
            ("AWS_ACCESS_KEY_ID", config.access_key_name),
            ("AWS_SECRET_ACCESS_KEY", config.secret_key_name),
        ):
            env_list.append({"name": env_name, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
    if "S3_ENDPOINT" in settings:
        scheme = "http" if settings.get("S3_USE_HTTPS", "1") == "0" else "https"
        env_list.append({"name": "AWS_ENDPOINT_URL", "value": f"{scheme}://{settings['S3_ENDPOINT']}"})
    env_list.extend({"name": k, "value": v} for k, v in sorted(settings.items()))
    return env_list


def target_name(key: str, prefix: str) -> str:
    """Where KServe's downloader writes object ``key`` fetched for ``prefix`` (pure)."""
    if key == prefix:
        return key.rsplit("/", 1)[-1]
    return key.replace(prefix, "", 1).lstrip("/")


@dataclass(frozen=True, kw_only=True)
class Result:
    ok: bool
    log: str
    files: tuple[str, ...] = ()


SecretReader = Callable[[str, str], Awaitable[Obj | None]]
"""(namespace, name) -> the raw Secret, or None when it does not exist."""


async def download(
    *,
    uri: str,
    env: list[Obj],
    namespace: str,
    read_secret: SecretReader,
    sidecar: str,
    dest: Path,
    timeout: float = 5.0,
) -> Result:
    """Run the storage-initializer for one pod; ``sidecar`` is the pod's egress ``host:port``."""
    values: dict[str, str] = {}
    for e in env:
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref is None:
            values[str(e["name"])] = str(e.get("value", ""))
            continue
        secret = await read_secret(namespace, str(ref["name"]))
        raw = ((secret or {}).get("data") or {}).get(ref["key"])
        if raw is not None:
            values[str(e["name"])] = base64.b64decode(raw).decode()
    head = f"INFO:root:Initializing, args: src_uri [{uri}] dest_path [/mnt/models]\n"
    if not uri.startswith("s3://"):
        return await _elsewhere(uri, dest=dest, timeout=timeout)
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    prefix = prefix.strip("/")
    logical = values.get("AWS_ENDPOINT_URL", "https://s3.amazonaws.com")
    query = urllib.parse.urlencode({"prefix": prefix, "encoding-type": "url"})
    where = f"{logical}/{bucket}?{query}"
    if not values.get("AWS_ACCESS_KEY_ID") or not values.get("AWS_SECRET_ACCESS_KEY"):
        return Result(
            ok=False, log=head + "botocore.exceptions.NoCredentialsError: Unable to locate credentials"
        )
    cfg = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"total_max_attempts": 1},
        s3={"addressing_style": "path"},
    )
    session = get_session()
    files: list[str] = []
    try:
        async with session.create_client(
            "s3",
            region_name=values.get("AWS_REGION", "us-east-1"),
            endpoint_url=f"http://{sidecar}",
            aws_access_key_id=values["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
            config=cfg,
        ) as s3:
            listing = await s3.list_objects(Bucket=bucket, Prefix=prefix)
            keys = [str(o["Key"]) for o in listing.get("Contents") or [] if not str(o["Key"]).endswith("/")]
            if not keys:
                return Result(
                    ok=False, log=head + f"RuntimeError: Failed to fetch model. No model found in {prefix}."
                )
            for key in keys:
                name = target_name(key, prefix)
                obj = await s3.get_object(Bucket=bucket, Key=key)
                async with obj["Body"] as body:
                    data = await body.read()
                # Small files on local disk; a thread would cost more than the write.
                _write(dest / name, data)
                files.append(name)
    except ClientError as exc:
        return Result(ok=False, log=head + _client_error(exc))
    except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError):
        # Any failure to get an HTTP answer: reset by a STRICT-mTLS peer, refused, timed out.
        return Result(
            ok=False,
            log=head + "botocore.exceptions.EndpointConnectionError: "
            f'Could not connect to the endpoint URL: "{where}"',
        )
    lines = [f"INFO:root:Downloaded object {name} to /mnt/models/{name}" for name in files]
    return Result(
        ok=True,
        log=head + "\n".join(lines) + f"\nINFO:root:Successfully copied {uri} to /mnt/models",
        files=tuple(files),
    )


# -- the other schemes: where a loopback sandbox has no route, as KServe v0.20 reports it ----------

_ENTRY = "[initializer-entrypoint:<module>()]"
_RAISED = "[storage_errors.py:raise_storage_error()]"
_UNEXPECTED = "Unexpected error during storage initialization: "
_FAILED = "Storage initialization failed: "
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _line(level: str, where: str, message: str) -> str:
    """One line in kserve_storage's log format (``KSERVE_STORAGE_LOGGER_FORMAT``, time left out)."""
    return f"1 storage.initializer {level} {where} {message}"


def _unresolved(host: str) -> str:
    """urllib3's words when ``host`` does not resolve (the sandbox's pods have no outside DNS)."""
    return (f"HTTPSConnectionPool(host='{host}', port=443): Max retries exceeded (Caused by "
            f"NameResolutionError(\"<urllib3.connection.HTTPSConnection object>: Failed to resolve "
            f"'{host}' ([Errno -3] Temporary failure in name resolution)\"))")


def _host_of(uri: str) -> str:
    return urllib.parse.urlsplit(uri).hostname or ""


def offline_failure(uri: str) -> list[str]:
    """The log lines KServe v0.20's storage-initializer ends with for ``uri`` when nothing outside
    the cluster resolves (as on the loopback sandbox), per scheme. Pure.

    What its ``kserve_storage.Storage.download`` does there (python/storage/kserve_storage of
    kserve/kserve v0.20.0): ``gs://`` falls back to an anonymous client and google-api-core retries
    the listing until its 120 s deadline (a ``RetryError`` no handler catches); ``hf://`` gets
    huggingface_hub's ``LocalEntryNotFoundError``, which ``raise_storage_error`` words as a
    connection failure; ``http(s)://`` a requests ``ConnectionError`` (the same); Azure Blob URLs
    aiohttp's connector error, uncaught; ``pvc://`` is mounted at ``/mnt/pvc`` by the pod webhook,
    and without the claim the path is not there; hdfs:// needs its credentials directory; any
    other scheme is not one it recognises. (``oci://`` is a modelcar image, not a download: not
    modelled here.)
    """
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "gs":
        bucket, _, prefix = uri[len("gs://"):].partition("/")
        cause = _unresolved("storage.googleapis.com").replace(
            "Max retries exceeded", f"Max retries exceeded with url: /storage/v1/b/{bucket}/o?"
            f"projection=noAcl&prefix={urllib.parse.quote(prefix.rstrip('/') + '/', safe='')}")
        return [_line("ERROR", _ENTRY, f"{_UNEXPECTED}Timeout of 120.0s exceeded, last exception: {cause}")]
    if scheme == "hf":
        repo = uri[len("hf://"):].split(":", 1)[0]
        words = ("An error happened while trying to locate the files on the Hub and we cannot find the "
                 "appropriate snapshot folder for the specified revision on the local disk. Please check "
                 "your internet connection and try again.")
        return [
            _line("ERROR", _RAISED, f"HuggingFace error for {uri}: {words}"),
            _line("ERROR", _ENTRY, f"{_FAILED}Failed to connect to HuggingFace endpoint '{repo}'."),
        ]
    if scheme in ("http", "https") and re.search(r"\.blob\.core\.windows\.net/", uri):
        host = _host_of(uri)
        return [_line("ERROR", _ENTRY, f"{_UNEXPECTED}Cannot connect to host {host}:443 ssl:default "
                                       "[Name or service not known]")]
    if scheme in ("http", "https"):
        host = _host_of(uri)
        return [
            _line("ERROR", _RAISED, f"HTTP error for {uri}: {_unresolved(host)}"),
            _line("ERROR", _ENTRY, f"{_FAILED}Failed to connect to HTTP endpoint '{host}'."),
        ]
    if scheme == "pvc":
        path = "/mnt/pvc/" + uri[len("pvc://"):].partition("/")[2]
        return [_line("ERROR", _ENTRY, f"{_UNEXPECTED}Cannot locate source uri {path} for PVC")]
    if scheme in ("hdfs", "webhdfs"):
        return [_line("ERROR", _ENTRY, f"{_UNEXPECTED}[Errno 2] No such file or directory: "
                                       "'/var/secrets/kserve-hdfscreds'")]
    return [
        _line("ERROR", _ENTRY, f"{_UNEXPECTED}Cannot recognize storage type for {uri}"),
        "'gs://', 's3://', 'file://', 'http(s)://' and 'hf://' are the current available storage type.",
    ]


async def _fetch_http(uri: str, *, dest: Path, timeout: float) -> list[str] | None:
    """``http(s)://`` to a loopback host, fetched for real as KServe's ``_download_from_uri`` does
    (its status checks and its words); None when it succeeded (the file is in ``dest``)."""
    name = Path(urllib.parse.urlsplit(uri).path).name
    if not name:
        return [_line("ERROR", _ENTRY, f"{_FAILED}No filename contained in URI: {uri}")]
    words = {401: f"HTTP authentication failed for '{uri}'. Verify credentials.",
             403: f"HTTP access denied for '{uri}'. Verify permissions.",
             404: f"HTTP resource not found at '{uri}'."}
    try:
        async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
                    http.get(uri) as resp):
            if resp.status != 200:
                other = f"HTTP request to '{uri}' failed with status code {resp.status}."
                text = words.get(resp.status, other)
                return [_line("ERROR", _ENTRY, f"{_FAILED}{text}")]
            if not resp.headers.get("Content-Type", "").startswith("application/octet-stream"):
                return [_line("ERROR", _ENTRY, f"{_FAILED}URI: {uri} did not respond with 'Content-Type': "
                                               "'application/octet-stream'")]
            data = await resp.read()
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        host = _host_of(uri)
        return [
            _line("ERROR", _RAISED, f"HTTP error for {uri}: {exc}"),
            _line("ERROR", _ENTRY, f"{_FAILED}Failed to connect to HTTP endpoint '{host}'."),
        ]
    _write(dest / name, data)
    return None


async def _elsewhere(uri: str, *, dest: Path, timeout: float) -> Result:
    """Any scheme but s3: a loopback HTTP server is fetched; every other store fails offline."""
    head = _line("INFO", _ENTRY, f"Initializing, args: (src_uri, dest_path): [('{uri}', '/mnt/models')]")
    host = _host_of(uri) if uri.lower().startswith(("http://", "https://")) else ""
    lines = await _fetch_http(uri, dest=dest, timeout=timeout) if host in _LOOPBACK else offline_failure(uri)
    if lines is None:
        name = Path(urllib.parse.urlsplit(uri).path).name
        done = _line("INFO", "[kserve_storage.py:download()]", f"Successfully copied {uri} to /mnt/models")
        return Result(ok=True, log="\n".join([head, done]), files=(name,))
    return Result(ok=False, log="\n".join([head, *lines]))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _client_error(exc: ClientError) -> str:
    resp: Any = exc.response or {}
    err = resp.get("Error") or {}
    status = (resp.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    headers = (resp.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}
    line = f"botocore.exceptions.ClientError: {exc}"
    if status == 403 and str(headers.get("server", "")).lower() == "envoy":
        # The mesh's local reply is plain text; botocore only shows "Forbidden".
        line += "\nRBAC: access denied"
    elif err.get("Code") and err.get("Code") != str(status):
        line += f" ({err.get('Code')})"
    return line
