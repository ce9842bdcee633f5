"""Faults during activation: cancel, kill -9 of the controller, a later failed confirm.

Whatever happens to NixDeck, every device ends with its system profile and its running system
equal: the new system confirmed, or exactly the system recorded before the deploy.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from nixdeck.core.ops.deploy_device import DeployDeviceSubmission
from nixdeck.core.ops.deploy_recovery import recover_activations, unsettled
from nixdeck.core.project.inventory import Action
from nixdeck.core.tasks.engine import TaskEngine
from nixdeck.core.tasks.model import TaskKind, TaskRecord, TaskState
from nixdeck.core.tasks.store import TaskStore
from test_deploy_support import (  # noqa: F401  (fixture)
    LOCKOUT,
    NODE,
    DeployWorld,
    fixture_worlds,
    switch_variant,
    wait_for,
)

pytestmark = [pytest.mark.ssh, pytest.mark.nix]
# each test runs on one Nix of the matrix (nix_pick spreads them): the device side is what they test

Worlds = Callable[..., DeployWorld]
DEPLOY_ONE = TaskKind.DEPLOY_DEVICE.value

# A device whose switch-to-configuration takes SLOW seconds before it links the new system: the
# window in which a cancel or a kill used to leave the profile ahead of the running system.
SLOW = switch_variant("slow", """
#!/bin/sh
action="$1"
echo "activating $action slowly"
sleep 4
case "$action" in switch|test) ln -sfn "@out@" /run/current-system ;; esac
echo "activated"
""", motd="slow")


def profile_link(world: DeployWorld, name: str) -> str | None:
    link = world.device(name).path_on_device("/nix/var/nix/profiles/system")
    return os.readlink(link) if link.is_symlink() else None


def activations(world: DeployWorld, name: str) -> list[Path]:
    base = world.device(name).path_on_device("/nix/var/nixdeck/activations")
    return sorted(base.iterdir()) if base.is_dir() else []


def status_of(directory: Path) -> dict[str, str]:
    try:
        lines = (directory / "status").read_text().splitlines()
    except OSError:
        return {}
    return {k: v for k, _, v in (ln.partition("=") for ln in lines)}


def switching(world: DeployWorld, name: str, count: int) -> bool:
    """The device's ``count``-th activation is inside switch-to-configuration."""
    acts = activations(world, name)
    return len(acts) >= count and "switch-pid" in status_of(acts[count - 1]) and "switched" not in status_of(acts[count - 1])


def assert_consistent(world: DeployWorld, name: str, system: str) -> None:
    assert world.current_system(name) == system
    assert world.profile_system(name) == system


def deploy(world: DeployWorld, device: str, action: Action | None = None) -> TaskRecord:
    async def scenario(engine: TaskEngine) -> TaskRecord:
        tid = await engine.submit(DEPLOY_ONE, DeployDeviceSubmission(project_dir=world.project_dir, device=device,
                                                                      action=action))  # fmt: skip
        return await engine.wait(tid)

    return world.run(scenario)


def cancel_while_switching(world: DeployWorld, device: str, action: Action | None = None) -> TaskRecord:
    count = len(activations(world, device)) + 1

    async def scenario(engine: TaskEngine) -> TaskRecord:
        tid = await engine.submit(DEPLOY_ONE, DeployDeviceSubmission(project_dir=world.project_dir, device=device,
                                                                      action=action))  # fmt: skip
        await wait_for(lambda: switching(world, device, count), "the switch on the device")
        await engine.cancel(tid)
        return await engine.wait(tid)

    return world.run(scenario)


@pytest.mark.nix_pick(0)
def test_cancel_during_activation_restores_the_recorded_system_and_a_later_rollback_goes_there(
    worlds: Worlds,
) -> None:
    world = worlds(["node1"], nodes=["node1"], confirm_timeout=2)
    first = deploy(world, "node1")
    assert first.state == TaskState.COMPLETED, first.error
    good = first.result["store_path"]
    assert_consistent(world, "node1", good)
    generation = profile_link(world, "node1")

    world.write_device("node1", SLOW)
    canceled = cancel_while_switching(world, "node1")
    assert canceled.state == TaskState.CANCELED
    # the device runs exactly what it ran before, at the same profile generation
    assert_consistent(world, "node1", good)
    assert profile_link(world, "node1") == generation
    assert canceled.result["previous_system"] == good
    assert canceled.result["previous_generation"] == generation
    assert canceled.result["activation"]["final"] == "rolled-back"
    assert canceled.result["device_system"] == {"current": good, "profile": good}
    assert "rolled back to" in canceled.result["outcome"]
    assert world.device("node1").command_processes() == []

    # a deploy that is not confirmed rolls back to the confirmed system, never to the canceled one
    world.write_device("node1", LOCKOUT)
    bad = deploy(world, "node1")
    assert bad.state == TaskState.FAILED
    assert f"rolled back to {good}" in bad.error
    assert_consistent(world, "node1", good)


