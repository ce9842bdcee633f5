"""Confirm, rollback and cancel of device deploys on real sshd devices."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from nixdeck.core.ops.deploy_fleet import DeployDevicesSubmission
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState
from test_deploy_support import (  # noqa: F401  (fixture)
    HANGING,
    LOCKOUT,
    NODE,
    DeployWorld,
    children,
    fixture_worlds,
    processes,
    wait_for,
)

pytestmark = [pytest.mark.ssh, pytest.mark.nix]

Worlds = Callable[..., DeployWorld]
DEPLOY = TaskKind.DEPLOY_DEVICES.value


def _deploy(world: DeployWorld, devices: list[str]) -> tuple[TaskRecord, dict[str, TaskRecord]]:
    async def scenario(engine: TaskEngine) -> tuple[TaskRecord, dict[str, TaskRecord]]:
        pid = await engine.submit(DEPLOY, DeployDevicesSubmission(project_dir=world.project_dir, devices=devices))
        return await engine.wait(pid), children(engine, pid)

    return world.run(scenario)


def test_device_that_stops_answering_after_switch_is_rolled_back(worlds: Worlds) -> None:
    world = worlds(["node1", "node2"], nodes=["node1", "node2"], confirm_timeout=2)
    parent, kids = _deploy(world, ["node1", "node2"])
    assert parent.state == TaskState.COMPLETED, parent.error
    old = kids["node1"].result["store_path"]
    assert world.current_system("node1") == old

    # generation 2 of node1 locks every login out once it is switched to
    world.write_device("node1", LOCKOUT)
    world.write_device("node2", NODE.format(name="node2", motd="node2 v2"))
    parent, kids = _deploy(world, ["node1", "node2"])
    assert parent.state == TaskState.FAILED
    bad = kids["node1"]
    assert bad.state == TaskState.FAILED
    assert "did not answer a new connection within 2 s" in bad.error
    assert f"rolled back to {old}" in bad.error
    assert bad.result["outcome"] == "rolled back"
    # the old system runs again and is the profile's current generation
    assert world.current_system("node1") == old
    assert world.profile_system("node1") == old
    # the other device was not affected
    assert kids["node2"].state == TaskState.COMPLETED
    assert world.current_system("node2") == kids["node2"].result["store_path"] != old
    summary = parent.result["devices"]["node1"]
    assert any("reloading sshd.service" in line for line in summary["log"])


def test_cancel_mid_deploy_leaves_no_local_or_remote_process(worlds: Worlds) -> None:
    world = worlds(["node1", "node2"], nodes=["node1"], variants={"node2": HANGING})
    hanging = world.device("node2")

    async def scenario(engine: TaskEngine) -> tuple[TaskRecord, dict[str, TaskRecord], list[int]]:
        pid = await engine.submit(
            DEPLOY, DeployDevicesSubmission(project_dir=world.project_dir, devices=["node1", "node2"])
        )
        await wait_for(lambda: any("sleep 300" in cmd for _, cmd in hanging.command_processes()), "the activation")
        await wait_for(lambda: children(engine, pid)["node1"].state.terminal, "node1's deploy")
        await engine.cancel(pid)
        parent = await engine.wait(pid)
        kids = children(engine, pid)
        procs = processes(engine, [pid, *(k.id for k in kids.values())])
        return parent, kids, [p.pid for p in procs if p.pid]

    parent, kids, pids = world.run(scenario)
    assert parent.state == TaskState.CANCELED
    assert kids["node2"].state == TaskState.CANCELED
    assert kids["node1"].state == TaskState.COMPLETED  # it had finished: the cancel leaves it alone
    # nothing left on the device, nothing left here
    assert hanging.command_processes() == []
    assert pids, "the deploy ran local processes (nix build, nix copy)"
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        assert state == b"Z", f"process {pid} still runs"
