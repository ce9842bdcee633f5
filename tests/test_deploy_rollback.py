"""Confirm, rollback and cancel of device deploys on real sshd devices."""

from __future__ import annotations

import shlex
from collections.abc import Callable

import pytest

from fleet_fixtures import commit_all
from nixdeck.core.ops.deploy_fleet import DeployDevicesSubmission
from nixdeck.core.project import Project
from nixdeck.core.project.inventory import Action
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


def _deploy(
    world: DeployWorld, devices: list[str], action: Action | None = None
) -> tuple[TaskRecord, dict[str, TaskRecord]]:
    async def scenario(engine: TaskEngine) -> tuple[TaskRecord, dict[str, TaskRecord]]:
        sub = DeployDevicesSubmission(project_dir=world.project_dir, devices=devices, action=action)
        pid = await engine.submit(DEPLOY, sub)
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


def _activations(world: DeployWorld, name: str) -> list[str]:
    """What the fixture fleet's switch-to-configuration recorded on the device ("ACTION PATH")."""
    return (world.device(name).sim_state_dir / "activations").read_text().splitlines()


def _switch_log(world: DeployWorld, name: str, task: TaskRecord) -> str:
    """What the device's activation supervisor logged for this task's activation."""
    directory = world.device(name).path_on_device(task.result["activation"]["dir"])
    return (directory / "switch.log").read_text()


def _remote_commands(world: DeployWorld, task_id: int) -> list[list[str]]:
    async def scenario(engine: TaskEngine) -> list[list[str]]:
        # what each remote command does (its summary when it ran a script, else its exact command)
        return [shlex.split(p.remote.get("summary") or p.remote["command"])
                for p in engine.store.processes(task_id) if p.remote]

    return world.run(scenario)


def test_test_action_on_a_device_that_stops_answering_is_rolled_back(worlds: Worlds) -> None:
    world = worlds(["node1"], nodes=["node1"], confirm_timeout=2)
    parent, kids = _deploy(world, ["node1"])
    assert parent.state == TaskState.COMPLETED, parent.error
    old = kids["node1"].result["store_path"]

    world.write_device("node1", LOCKOUT)
    parent, kids = _deploy(world, ["node1"], action="test")
    bad = kids["node1"]
    assert parent.state == TaskState.FAILED
    assert bad.state == TaskState.FAILED
    assert bad.result["action"] == "test"
    assert "did not answer a new connection within 2 s" in bad.error
    assert f"rolled back to {old}" in bad.error
    assert bad.result["outcome"] == "rolled back"
    # `test` never touched the profile; the rollback activated the old system again with `test`
    assert world.current_system("node1") == old
    assert world.profile_system("node1") == old
    assert _activations(world, "node1")[-1] == f"test {old}"
    # the device rolled back by itself (its supervisor), never touching the profile
    log = _switch_log(world, "node1", bad)
    assert "nix-env" not in log and "switching profile" not in log, log
    assert bad.result["activation"]["final"] == "rolled-back"
    assert "did not answer a new connection within 2 s" in bad.result["activation"]["rollback_reason"]


def test_rollback_off_leaves_the_unconfirmed_system_running(worlds: Worlds) -> None:
    world = worlds(["node1"], nodes=["node1"], confirm_timeout=2)
    Project.open(world.flake, discover_devices=False).set_fields("node1", {"rollback": False})
    commit_all(world.flake, "no rollback")
    parent, kids = _deploy(world, ["node1"])
    assert parent.state == TaskState.COMPLETED, parent.error
    old = kids["node1"].result["store_path"]
    before = _activations(world, "node1")

    world.write_device("node1", LOCKOUT)
    parent, kids = _deploy(world, ["node1"])
    bad = kids["node1"]
    new = bad.result["store_path"]
    assert parent.state == TaskState.FAILED
    assert bad.state == TaskState.FAILED
    assert "did not answer a new connection within 2 s" in bad.error
    assert "rollback is off for this device (setting rollback=false)" in bad.error
    assert "rolled back" not in bad.error
    assert bad.result["outcome"] == "unconfirmed"
    assert "rollback" not in bad.result
    # no rollback was attempted: the new system stays active and is the profile's generation
    assert world.current_system("node1") == new != old
    assert world.profile_system("node1") == new
    assert _activations(world, "node1") == before  # the old system was never activated again
    commands = [" ".join(a) for a in _remote_commands(world, bad.id)]
    assert len(commands) == 1 and "switch-to-configuration switch" in commands[0], commands
    assert bad.result["activation"]["final"] == "keep"
    assert "rolling back" not in _switch_log(world, "node1", bad)


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
