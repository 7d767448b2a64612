"""The storage probe for a model with KServe's storage spec: the storage-config key's credentials.

A model whose ``storage`` names a key of the namespace's ``storage-config`` Secret gets that key's
JSON from KServe (its ``access_key_id``/``secret_access_key``/``endpoint_url``), not its
ServiceAccount's secrets: the probe set must read that Secret (real values, over the API) and
probe the store with them, one group per key. Real sockets throughout: the sandbox API server
with the real ``kubernetes_asyncio`` client and the daemon's informer, moto (auth on) for S3.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

from kubernetes_asyncio import client

from daemon.core.logs import Redactor
from daemon.core.settings import Settings
from daemon.kube.effects import Kube
from daemon.kube.informer import Informer
from daemon.process.config_files import load_settings
from daemon.process.probing import ObservationStore, ProbeSet
from sandbox.s3 import S3Server
from tests.conftest import b64, free_port
from tests.integration.daemon_fixtures import api_client, api_server, eventually, stop_task

NS = "team-spec"
BUCKET = "models"


def _settings() -> Settings:
    s = load_settings(None, environ={})
    p = s.probes
    return replace(
        s, models=(), secrets=replace(s.secrets, namespaces=(NS,)),
        probes=replace(
            p,
            # DNS: a port nothing answers on, a long period (not what this test looks at).
            dns=replace(p.dns, nameserver="127.0.0.1", port=free_port(), period_seconds=3600,
                        timeout_seconds=0.2, queries=1),
            predictor=replace(p.predictor, period_seconds=3600, timeout_seconds=2),
            storage=replace(p.storage, period_seconds=3600, timeout_seconds=5),
        ),
    )


def _isvc(name: str, *, key: str) -> dict[str, Any]:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"predictor": {"serviceAccountName": "models-sa", "model": {
                "modelFormat": {"name": "sklearn"}, "storageUri": f"s3://{BUCKET}/{name}",
                "storage": {"key": key, "parameters": {"type": "s3"}}}}}}


async def test_a_storage_spec_is_probed_with_its_storage_config_key() -> None:
    s3 = S3Server()
    await s3.start()
    try:
        creds = s3.seed(bucket=BUCKET, objects={"iris/model.joblib": b"m", "wine/model.joblib": b"w"})
        good = {"type": "s3", "access_key_id": creds.access_key_id,
                "secret_access_key": creds.secret_access_key, "endpoint_url": s3.url, "region": "us-east-1"}
        stale = {**good, "secret_access_key": "rotated-away-value"}
        async with api_server() as server, api_client(server.url) as api:
            core = client.CoreV1Api(api)
            await core.create_namespace({"metadata": {"name": NS}})
            await core.create_namespaced_secret(NS, {
                "metadata": {"name": "storage-config"},
                "data": {"localMinIO": b64(json.dumps(good)), "stale": b64(json.dumps(stale))}})
            # The ServiceAccount lists no secret: KServe does not read it for a storage spec.
            await core.create_namespaced_service_account(NS, {"metadata": {"name": "models-sa"}})
            custom = client.CustomObjectsApi(api)
            for name, key in (("iris", "localMinIO"), ("wine", "stale")):
                await custom.create_namespaced_custom_object("serving.kserve.io", "v1beta1", NS,
                                                             "inferenceservices", _isvc(name, key=key))
            kube = Kube(api, redactor=Redactor())
            informer = Informer(kube)
            task = asyncio.create_task(informer.run())
            try:
                await informer.wait_synced()
                await eventually(lambda: len(informer.list_kind("InferenceService")) == 2
                                 and informer.get("Secret", NS, "storage-config") is not None, what="cached")
                probes = ProbeSet(settings=_settings(), kube=kube, informer=informer, api=api,
                                  store=ObservationStore(), redactor=Redactor(), debounce=0.05)
                # One store, one Secret, two keys: two credentials, two groups.
                assert len([s for s in probes.schedules() if s.probe == "storage"]) == 2
                observations = [o for o in await probes.run_once() if o.probe == "storage"]
            finally:
                await stop_task(task)
    finally:
        await s3.stop()
    by_target = {o.target: o for o in observations}
    assert by_target[f"{NS}/iris"].outcome == "ok", by_target[f"{NS}/iris"].evidence
    assert by_target[f"{NS}/iris"].details["files"] == ["model.joblib"]
    assert by_target[f"{NS}/wine"].outcome == "invalid-credentials", by_target[f"{NS}/wine"].evidence
    assert {o.details["secret_name"] for o in observations} == {"storage-config"}
    text = repr([o.to_dict() for o in observations])
    assert creds.secret_access_key not in text and "rotated-away-value" not in text
