"""Findings before a pod tries: the seed's starting world, its InferenceService only desired.

On the cluster the seed started from (sandbox.world.seed_objects: no runtime, the pipelines'
MinIO secret, the pipeline-only AuthorizationPolicy) with the desired state not yet applied,
``diagnose()`` names the InferenceService's real causes at once: no runtime for its format,
the storage secret in the pipelines' shape (to be derived), the policy that refuses
``iris-sa``; each claims the drift it explains, so none of it is also reported as ``drift``.
"""

from __future__ import annotations

from daemon.core.diagnosis import diagnose
from daemon.core.diff import diff
from daemon.core.findings import Finding, Severity
from daemon.core.objects import ObjectRef
from daemon.core.world import World
from sandbox.world import seed_objects
from tests.unit import factories as fx


def _start() -> list[Finding]:
    world = World.build(seed_objects(access_key_id="AKIAEXAMPLEKEY", secret_access_key="example/secret"))
    desired = fx.desired_state().manifests_for(world)
    drifts = [diff(d, world.get(ObjectRef.of(d).kind, ObjectRef.of(d).namespace, ObjectRef.of(d).name))
              for d in desired]
    return diagnose(world=world, desired=desired, drifts=drifts, observations=[], settings=fx.settings(),
                    now=fx.NOW)


def test_the_desired_inferenceservice_gets_its_root_causes_before_it_exists() -> None:
    findings = _start()
    by_code = {f.code.value: f for f in findings}
    assert set(by_code) == {"no-serving-runtime", "storage-credentials-missing", "mesh-policy-denies"}, [
        (f.code.value, str(f.subject)) for f in findings
    ]
    assert all(f.severity is Severity.CRITICAL and f.inferenceservice == "user-example-com/iris-model"
               for f in findings)
    assert by_code["no-serving-runtime"].data["apply"][0].name == "iris-fastapi-runtime"
    cred = by_code["storage-credentials-missing"]
    assert [r.name for r in cred.data["derive"]] == ["minio-s3-secret"]
    assert any("['accesskey', 'secretkey']" in e for e in cred.evidence)
    mesh = by_code["mesh-policy-denies"]
    assert any("cluster.local/ns/user-example-com/sa/iris-sa" in e and "denied" in e for e in mesh.evidence)
    assert mesh.data["apply"][0].name == "minio-user-namespace-access"


def test_drift_a_cause_claims_is_not_reported_again() -> None:
    assert [f for f in _start() if f.code.value == "drift"] == []
