"""The stand-in storage-initializer on every scheme but s3, as KServe v0.20's fails on a loopback
sandbox (``sandbox.controllers.storage_initializer``, issue 20).

KServe's initializer downloads gs://, hf://, http(s)://, Azure, hdfs and pvc (mounted); the stand-in
used to answer every one of them with an unknown-scheme error KServe never prints. Here each is
run through :func:`download` itself: stores outside the sandbox fail as unreachable in KServe's
words (nothing outside resolves), a PVC that is not mounted is "Cannot locate source uri", an
unknown scheme keeps KServe's own two-line message, and an http(s) URL on a loopback host is
fetched for real from an aiohttp server (its 404/403/401 in KServe's ``check_http_response``
words; a 200 with ``application/octet-stream`` lands in the model directory).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from sandbox.controllers.storage_initializer import download, offline_failure
from tests.integration.daemon_fixtures import serve


async def _no_secret(namespace: str, name: str) -> None:
    raise AssertionError(f"no secret is read for this scheme ({namespace}/{name})")


OFFLINE = [
    # (uri, words the last line must hold)
    ("gs://kfserving-examples/models/onnx",
     ["Unexpected error during storage initialization: Timeout of 120.0s exceeded",
      "Failed to resolve 'storage.googleapis.com'"]),
    ("hf://google-bert/bert-base-uncased",
     ["Storage initialization failed: Failed to connect to HuggingFace endpoint "
      "'google-bert/bert-base-uncased'."]),
    ("https://raw.githubusercontent.com/openscoring/x/DecisionTreeIris.pmml",
     ["Storage initialization failed: Failed to connect to HTTP endpoint 'raw.githubusercontent.com'."]),
    ("https://kfserving.blob.core.windows.net/triton/simple_string/",
     ["Cannot connect to host kfserving.blob.core.windows.net:443"]),
    ("pvc://task-pv-claim/model", ["Cannot locate source uri /mnt/pvc/model for PVC"]),
    ("foo://bucket/model", ["are the current available storage type."]),
]


@pytest.mark.parametrize(("uri", "words"), OFFLINE, ids=[u for u, _ in OFFLINE])
async def test_a_store_outside_the_sandbox_fails_as_kserve_does(uri: str, words: list[str],
                                                                tmp_path: Path) -> None:
    result = await download(uri=uri, env=[], namespace="ns", read_secret=_no_secret, sidecar="127.0.0.1:9",
                            dest=tmp_path / "models")
    assert not result.ok
    assert "Initializing, args: (src_uri, dest_path)" in result.log.splitlines()[0]
    assert result.log.splitlines()[-len(offline_failure(uri)):] == offline_failure(uri)
    for w in words:
        assert w in result.log, (w, result.log)
    assert ("Cannot recognize storage type" in result.log) == uri.startswith("foo://"), result.log
    assert not (tmp_path / "models").exists()


@pytest_asyncio.fixture
async def http_store() -> AsyncIterator[str]:
    async def model(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "secret.pkl":
            return web.Response(status=403)
        if name == "token.pkl":
            return web.Response(status=401)
        if name == "page.pkl":
            return web.Response(text="<html/>", content_type="text/html")
        if name != "model.pkl":
            return web.Response(status=404)
        return web.Response(body=b"\x80\x04model", content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/models/{name}", model)
    async with serve(app) as url:
        yield f"{url}/models"


@pytest.mark.parametrize(("name", "words"), [
    ("missing.pkl", "Storage initialization failed: HTTP resource not found at '{url}'."),
    ("secret.pkl", "Storage initialization failed: HTTP access denied for '{url}'. Verify permissions."),
    ("token.pkl",
     "Storage initialization failed: HTTP authentication failed for '{url}'. Verify credentials."),
    ("page.pkl", "URI: {url} did not respond with 'Content-Type': 'application/octet-stream'"),
])
async def test_a_loopback_http_store_answers_for_real(http_store: str, name: str, words: str,
                                                      tmp_path: Path) -> None:
    url = f"{http_store}/{name}"
    result = await download(uri=url, env=[], namespace="ns", read_secret=_no_secret, sidecar="127.0.0.1:9",
                            dest=tmp_path / "models")
    assert not result.ok
    assert result.log.splitlines()[-1].endswith(words.format(url=url)), result.log


async def test_a_loopback_http_model_is_downloaded(http_store: str, tmp_path: Path) -> None:
    url = f"{http_store}/model.pkl"
    result = await download(uri=url, env=[], namespace="ns", read_secret=_no_secret, sidecar="127.0.0.1:9",
                            dest=tmp_path / "models")
    assert result.ok and result.files == ("model.pkl",), result.log
    assert (tmp_path / "models" / "model.pkl").read_bytes() == b"\x80\x04model"
    assert f"Successfully copied {url} to /mnt/models" in result.log
