"""The fault-injection suite: kill -9, SIGTERM and cancel of a real `nixdeck deploy` process at
each phase (build, copy, activate, confirm) of a deploy to several real sshd devices. Every device
must end consistent (profile = running system = the new one confirmed or the previous one), with
no process left here or on a device, no record lost and no task in a wrong state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fault_harness import PHASES, run_trial
from nixdeck.core.ops.deploy_fleet import DeployDevicesSubmission
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskKind, TaskState
from test_deploy_support import DeployWorld, fixture_worlds  # noqa: F401  (fixture)

pytestmark = [pytest.mark.ssh, pytest.mark.nix]

DEVICES = ["node1", "node2", "node3"]


@pytest.mark.parametrize("fault", ["kill9", "sigterm", "cancel"])
def test_a_fault_at_each_phase_leaves_every_device_consistent(
    worlds: Callable[..., DeployWorld], fault: str
) -> None:
    world = worlds(DEVICES, nodes=DEVICES, confirm_timeout=2)

    async def first(engine: TaskEngine) -> TaskState:
        tid = await engine.submit(TaskKind.DEPLOY_DEVICES.value,
                                  DeployDevicesSubmission(project_dir=world.project_dir, devices=DEVICES))
        return (await engine.wait(tid)).state

    assert world.run(first) == TaskState.COMPLETED
    outcomes = [run_trial(world, DEVICES, fault, phase, n) for n, phase in enumerate(PHASES)]
    assert all(o.ok for o in outcomes), "\n".join(o.describe() for o in outcomes)


def test_owners_and_recoverers_at_once_agree_with_the_database(tmp_path: Path) -> None:
    from stress_harness import run_stress

    out = run_stress(tmp_path / "stress-data", workers=3, tasks_each=20, recoverers=2, seconds=8)
    assert not out.failed_workers, out.failed_workers
    assert not out.lost_records, out.lost_records
    assert not out.wrong_states, out.wrong_states
