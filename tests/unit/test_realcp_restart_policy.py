"""The control plane's supervision waits as a kubelet's crash back-off does (pure: the delays)."""

from __future__ import annotations

import pytest

from sandbox.realcp.supervise import RestartPolicy

KUBELET_LIKE = RestartPolicy(initial=10.0, cap=300.0, reset_after=600.0)

DELAYS = [
    # (policy, consecutive quick exits, delay before the restart)
    ("first exit: at once", RestartPolicy(), 1, 0.0),
    ("second in a row: the initial delay", RestartPolicy(), 2, 1.0),
    ("third: doubled", RestartPolicy(), 3, 2.0),
    ("seventh: 32 s", RestartPolicy(), 7, 32.0),
    ("eighth: capped at 60 s", RestartPolicy(), 8, 60.0),
    ("long after: still the cap", RestartPolicy(), 40, 60.0),
    ("kubelet's numbers: 10 s", KUBELET_LIKE, 2, 10.0),
    ("kubelet's numbers: 160 s", KUBELET_LIKE, 6, 160.0),
    ("kubelet's numbers: capped at 300 s", KUBELET_LIKE, 7, 300.0),
]


@pytest.mark.parametrize(("name", "policy", "exits", "delay"), DELAYS, ids=[d[0] for d in DELAYS])
def test_delay(name: str, policy: RestartPolicy, exits: int, delay: float) -> None:
    assert policy.delay(exits) == delay