@pytest.mark.nix_pick(1)
def test_cancel_of_a_boot_deploy_takes_its_generation_back(worlds: Worlds) -> None:
    world = worlds(["node1"], nodes=["node1"])
    first = deploy(world, "node1")
    good = first.result["store_path"]
    world.write_device("node1", SLOW)
    canceled = cancel_while_switching(world, "node1", action="boot")
    assert canceled.state == TaskState.CANCELED
    assert_consistent(world, "node1", good)
    assert canceled.result["activation"]["final"] == "rolled-back"


@pytest.mark.nix_pick(2)
def test_failed_activation_rolls_back_to_the_previous_system(worlds: Worlds) -> None:
    world = worlds(["node1"], nodes=["node1"])
    good = deploy(world, "node1").result["store_path"]
    world.write_device("node1", BROKEN)
    bad = deploy(world, "node1")
    assert bad.state == TaskState.FAILED
    assert "exited with code 3" in bad.error and f"rolled back to {good}" in bad.error, bad.error
    assert_consistent(world, "node1", good)


# A system whose switch-to-configuration links itself and then fails (exit 3), as a real switch
# whose activation script breaks half-way does.
BROKEN = switch_variant("broken", """
#!/bin/sh
ln -sfn "@out@" /run/current-system
echo "activation script failed" >&2
exit 3
""", motd="broken")


