"""The sandbox's Istio AuthorizationPolicy evaluation, table-driven (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from sandbox.authz import Request, evaluate, match_value, namespace_of

IRIS = "cluster.local/ns/user-example-com/sa/iris-sa"
PIPELINE = "cluster.local/ns/kubeflow/sa/ml-pipeline"
UI = "cluster.local/ns/kubeflow/sa/ml-pipeline-ui"
LABELS = {"app": "seaweedfs", "pod-template-hash": "abc"}


def policy(name: str, spec: dict[str, Any], namespace: str = "kubeflow") -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


SEL = {"matchLabels": {"app": "seaweedfs"}}
# The seed's pipeline-only policy and its fix.
PIPELINE_ONLY = policy(
    "seaweedfs-service",
    {"action": "ALLOW", "selector": SEL, "rules": [{"from": [{"source": {"principals": [PIPELINE, UI]}}]}]},
)
FIX = policy(
    "minio-user-namespace-access",
    {
        "action": "ALLOW",
        "selector": SEL,
        "rules": [
            {"from": [{"source": {"principals": [IRIS]}}]},
            {"from": [{"source": {"namespaces": ["user-example-com"]}}]},
        ],
    },
)


@dataclass
class Case:
    id: str
    policies: list[dict[str, Any]]
    request: Request
    allowed: bool
    reason: str


def req(principal: str | None = IRIS, **kw: Any) -> Request:
    return Request(principal=principal, **kw)


CASES = [
    Case("no policies: allow", [], req(), True, "no ALLOW policy"),
    Case(
        "seed: pipeline-only policy denies iris-sa",
        [PIPELINE_ONLY],
        req(),
        False,
        "kubeflow/seaweedfs-service",
    ),
    Case(
        "seed: pipeline-only policy allows ml-pipeline",
        [PIPELINE_ONLY],
        req(PIPELINE),
        True,
        "seaweedfs-service",
    ),
    Case(
        "seed fix: principal rule allows iris-sa",
        [PIPELINE_ONLY, FIX],
        req(),
        True,
        "minio-user-namespace-access",
    ),
    Case(
        "seed fix: namespace rule allows another SA of the namespace",
        [PIPELINE_ONLY, FIX],
        req("cluster.local/ns/user-example-com/sa/default"),
        True,
        "minio-user-namespace-access",
    ),
    Case(
        "other namespace still denied",
        [PIPELINE_ONLY, FIX],
        req("cluster.local/ns/other/sa/default"),
        False,
        "no ALLOW rule matches",
    ),
    Case("no sidecar identity matches no principal rule", [PIPELINE_ONLY, FIX], req(None), False, "no ALLOW"),
    Case(
        "selector not matching the storage workload: ignored",
        [policy("x", {"action": "ALLOW", "selector": {"matchLabels": {"app": "minio"}}, "rules": [{}]})],
        req(),
        True,
        "no ALLOW policy",
    ),
    Case(
        "policy in another namespace: ignored",
        [
            policy(
                "x",
                {"action": "ALLOW", "rules": [{"from": [{"source": {"principals": [PIPELINE]}}]}]},
                "other",
            )
        ],
        req(),
        True,
        "no ALLOW policy",
    ),
    Case(
        "root namespace policy without selector applies mesh-wide",
        [
            policy(
                "mesh",
                {"action": "ALLOW", "rules": [{"from": [{"source": {"principals": [PIPELINE]}}]}]},
                "istio-system",
            )
        ],
        req(),
        False,
        "istio-system/mesh",
    ),
    Case(
        "namespace-wide policy (no selector) applies",
        [policy("ns", {"rules": [{}]})],
        req(),
        True,
        "kubeflow/ns",
    ),
    Case(
        "ALLOW with no rules allows nothing",
        [policy("deny-all", {"action": "ALLOW"})],
        req(PIPELINE),
        False,
        "deny-all",
    ),
    Case("empty spec allows nothing", [policy("empty", {})], req(PIPELINE), False, "empty"),
    Case(
        "DENY wins over ALLOW",
        [
            FIX,
            policy(
                "no-iris",
                {
                    "action": "DENY",
                    "selector": SEL,
                    "rules": [{"from": [{"source": {"principals": [IRIS]}}]}],
                },
            ),
        ],
        req(),
        False,
        "DENY policy kubeflow/no-iris",
    ),
    Case(
        "DENY without rules never matches", [policy("d", {"action": "DENY"})], req(), True, "no ALLOW policy"
    ),
    Case(
        "CUSTOM and AUDIT do not decide",
        [
            policy("c", {"action": "CUSTOM", "provider": {"name": "x"}, "rules": [{}]}),
            policy("a", {"action": "AUDIT", "rules": [{}]}),
        ],
        req(),
        True,
        "no ALLOW policy",
    ),
    Case(
        "notNamespaces excludes",
        [
            policy(
                "n",
                {
                    "rules": [
                        {"from": [{"source": {"namespaces": ["*"], "notNamespaces": ["user-example-com"]}}]}
                    ]
                },
            )
        ],
        req(),
        False,
        "no ALLOW",
    ),
    Case(
        "notPrincipals in DENY",
        [policy("d", {"action": "DENY", "rules": [{"from": [{"source": {"notPrincipals": [PIPELINE]}}]}]})],
        req(),
        False,
        "DENY policy kubeflow/d",
    ),
    Case(
        "prefix principal match",
        [
            policy(
                "p",
                {"rules": [{"from": [{"source": {"principals": ["cluster.local/ns/user-example-com/*"]}}]}]},
            )
        ],
        req(),
        True,
        "kubeflow/p",
    ),
    Case(
        "suffix principal match",
        [policy("p", {"rules": [{"from": [{"source": {"principals": ["*/sa/iris-sa"]}}]}]})],
        req(),
        True,
        "kubeflow/p",
    ),
    Case(
        "operation methods: GET allowed, PUT not",
        [
            policy(
                "ro",
                {
                    "rules": [
                        {
                            "from": [{"source": {"principals": [IRIS]}}],
                            "to": [{"operation": {"methods": ["GET", "HEAD"]}}],
                        }
                    ]
                },
            )
        ],
        req(method="PUT"),
        False,
        "no ALLOW",
    ),
    Case(
        "operation methods match HEAD",
        [policy("ro", {"rules": [{"to": [{"operation": {"methods": ["GET", "HEAD"]}}]}]})],
        req(method="HEAD"),
        True,
        "kubeflow/ro",
    ),
    Case(
        "operation paths prefix",
        [policy("p", {"rules": [{"to": [{"operation": {"paths": ["/mlpipeline/*"]}}]}]})],
        req(path="/mlpipeline/a/model?x=1"),
        True,
        "kubeflow/p",
    ),
    Case(
        "operation notPaths",
        [policy("p", {"rules": [{"to": [{"operation": {"notPaths": ["/mlpipeline/*"]}}]}]})],
        req(path="/mlpipeline/a"),
        False,
        "no ALLOW",
    ),
    Case(
        "operation ports",
        [policy("p", {"rules": [{"to": [{"operation": {"ports": ["9000"]}}]}]})],
        req(port=9000),
        True,
        "kubeflow/p",
    ),
    Case(
        "ALLOW rule with when: fail-closed, never matches",
        [
            policy(
                "w",
                {
                    "rules": [
                        {
                            "from": [{"source": {"principals": [IRIS]}}],
                            "when": [{"key": "request.headers[x]", "values": ["1"]}],
                        }
                    ]
                },
            )
        ],
        req(),
        False,
        "no ALLOW",
    ),
    Case(
        "DENY rule with when: fail-closed, matches",
        [
            policy(
                "w",
                {
                    "action": "DENY",
                    "rules": [
                        {
                            "from": [{"source": {"principals": [IRIS]}}],
                            "when": [{"key": "source.ip", "values": ["1.2.3.4"]}],
                        }
                    ],
                },
            )
        ],
        req(),
        False,
        "DENY policy kubeflow/w",
    ),
    Case(
        "ALLOW rule with requestPrincipals: fail-closed",
        [policy("j", {"rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}]})],
        req(),
        False,
        "no ALLOW",
    ),
    Case(
        "targetRef policies do not select pods",
        [policy("t", {"targetRef": {"kind": "Gateway", "name": "g"}, "rules": []})],
        req(),
        True,
        "no ALLOW policy",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_evaluate(case: Case) -> None:
    decision = evaluate(case.policies, case.request, namespace="kubeflow", labels=LABELS)
    assert decision.allowed is case.allowed
    assert case.reason in decision.reason


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("a", "a", True),
        ("a", "b", False),
        ("*", "x", True),
        ("*", "", False),
        ("*", None, False),
        ("ab*", "abc", True),
        ("ab*", "xab", False),
        ("*bc", "abc", True),
        ("*bc", "bcd", False),
    ],
)
def test_match_value(pattern: str, value: str | None, expected: bool) -> None:
    assert match_value(pattern, value) is expected


@pytest.mark.parametrize(
    ("principal", "namespace"),
    [
        (IRIS, "user-example-com"),
        ("spiffe-ish", None),
        (None, None),
        ("cluster.local/ns/kubeflow/sa/x", "kubeflow"),
    ],
)
def test_namespace_of(principal: str | None, namespace: str | None) -> None:
    assert namespace_of(principal) == namespace
