"""``diagnose()`` on storage-spec models beyond the corpus's cases (pure: World in, findings out).

The corpus (tests/corpus/c41-c47) holds the shapes KServe's docs show, checked against KServe
itself; these rows vary one thing each from its cases: the Deployment's refusal as evidence, a
namespace whose Secrets the daemon may not read, a store the mesh refuses, a pod that shows the
missing credentials, a type the daemon does not judge, KServe's controller refusing a path beside
a storageUri.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any

import pytest

from daemon.core.diagnosis import diagnose
from daemon.core.findings import Finding
from daemon.core.settings import SecretAccessSettings, Settings
from daemon.core.world import World
from probes.observation import Observation
from tests.corpus import Case, load, shared_objects

CASES = {c.name: c for c in load()}
NOW = 1_764_441_000.0
READABLE = Settings(secrets=SecretAccessSettings(namespaces=("*",)))
OVERRIDDEN = replace(READABLE, probes=replace(READABLE.probes, storage=replace(
    READABLE.probes.storage, endpoint_overrides={"minio.c42-store:9000": "127.0.0.1:19000"})))
_SECRET_VALUE = "minioadmin-secret"


def _objects(case: str) -> list[dict[str, Any]]:
    return copy.deepcopy([*shared_objects(), *CASES[case].objects])


def _isvc(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == "InferenceService")


def _refused_deployment(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    m = _isvc(objs)["metadata"]
    return [*objs, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"{m['name']}-predictor", "namespace": m["namespace"],
                     "labels": {"serving.kserve.io/inferenceservice": m["name"], "component": "predictor"}},
        "status": {"conditions": [{
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": 'admission webhook "inferenceservice.kserve-webhook-server.pod-mutator" denied '
                       "the request: specified storage key localMinIO not found in storage secret "
                       "storage-config"}]},
    }]


def _denying_policy(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [*objs, {
        "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "pipelines-only", "namespace": "c42-store"},
        "spec": {"action": "ALLOW", "selector": {"matchLabels": {"app": "minio"}},
                 "rules": [{"from": [{"source": {
                     "principals": ["cluster.local/ns/kubeflow/sa/ml-pipeline"]}}]}]},
    }]


def _failing_pod(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    m = _isvc(objs)["metadata"]
    return [*objs, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{m['name']}-predictor-0", "namespace": m["namespace"],
                     "labels": {"serving.kserve.io/inferenceservice": m["name"]}},
        "status": {"initContainerStatuses": [{
            "name": "storage-initializer", "ready": False, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "Error", "exitCode": 1,
                                         "message": "botocore.exceptions.NoCredentialsError: Unable to "
                                                    "locate credentials"}}}]},
    }]


def _storage(objs: list[dict[str, Any]], storage: dict[str, Any],
             uri: str | None = None) -> list[dict[str, Any]]:
    model = _isvc(objs)["spec"]["predictor"]["model"]
    model["storage"] = storage
    if uri is not None:
        model["storageUri"] = uri
    return objs


def _endpoint_in_the_json_only(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    del _isvc(objs)["spec"]["predictor"]["model"]["storage"]["parameters"]["endpoint_url"]
    return objs


@dataclass(frozen=True)
class Row:
    id: str
    case: str
    change: Any
    expect: tuple[tuple[str, str], ...]
    evidence: str = ""
    """Text one finding's evidence must hold."""
    settings: Settings = READABLE
    probe: str | None = None
    """A fresh storage probe outcome for the model (it read the storage-config key)."""
    probe_details: tuple[tuple[str, str], ...] = ()
    probe_evidence: str = ""


