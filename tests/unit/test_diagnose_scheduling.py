"""The scheduling family, pure: the pod's requests as the scheduler sums them, toleration matching,
each Node judged as kube-scheduler's filters judge it, and diagnose() naming the one node-side cause
of an Unschedulable predictor pod on a cluster of two CPU nodes and a tainted GPU node."""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import Any

import pytest

from daemon.core.diagnosis.scheduling import node_blocks, pod_requests, tolerates
from daemon.core.findings import Severity
from daemon.core.quantity import format_quantity, parse_quantity
from tests.unit import factories as fx
from tests.unit.factories import NS, POD, Cluster

Obj = dict[str, Any]
GPU = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU, "value": "present", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}
ONE = 1000
"""One device, in the milli-units requests are summed in."""


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("2", Fraction(2)),
        ("1.5", Fraction(3, 2)),
        ("2Gi", Fraction(2 * 2**30)),
        ("100M", Fraction(10**8)),
        ("1e3", Fraction(1000)),
        ("128974848", Fraction(128974848)),
        (4, Fraction(4)),
        ("1Gix", None),
        ("", None),
        ("abc", None),
        (True, None),
    ],
)
def test_quantities_parse_exactly(text: object, value: Fraction | None) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    ("value", "resource", "text"),
    [
        (Fraction(2 * 2**30), "memory", "2Gi"),
        (Fraction(1536 * 2**20), "memory", "1536Mi"),
        (Fraction(1, 2), "cpu", "500m"),
        (Fraction(4), "cpu", "4"),
        (Fraction(1), GPU, "1"),
    ],
)
def test_quantities_print_as_a_person_writes_them(value: Fraction, resource: str, text: str) -> None:
    assert format_quantity(value, resource=resource) == text


def _c(name: str, requests: Obj | None = None, limits: Obj | None = None, **kw: Any) -> Obj:
    res: Obj = {}
    if requests:
        res["requests"] = requests
    if limits:
        res["limits"] = limits
    return {"name": name, "resources": res, **kw}


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        (
            {"containers": [_c("a", {"cpu": "1"}), _c("b", {"cpu": "500m", "memory": "1Gi"})]},
            {"cpu": "3/2", "memory": str(2**30)},
        ),
        # only a limit: the API server defaults the request to it
        ({"containers": [_c("a", limits={GPU: "1"})]}, {GPU: "1"}),
        # an init container at its peak, above the containers' sum
        (
            {"initContainers": [_c("init", {"memory": "4Gi"})], "containers": [_c("a", {"memory": "1Gi"})]},
            {"memory": str(4 * 2**30)},
        ),
        # a sidecar (restartPolicy Always) runs alongside: it adds to the containers and later inits
        (
            {
                "initContainers": [
                    _c("proxy", {"cpu": "100m"}, restartPolicy="Always"),
                    _c("init", {"cpu": "1"}),
                ],
                "containers": [_c("a", {"cpu": "500m"})],
            },
            {"cpu": "11/10"},
        ),
        ({"containers": [_c("a", {"cpu": "1"})], "overhead": {"cpu": "250m"}}, {"cpu": "5/4"}),
        ({"containers": [_c("a")]}, {}),
    ],
)
def test_pod_requests_as_the_scheduler_sums_them(spec: Obj, want: dict[str, str]) -> None:
    assert pod_requests(spec) == {k: Fraction(v) * 1000 for k, v in want.items()}  # milli-units


@pytest.mark.parametrize(
    ("toleration", "ok"),
    [
        (GPU_TOLERATION, True),
        ({"key": GPU, "operator": "Equal", "value": "present", "effect": "NoSchedule"}, True),
        ({"key": GPU, "operator": "Equal", "value": "other"}, False),
        ({"key": GPU}, False),  # Equal to "" while the taint's value is "present"
        ({"operator": "Exists"}, True),  # tolerates everything
        ({"key": GPU, "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "other", "operator": "Exists"}, False),
    ],
)
def test_toleration_matching(toleration: Obj, ok: bool) -> None:
    assert tolerates([toleration], GPU_TAINT) is ok


def node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "16Gi",
    gpu: str | None = None,
    taints: list[Obj] | None = None,
    labels: Obj | None = None,
    ready: bool = True,
    cordoned: bool = False,
) -> Obj:
    alloc = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpu:
        alloc[GPU] = gpu
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or [], **({"unschedulable": True} if cordoned else {})},
        "status": {
            "allocatable": alloc,
            "capacity": alloc,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                }
            ],
        },
    }


