"""Issue 23's fault-injection suite on the real control plane: each fault costs exactly one action.

Four faults, each followed by the seed's first failure (the ServingRuntime deleted), with two
daemon replicas sharing one Lease (:class:`sandbox.demo.faults.FaultRig`, the driver
``bench/faults.py`` measures with):

* kube-apiserver restarted (SIGTERM, SIGKILL after a 5 s grace period here — 30 s in
  ``bench/faults.py``, the kubelet's default — then started again by the supervision),
* etcd SIGKILLed (started again by the supervision, as a kubelet restarts a static pod),
* a 60 s API outage (kube-apiserver stopped, then started again),
* the leader SIGKILLed (no release: the standby takes over once the Lease expires).

For each: the seed failure injected after the API answers again (for the SIGKILL, at once, while
the dead leader still holds the Lease) is healed, by exactly one ``apply`` of one daemon — one
``acted`` line over both daemons' logs and one ``Normal`` Event — and nothing else was done
during the fault (no action on a cache that an outage emptied or made stale, no two leaders).
How long each recovery took is ``bench/faults.py``'s business (budgets, not timed assertions).

One sandbox and one rig for the module (on the session's shared control plane); each fault starts
from a settled world. These tests fail (never skip) when the binaries are missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from sandbox.demo.faults import FAULTS, SEED, FaultRig, Recovery
from sandbox.realcp import ControlPlane
from tests.integration.control_planes import make_sandbox
from tests.integration.daemon_fixtures import leaked_tasks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420), pytest.mark.asyncio(loop_scope="module")]

RUNTIME = "ServingRuntime/user-example-com/iris-fastapi-runtime"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(real_control_plane: ControlPlane,
              tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FaultRig]:
    work = tmp_path_factory.mktemp("faults")
    before = asyncio.all_tasks()
    async with (make_sandbox("real", workdir=work / "sandbox", cp=real_control_plane) as sb,
                FaultRig(sb=sb, workdir=work / "rig", restart_grace=5.0) as r):
        yield r
    assert real_control_plane.alive(), "a fault left the control plane down"
    assert await leaked_tasks(before) == [], "tasks outlived the sandbox and the daemons"


def one_heal(rec: Recovery) -> dict[str, object]:
    """The fault's only action: the ServingRuntime applied back, once, successfully."""
    done = [(a["action"], a["target"], a["result"]) for a in rec.actions]
    assert done == [("apply", RUNTIME, "success")], f"{rec.fault}: {rec.actions}"
    assert rec.actions[0].get("finding") == SEED, rec.actions
    assert rec.events == 1, f"{rec.fault}: {rec.events} Normal {SEED} Events"
    return rec.actions[0]


@pytest.mark.parametrize("fault", [f for f in FAULTS if f != "leader-sigkill"])
async def test_a_control_plane_fault_costs_one_action_and_the_failure_after_it_is_healed(
        rig: FaultRig, fault: str) -> None:
    name = "etcd" if fault == "etcd-sigkill" else "kube-apiserver"
    proc = rig.cp.process(name)
    exits, pid = len(proc.exits), proc.pid
    rec = await rig.run(fault)
    one_heal(rec)
    # The process really went away and came back (the supervision, or the outage's restart).
    assert len(proc.exits) == exits + 1 and proc.pid != pid and proc.running(), (proc.exits, pid, proc.pid)
    if fault == "etcd-sigkill":
        assert proc.exits[-1] == -9, proc.exits
    if fault == "api-outage":
        assert rec.down >= rig.outage_seconds


async def test_the_leaders_sigkill_costs_one_action_by_the_standby(rig: FaultRig) -> None:
    rec = await rig.run("leader-sigkill")
    heal = one_heal(rec)
    # The dead leader did nothing after its death (it could not), the standby took over and
    # healed: one action, by the new leader.
    assert rec.leader_after != rec.leader_before
    assert heal["by"] == rec.leader_after, (heal, rec.leader_before, rec.leader_after)