ROWS = [
    Row("the Deployment's refusal is evidence", "c44-storage-spec-key-missing", _refused_deployment,
        (("storage-credentials-missing", "critical"),), evidence="ReplicaFailure admission webhook"),
    # The daemon's World holds no Secret of a namespace it may not read.
    Row("secrets out of reach: not checked, never missing", "c42-storage-spec-uri-key",
        lambda o: [x for x in o if x["kind"] != "Secret"],
        (("not-checked", "info"),), evidence="no access to secrets in c42-storage-spec-uri-key",
        settings=Settings()),
    Row("the store named by the parameters is judged by the mesh", "c42-storage-spec-uri-key",
        _denying_policy,
        (("mesh-policy-denies", "critical"),), evidence="c42-store"),
    Row("a pod without credentials makes the missing default key critical", "c46-storage-spec-default-typed",
        _failing_pod, (("storage-credentials-missing", "critical"),), evidence="default_s3"),
    Row("hdfs is not judged", "c41-storage-spec-s3",
        lambda o: _storage(o, {"key": "localMinIO", "path": "models/iris", "parameters": {"type": "hdfs"}}),
        (("not-checked", "info"),), evidence="storage type hdfs"),
    Row("a path beside a storageUri: KServe's controller refuses", "c41-storage-spec-s3",
        lambda o: _storage(o, {"key": "localMinIO", "path": "iris",
                               "parameters": {"type": "s3", "bucket": "m"}}, uri="s3://models/iris"),
        (("storage-credentials-missing", "critical"),),
        evidence="KServe's controller fails the predictor: must provide only one of storageUri and "
        "storage.path"),
    Row("no storage spec source: nothing downloaded, nothing judged", "c41-storage-spec-s3",
        lambda o: _storage(o, {"key": "localMinIO"}), ()),
    Row("a pvc:// storageUri is a claim, whatever the storage spec", "c41-storage-spec-s3",
        lambda o: _storage(o, {"key": "localMinIO"}, uri="pvc://missing-claim/iris"),
        (("pvc-not-bound", "critical"),), evidence="PersistentVolumeClaim c41-storage-spec-s3/missing-claim"),
    Row("the probe finds no key pair in the key's JSON", "c42-storage-spec-uri-key", lambda o: o,
        (("storage-credentials-missing", "warning"),), evidence="storage probe: no-credentials",
        probe="no-credentials"),
    Row("the store refuses the key's credentials", "c42-storage-spec-uri-key", lambda o: o,
        (("storage-credentials-missing", "critical"),), evidence="storage probe: invalid-credentials",
        probe="invalid-credentials"),
    Row("the probe judges a key whose type the diagnosis cannot read", "c45-storage-spec-default-key",
        lambda o: o, (("not-checked", "info"), ("storage-credentials-missing", "critical")),
        evidence="key default of Secret c45-storage-spec-default-key/storage-config",
        probe="invalid-credentials"),
    Row("no key's JSON: the probe's no-credentials is the same fact, still a warning",
        "c46-storage-spec-default-typed", lambda o: o, (("storage-credentials-missing", "warning"),),
        evidence="storage probe: no-credentials", probe="no-credentials"),
    Row("the endpoint only in the JSON: not checked statically", "c42-storage-spec-uri-key",
        _endpoint_in_the_json_only, (("not-checked", "info"),), evidence="its endpoint_url is inside"),
    # Outside the cluster (check from a laptop) the store's in-cluster name does not resolve: the
    # store the probe took from the JSON is the Service, so that is "not checked", not a store down.
    Row("the probe's endpoint places the store", "c42-storage-spec-uri-key", _endpoint_in_the_json_only,
        (("not-checked", "info"),), evidence="does not resolve where the probe runs", probe="unreachable",
        probe_details=(("endpoint", "http://minio.c42-store:9000"), ("reason", "dns")),
        probe_evidence="lookup minio.c42-store: Name or service not known (dns)"),
    Row("an endpoint override is not the store's own name", "c42-storage-spec-uri-key",
        _endpoint_in_the_json_only, (("not-checked", "info"),), evidence="its endpoint_url is inside",
        settings=OVERRIDDEN, probe="ok", probe_details=(("endpoint", "http://127.0.0.1:19000"),)),
    Row("the probe reached the store with the key's credentials: nothing to add", "c42-storage-spec-uri-key",
        lambda o: o, (), probe="ok"),
]


def _diagnose(objs: list[dict[str, Any]], settings: Settings,
              observations: list[Observation]) -> list[Finding]:
    return diagnose(world=World.build(objs), desired=[], drifts=[], observations=observations,
                    settings=settings, now=NOW)


def _probe(case: Case, row: Row) -> Observation:
    outcome = row.probe or "ok"
    bad = outcome != "ok"
    return Observation(probe="storage", target=case.key, started=NOW - 2, finished=NOW - 1, ok=not bad,
                       outcome=outcome, evidence=(row.probe_evidence or f"S3 says {outcome}",) if bad else (),
                       details={"inferenceservice": case.key, "secret_name": "storage-config",
                                **dict(row.probe_details)})



@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_storage_spec_findings(row: Row) -> None:
    case: Case = CASES[row.case]
    observations = [_probe(case, row)] if row.probe else []
    findings = [f for f in _diagnose(row.change(_objects(row.case)), row.settings, observations)
                if f.inferenceservice == case.key]
    assert tuple(sorted((f.code.value, f.severity.value) for f in findings)) == row.expect, [
        (f.code.value, f.severity.value, f.evidence) for f in findings]
    if row.evidence:
        assert any(row.evidence in e for f in findings for e in f.evidence), [f.evidence for f in findings]
    for f in findings:
        assert _SECRET_VALUE not in repr(f.to_dict())
        assert f.remedy and f.explanation