GPU_NODE = node(
    "gpu-1", cpu="8", memory="64Gi", gpu="1", taints=[GPU_TAINT], labels={"accelerator": "nvidia"}
)
CPU_NODES = [node("cpu-1"), node("cpu-2")]


@pytest.mark.parametrize(
    ("n", "spec", "requests", "used", "kinds"),
    [
        (GPU_NODE, {}, {GPU: ONE}, {}, ["taint"]),
        (GPU_NODE, {"tolerations": [GPU_TOLERATION]}, {GPU: ONE}, {}, []),
        (GPU_NODE, {"tolerations": [GPU_TOLERATION]}, {GPU: ONE}, {GPU: ONE}, ["resources"]),
        (CPU_NODES[0], {}, {GPU: ONE}, {}, ["resources"]),
        (CPU_NODES[0], {"nodeSelector": {"accelerator": "nvidia"}}, {}, {}, ["selector"]),
        (
            CPU_NODES[0],
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "accelerator", "operator": "Exists"}]}
                            ]
                        }
                    }
                }
            },
            {},
            {},
            ["affinity"],
        ),
        (
            GPU_NODE,
            {
                "tolerations": [GPU_TOLERATION],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {"key": "accelerator", "operator": "In", "values": ["nvidia"]}
                                    ]
                                }
                            ]
                        }
                    }
                },
            },
            {},
            {},
            [],
        ),
        (node("c", cordoned=True), {}, {}, {}, ["cordoned"]),
        (
            node("n", ready=False, taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]),
            {},
            {},
            {},
            ["not-ready"],
        ),
        (node("p", taints=[{"key": "x", "effect": "PreferNoSchedule"}]), {}, {}, {}, []),
    ],
)
def test_each_node_judged_as_the_scheduler_filters_do(
    n: Obj, spec: Obj, requests: dict[str, int], used: dict[str, int], kinds: list[str]
) -> None:
    assert [b.kind for b in node_blocks(n, spec=spec, requests=requests, used=used)] == kinds


def pending(c: Cluster, *, resources: Obj, message: str, **predictor: Any) -> None:
    """The predictor pod as the scheduler leaves it: Pending, PodScheduled=False Unschedulable."""
    c.pod["spec"] = {
        **c.pod["spec"],
        **copy.deepcopy(predictor),
        "containers": [{"name": "kserve-container", "image": "img", "resources": resources}],
    }
    c.pod["status"] = {
        "phase": "Pending",
        "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
        ],
    }
    c.isvc["spec"]["predictor"].update(copy.deepcopy(predictor))
    c.isvc["spec"]["predictor"]["model"]["resources"] = resources
    fx.set_isvc_unready(c, reason="RevisionMissing", message="Revision is not ready")
    c.replace_observations("predictor", [fx.predictor_obs("not-ready")])


def cluster(nodes: list[Obj]) -> Cluster:
    c = fx.healthy()
    for n in nodes:
        c.put(n)
    return c


ONE_GPU = {"limits": {GPU: "1"}, "requests": {GPU: "1", "cpu": "1", "memory": "4Gi"}}
TAINT_MSG = (
    "0/3 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}, "
    "2 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful "
    "for scheduling."
)


def test_gpu_pod_without_toleration_names_the_taint_and_the_patch() -> None:
    """kserve/kserve#794, #730: a GPU predictor that tolerates nothing; only the GPU node has GPUs."""
    c = cluster([GPU_NODE, *CPU_NODES])
    pending(c, resources=ONE_GPU, message=TAINT_MSG)
    out = fx.run(c)
    assert out.codes == ["unschedulable-untolerated-taint"], [f.to_dict() for f in out.findings]
    f = out.findings[0]
    assert f.severity == Severity.CRITICAL
    assert f"pod {POD}: PodScheduled=False Unschedulable: {TAINT_MSG}" in f.evidence
    assert "node gpu-1 has taint nvidia.com/gpu=present:NoSchedule, not tolerated" in f.evidence
    assert "node cpu-1 has no nvidia.com/gpu, the pod requests 1" in f.evidence
    assert '"tolerations":[{"key":"nvidia.com/gpu","operator":"Exists","effect":"NoSchedule"}]' in f.remedy
    assert (
        f.remedy.startswith("tolerate") and f"kubectl patch inferenceservice iris-model -n {NS}" in f.remedy
    )


def test_selector_pointing_at_the_gpu_node_still_names_the_taint() -> None:
    """Ties (the CPU nodes fail the selector, the GPU node the taint) go to the node the pod meant."""
    c = cluster([GPU_NODE, *CPU_NODES])
    pending(
        c,
        resources={"requests": {"cpu": "1"}},
        message="0/3 nodes are available: 1 node(s) had untolerated "
        "taint {nvidia.com/gpu: present}, 2 node(s) didn't match Pod's node affinity/selector.",
        nodeSelector={"accelerator": "nvidia"},
    )
    assert fx.run(c).codes == ["unschedulable-untolerated-taint"]


