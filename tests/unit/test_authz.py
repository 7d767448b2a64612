"""authz.evaluate(): Istio's AuthorizationPolicy order and matching, statically."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from daemon.core.authz import evaluate, match_value

IRIS = "cluster.local/ns/user-example-com/sa/iris-sa"
PIPELINE = "cluster.local/ns/kubeflow/sa/ml-pipeline"
SEL = {"matchLabels": {"app": "seaweedfs"}}


def pol(name: str, spec: dict[str, Any], ns: str = "kubeflow") -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def src(**source: Any) -> dict[str, Any]:
    return {"from": [{"source": source}]}


PIPELINE_ONLY = pol(
    "seaweedfs-service",
    {"action": "ALLOW", "selector": SEL, "rules": [src(principals=[PIPELINE, PIPELINE + "-ui"])]},
)
FIX = pol(
    "minio-user-namespace-access", {"action": "ALLOW", "selector": SEL, "rules": [src(principals=[IRIS])]}
)


@dataclass(frozen=True)
class Case:
    name: str
    policies: list[dict[str, Any]]
    allowed: bool
    deciding: str | None
    reason: str
    principal: str | None = IRIS
    source_namespace: str | None = "user-example-com"
    labels: tuple[tuple[str, str], ...] = (("app", "seaweedfs"),)


CASES = [
    Case("no policies", [], True, None, "no ALLOW policy applies"),
    Case(
        "seed 4: pipeline-only policy denies iris-sa",
        [PIPELINE_ONLY],
        False,
        "kubeflow/seaweedfs-service",
        "none of their rules admits " + IRIS,
    ),
    Case(
        "pipeline principal is admitted",
        [PIPELINE_ONLY],
        True,
        "kubeflow/seaweedfs-service",
        "rule 0 admits",
        principal=PIPELINE,
        source_namespace="kubeflow",
    ),
    Case(
        "seed fix: the principal rule admits iris-sa",
        [PIPELINE_ONLY, FIX],
        True,
        "kubeflow/minio-user-namespace-access",
        "ALLOW policy kubeflow/minio-user-namespace-access rule 0",
    ),
    Case(
        "principal-only fix does not admit another SA of the namespace",
        [PIPELINE_ONLY, FIX],
        False,
        None,
        "none of their rules",
        principal="cluster.local/ns/user-example-com/sa/default",
    ),
    Case(
        "4b: no sidecar, no identity: a principal rule cannot match",
        [FIX],
        False,
        "kubeflow/minio-user-namespace-access",
        "without a mesh identity",
        principal=None,
    ),
    Case(
        "4b: no identity does not match a namespace rule either",
        [pol("ns", {"selector": SEL, "rules": [src(namespaces=["user-example-com"])]})],
        False,
        "kubeflow/ns",
        "none of their rules",
        principal=None,
        source_namespace=None,
    ),
    Case(
        "selector not matching the workload: policy ignored",
        [
            pol(
                "other",
                {"selector": {"matchLabels": {"app": "minio"}}, "rules": [src(principals=[PIPELINE])]},
            )
        ],
        True,
        None,
        "no ALLOW policy applies",
    ),
    Case(
        "policy in another namespace: ignored",
        [pol("x", {"rules": [src(principals=[PIPELINE])]}, "other")],
        True,
        None,
        "no ALLOW policy applies",
    ),
    Case(
        "root namespace policy applies mesh-wide",
        [pol("mesh", {"rules": [src(principals=[PIPELINE])]}, "istio-system")],
        False,
        "istio-system/mesh",
        "none of their rules",
    ),
    Case(
        "ALLOW without rules admits nothing",
        [pol("deny-all", {"action": "ALLOW", "selector": SEL})],
        False,
        "kubeflow/deny-all",
        "none of their rules",
    ),
    Case(
        "rule {} admits everyone",
        [pol("allow-all", {"selector": SEL, "rules": [{}]})],
        True,
        "kubeflow/allow-all",
        "rule 0 admits",
    ),
    Case(
        "DENY before ALLOW",
        [FIX, pol("no-users", {"action": "DENY", "selector": SEL, "rules": [src(namespaces=["user-*"])]})],
        False,
        "kubeflow/no-users",
        "DENY policy kubeflow/no-users rule 0 matches",
    ),
    Case(
        "DENY with notPrincipals excluding iris-sa does not match",
        [FIX, pol("d", {"action": "DENY", "rules": [src(notPrincipals=[IRIS])]})],
        True,
        "kubeflow/minio-user-namespace-access",
        "admits",
    ),
    Case(
        "DENY with notNamespaces matching the source does not match",
        [pol("d", {"action": "DENY", "rules": [src(notNamespaces=["user-example-com"])]})],
        True,
        None,
        "no ALLOW policy",
    ),
    Case(
        "DENY that depends on request paths is not assumed to apply",
        [
            pol(
                "d",
                {
                    "action": "DENY",
                    "rules": [{**src(principals=["*"]), "to": [{"operation": {"paths": ["/admin/*"]}}]}],
                },
            )
        ],
        True,
        None,
        "no ALLOW policy",
    ),
    Case(
        "ALLOW that depends on methods is assumed to apply for some requests",
        [pol("a", {"rules": [{**src(principals=[IRIS]), "to": [{"operation": {"methods": ["GET"]}}]}]})],
        True,
        "kubeflow/a",
        "for requests matching its other conditions",
    ),
    Case(
        "when on source.namespace is judged",
        [pol("w", {"rules": [{"when": [{"key": "source.namespace", "values": ["kubeflow"]}]}]})],
        False,
        "kubeflow/w",
        "none of their rules",
    ),
    Case(
        "principal prefix and suffix forms",
        [
            pol("p", {"rules": [src(principals=["cluster.local/ns/user-example-com/*"])]}),
            pol("q", {"rules": [src(principals=["*/sa/nobody"])]}),
        ],
        True,
        "kubeflow/p",
        "admits",
    ),
    Case(
        "CUSTOM is noted and not judged",
        [pol("c", {"action": "CUSTOM", "provider": {"name": "x"}, "rules": [{}]})],
        True,
        None,
        "CUSTOM policies kubeflow/c",
    ),
    Case(
        "targetRef policies are not sidecar policies",
        [pol("gw", {"targetRef": {"kind": "Gateway", "name": "g"}, "rules": []})],
        True,
        None,
        "no ALLOW policy",
    ),
    Case(
        "spiffe:// prefix is accepted",
        [FIX],
        True,
        "kubeflow/minio-user-namespace-access",
        "admits",
        principal="spiffe://" + IRIS,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_evaluate(case: Case) -> None:
    r = evaluate(
        case.policies,
        workload_namespace="kubeflow",
        workload_labels=dict(case.labels),
        principal=case.principal,
        source_namespace=case.source_namespace,
    )
    assert r.allowed is case.allowed, r
    assert r.deciding_policy == case.deciding, r
    assert case.reason in r.reason, r.reason


@pytest.mark.parametrize(
    ("pattern", "value", "want"),
    [
        ("a", "a", True),
        ("a", "b", False),
        ("*", "x", True),
        ("*", "", False),
        ("*", None, False),
        ("pre*", "prefix", True),
        ("pre*", "xpre", False),
        ("*fix", "suffix", True),
        ("*fix", "fixed", False),
    ],
)
def test_match_value(pattern: str, value: str | None, want: bool) -> None:
    assert match_value(pattern, value) is want


def test_applicable_lists_every_policy_on_the_workload() -> None:
    r = evaluate(
        [PIPELINE_ONLY, FIX, pol("x", {}, "other")],
        workload_namespace="kubeflow",
        workload_labels={"app": "seaweedfs"},
        principal=IRIS,
        source_namespace="user-example-com",
    )
    assert r.applicable == ("kubeflow/minio-user-namespace-access", "kubeflow/seaweedfs-service")
