"""A disabled sidecar with no settings: the root cause, named first, with the policy as evidence.

The seed's attempts 5 and 6 (DESIGN.md row 4b): injection switched off while only the
pipelines' policy guarded the store, then an ALLOW rule for the model added — which cannot help
a pod that has no mesh identity. With the embedded settings (no desired state, so no policy is
"meant" to admit the model), the diagnosis must still name the sidecar as the one cause, the
store's policy as its evidence, and never send the operator to the policy first. The evidence
about each pod never contradicts itself either: a pod created before injection was turned off
still has its proxy and says so. Table-driven, pure.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from daemon.core.diagnosis import diagnose
from daemon.core.findings import Finding
from daemon.process.config_files import load_settings
from tests.unit import factories as fx

NO_SETTINGS = load_settings(None, environ={})
PRINCIPAL = "cluster.local/ns/user-example-com/sa/iris-sa"


def only_pipelines_policy(c: fx.Cluster) -> None:  # the seed's attempt 5: no rule for the model
    c.drop("AuthorizationPolicy", "kubeflow", "minio-user-namespace-access")
    fx.sidecar_disabled(c)


def policy_for_the_model(c: fx.Cluster) -> None:  # attempt 6: the rule is there, the sidecar is not
    fx.sidecar_disabled(c)


def old_pod_keeps_its_proxy(c: fx.Cluster) -> None:  # annotated, the running pod predates it
    fx.sidecar_disabled(c)
    c.pod["status"]["containerStatuses"] = [fx.container_status("kserve-container"),
                                            fx.container_status("istio-proxy")]


def no_settings(c: fx.Cluster) -> list[Finding]:
    return diagnose(world=c.world(), desired=[], drifts=[], observations=c.observations, settings=NO_SETTINGS,
                    now=fx.NOW)


@pytest.mark.parametrize(("breaker", "policy_evidence", "then_admit"), [
    (only_pipelines_policy, "AuthorizationPolicy kubeflow/seaweedfs-service guards", True),
    (policy_for_the_model, f"AuthorizationPolicy kubeflow/minio-user-namespace-access is meant to admit "
                           f"{PRINCIPAL}", False),
    (old_pod_keeps_its_proxy, f"is meant to admit {PRINCIPAL}", False),
])
def test_the_sidecar_is_the_one_cause_without_settings(breaker: Callable[[fx.Cluster], None],
                                                       policy_evidence: str, then_admit: bool) -> None:
    c = fx.healthy()
    breaker(c)
    findings = [f for f in no_settings(c) if f.severity.value != "info"]
    assert [f.code.value for f in findings] == ["sidecar-disabled-policy-unenforced"], [
        (f.code.value, f.evidence) for f in findings]
    (f,) = findings
    assert any(policy_evidence in e for e in f.evidence), f.evidence
    assert f.data == {"remove_annotation": {"target": fx.ISVC_REF, "key": "sidecar.istio.io/inject"}}
    assert f.remedy.startswith("kubectl annotate inferenceservice iris-model -n user-example-com "
                               "sidecar.istio.io/inject-")
    # attempt 5: once the sidecar is back, the pipelines' policy still refuses the model: said
    # as the rest of the fix, not as a second root cause
    assert (f"then admit {PRINCIPAL}" in f.remedy) is then_admit
    assert any("would still be refused" in e for e in f.evidence) is then_admit


@pytest.mark.parametrize(("containers", "expected", "absent"), [
    (["kserve-container", "queue-proxy"], "containers: storage-initializer, kserve-container, queue-proxy "
                                          "(no istio-proxy)", "still has istio-proxy"),
    (["kserve-container", "istio-proxy"], "still has istio-proxy (created before injection was turned off; "
                                          "a new pod gets none)", "(no istio-proxy)"),
])
def test_pod_evidence_never_contradicts_itself(containers: list[str], expected: str, absent: str) -> None:
    c = fx.healthy()
    fx.sidecar_disabled(c)
    c.pod["status"]["containerStatuses"] = [fx.container_status(n) for n in containers]
    (f,) = [f for f in fx.run(c).findings if f.code.value == "sidecar-disabled-policy-unenforced"]
    pod_lines = [e for e in f.evidence if e.startswith(f"pod {fx.POD} ")]
    assert len(pod_lines) == 1 and expected in pod_lines[0], f.evidence
    for e in f.evidence:
        assert absent not in e
        assert not ("istio-proxy," in e and "(no istio-proxy)" in e), e


def test_injection_on_and_the_policy_refusing_is_still_the_policy() -> None:
    """Not every refusal is the sidecar's: with injection on, the pipelines-only policy is the cause."""
    c = fx.healthy()
    fx.policy_missing(c)
    assert [f.code.value for f in no_settings(c) if f.severity.value != "info"] == ["mesh-policy-denies"]


def test_several_guarding_policies_are_all_named_in_the_fix() -> None:
    c = fx.healthy()
    only_pipelines_policy(c)
    c.put({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
           "metadata": {"name": "probe-access", "namespace": "kubeflow"},
           "spec": {"action": "ALLOW", "selector": {"matchLabels": {"app": "seaweedfs"}},
                    "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/x/sa/probe"]}}]}]}})
    (f,) = [f for f in no_settings(c) if f.severity.value != "info"]
    assert f.code.value == "sidecar-disabled-policy-unenforced"
    assert (f"then admit {PRINCIPAL} to the store (add an ALLOW rule to one of kubeflow/probe-access, "
            "kubeflow/seaweedfs-service") in f.remedy, f.remedy