def test_more_gpus_than_any_node_has_is_insufficient() -> None:
    c = cluster([GPU_NODE, *CPU_NODES])
    two = {"limits": {GPU: "2"}, "requests": {GPU: "2"}}
    pending(
        c,
        resources=two,
        message="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        tolerations=[GPU_TOLERATION],
    )
    out = fx.run(c)
    assert out.codes == ["unschedulable-insufficient-resources"]
    f = out.findings[0]
    assert "node gpu-1 has 1 nvidia.com/gpu allocatable, the pod requests 2" in f.evidence
    assert "no node has nvidia.com/gpu=2 allocatable at all" in f.remedy


def test_the_only_gpu_held_by_another_pod_is_insufficient_in_use() -> None:
    c = cluster([GPU_NODE, *CPU_NODES])
    holder = copy.deepcopy(c.pod)
    holder["metadata"] = {"name": "other-gpu-job", "namespace": "team-b"}
    holder["spec"] = {"nodeName": "gpu-1", "containers": [{"name": "x", "resources": {"limits": {GPU: "1"}}}]}
    holder["status"] = {"phase": "Running"}
    c.put(holder)
    pending(
        c,
        resources=ONE_GPU,
        message="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        tolerations=[GPU_TOLERATION],
    )
    out = fx.run(c)
    assert out.codes == ["unschedulable-insufficient-resources"]
    f = out.findings[0]
    assert any("node gpu-1 has 0 of 1 nvidia.com/gpu free" in e for e in f.evidence), f.evidence
    assert "requested by other pods" in f.remedy


def test_a_node_selector_no_node_satisfies() -> None:
    c = cluster([GPU_NODE, *CPU_NODES])
    pending(
        c,
        resources={"requests": {"cpu": "1"}},
        message="0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
        nodeSelector={"accelerator": "amd"},
        tolerations=[GPU_TOLERATION],
    )
    out = fx.run(c)
    assert out.codes == ["unschedulable-no-matching-node"]
    f = out.findings[0]
    assert "node cpu-1 lacks the nodeSelector labels accelerator=amd" in f.evidence
    assert "kubectl label node <node> accelerator=amd" in f.remedy


def test_memory_beyond_every_node() -> None:
    c = cluster([GPU_NODE, *CPU_NODES])
    pending(
        c,
        resources={"requests": {"memory": "128Gi"}},
        message="0/3 nodes are available: 3 Insufficient memory.",
    )
    out = fx.run(c)
    assert out.codes == ["unschedulable-insufficient-resources"]
    assert "no node has memory=128Gi allocatable at all" in out.findings[0].remedy


def test_the_gpu_node_cordoned() -> None:
    c = cluster([node("gpu-1", gpu="1", taints=[GPU_TAINT], cordoned=True), *CPU_NODES])
    pending(
        c,
        resources=ONE_GPU,
        message="0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient nvidia.com/gpu.",
        tolerations=[GPU_TOLERATION],
    )
    out = fx.run(c)
    assert out.codes == ["pod-unschedulable"]
    assert "kubectl uncordon gpu-1" in out.findings[0].remedy


def test_without_nodes_the_message_is_classified_and_says_so() -> None:
    c = cluster([])
    pending(c, resources=ONE_GPU, message="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
    out = fx.run(c)
    assert out.codes == ["unschedulable-insufficient-resources"]
    assert any("judged from the scheduler's message alone" in e for e in out.findings[0].evidence)


def test_a_pending_replica_while_another_serves_is_a_warning() -> None:
    c = cluster([GPU_NODE, *CPU_NODES])
    serving = copy.deepcopy(c.pod)
    serving["metadata"]["name"] = "iris-model-predictor-serving"
    serving["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    c.put(serving)
    pending(c, resources=ONE_GPU, message=TAINT_MSG)
    c.isvc["status"]["conditions"] = [
        {"type": "Ready", "status": "True"},
        {"type": "PredictorReady", "status": "True"},
    ]
    c.replace_observations("predictor", [fx.predictor_obs("ready")])
    out = fx.run(c)
    assert out.codes == ["unschedulable-untolerated-taint"]
    assert out.findings[0].severity == Severity.WARNING


def test_nodes_with_room_give_no_finding() -> None:
    c = cluster([GPU_NODE, *CPU_NODES])
    assert fx.run(c).findings == []
