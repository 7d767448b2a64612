"""The storage probe for a model with KServe's storage spec: the storage-config key's credentials.

A model whose ``storage`` names a key of the namespace's ``storage-config`` Secret gets that key's
JSON from KServe (its ``access_key_id``/``secret_access_key``/``endpoint_url``), not its
ServiceAccount's secrets: the probe set must read that Secret (real values, over the API) and
probe the store with them, one group per key. Real sockets throughout, as in test_probe_set: the
sandbox API server with the daemon's informer, moto (auth on) behind a counting forwarder.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.s3 import S3Server
from tests.conftest import b64
from tests.integration.daemon_fixtures import eventually, serve
from tests.integration.test_probe_set import BUCKET, NS, CountingS3, Rig, isvc, rig, settings_for

__all__ = ["rig"]  # the fixture, shared with test_probe_set


def _spec_isvc(name: str, *, key: str, uri: str) -> dict[str, Any]:
    obj = isvc(name, uri=uri)
    obj["spec"]["predictor"]["model"]["storage"] = {"key": key, "parameters": {"type": "s3"}}
    return obj


async def test_a_storage_spec_is_probed_with_its_storage_config_key(rig: Rig) -> None:
    s3 = S3Server()
    await s3.start()
    try:
        creds = s3.seed(bucket=BUCKET, objects={"iris/model.joblib": b"m", "wine/model.joblib": b"w"})
        counting = CountingS3(s3.url)
        async with serve(counting.app()) as url:
            good = {"type": "s3", "access_key_id": creds.access_key_id,
                    "secret_access_key": creds.secret_access_key, "endpoint_url": url, "region": "us-east-1"}
            stale = {**good, "secret_access_key": "rotated-away-value"}
            await rig.create({"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"name": "storage-config", "namespace": NS},
                              "data": {"localMinIO": b64(json.dumps(good)), "stale": b64(json.dumps(stale))}})
            # The ServiceAccount lists no secret: KServe does not read it for a storage spec.
            await rig.create({"apiVersion": "v1", "kind": "ServiceAccount",
                              "metadata": {"name": "models-sa", "namespace": NS}})
            await rig.create(_spec_isvc("iris", key="localMinIO", uri=f"s3://{BUCKET}/iris"))
            await rig.create(_spec_isvc("wine", key="stale", uri=f"s3://{BUCKET}/wine"))
            await eventually(lambda: len(rig.informer.list_kind("InferenceService")) == 2
                             and rig.informer.get("Secret", NS, "storage-config") is not None, what="cached")
            probes = rig.probes(settings_for(secrets=(NS,)))
            # One store, one Secret, two keys: two credentials, two groups.
            assert len([s for s in probes.schedules() if s.probe == "storage"]) == 2
            observations = [o for o in await probes.run_once() if o.probe == "storage"]
    finally:
        await s3.stop()
    by_target = {o.target: o for o in observations}
    assert by_target[f"{NS}/iris"].outcome == "ok", by_target[f"{NS}/iris"].evidence
    assert by_target[f"{NS}/iris"].details["files"] == ["model.joblib"]
    assert by_target[f"{NS}/wine"].outcome == "invalid-credentials", by_target[f"{NS}/wine"].evidence
    assert {o.details["secret_name"] for o in observations} == {"storage-config"}
    text = repr([o.to_dict() for o in observations])
    assert creds.secret_access_key not in text and "rotated-away-value" not in text