def _cli(world: DeployWorld, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NIXDECK_DATA_DIR": str(world.data_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "nixdeck", "deploy", "--project", world.project_dir, *args],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _poll(predicate: Callable[[], bool], what: str, limit: float = 90.0) -> None:
    asyncio.run(wait_for(predicate, what, limit))


def _killed_while_switching(world: DeployWorld) -> str:
    """Deploy node1 once, then kill -9 a CLI deploy of a slow system inside its switch; returns
    the system node1 ran before."""
    good = str(deploy(world, "node1").result["store_path"])
    world.write_device("node1", SLOW)
    count = len(activations(world, "node1")) + 1
    cli = _cli(world, "node1")
    try:
        _poll(lambda: switching(world, "node1", count), "the switch on the device")
        os.kill(cli.pid, signal.SIGKILL)
    finally:
        cli.wait()
    return good


@pytest.mark.nix_pick(3)
def test_kill_9_during_activation_the_device_rolls_back_by_itself_and_recovery_records_it(
    worlds: Worlds,
) -> None:
    world = worlds(["node1"], nodes=["node1"], confirm_timeout=2)
    good = _killed_while_switching(world)
    # nobody confirms: after the switch and the confirm window the device restores the old system
    last = activations(world, "node1")[-1]
    _poll(lambda: "final" in status_of(last), "the device's own rollback")
    assert status_of(last)["final"] == "rolled-back"
    assert_consistent(world, "node1", good)
    _poll(lambda: world.device("node1").command_processes() == [], "the supervisor to exit", 10)

    # the next NixDeck marks the task interrupted and records what the device did by itself
    store = TaskStore(world.data_dir)
    try:
        (task,) = unsettled(store, "node1")
    finally:
        store.close()

    async def scenario(engine: TaskEngine) -> list[int]:
        return await recover_activations(engine)

    assert world.run(scenario) == [task.id]
    store = TaskStore(world.data_dir)
    try:
        rec = store.get(task.id)
    finally:
        store.close()
    assert rec.state == TaskState.INTERRUPTED
    assert rec.result["activation"]["final"] == "rolled-back"
    assert rec.result["device_system"] == {"current": good, "profile": good}
    assert f"on the device: rolled back to {good}" in (rec.error or "")


@pytest.mark.nix_pick(4)
def test_a_deploy_after_kill_9_waits_for_the_old_activation_on_the_device(worlds: Worlds) -> None:
    world = worlds(["node1"], nodes=["node1"], confirm_timeout=2)
    good = _killed_while_switching(world)
    old = activations(world, "node1")[-1]
    world.write_device("node1", NODE.format(name="node1", motd="node1 v3"))
    third = deploy(world, "node1")
    assert third.state == TaskState.COMPLETED, third.error
    new = third.result["store_path"]
    assert_consistent(world, "node1", new)
    # the old activation had ended (rolled back) before the new one read what the device ran
    assert status_of(old)["final"] == "rolled-back"
    newest = status_of(activations(world, "node1")[-1])
    assert newest["before-current"] == good
    store = TaskStore(world.data_dir)
    try:
        assert unsettled(store, "node1") == []
    finally:
        store.close()


# Stands in for systemd-run on a device that "has systemd" (/run/systemd/system exists): it records
# how NixDeck called it and starts the unit's command detached, as a transient unit would run.
FAKE_SYSTEMD_RUN = """#!/bin/sh
printf '%s\\n' "$*" >> "$NIXDECK_FAKE_SYSTEMD_LOG"
while [ $# -gt 0 ]; do
  case "$1" in --*) shift ;; *) break ;; esac
done
setsid "$@" </dev/null >/dev/null 2>&1 &
exit 0
"""


@pytest.mark.nix_pick(5)
def test_where_systemd_runs_the_activation_is_a_transient_unit(worlds: Worlds, tmp_path: Path) -> None:
    world = worlds(["node1"], nodes=["node1"])
    dev = world.device("node1")
    bindir = tmp_path / "fake-bin"
    bindir.mkdir()
    (bindir / "systemd-run").write_text(FAKE_SYSTEMD_RUN)
    (bindir / "systemd-run").chmod(0o755)
    calls = tmp_path / "systemd-run.log"
    dev.env["PATH"] = f"{bindir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    dev.env["NIXDECK_FAKE_SYSTEMD_LOG"] = str(calls)
    (dev.run_dir / "systemd" / "system").mkdir(parents=True)
    world.fleet.restart(dev)
    task = deploy(world, "node1")
    assert task.state == TaskState.COMPLETED, task.error
    (call,) = calls.read_text().splitlines()
    unit = f"--unit=nixdeck-activate-{task.result['activation']['id']}"
    assert unit in call.split() and "--collect" in call.split() and "--service-type=exec" in call.split()
    assert call.split()[-9:-7] == ["/bin/sh", f"{task.result['activation']['dir']}/supervise.sh"]
    assert_consistent(world, "node1", task.result["store_path"])


# A system whose `boot` does not make itself the boot default (a broken bootloader install): after a
# reboot the device comes back with the old system.
NO_BOOT = switch_variant("noboot", """
#!/bin/sh
echo "installing the boot loader failed quietly"
""", motd="no boot")


@pytest.mark.nix_pick(6)
def test_boot_with_reboot_waits_until_the_device_runs_the_new_system(worlds: Worlds) -> None:
    world = worlds(["node1"], nodes=["node1"])
    first = deploy(world, "node1")
    assert first.state == TaskState.COMPLETED, first.error
    world.write_device("node1", NODE.format(name="node1", motd="node1 v2"))

    async def scenario(engine: TaskEngine) -> TaskRecord:
        sub = DeployDeviceSubmission(project_dir=world.project_dir, device="node1", action="boot", reboot=True)
        return await engine.wait(await engine.submit(DEPLOY_ONE, sub))

    task = world.run(scenario)
    assert task.state == TaskState.COMPLETED, task.error
    new = task.result["store_path"]
    assert task.result["outcome"] == "rebooted"
    assert_consistent(world, "node1", new)
    assert os.readlink(world.device("node1").run_dir / "booted-system") == new
    boots = (world.device("node1").sim_state_dir / "boots").read_text().splitlines()
    assert len(boots) == 1 and boots[0].endswith(new)

    # a system that does not become the boot default: the device comes back with the old one
    world.write_device("node1", NO_BOOT)

    async def broken(engine: TaskEngine) -> TaskRecord:
        sub = DeployDeviceSubmission(project_dir=world.project_dir, device="node1", action="boot", reboot=True,
                                     reboot_timeout=6)  # fmt: skip
        return await engine.wait(await engine.submit(DEPLOY_ONE, sub))

    bad = world.run(broken)
    assert bad.state == TaskState.FAILED
    assert "did not come back into" in (bad.error or "") and f"booted {new}" in (bad.error or "")


@pytest.mark.nix_pick(7)
def test_reboot_without_boot_is_refused(worlds: Worlds) -> None:
    world = worlds(["node1"], nodes=["node1"])

    async def scenario(engine: TaskEngine) -> TaskRecord:
        sub = DeployDeviceSubmission(project_dir=world.project_dir, device="node1", reboot=True)
        return await engine.wait(await engine.submit(DEPLOY_ONE, sub))

    task = world.run(scenario)
    assert task.state == TaskState.FAILED and "reboot=true needs action boot" in (task.error or "")
