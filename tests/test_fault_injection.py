"""The fault-injection suite: kill -9, SIGTERM and cancel of a real `nixdeck deploy` process at
each phase (build, copy, activate, confirm) of a deploy to several real sshd devices. Every device
must end consistent (profile = running system = the new one confirmed or the previous one), with
no process left here or on a device, no record lost and no task in a wrong state."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fault_harness import PHASES, run_trial
from nixdeck.core.ops.deploy_fleet import DeployDevicesSubmission
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskKind, TaskState
from test_deploy_support import DeployWorld, fixture_worlds  # noqa: F401  (fixture)

pytestmark = [pytest.mark.ssh, pytest.mark.nix]

DEVICES = ["node1", "node2", "node3"]


def _fault_at_each_phase(worlds: Callable[..., DeployWorld], fault: str) -> None:
    world = worlds(DEVICES, nodes=DEVICES, confirm_timeout=2)

    async def first(engine: TaskEngine) -> TaskState:
        tid = await engine.submit(TaskKind.DEPLOY_DEVICES.value,
                                  DeployDevicesSubmission(project_dir=world.project_dir, devices=DEVICES))
        return (await engine.wait(tid)).state

    assert world.run(first) == TaskState.COMPLETED
    outcomes = [run_trial(world, DEVICES, fault, phase, n) for n, phase in enumerate(PHASES)]
    assert all(o.ok for o in outcomes), "\n".join(o.describe() for o in outcomes)


# Each fault runs on another Nix of the matrix: the device side does not depend on the controller's
# Nix, and the three of them on every version would take minutes.
@pytest.mark.nix_pick(0)
def test_kill_9_at_each_phase_leaves_every_device_consistent(worlds: Callable[..., DeployWorld]) -> None:
    _fault_at_each_phase(worlds, "kill9")


@pytest.mark.nix_pick(1)
def test_sigterm_at_each_phase_leaves_every_device_consistent(worlds: Callable[..., DeployWorld]) -> None:
    _fault_at_each_phase(worlds, "sigterm")


@pytest.mark.nix_pick(2)
def test_cancel_at_each_phase_leaves_every_device_consistent(worlds: Callable[..., DeployWorld]) -> None:
    _fault_at_each_phase(worlds, "cancel")
